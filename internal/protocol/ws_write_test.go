package protocol

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestAppendHeader(t *testing.T) {
	for _, op := range []byte{OpText, OpBinary, OpClose, OpPing, OpPong} {
		for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1<<20 + 3, 1 << 33} {
			prefix := []byte("pre")
			b := AppendHeader(append([]byte(nil), prefix...), op, n)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendHeader clobbered its prefix")
			}
			hdr := b[len(prefix):]
			wantLen := 2
			switch {
			case n > 0xFFFF:
				wantLen = 10
			case n >= 126:
				wantLen = 4
			}
			if len(hdr) != wantLen || len(hdr) > MaxHeaderLen {
				t.Fatalf("op %#x n %d: header is %d bytes, want %d", op, n, len(hdr), wantLen)
			}
			r := bytes.NewReader(hdr)
			h, err := ws.ReadHeader(r)
			if err != nil {
				t.Fatalf("op %#x n %d: ws.ReadHeader(% x): %v", op, n, hdr, err)
			}
			if r.Len() != 0 {
				t.Fatalf("op %#x n %d: %d header bytes left unread", op, n, r.Len())
			}
			if !h.Fin || h.Rsv != 0 || h.Masked || h.OpCode != ws.OpCode(op) || h.Length != int64(n) {
				t.Fatalf("op %#x n %d: decoded %+v", op, n, h)
			}
		}
	}
}

func TestFrame(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := payloadOf(n, 9)
		b := Frame(OpBinary, payload)
		r := bytes.NewReader(b)
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatalf("n %d: %v", n, err)
		}
		if r.Len() != 0 || !f.Header.Fin || f.Header.Masked || f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("n %d: decoded header %+v, %d payload bytes, %d left", n, f.Header, len(f.Payload), r.Len())
		}
	}
}

func TestCloseFrame(t *testing.T) {
	tests := []struct {
		code       int
		reason     string
		wantReason string
	}{
		{CloseNormal, "", ""},
		{CloseTooLarge, "frame too large", "frame too large"},
		{CloseSlowConsumer, strings.Repeat("x", 123), strings.Repeat("x", 123)},
		{CloseProtocol, strings.Repeat("y", 124), strings.Repeat("y", 123)},
		{CloseKicked, strings.Repeat("z", 1000), strings.Repeat("z", 123)},
	}
	for _, tt := range tests {
		b := CloseFrame(tt.code, tt.reason)
		r := bytes.NewReader(b)
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Len() != 0 || !f.Header.Fin || f.Header.OpCode != ws.OpClose || f.Header.Masked || f.Header.Length > 125 {
			t.Fatalf("close %d: header %+v, %d bytes left", tt.code, f.Header, r.Len())
		}
		code, reason := ws.ParseCloseFrameData(f.Payload)
		if int(code) != tt.code || reason != tt.wantReason {
			t.Fatalf("close %d %q: decoded %d %q", tt.code, tt.reason, code, reason)
		}
	}
}

// TestCloseFrameReasonUTF8 is a regression test for CloseFrame cutting the
// reason at byte 123 without regard to rune boundaries: RFC 6455 section
// 5.5.1 requires the close reason to be UTF-8, and browsers fail the
// connection when it is not.
func TestCloseFrameReasonUTF8(t *testing.T) {
	for pad := range 4 {
		reason := strings.Repeat("a", 120+pad) + "€€"
		_, got := ws.ParseCloseFrameData(CloseFrame(CloseNormal, reason)[2:])
		if !utf8.ValidString(got) || len(got) > 123 {
			t.Fatalf("pad %d: reason %q", pad, got)
		}
	}
}

// fuzzStream builds a stream of masked client frames from fuzz input and
// returns it with the events a parser must deliver and the Max to use.
