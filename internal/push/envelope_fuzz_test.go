package push

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEnvelope checks the engine payload codec both ways: an envelope
// built from the fuzzer's fields comes back from splitEnvelope as it went
// into appendEnvelope (as encoding/json reads it), and any payload
// splitEnvelope accepts encodes again to one that decodes the same.
func FuzzEnvelope(f *testing.F) {
	f.Add("shop", `q"u\o`, "c_n1_2", "r 2", "m_1", "c_n1_3", "", uint8(0xff), uint64(1<<64-1), uint64(7), []byte(`{"m":1}`),
		[]byte("{\"i\":\"m_1\",\"u\":[\"alice\"],\"s\":3}\n{\"id\":\"m_1\"}"))
	f.Add("", "", "", "", "", "", kindRecall, uint8(0), uint64(0), uint64(0), []byte{}, []byte("{\"i\":\"\"}\n"))
	f.Add("a", "b", "", "", "m", "", "", uint8(8), uint64(12), uint64(0), []byte(`1`),
		[]byte("{\"i\":\"m\",\"a\":\"s\",\"u\":[\"x\" , \"ü\"],\"w\":true,\"d\":false,\"s\":0012,\"p\":1e3,\"k\":null}\n{}"))
	f.Add("ü→", "\x00\x1f", "\u2028", "<&>", "\xff", "a\xffb", "x", uint8(0x15), uint64(1), uint64(2), []byte("\n\n"), []byte("no newline"))
	f.Fuzz(func(t *testing.T, app, user, conn, room, id, except, kind string, flags uint8, seq, pos uint64, msg, raw []byte) {
		e := envelope{App: app, ID: id, Except: except, Kind: kind, Seq: seq, Pos: pos,
			Whole: flags&1 != 0, All: flags&2 != 0, Dedup: flags&4 != 0}
		if flags&8 != 0 {
			e.Users = []string{user, app}
		}
		if flags&16 != 0 {
			e.Conns = []string{conn}
		}
		if flags&32 != 0 {
			e.Rooms = []string{room, user}
		}
		if flags&64 != 0 {
			e.Skip = []string{user}
		}
		b := appendEnvelope(nil, &e, msg)
		got, gotMsg, err := splitEnvelope(b)
		if err != nil {
			t.Fatalf("%+v: %v (encoded %q)", e, err, b)
		}
		if !bytes.Equal(gotMsg, msg) {
			t.Fatalf("message %q came back as %q", msg, gotMsg)
		}
		// The encoding is JSON that encoding/json reads the same way, with
		// invalid UTF-8 replaced by U+FFFD as it would be.
		if want := viaJSON(t, &e); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %+v:\n got %+v\nwant %+v\n(encoded %q)", e, got, want, b)
		}
		if allValid(&e) && !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %+v = %+v", e, got)
		}

		// What the reflection-free scan takes, encoding/json reads the same.
		line, _, _ := bytes.Cut(raw, []byte("\n"))
		var scanned, std envelope
		if scanEnvelope(line, &scanned) {
			if err := json.Unmarshal(line, &std); err != nil || !reflect.DeepEqual(scanned, std) {
				t.Fatalf("%q: scanned %+v, encoding/json %+v (%v)", line, scanned, std, err)
			}
		}

		// Any accepted payload re-encodes to the same envelope and message.
		e1, m1, err := splitEnvelope(raw)
		if err != nil {
			return
		}
		b2 := appendEnvelope(nil, &e1, m1)
		e2, m2, err := splitEnvelope(b2)
		if err != nil || !bytes.Equal(m1, m2) || !reflect.DeepEqual(normal(e1), normal(e2)) {
			t.Fatalf("re-encoding %q: %+v %q %v, want %+v %q", raw, e2, m2, err, e1, m1)
		}
	})
}

// viaJSON is e after an encoding/json round trip.
func viaJSON(t *testing.T, e *envelope) envelope {
	t.Helper()
	head, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var out envelope
	if err := json.Unmarshal(head, &out); err != nil {
		t.Fatal(err)
	}
	// AppendString replaces each invalid byte with one U+FFFD, as
	// encoding/json does.
	return out
}

func allValid(e *envelope) bool {
	all := append([]string{e.App, e.ID, e.Except, e.Kind}, e.Users...)
	all = append(append(append(all, e.Conns...), e.Rooms...), e.Skip...)
	return utf8.ValidString(strings.Join(all, ""))
}

// normal is e with empty lists as nil: appendEnvelope omits them, as
// encoding/json's omitempty does.
func normal(e envelope) envelope {
	for _, l := range []*[]string{&e.Users, &e.Conns, &e.Rooms, &e.Skip} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return e
}
