package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		code    int
		err     error
	}{
		{"empty", nil, CloseNoStatus, nil},
		{"one byte", []byte{0x03}, 0, ErrBadClose},
		{"1000", closePayload(1000, ""), 1000, nil},
		{"1000 with reason", closePayload(1000, "bye κόσμε"), 1000, nil},
		{"4999", closePayload(4999, ""), 4999, nil},
		{"0", closePayload(0, ""), 0, ErrBadClose},
		{"1005", closePayload(1005, ""), 1005, ErrBadClose},
		{"65535", closePayload(65535, ""), 65535, ErrBadClose},
		{"bad reason", closePayload(1000, "a\xffb"), 1000, ErrInvalidUTF8},
		{"surrogate in reason", closePayload(1000, "\xed\xa0\x80"), 1000, ErrInvalidUTF8},
		{"bad reason and code", closePayload(1004, "\xff"), 1004, ErrBadClose},
	}
	for _, tt := range tests {
		code, err := ParseClose(tt.payload)
		if code != tt.code || err != tt.err {
			t.Errorf("%s: ParseClose = %d, %v; want %d, %v", tt.name, code, err, tt.code, tt.err)
		}
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := map[int]bool{}
	for _, c := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014} {
		valid[c] = true
	}
	for c := 3000; c <= 4999; c++ {
		valid[c] = true
	}
	for c := 0; c <= 0xFFFF; c++ {
		if got := ValidCloseCode(c); got != valid[c] {
			t.Errorf("ValidCloseCode(%d) = %v", c, got)
		}
	}
}

func TestValidText(t *testing.T) {
	for _, s := range []string{"", "hello", "κόσμε", "\uFFFF", "\U0010FFFF", "\x00", strings.Repeat("a", 100) + "é"} {
		if err := ValidText([]byte(s)); err != nil {
			t.Errorf("ValidText(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"a\xffb", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xce", strings.Repeat("a", 100) + "\xe2\x82"} {
		if err := ValidText([]byte(s)); err != ErrInvalidUTF8 {
			t.Errorf("ValidText(%q) = %v, want ErrInvalidUTF8", s, err)
		}
	}
}

func TestCloseCodeFor(t *testing.T) {
	for err, want := range map[error]int{
		ErrTooLarge: CloseTooLarge, ErrInvalidUTF8: CloseInvalidData, ErrBadClose: CloseProtocol,
		ErrUnmasked: CloseProtocol, ErrBadControl: CloseProtocol, ErrBadOpcode: CloseProtocol, ErrBadFragment: CloseProtocol,
		fmt.Errorf("wrapped: %w", ErrInvalidUTF8): CloseInvalidData,
	} {
		if got := CloseCodeFor(err); got != want {
			t.Errorf("CloseCodeFor(%v) = %d, want %d", err, got, want)
		}
	}
	if CloseCodeFor(errors.New("other")) != CloseProtocol {
		t.Error("an unknown error is not a protocol error")
	}
}

// asciiThenValid is the fast path ValidText does not have: a word-at-a-time
// ASCII scan before utf8.Valid. BenchmarkValidText compares the two.
func asciiThenValid(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return utf8.Valid(b[i:])
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

func BenchmarkValidText(b *testing.B) {
	for _, size := range []int{100, 4096} {
		ascii := []byte(`{"type":"send","to":{"users":["bob"]},"data":"` + strings.Repeat("x", size) + `"}`)
		mixed := []byte(`{"type":"send","to":{"users":["bob"]},"data":"` + strings.Repeat("xκ", size/3) + `"}`)
		for _, in := range []struct {
			name string
			b    []byte
		}{{"ascii", ascii}, {"mixed", mixed}} {
			b.Run(fmt.Sprintf("%s/size=%d/utf8.Valid", in.name, size), func(b *testing.B) {
				b.SetBytes(int64(len(in.b)))
				for b.Loop() {
					if ValidText(in.b) != nil {
						b.Fatal("invalid")
					}
				}
			})
			b.Run(fmt.Sprintf("%s/size=%d/ascii-first", in.name, size), func(b *testing.B) {
				b.SetBytes(int64(len(in.b)))
				for b.Loop() {
					if !asciiThenValid(in.b) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
