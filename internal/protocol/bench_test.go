package protocol

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func BenchmarkDecodeClient(b *testing.B) {
	for _, bc := range []struct{ name, frame string }{
		{"ping", `{"type":"ping"}`},
		{"join", `{"type":"join","room":"lobby-42"}`},
		{"send", `{"type":"send","to":{"users":["alice","bob"],"rooms":["lobby"]},"data":{"text":"hello there","n":42,"tags":["a","b"]}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := []byte(bc.frame)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeClient(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// jsonData returns a JSON string value of exactly n bytes.
func jsonData(n int) json.RawMessage {
	return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`)
}

func BenchmarkAppendMessage(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"size=100B", 100}, {"size=1KB", 1024}} {
		b.Run(bc.name, func(b *testing.B) {
			m := &Message{ID: "01HZX3K8Q9V7T5N2M4P6R8S0W1", Seq: 1234567, Room: "lobby", Pos: 99, From: "alice", Data: jsonData(bc.size), TS: 1700000000123}
			var buf []byte
			buf = AppendMessage(buf, m)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendMessage(buf[:0], m)
			}
		})
	}
}

func BenchmarkNewPush(b *testing.B) {
	msg := AppendMessage(nil, &Message{ID: "01HZX3K8Q9V7T5N2M4P6R8S0W1", Seq: 7, Data: jsonData(100), TS: 1700000000123})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if o := NewPush(msg); len(o.Msg) != len(msg) {
			b.Fatal("bad push")
		}
	}
}

func BenchmarkParser(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"size=100B", 100}, {"size=4KB", 4096}} {
		b.Run(bc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			frame := clientFrame(rng, true, OpText, payloadOf(bc.size, 1))
			buf := make([]byte, len(frame))
			p := &Parser{Max: 64 << 10}
			n := 0
			fn := func(op byte, payload []byte) error { n += len(payload); return nil }
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, frame) // Feed unmasks in place
				if err := p.Feed(buf, fn); err != nil {
					b.Fatal(err)
				}
			}
			if n == 0 || p.Pending() {
				b.Fatalf("parser delivered %d bytes, pending %v", n, p.Pending())
			}
		})
	}
}

// BenchmarkParserChunked feeds one 64 KiB frame in TCP-segment-sized
// chunks, the path where the parser buffers an incomplete frame.
func BenchmarkParserChunked(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	frame := clientFrame(rng, true, OpBinary, payloadOf(64<<10-14, 1))
	buf := make([]byte, len(frame))
	p := &Parser{Max: 64 << 10}
	fn := func(byte, []byte) error { return nil }
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, frame)
		for i := 0; i < len(buf); i += 1460 {
			if err := p.Feed(buf[i:min(i+1460, len(buf))], fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	if p.Pending() {
		b.Fatal("pending after a whole frame")
	}
}
