package protocol

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
)

// Each message takes a control byte c and one or two length bytes:
//
//	c&3     0 text, 1 binary, 2 control (ping, pong or close by c>>4), 3 fragmented
//	c&0x0C  0 or 8: length is one byte; 4: two bytes (16-bit length form);
//	        0x0C: 65536 plus one byte (64-bit length form)
//	c>>4    fragmented: bit 0x10 binary, 0x20 pings between fragments,
//	        c>>6 extra fragments
func fuzzStream(data []byte) (stream []byte, want []event, limit int) {
	h := fnv.New64a()
	h.Write(data)
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(len(data))))
	s := newStream(rng)
	slack := 0
	next := func(i *int) int {
		if *i >= len(data) {
			return 0
		}
		*i++
		return int(data[*i-1])
	}
	for i := 0; i < len(data) && len(s.stream) < fuzzStreamMax; {
		c := next(&i)
		n := next(&i)
		switch c & 0x0C {
		case 0x04:
			n = n<<8 | next(&i)
		case 0x0C:
			n += 0x10000
		}
		payload := payloadOf(n, byte(c))
		switch c & 0x03 {
		case 0:
			s.message(OpText, payload)
		case 1:
			s.message(OpBinary, payload)
		case 2:
			ops := [3]byte{OpPing, OpPong, OpClose}
			s.message(ops[(c>>4)%3], payload[:n%126])
		case 3:
			op := OpText
			if c&0x10 != 0 {
				op = OpBinary
			}
			withControl := c&0x20 != 0
			if withControl {
				// Max headroom for control frames inside a message: see
				// TestParserControlFrameNearMax.
				slack = 125
			}
			s.fragmented(op, payload, 2+c>>6, withControl)
		}
	}
	for _, e := range s.want {
		limit = max(limit, len(e.payload))
	}
	return s.stream, s.want, limit + slack
}

const fuzzStreamMax = 1 << 17

// fuzzSizes turns fuzz bytes into chunk sizes: mostly small, a few large.
func fuzzSizes(cuts []byte) []int {
	sizes := make([]int, len(cuts))
	for i, c := range cuts {
		if c < 0xF0 {
			sizes[i] = int(c) + 1
		} else {
			sizes[i] = (int(c) - 0xEF) * 4096
		}
	}
	return sizes
}

func FuzzParser(f *testing.F) {
	f.Add([]byte{0x00, 5}, []byte{})
	f.Add([]byte{0x00, 5, 0x01, 200, 0x02, 3}, []byte{0})
	f.Add([]byte{0x03, 40, 0x23, 40, 0x12, 0}, []byte{3, 7, 1})
	f.Add([]byte{0x04, 0x01, 0x00, 0x05, 0xFF, 0xFF}, []byte{100, 0xF1})
	f.Add([]byte{0x0C, 0x00, 0x10, 0x22, 125}, []byte{0xF0, 1, 2})
	f.Add([]byte{0xE3, 10, 0x73, 0x04, 0x00}, []byte{0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		stream, want, limit := fuzzStream(data)
		p := &Parser{Max: limit}
		got, err := feedChunks(p, stream, fuzzSizes(cuts))
		if err != nil {
			t.Fatalf("Feed: %v (stream %d bytes, Max %d)", err, len(stream), limit)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %d events %v\nwant %d events %v", len(got), got, len(want), want)
		}
		assertIdle(t, p)
	})
}

func FuzzParserGarbage(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	f.Add(uint16(100), []byte{}, []byte{})
	f.Add(uint16(100), []byte{0x81, 0x85}, []byte{1})
	f.Add(uint16(100), clientFrame(rng, true, OpText, []byte("hello")), []byte{2})
	f.Add(uint16(3), clientFrame(rng, true, OpText, []byte("hello")), []byte{})
	f.Add(uint16(100), cat(clientFrame(rng, false, OpText, []byte("he")), clientFrame(rng, true, OpPing, nil), clientFrame(rng, true, OpContinuation, []byte("llo"))), []byte{4, 1})
	f.Add(uint16(1000), clientFrame(rng, true, OpBinary, payloadOf(300, 1)), []byte{9})
	f.Add(uint16(100), cat(clientFrame(rng, true, OpContinuation, nil)), []byte{})
	f.Add(uint16(100), []byte{0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0}, []byte{3})
	f.Fuzz(func(t *testing.T, maxLen uint16, data, cuts []byte) {
		p1 := &Parser{Max: int(maxLen)}
		ev1, err1 := feedChunks(p1, data, nil)
		p2 := &Parser{Max: int(maxLen)}
		ev2, err2 := feedChunks(p2, data, fuzzSizes(cuts))

		// Splitting the input changes nothing: same events, same error.
		if err1 != err2 {
			t.Fatalf("whole: %v, split: %v", err1, err2)
		}
		if !slices.Equal(ev1, ev2) {
			t.Fatalf("whole delivered %v, split %v", ev1, ev2)
		}
		for _, e := range ev1 {
			switch e.op {
			case OpText, OpBinary:
				if len(e.payload) > int(maxLen) {
					t.Fatalf("message of %d bytes over Max %d", len(e.payload), maxLen)
				}
			case OpPing, OpPong, OpClose:
				if len(e.payload) > 125 {
					t.Fatalf("control frame of %d bytes", len(e.payload))
				}
			default:
				t.Fatalf("delivered opcode %#x", e.op)
			}
		}
		for _, p := range []*Parser{p1, p2} {
			if err1 != nil {
				switch err1 {
				case ErrTooLarge, ErrUnmasked, ErrBadControl, ErrBadOpcode, ErrBadFragment:
				default:
					t.Fatalf("unexpected error %v", err1)
				}
				// An error drops the incomplete frame; a fragmented message
				// in progress may remain.
				if p.partial != nil {
					t.Fatalf("partial kept after error %v", err1)
				}
				if p.Pending() != (p.msg != nil) {
					t.Fatalf("Pending() = %v with msg %v after an error", p.Pending(), p.msg != nil)
				}
			} else if !p.Pending() && (p.partial != nil || p.msg != nil) {
				t.Fatalf("idle parser retains a buffer")
			}
		}
		if err1 == nil && p1.Pending() != p2.Pending() {
			t.Fatalf("Pending() whole %v, split %v", p1.Pending(), p2.Pending())
		}
	})
}
