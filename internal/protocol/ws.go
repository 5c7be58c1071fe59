package protocol

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Parser and message errors; CloseCodeFor maps each to its close code:
// ErrTooLarge to 1009, ErrInvalidUTF8 to 1007, the others to 1002.
var (
	ErrTooLarge      = errors.New("protocol: frame too large")
	ErrInvalidUTF8   = errors.New("protocol: invalid UTF-8 in a text message or close reason")
	ErrBadClose      = errors.New("protocol: malformed close frame or invalid close code")
	ErrUnmasked      = errors.New("protocol: client frame not masked")
	ErrBadControl    = errors.New("protocol: malformed control frame")
	ErrBadOpcode     = errors.New("protocol: unknown opcode or reserved bits set")
	ErrBadFragment   = errors.New("protocol: unexpected continuation or interleaved message")
	errNeedMoreBytes = errors.New("need more bytes")
)

// MaxHeaderLen is the longest WebSocket frame header a server writes.
const MaxHeaderLen = 10

// AppendHeader appends an unmasked, final server frame header for a payload
// of n bytes.
func AppendHeader(b []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x80|op, byte(n))
	case n <= 0xFFFF:
		return append(b, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// Payload returns the payload of an unmasked frame made by Frame.
func Payload(frame []byte) []byte {
	if len(frame) < 2 {
		return nil
	}
	switch n := frame[1] & 0x7f; {
	case n < 126:
		return frame[2:]
	case n == 126:
		return frame[4:]
	}
	return frame[10:]
}

// Frame returns a whole unmasked server frame.
func Frame(op byte, payload []byte) []byte {
	b := AppendHeader(make([]byte, 0, MaxHeaderLen+len(payload)), op, len(payload))
	return append(b, payload...)
}

// CloseFrame returns a close frame with a status code and reason (cut to fit
// the 125-byte control payload limit).
func CloseFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		i := 123
		for i > 0 && !utf8.RuneStart(reason[i]) {
			i--
		}
		reason = reason[:i]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return Frame(OpClose, append(p, reason...))
}

// Parser reads masked client frames incrementally. Feed it whatever bytes
// arrive; it calls back once per complete message (fragments joined) and per
// control frame, and keeps only an incomplete tail between calls, so an idle
// connection holds no buffer. A Parser belongs to one connection.
type Parser struct {
	// Max is the largest message payload accepted, in bytes.
	Max int

	partial []byte // bytes of a frame not yet complete
	msg     []byte // fragments of a message not yet final
	msgOp   byte
}

// Feed consumes data. fn receives each message or control frame; its
// payload is only valid during the call. Feed stops at the first error from
// the stream or from fn.
func (p *Parser) Feed(data []byte, fn func(op byte, payload []byte) error) error {
	buffered := len(p.partial) > 0
	if buffered {
		p.partial = append(p.partial, data...)
		data = p.partial
	}
	for len(data) > 0 {
		n, err := p.frame(data, fn)
		if err == errNeedMoreBytes {
			break
		}
		if err != nil {
			p.partial = nil
			return err
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		p.partial = nil
	case buffered:
		p.partial = p.partial[:copy(p.partial, data)] // move the tail to the front
	default:
		p.partial = append([]byte(nil), data...)
	}
	return nil
}

// Pending reports whether the parser holds an incomplete frame or message.
func (p *Parser) Pending() bool { return len(p.partial) > 0 || p.msg != nil }

// frame parses one frame at the start of b and returns its length.
func (p *Parser) frame(b []byte, fn func(op byte, payload []byte) error) (int, error) {
	if len(b) < 2 {
		return 0, errNeedMoreBytes
	}
	fin := b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return 0, ErrBadOpcode
	}
	op := b[0] & 0x0F
	if b[1]&0x80 == 0 {
		return 0, ErrUnmasked
	}
	n := uint64(b[1] & 0x7F)
	h := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, errNeedMoreBytes
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0, errNeedMoreBytes
		}
		n = binary.BigEndian.Uint64(b[2:])
		h = 10
	}
	control := op >= OpClose
	if control && (n > 125 || !fin) {
		return 0, ErrBadControl
	}
	if !control && (n > uint64(p.Max) || uint64(len(p.msg))+n > uint64(p.Max)) {
		return 0, ErrTooLarge
	}
	total := h + 4 + int(n)
	if len(b) < total {
		return 0, errNeedMoreBytes
	}
	key := b[h : h+4]
	payload := b[h+4 : total]
	unmask(payload, key)

	switch {
	case control:
		if op != OpPing && op != OpPong && op != OpClose {
			return 0, ErrBadOpcode
		}
		return total, fn(op, payload)
	case op == OpContinuation:
		if p.msg == nil {
			return 0, ErrBadFragment
		}
		p.msg = append(p.msg, payload...)
		if !fin {
			return total, nil
		}
		msg, mop := p.msg, p.msgOp
		p.msg = nil
		return total, fn(mop, msg)
	case op == OpText || op == OpBinary:
		if p.msg != nil {
			return 0, ErrBadFragment
		}
		if fin {
			return total, fn(op, payload)
		}
		p.msg = append(make([]byte, 0, len(payload)), payload...)
		p.msgOp = op
		return total, nil
	default:
		return 0, ErrBadOpcode
	}
}

func unmask(b, key []byte) {
	k := binary.LittleEndian.Uint32(key)
	k64 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(b[i:], v^k64)
	}
	for j := 0; i < len(b); i, j = i+1, j+1 {
		b[i] ^= key[j&3]
	}
}

// Mask masks payload in place with key, as a client does; it is its own
// inverse. Tests and the bench client use it.
func Mask(payload []byte, key [4]byte) { unmask(payload, key[:]) }

// CloseCodeFor returns the close code that answers a stream error from
// Parser.Feed, ParseClose or ValidText: 1009 for ErrTooLarge, 1007 for
// ErrInvalidUTF8, 1002 for every other protocol error.
func CloseCodeFor(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return CloseTooLarge
	case errors.Is(err, ErrInvalidUTF8):
		return CloseInvalidData
	default:
		return CloseProtocol
	}
}

// ValidText checks a complete text message (fragments joined): RFC 6455
// section 8.1 requires valid UTF-8, checked once per message, never per
// fragment. It returns ErrInvalidUTF8 or nil.
func ValidText(payload []byte) error {
	// utf8.Valid runs its own 8-bytes-at-a-time ASCII fast path; a
	// separate one here measured no faster (see BenchmarkValidText).
	if !utf8.Valid(payload) {
		return ErrInvalidUTF8
	}
	return nil
}

// ParseClose checks a client close frame's payload (RFC 6455 sections
// 5.5.1 and 7.4) and returns its status code, CloseNoStatus when the frame
// has none. A 1-byte payload or a code that may not be sent is ErrBadClose,
// a reason that is not UTF-8 ErrInvalidUTF8.
func ParseClose(payload []byte) (int, error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, nil
	case 1:
		return 0, ErrBadClose
	}
	code := int(binary.BigEndian.Uint16(payload))
	if !ValidCloseCode(code) {
		return code, ErrBadClose
	}
	if !utf8.Valid(payload[2:]) {
		return code, ErrInvalidUTF8
	}
	return code, nil
}

// ValidCloseCode reports whether a peer may send code in a close frame:
// the codes registered with IANA that may appear on the wire (1000-1003,
// 1007-1014) and the ranges for libraries and applications (3000-4999).
// 1004 is reserved; 1005, 1006 and 1015 are never sent.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code >= 1000 && code <= 1014:
		return code != 1004 && code != CloseNoStatus && code != 1006
	}
	return false
}
