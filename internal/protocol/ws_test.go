package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// event is one callback from Parser.Feed, payload copied.
type event struct {
	op      byte
	payload string
}

func (e event) String() string {
	p := e.payload
	if len(p) > 24 {
		p = fmt.Sprintf("%.24q…(%d bytes)", p, len(e.payload))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("{op %#x %s}", e.op, p)
}

// Length encodings for encodeFrame.
const (
	lenShortest = 0
	len16       = 16
	len64       = 64
)

// encodeFrame builds one frame with first byte b0. With masked it masks the
// payload with key using Mask, as a client does.
func encodeFrame(b0 byte, masked bool, lenForm int, payload []byte, key [4]byte) []byte {
	n := len(payload)
	var m byte
	if masked {
		m = 0x80
	}
	b := make([]byte, 0, 14+n)
	b = append(b, b0)
	switch {
	case lenForm == len64 || lenForm == lenShortest && n > 0xFFFF:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case lenForm == len16 || lenForm == lenShortest && n >= 126:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|byte(n))
	}
	if masked {
		b = append(b, key[:]...)
	}
	start := len(b)
	b = append(b, payload...)
	if masked {
		Mask(b[start:], key)
	}
	return b
}

func randomKey(rng *rand.Rand) (k [4]byte) {
	binary.LittleEndian.PutUint32(k[:], rng.Uint32())
	return k
}

// clientFrame builds a masked client frame with a random key.
func clientFrame(rng *rand.Rand, fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return encodeFrame(b0, true, lenShortest, payload, randomKey(rng))
}

func testRand(t testing.TB) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return rand.New(rand.NewPCG(h.Sum64(), 0x6865726c64))
}

func payloadOf(n int, salt byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*131) ^ salt ^ byte(i>>8)
	}
	return p
}

// feedChunks feeds a copy of stream in chunks of the given sizes (cycled;
// none means all at once) and stops at the first error. Each chunk is
// copied into a scratch buffer that is scribbled over after every Feed, so
// a parser that keeps a reference to its input instead of copying the
// incomplete tail produces wrong payloads.
func feedChunks(p *Parser, stream []byte, sizes []int) ([]event, error) {
	var evs []event
	fn := func(op byte, payload []byte) error {
		evs = append(evs, event{op, string(payload)})
		return nil
	}
	scratch := make([]byte, 0, 64)
	for i, k := 0, 0; i < len(stream); k++ {
		n := len(stream) - i
		if len(sizes) > 0 {
			n = min(n, sizes[k%len(sizes)])
		}
		scratch = append(scratch[:0], stream[i:i+n]...)
		err := p.Feed(scratch, fn)
		for j := range scratch {
			scratch[j] = 0xA5
		}
		i += n
		if err != nil {
			return evs, err
		}
	}
	return evs, nil
}

func byteByByte() []int { return []int{1} }

func randomSizes(rng *rand.Rand, streamLen int) []int {
	sizes := make([]int, 1+rng.IntN(32))
	for i := range sizes {
		switch rng.IntN(3) {
		case 0:
			sizes[i] = 1 + rng.IntN(4)
		case 1:
			sizes[i] = 1 + rng.IntN(200)
		default:
			sizes[i] = 1 + rng.IntN(streamLen+1)
		}
	}
	return sizes
}

// feedModes returns named chunkings to feed a stream with: whole, byte by
// byte, and several random split patterns.
func feedModes(rng *rand.Rand, streamLen int) map[string][]int {
	modes := map[string][]int{"whole": nil, "byte-by-byte": byteByByte()}
	for i := range 8 {
		modes[fmt.Sprintf("random-%d", i)] = randomSizes(rng, streamLen)
	}
	return modes
}

func assertIdle(t *testing.T, p *Parser) {
	t.Helper()
	if p.Pending() {
		t.Fatalf("Pending() after a complete feed (partial %d bytes, msg %v)", len(p.partial), p.msg != nil)
	}
	if p.partial != nil || p.msg != nil {
		t.Fatalf("parser retains a buffer after a complete feed: partial len %d cap %d, msg %v", len(p.partial), cap(p.partial), p.msg != nil)
	}
}

// streamBuilder accumulates client frames and the events they must produce.
type streamBuilder struct {
	rng    *rand.Rand
	stream []byte
	want   []event
	// idle[i] reports whether the parser must be idle (Pending() false)
	// after exactly i bytes of the stream.
	idle   map[int]bool
	open   bool // a fragmented message is in progress
	msgOp  byte
	msgBuf []byte
}

func newStream(rng *rand.Rand) *streamBuilder {
	return &streamBuilder{rng: rng, idle: map[int]bool{0: true}}
}

func (s *streamBuilder) frame(fin bool, op byte, payload []byte) {
	s.stream = append(s.stream, clientFrame(s.rng, fin, op, payload)...)
	switch {
	case op >= OpClose:
		s.want = append(s.want, event{op, string(payload)})
	case op == OpContinuation:
		s.msgBuf = append(s.msgBuf, payload...)
		if fin {
			s.want = append(s.want, event{s.msgOp, string(s.msgBuf)})
			s.open, s.msgBuf = false, nil
		}
	default:
		if fin {
			s.want = append(s.want, event{op, string(payload)})
		} else {
			s.open, s.msgOp, s.msgBuf = true, op, append([]byte(nil), payload...)
		}
	}
	if !s.open {
		s.idle[len(s.stream)] = true
	}
}

func (s *streamBuilder) message(op byte, payload []byte) { s.frame(true, op, payload) }

// fragmented splits payload into parts frames and puts a ping between
// every two of them when withControl.
func (s *streamBuilder) fragmented(op byte, payload []byte, parts int, withControl bool) {
	cuts := make([]int, 0, parts+1)
	cuts = append(cuts, 0)
	for range parts - 1 {
		cuts = append(cuts, s.rng.IntN(len(payload)+1))
	}
	cuts = append(cuts, len(payload))
	slices.Sort(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		if i > 0 {
			op = OpContinuation
			if withControl {
				s.message(OpPing, payloadOf(s.rng.IntN(20), byte(i)))
			}
		}
		s.frame(i+2 == len(cuts), op, payload[cuts[i]:cuts[i+1]])
	}
}

func TestMaskMatchesRFC(t *testing.T) {
	rng := testRand(t)
	for n := range 70 {
		key := randomKey(rng)
		orig := payloadOf(n, byte(n))
		got := append([]byte(nil), orig...)
		Mask(got, key)
		for i := range orig {
			if want := orig[i] ^ key[i%4]; got[i] != want {
				t.Fatalf("len %d key %x: byte %d = %#x, want %#x", n, key, i, got[i], want)
			}
		}
		// gobwas/ws agrees.
		ref := append([]byte(nil), orig...)
		ws.Cipher(ref, key, 0)
		if !bytes.Equal(got, ref) {
			t.Fatalf("len %d: Mask differs from ws.Cipher", n)
		}
		Mask(got, key)
		if !bytes.Equal(got, orig) {
			t.Fatalf("len %d: Mask is not its own inverse", n)
		}
	}
}

func TestParserStream(t *testing.T) {
	rng := testRand(t)
	s := newStream(rng)
	s.message(OpText, []byte(`{"type":"ping"}`))
	s.message(OpText, nil)
	s.message(OpBinary, payloadOf(1, 1))
	s.message(OpPing, []byte("are you there"))
	s.message(OpText, payloadOf(125, 2))
	s.message(OpBinary, payloadOf(126, 3))
	s.message(OpPong, nil)
	s.message(OpText, payloadOf(127, 4))
	s.message(OpText, payloadOf(1000, 5))
	s.fragmented(OpText, payloadOf(3000, 6), 5, true)
	s.message(OpBinary, payloadOf(65535, 7))
	s.fragmented(OpBinary, payloadOf(200, 8), 3, false)
	s.message(OpText, payloadOf(65536, 9))
	s.message(OpPing, payloadOf(125, 10))
	s.message(OpBinary, payloadOf(70000, 11))
	s.message(OpClose, append(binary.BigEndian.AppendUint16(nil, 1000), "bye"...))

	for name, sizes := range feedModes(rng, len(s.stream)) {
		t.Run(name, func(t *testing.T) {
			p := &Parser{Max: 1 << 20}
			got, err := feedChunks(p, s.stream, sizes)
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if !slices.Equal(got, s.want) {
				t.Fatalf("got %d events %v\nwant %d events %v", len(got), got, len(s.want), s.want)
			}
			assertIdle(t, p)
		})
	}
}

// TestParserPendingByteByByte checks Pending() after every single byte: it
// is false exactly at frame boundaries outside a fragmented message.
func TestParserPendingByteByByte(t *testing.T) {
	rng := testRand(t)
	s := newStream(rng)
	s.message(OpText, []byte("hello"))
	s.message(OpPing, nil)
	s.fragmented(OpText, []byte("fragmented message body"), 4, true)
	s.message(OpBinary, payloadOf(300, 1))
	s.fragmented(OpBinary, payloadOf(10, 2), 2, false)
	s.message(OpText, nil)

	p := &Parser{Max: 1 << 16}
	stream := append([]byte(nil), s.stream...)
	var got []event
	for i := range stream {
		err := p.Feed(stream[i:i+1], func(op byte, payload []byte) error {
			got = append(got, event{op, string(payload)})
			return nil
		})
		if err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		if want := !s.idle[i+1]; p.Pending() != want {
			t.Fatalf("after %d of %d bytes: Pending() = %v, want %v", i+1, len(stream), p.Pending(), want)
		}
		if !p.Pending() && p.partial != nil {
			t.Fatalf("after %d bytes: idle parser keeps partial (cap %d)", i+1, cap(p.partial))
		}
	}
	if !slices.Equal(got, s.want) {
		t.Fatalf("got %v\nwant %v", got, s.want)
	}
}

func TestParserFragmented(t *testing.T) {
	rng := testRand(t)
	tests := []struct {
		name   string
		frames [][]byte
		want   []event
	}{
		{"text in three fragments", [][]byte{
			clientFrame(rng, false, OpText, []byte("Hel")),
			clientFrame(rng, false, OpContinuation, []byte("lo, ")),
			clientFrame(rng, true, OpContinuation, []byte("World")),
		}, []event{{OpText, "Hello, World"}}},
		{"binary in two fragments", [][]byte{
			clientFrame(rng, false, OpBinary, []byte{0, 1, 2}),
			clientFrame(rng, true, OpContinuation, []byte{3, 4}),
		}, []event{{OpBinary, "\x00\x01\x02\x03\x04"}}},
		{"empty fragments", [][]byte{
			clientFrame(rng, false, OpText, nil),
			clientFrame(rng, false, OpContinuation, nil),
			clientFrame(rng, true, OpContinuation, nil),
		}, []event{{OpText, ""}}},
		{"empty first fragment", [][]byte{
			clientFrame(rng, false, OpText, nil),
			clientFrame(rng, true, OpContinuation, []byte("x")),
		}, []event{{OpText, "x"}}},
		{"control frames between fragments", [][]byte{
			clientFrame(rng, false, OpText, []byte("a")),
			clientFrame(rng, true, OpPing, []byte("p1")),
			clientFrame(rng, false, OpContinuation, []byte("b")),
			clientFrame(rng, true, OpPong, nil),
			clientFrame(rng, true, OpPing, []byte("p2")),
			clientFrame(rng, true, OpContinuation, []byte("c")),
			clientFrame(rng, true, OpText, []byte("next")),
		}, []event{{OpPing, "p1"}, {OpPong, ""}, {OpPing, "p2"}, {OpText, "abc"}, {OpText, "next"}}},
		{"close between fragments", [][]byte{
			clientFrame(rng, false, OpBinary, []byte("a")),
			clientFrame(rng, true, OpClose, []byte{0x03, 0xe8}),
		}, []event{{OpClose, "\x03\xe8"}}},
		{"two fragmented messages back to back", [][]byte{
			clientFrame(rng, false, OpText, []byte("one ")),
			clientFrame(rng, true, OpContinuation, []byte("two")),
			clientFrame(rng, false, OpBinary, []byte("three ")),
			clientFrame(rng, true, OpContinuation, []byte("four")),
		}, []event{{OpText, "one two"}, {OpBinary, "three four"}}},
	}
	for _, tt := range tests {
		stream := bytes.Join(tt.frames, nil)
		for mode, sizes := range feedModes(rng, len(stream)) {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				p := &Parser{Max: 1 << 10}
				got, err := feedChunks(p, stream, sizes)
				if err != nil {
					t.Fatalf("Feed: %v", err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				if tt.want[len(tt.want)-1].op == OpClose {
					if !p.Pending() {
						t.Fatalf("Pending() false with a fragmented message still open")
					}
					return
				}
				assertIdle(t, p)
			})
		}
	}
}

func TestParserPendingBetweenFragments(t *testing.T) {
	rng := testRand(t)
	p := &Parser{Max: 100}
	var got []event
	fn := func(op byte, payload []byte) error {
		got = append(got, event{op, string(payload)})
		return nil
	}
	if err := p.Feed(clientFrame(rng, false, OpText, []byte("ab")), fn); err != nil {
		t.Fatal(err)
	}
	if !p.Pending() || len(got) != 0 {
		t.Fatalf("after a first fragment: Pending %v, events %v", p.Pending(), got)
	}
	if p.partial != nil {
		t.Fatalf("complete frame left %d bytes in partial", len(p.partial))
	}
	if err := p.Feed(clientFrame(rng, true, OpContinuation, []byte("cd")), fn); err != nil {
		t.Fatal(err)
	}
	if want := []event{{OpText, "abcd"}}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	assertIdle(t, p)
}

func TestParserControlFrames(t *testing.T) {
	rng := testRand(t)
	closeBody := append(binary.BigEndian.AppendUint16(nil, 1001), "going away"...)
	tests := []struct {
		op      byte
		payload []byte
	}{
		{OpPing, nil},
		{OpPing, []byte("ping!")},
		{OpPing, payloadOf(125, 1)},
		{OpPong, nil},
		{OpPong, payloadOf(125, 2)},
		{OpClose, nil},
		{OpClose, closeBody},
		{OpClose, append(binary.BigEndian.AppendUint16(nil, 4000), strings.Repeat("r", 123)...)},
	}
	for _, tt := range tests {
		stream := clientFrame(rng, true, tt.op, tt.payload)
		for mode, sizes := range feedModes(rng, len(stream)) {
			t.Run(fmt.Sprintf("op=%#x/len=%d/%s", tt.op, len(tt.payload), mode), func(t *testing.T) {
				p := &Parser{Max: 10} // Max applies to messages; control frames go up to 125 regardless
				if len(tt.payload) > p.Max {
					p.Max = len(tt.payload)
				}
				got, err := feedChunks(p, stream, sizes)
				if err != nil {
					t.Fatalf("Feed: %v", err)
				}
				if want := []event{{tt.op, string(tt.payload)}}; !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
				assertIdle(t, p)
			})
		}
	}
}

func TestParserLengths(t *testing.T) {
	rng := testRand(t)
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, 200000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			payload := payloadOf(n, byte(n))
			frame := clientFrame(rng, true, OpBinary, payload)
			// Make sure the length form under test is the one on the wire.
			wantLen7, wantHeader := byte(n), 2
			switch {
			case n > 0xFFFF:
				wantLen7, wantHeader = 127, 10
			case n >= 126:
				wantLen7, wantHeader = 126, 4
			}
			if frame[1]&0x7F != wantLen7 || len(frame) != wantHeader+4+n {
				t.Fatalf("helper built a %#x length form, %d bytes", frame[1]&0x7F, len(frame))
			}
			for mode, sizes := range map[string][]int{"whole": nil, "byte-by-byte": byteByByte(), "random": randomSizes(rng, len(frame))} {
				p := &Parser{Max: n}
				got, err := feedChunks(p, frame, sizes)
				if err != nil {
					t.Fatalf("%s: Feed: %v", mode, err)
				}
				if want := []event{{OpBinary, string(payload)}}; !slices.Equal(got, want) {
					t.Fatalf("%s: got %v, want %v", mode, got, want)
				}
				assertIdle(t, p)
			}
			if n > 0 {
				p := &Parser{Max: n - 1}
				if _, err := feedChunks(p, frame, nil); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Max %d: err %v, want ErrTooLarge", n-1, err)
				}
			}
		})
	}
}

// TestParserGobwasFrames feeds frames built and masked by gobwas/ws, so that
// the framing is checked against an implementation other than this package.
func TestParserGobwasFrames(t *testing.T) {
	rng := testRand(t)
	compile := func(f ws.Frame) []byte {
		b, err := ws.CompileFrame(ws.MaskFrameWith(f, randomKey(rng)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	big := payloadOf(70000, 3)
	frames := [][]byte{
		compile(ws.NewTextFrame([]byte(`{"type":"join","room":"lobby"}`))),
		compile(ws.NewBinaryFrame(payloadOf(300, 1))),
		compile(ws.NewPingFrame([]byte("hi"))),
		compile(ws.NewFrame(ws.OpText, false, []byte("frag-"))),
		compile(ws.NewPongFrame(nil)),
		compile(ws.NewFrame(ws.OpContinuation, true, []byte("ment"))),
		compile(ws.NewBinaryFrame(big)),
		compile(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))),
	}
	want := []event{
		{OpText, `{"type":"join","room":"lobby"}`},
		{OpBinary, string(payloadOf(300, 1))},
		{OpPing, "hi"},
		{OpPong, ""},
		{OpText, "frag-ment"},
		{OpBinary, string(big)},
		{OpClose, "\x03\xe8done"},
	}
	stream := bytes.Join(frames, nil)
	for mode, sizes := range feedModes(rng, len(stream)) {
		t.Run(mode, func(t *testing.T) {
			p := &Parser{Max: len(big)}
			got, err := feedChunks(p, stream, sizes)
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			assertIdle(t, p)
		})
	}
}

func TestParserErrors(t *testing.T) {
	rng := testRand(t)
	fr := func(fin bool, op byte, payload []byte) []byte { return clientFrame(rng, fin, op, payload) }
	raw := func(b0 byte, masked bool, lenForm int, payload []byte) []byte {
		return encodeFrame(b0, masked, lenForm, payload, randomKey(rng))
	}
	ok := fr(true, OpText, []byte("ok"))
	okEvent := event{OpText, "ok"}
	header64 := func(n uint64) []byte { // masked binary header with a 64-bit length and no payload
		return binary.BigEndian.AppendUint64([]byte{0x80 | OpBinary, 0x80 | 127}, n)
	}
	tests := []struct {
		name   string
		max    int
		stream []byte
		err    error
		before []event // delivered before the error
	}{
		{"unmasked text", 100, raw(0x80|OpText, false, lenShortest, []byte("x")), ErrUnmasked, nil},
		{"unmasked empty", 100, raw(0x80|OpText, false, lenShortest, nil), ErrUnmasked, nil},
		{"unmasked ping", 100, raw(0x80|OpPing, false, lenShortest, nil), ErrUnmasked, nil},
		{"unmasked after a good frame", 100, cat(ok, raw(0x80|OpText, false, lenShortest, []byte("x"))), ErrUnmasked, []event{okEvent}},
		{"unmasked header only", 100, []byte{0x81, 0x05}, ErrUnmasked, nil},

		{"text over max", 10, fr(true, OpText, payloadOf(11, 0)), ErrTooLarge, nil},
		{"binary over max, 16-bit length", 1000, fr(true, OpBinary, payloadOf(1001, 0)), ErrTooLarge, nil},
		{"over max, 64-bit length", 65536, fr(true, OpBinary, payloadOf(65537, 0)), ErrTooLarge, nil},
		{"max 0 refuses one byte", 0, fr(true, OpText, []byte("x")), ErrTooLarge, nil},
		{"over max announced in the header alone", 1 << 20, header64(1 << 40), ErrTooLarge, nil},
		{"64-bit length with the top bit set", 1 << 20, header64(1 << 63), ErrTooLarge, nil},
		{"64-bit length all ones", 1 << 20, header64(^uint64(0)), ErrTooLarge, nil},
		{"fragments summing over max", 10, cat(fr(false, OpText, payloadOf(6, 0)), fr(true, OpContinuation, payloadOf(5, 0))), ErrTooLarge, nil},
		{"many fragments summing over max", 10, cat(
			fr(false, OpBinary, payloadOf(3, 0)),
			fr(false, OpContinuation, payloadOf(3, 0)),
			fr(false, OpContinuation, payloadOf(3, 0)),
			fr(true, OpContinuation, payloadOf(2, 0))), ErrTooLarge, nil},
		{"over max after good frames", 10, cat(ok, ok, fr(true, OpText, payloadOf(11, 0))), ErrTooLarge, []event{okEvent, okEvent}},

		{"ping over 125", 1 << 20, fr(true, OpPing, payloadOf(126, 0)), ErrBadControl, nil},
		{"pong over 125", 1 << 20, fr(true, OpPong, payloadOf(200, 0)), ErrBadControl, nil},
		{"close over 125", 1 << 20, fr(true, OpClose, payloadOf(126, 0)), ErrBadControl, nil},
		{"ping with 64-bit length over 125", 1 << 20, raw(0x80|OpPing, true, len64, payloadOf(70000, 0)), ErrBadControl, nil},
		{"ping not final", 100, fr(false, OpPing, nil), ErrBadControl, nil},
		{"pong not final", 100, fr(false, OpPong, []byte("x")), ErrBadControl, nil},
		{"close not final", 100, fr(false, OpClose, nil), ErrBadControl, nil},
		{"control not final inside a message", 100, cat(fr(false, OpText, []byte("a")), fr(false, OpPing, nil)), ErrBadControl, nil},

		{"rsv1", 100, raw(0x80|0x40|OpText, true, lenShortest, []byte("x")), ErrBadOpcode, nil},
		{"rsv2", 100, raw(0x80|0x20|OpText, true, lenShortest, []byte("x")), ErrBadOpcode, nil},
		{"rsv3", 100, raw(0x80|0x10|OpText, true, lenShortest, []byte("x")), ErrBadOpcode, nil},
		{"rsv on ping", 100, raw(0x80|0x40|OpPing, true, lenShortest, nil), ErrBadOpcode, nil},
		{"rsv after a good frame", 100, cat(ok, raw(0x80|0x70|OpText, true, lenShortest, nil)), ErrBadOpcode, []event{okEvent}},
		{"reserved data opcode 3", 100, raw(0x80|0x3, true, lenShortest, []byte("x")), ErrBadOpcode, nil},
		{"reserved data opcode 7", 100, raw(0x80|0x7, true, lenShortest, nil), ErrBadOpcode, nil},
		{"reserved control opcode 0xB", 100, raw(0x80|0xB, true, lenShortest, []byte("x")), ErrBadOpcode, nil},
		{"reserved control opcode 0xF", 100, raw(0x80|0xF, true, lenShortest, nil), ErrBadOpcode, nil},

		{"continuation without start", 100, fr(true, OpContinuation, []byte("x")), ErrBadFragment, nil},
		{"non-final continuation without start", 100, fr(false, OpContinuation, nil), ErrBadFragment, nil},
		{"continuation after a complete message", 100, cat(ok, fr(true, OpContinuation, []byte("x"))), ErrBadFragment, []event{okEvent}},
		{"continuation after a finished fragmented message", 100, cat(
			fr(false, OpText, []byte("a")), fr(true, OpContinuation, []byte("b")), fr(true, OpContinuation, []byte("c"))),
			ErrBadFragment, []event{{OpText, "ab"}}},
		{"text while a message is open", 100, cat(fr(false, OpText, []byte("a")), fr(true, OpText, []byte("b"))), ErrBadFragment, nil},
		{"binary while a message is open", 100, cat(fr(false, OpText, []byte("a")), fr(false, OpBinary, []byte("b"))), ErrBadFragment, nil},
	}
	for _, tt := range tests {
		for mode, sizes := range feedModes(rng, len(tt.stream)) {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				p := &Parser{Max: tt.max}
				got, err := feedChunks(p, tt.stream, sizes)
				if err != tt.err {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				if !slices.Equal(got, tt.before) {
					t.Fatalf("delivered %v before the error, want %v", got, tt.before)
				}
				// Feed drops its incomplete-frame buffer on every error.
				if p.partial != nil {
					t.Fatalf("partial kept after an error: %d bytes", len(p.partial))
				}
			})
		}
	}
}

func TestParserErrorInsideFragmentedMessage(t *testing.T) {
	// An error drops the incomplete frame. It does not promise to drop a
	// fragmented message in progress (Pending() may stay true); callers
	// close the connection on any error.
	rng := testRand(t)
	stream := cat(
		clientFrame(rng, false, OpText, []byte("a")),
		clientFrame(rng, true, OpPing, []byte("p")),
		clientFrame(rng, true, OpContinuation, payloadOf(200, 0)),
	)
	for mode, sizes := range feedModes(rng, len(stream)) {
		t.Run(mode, func(t *testing.T) {
			p := &Parser{Max: 100}
			got, err := feedChunks(p, stream, sizes)
			if err != ErrTooLarge {
				t.Fatalf("err %v, want ErrTooLarge", err)
			}
			if want := []event{{OpPing, "p"}}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			if p.partial != nil {
				t.Fatalf("partial kept after an error")
			}
		})
	}
}

func TestParserCallbackError(t *testing.T) {
	rng := testRand(t)
	stop := errors.New("stop")
	stream := cat(
		clientFrame(rng, true, OpText, []byte("1")),
		clientFrame(rng, true, OpText, []byte("2")),
		clientFrame(rng, true, OpText, []byte("3")),
		clientFrame(rng, false, OpText, []byte("4")), // incomplete tail
	)
	for mode, sizes := range map[string][]int{"whole": nil, "byte-by-byte": byteByByte()} {
		t.Run(mode, func(t *testing.T) {
			p := &Parser{Max: 100}
			var got []string
			var err error
			buf := append([]byte(nil), stream...)
			for i := 0; i < len(buf) && err == nil; {
				n := len(buf) - i
				if sizes != nil {
					n = 1
				}
				err = p.Feed(buf[i:i+n], func(op byte, payload []byte) error {
					got = append(got, string(payload))
					if string(payload) == "2" {
						return stop
					}
					return nil
				})
				i += n
			}
			if err != stop {
				t.Fatalf("Feed returned %v, want the callback's error", err)
			}
			if !slices.Equal(got, []string{"1", "2"}) {
				t.Fatalf("delivered %v, want [1 2]: Feed must stop at the callback's error", got)
			}
			if p.partial != nil {
				t.Fatalf("partial kept after a callback error")
			}
		})
	}
}

func TestParserMaxBoundary(t *testing.T) {
	rng := testRand(t)
	const limit = 300
	tests := []struct {
		name   string
		stream []byte
		want   []event
	}{
		{"single frame of exactly max", clientFrame(rng, true, OpText, payloadOf(limit, 1)), []event{{OpText, string(payloadOf(limit, 1))}}},
		{"fragments summing to exactly max", cat(
			clientFrame(rng, false, OpBinary, payloadOf(100, 2)),
			clientFrame(rng, false, OpContinuation, payloadOf(150, 3)),
			clientFrame(rng, true, OpContinuation, payloadOf(50, 4))),
			[]event{{OpBinary, string(payloadOf(100, 2)) + string(payloadOf(150, 3)) + string(payloadOf(50, 4))}}},
		{"max applies per message, not per stream", cat(
			clientFrame(rng, true, OpText, payloadOf(limit, 5)),
			clientFrame(rng, false, OpText, payloadOf(limit, 6)),
			clientFrame(rng, true, OpContinuation, nil)),
			[]event{{OpText, string(payloadOf(limit, 5))}, {OpText, string(payloadOf(limit, 6))}}},
		{"control frame inside a message with room to spare", cat(
			clientFrame(rng, false, OpText, payloadOf(100, 7)),
			clientFrame(rng, true, OpPing, payloadOf(125, 8)),
			clientFrame(rng, true, OpContinuation, payloadOf(100, 9))),
			[]event{{OpPing, string(payloadOf(125, 8))}, {OpText, string(payloadOf(100, 7)) + string(payloadOf(100, 9))}}},
	}
	for _, tt := range tests {
		for mode, sizes := range feedModes(rng, len(tt.stream)) {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				p := &Parser{Max: limit}
				got, err := feedChunks(p, tt.stream, sizes)
				if err != nil {
					t.Fatalf("Feed: %v", err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				assertIdle(t, p)
			})
		}
	}
}

// TestParserControlFrameNearMax is a regression test for a bug in
// Parser.frame: the ErrTooLarge check adds a control frame's length to the
// fragmented message in progress, so a ping between fragments of a message
// that is within Max is refused. Control frames are not part of the message.
func TestParserControlFrameNearMax(t *testing.T) {
	rng := testRand(t)
	p := &Parser{Max: 10}
	stream := cat(
		clientFrame(rng, false, OpText, payloadOf(10, 1)),
		clientFrame(rng, true, OpPing, []byte("p")),
		clientFrame(rng, true, OpContinuation, nil),
	)
	got, err := feedChunks(p, stream, nil)
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	if want := []event{{OpPing, "p"}, {OpText, string(payloadOf(10, 1))}}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
