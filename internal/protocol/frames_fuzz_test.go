package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeClient checks the client frame decoder end to end: any input
// DecodeClient accepts, encoded again and sent as a masked WebSocket text
// message (split into fragments and TCP chunks where the fuzzer says),
// comes out of Parser and DecodeClient as the same frame.
func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`,
		`{"type":"auth","token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}`,
		`{"type":"join","room":"κόσμε","since":7}`,
		`{"type":"leave","room":"lobby"}`,
		`{"type":"ack","seq":18446744073709551615}`,
		`{"type":"resume","since":0}`,
		`{"type":"send","to":{"users":["bob","\u00e9"],"rooms":["r1"]},"data":{"text":"hi","n":[1,2.5e3,null,true]}}`,
		`{"type":"send","to":{"users":["a"]},"data":"a\ud800b"}`,
	} {
		f.Add([]byte(s), uint16(7), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, frag uint16, chunk uint8) {
		f1, ferr := DecodeClient(in)
		if ferr != nil {
			if ferr.Code != ErrCodeInvalidFrame && ferr.Code != ErrCodeInvalidArgument {
				t.Fatalf("error code %d", ferr.Code)
			}
			return
		}
		enc, err := json.Marshal(f1)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", f1, err)
		}
		if ValidText(enc) != nil {
			t.Fatalf("re-encoded frame is not UTF-8: %q", enc)
		}
		// The message as a client sends it: masked, in fragments of frag
		// bytes, fed to the parser in chunks of chunk bytes.
		size := max(1, int(frag))
		var stream []byte
		for i := 0; i == 0 || i < len(enc); i += size {
			op := OpText
			if i > 0 {
				op = OpContinuation
			}
			end := min(i+size, len(enc))
			b0 := op
			if end == len(enc) {
				b0 |= 0x80
			}
			stream = append(stream, encodeFrame(b0, true, lenShortest, enc[i:end], [4]byte{1, 2, 3, byte(i)})...)
		}
		p := &Parser{Max: len(enc)}
		evs, err := feedChunks(p, stream, []int{max(1, int(chunk))})
		if err != nil || len(evs) != 1 || evs[0].op != OpText || evs[0].payload != string(enc) {
			t.Fatalf("parser: %v, %v for %q", err, evs, enc)
		}
		f2, ferr := DecodeClient([]byte(evs[0].payload))
		if ferr != nil {
			t.Fatalf("re-decoding %s: %v", enc, ferr)
		}
		// encoding/json compacts and HTML-escapes raw data when it
		// re-encodes it, and omits empty lists.
		if f1.Data != nil {
			var compact, escaped bytes.Buffer
			if err := json.Compact(&compact, f1.Data); err != nil {
				t.Fatalf("data %q is not JSON: %v", f1.Data, err)
			}
			json.HTMLEscape(&escaped, compact.Bytes())
			f1.Data = escaped.Bytes()
		}
		if f1.To != nil && len(f1.To.Users) == 0 {
			f1.To.Users = nil
		}
		if f1.To != nil && len(f1.To.Rooms) == 0 {
			f1.To.Rooms = nil
		}
		if !reflect.DeepEqual(f1, f2) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v\n(via %s)", f1, f2, enc)
		}
	})
}
