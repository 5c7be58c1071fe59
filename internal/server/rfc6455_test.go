package server

// RFC 6455 conformance: the cases of Autobahn|Testsuite sections 1-7
// (framing, pings and pongs, reserved bits, opcodes, fragmentation, UTF-8,
// closing) that apply to a server, run against a real node by a raw TCP
// client that writes hand-made masked frames. Autobahn's "echo" cases
// assume an echo server; Herald's text frames are JSON requests, so those
// cases send a JSON frame and assert Herald's documented answer instead: a
// padded {"type":"ping"} answered by {"type":"pong"}, a join whose joined
// frame carries the room name back, or an error frame (4006 for a binary
// frame or text that is not JSON).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/protocol"
)

// rawWS is a WebSocket client that writes whatever bytes a case needs.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// rawWS connects, upgrades by hand and reads welcome and resumed.
func (n *node) rawWS(query string) *rawWS {
	n.t.Helper()
	addr := strings.TrimPrefix(n.base, "http://")
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(conn, "GET /v1/ws?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", query, addr, base64.StdEncoding.EncodeToString(key[:]))
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	c := &rawWS{t: n.t, conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		n.t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, typ := range []string{"welcome", "resumed"} {
		if op, p := c.read(); op != ws.OpText || !strings.Contains(string(p), `"type":"`+typ+`"`) {
			n.t.Fatalf("got %v %s, want %s", op, p, typ)
		}
	}
	// Answers to frames sent while the (empty) replay is still ending are
	// held until it ends, and dropped if the connection closes first: one
	// round trip makes sure it has ended before a case starts.
	c.write(whole(textFrame(`{"type":"ping"}`)))
	if op, p := c.read(); op != ws.OpText || string(p) != `{"type":"pong"}` {
		n.t.Fatalf("got %v %s, want a pong", op, p)
	}
	return c
}

// read returns the next server frame, failing on anything a server may not
// send (a masked frame, reserved bits, a fragment).
func (c *rawWS) read() (ws.OpCode, []byte) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	f, err := ws.ReadFrame(c.br)
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	if f.Header.Masked || f.Header.Rsv != 0 || !f.Header.Fin {
		c.t.Fatalf("server frame with header %+v", f.Header)
	}
	return f.Header.OpCode, f.Payload
}

// write sends each chunk with its own write; a write that fails (the
// server closed while a chopped case was still being sent) ends it.
func (c *rawWS) write(chunks [][]byte) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	for _, b := range chunks {
		if _, err := c.conn.Write(b); err != nil {
			return
		}
	}
}

// expectEOF fails unless the server ends the TCP connection next.
func (c *rawWS) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		c.t.Fatalf("byte %#x after the close frame", b)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isReset(err):
	default:
		c.t.Fatalf("after the close frame: %v, want EOF", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// Frame builders. b0 is the first header byte: FIN, RSV1-3 and opcode.
const (
	fin  = 0x80
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frameOf builds a masked client frame.
func frameOf(b0 byte, payload []byte) []byte {
	return encodeClientFrame(b0, true, payload)
}

func encodeClientFrame(b0 byte, masked bool, payload []byte) []byte {
	var m byte
	if masked {
		m = 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, m|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, m|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, maskKey[:]...)
	start := len(b)
	b = append(b, payload...)
	protocol.Mask(b[start:], maskKey)
	return b
}

func textFrame(s string) []byte    { return frameOf(fin|byte(ws.OpText), []byte(s)) }
func binaryFrame(p []byte) []byte  { return frameOf(fin|byte(ws.OpBinary), p) }
func pingFrame(p []byte) []byte    { return frameOf(fin|byte(ws.OpPing), p) }
func pongFrame(p []byte) []byte    { return frameOf(fin|byte(ws.OpPong), p) }
func closeFrameOf(p []byte) []byte { return frameOf(fin|byte(ws.OpClose), p) }
func closeCode(code int, reason string) []byte {
	return closeFrameOf(append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...))
}

// fragments splits a text message into frames of at most size bytes.
func fragments(op ws.OpCode, msg []byte, size int) [][]byte {
	var out [][]byte
	for i := 0; i == 0 || i < len(msg); i += size {
		b0 := byte(op)
		if i > 0 {
			b0 = byte(ws.OpContinuation)
		}
		end := min(i+size, len(msg))
		if end == len(msg) {
			b0 |= fin
		}
		out = append(out, frameOf(b0, msg[i:end]))
	}
	return out
}

// Ways to send a case's frames.
func whole(frames ...[]byte) [][]byte { return [][]byte{cat(frames...)} }
func each(frames ...[]byte) [][]byte  { return frames }
func chopped(size int, frames ...[]byte) [][]byte {
	all := cat(frames...)
	var out [][]byte
	for i := 0; i < len(all); i += size {
		out = append(out, all[i:min(i+size, len(all))])
	}
	return out
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// pingJSON is a {"type":"ping"} frame padded with spaces to exactly n bytes.
func pingJSON(n int) string {
	s := `{"type":"ping"}`
	return s + strings.Repeat(" ", n-len(s))
}

// want is one frame the server must send.
type want struct {
	op      ws.OpCode
	typ     string // text: the JSON type
	code    int    // text: an error frame's code; close: the close code
	room    string // text: a joined frame's room
	payload []byte // pong: the payload
}

func textPong() want           { return want{op: ws.OpText, typ: "pong"} }
func errorOf(code int) want    { return want{op: ws.OpText, typ: "error", code: code} }
func joined(room string) want  { return want{op: ws.OpText, typ: "joined", room: room} }
func pongOf(p []byte) want     { return want{op: ws.OpPong, payload: p} }
func closedWith(code int) want { return want{op: ws.OpClose, code: code} }

// wsCase is one conformance case: what the client writes and every frame
// the server answers, in order. A case that does not end with a close
// frame is followed by a JSON ping whose pong must be the next frame (so
// nothing else came), then a close 1000 that must be echoed.
type wsCase struct {
	id   string // the Autobahn case, or "herald-…"
	send [][]byte
	want []want
}

// run plays c on a new connection.
func (tc wsCase) run(t *testing.T, n *node) {
	t.Helper()
	c := n.rawWS("user=rfc")
	c.write(tc.send)
	wants := tc.want
	if len(wants) == 0 || wants[len(wants)-1].op != ws.OpClose {
		c.write(whole(textFrame(`{"type":"ping"}`), closeCode(1000, "")))
		wants = append(append([]want(nil), wants...), textPong(), closedWith(1000))
	}
	for i, w := range wants {
		op, p := c.read()
		if op != w.op {
			t.Fatalf("frame %d: opcode %v %.80q, want %v (%+v)", i, op, p, w.op, w)
		}
		switch w.op {
		case ws.OpClose:
			code := 0
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			if code != w.code {
				t.Fatalf("frame %d: close %d %q, want close %d", i, code, p, w.code)
			}
			if !utf8.Valid(p[min(len(p), 2):]) {
				t.Fatalf("close reason is not UTF-8: %q", p)
			}
		case ws.OpPong:
			if string(p) != string(w.payload) {
				t.Fatalf("frame %d: pong %q, want %q", i, p, w.payload)
			}
		case ws.OpText:
			var m struct {
				Type string `json:"type"`
				Code int    `json:"code"`
				Room string `json:"room"`
			}
			if err := json.Unmarshal(p, &m); err != nil || m.Type != w.typ || m.Code != w.code || m.Room != w.room {
				t.Fatalf("frame %d: %s, want %+v", i, p, w)
			}
		}
	}
	c.expectEOF()
}

func runCases(t *testing.T, n *node, cases []wsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) { tc.run(t, n) })
	}
}

// opFrame builds a frame with any opcode, final.
func opFrame(op byte, payload []byte) []byte { return frameOf(fin|op, payload) }

var binaryPayload = []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}

func bytesOf(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestRFC6455Framing(t *testing.T) { // Autobahn section 1
	n := startNode(t, nil)
	var cases []wsCase
	cases = append(cases, wsCase{"1.1.1", whole(textFrame("")), []want{errorOf(protocol.ErrCodeInvalidFrame)}})
	for i, size := range []int{125, 126, 127, 128, 65535, 65536} {
		cases = append(cases,
			wsCase{fmt.Sprintf("1.1.%d", i+2), whole(textFrame(pingJSON(size))), []want{textPong()}},
			wsCase{fmt.Sprintf("1.2.%d", i+2), whole(binaryFrame(bytesOf(size, 0xfe))), []want{errorOf(protocol.ErrCodeInvalidFrame)}})
	}
	cases = append(cases,
		wsCase{"1.1.8", chopped(997, textFrame(pingJSON(65536))), []want{textPong()}},
		wsCase{"1.2.1", whole(binaryFrame(nil)), []want{errorOf(protocol.ErrCodeInvalidFrame)}},
		wsCase{"1.2.8", chopped(997, binaryFrame(bytesOf(65536, 0xfe))), []want{errorOf(protocol.ErrCodeInvalidFrame)}},
		// Herald's max_frame (64 KiB by default): one byte more closes 1009.
		wsCase{"herald-text-over-max_frame", whole(textFrame(pingJSON(65537))), []want{closedWith(protocol.CloseTooLarge)}},
		wsCase{"herald-binary-over-max_frame", whole(binaryFrame(bytesOf(65537, 0xfe))), []want{closedWith(protocol.CloseTooLarge)}},
		wsCase{"herald-unmasked-text", whole(encodeClientFrame(fin|byte(ws.OpText), false, []byte(`{"type":"ping"}`))), []want{closedWith(protocol.CloseProtocol)}},
		wsCase{"herald-unmasked-close", whole(encodeClientFrame(fin|byte(ws.OpClose), false, nil)), []want{closedWith(protocol.CloseProtocol)}},
		wsCase{"herald-unmasked-after-a-good-frame", whole(textFrame(`{"type":"ping"}`), encodeClientFrame(fin|byte(ws.OpPing), false, nil)),
			[]want{textPong(), closedWith(protocol.CloseProtocol)}},
	)
	runCases(t, n, cases)
}

func TestRFC6455PingPong(t *testing.T) { // Autobahn section 2
	n := startNode(t, nil)
	full := bytesOf(125, 0xfe)
	tenPings := make([][]byte, 10)
	tenPongs := make([]want, 10)
	for i := range tenPings {
		p := []byte(fmt.Sprintf("payload-%d", i))
		tenPings[i], tenPongs[i] = pingFrame(p), pongOf(p)
	}
	runCases(t, n, []wsCase{
		{"2.1", whole(pingFrame(nil)), []want{pongOf(nil)}},
		{"2.2", whole(pingFrame([]byte("Hello, world!"))), []want{pongOf([]byte("Hello, world!"))}},
		{"2.3", whole(pingFrame(binaryPayload)), []want{pongOf(binaryPayload)}},
		{"2.4", whole(pingFrame(full)), []want{pongOf(full)}},
		{"2.5", whole(pingFrame(bytesOf(126, 0xfe))), []want{closedWith(protocol.CloseProtocol)}},
		{"2.6", chopped(1, pingFrame(full)), []want{pongOf(full)}},
		{"2.7", whole(pongFrame(nil)), nil},
		{"2.8", whole(pongFrame([]byte("unsolicited pong payload"))), nil},
		{"2.9", whole(pongFrame([]byte("unsolicited")), pingFrame([]byte("ping payload"))), []want{pongOf([]byte("ping payload"))}},
		{"2.10", whole(tenPings...), tenPongs},
		{"2.11", chopped(1, tenPings...), tenPongs},
	})
}

func TestRFC6455ReservedBits(t *testing.T) { // Autobahn section 3
	n := startNode(t, nil)
	ping := textFrame(`{"type":"ping"}`)
	pongThen1002 := []want{textPong(), closedWith(protocol.CloseProtocol)}
	runCases(t, n, []wsCase{
		{"3.1", whole(frameOf(fin|rsv1|byte(ws.OpText), []byte(`{"type":"ping"}`))), []want{closedWith(protocol.CloseProtocol)}},
		{"3.2", whole(ping, frameOf(fin|rsv2|byte(ws.OpText), []byte(`{"type":"ping"}`)), pingFrame(nil)), pongThen1002},
		{"3.3", each(ping, frameOf(fin|rsv1|rsv2|byte(ws.OpText), []byte(`{"type":"ping"}`)), pingFrame(nil)), pongThen1002},
		{"3.4", chopped(1, ping, frameOf(fin|rsv3|byte(ws.OpText), []byte(`{"type":"ping"}`)), pingFrame(nil)), pongThen1002},
		{"3.5", whole(frameOf(fin|rsv1|rsv3|byte(ws.OpBinary), binaryPayload)), []want{closedWith(protocol.CloseProtocol)}},
		{"3.6", whole(frameOf(fin|rsv2|rsv3|byte(ws.OpPing), []byte("ping"))), []want{closedWith(protocol.CloseProtocol)}},
		{"3.7", whole(frameOf(fin|rsv1|rsv2|rsv3|byte(ws.OpClose), binary.BigEndian.AppendUint16(nil, 1000))), []want{closedWith(protocol.CloseProtocol)}},
	})
}

func TestRFC6455Opcodes(t *testing.T) { // Autobahn section 4
	n := startNode(t, nil)
	ping := textFrame(`{"type":"ping"}`)
	var cases []wsCase
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cases = append(cases, opcodeCases("4.1", i, op, ping)...)
	}
	for i, op := range []byte{0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases, opcodeCases("4.2", i, op, ping)...)
	}
	runCases(t, n, cases)
}

// opcodeCases are Autobahn's five cases of one section for a reserved
// opcode: alone and empty, alone with a payload, after a good frame and
// before a ping (whole, frame by frame, and chopped).
func opcodeCases(section string, i int, op byte, ping []byte) []wsCase {
	id := func(k int) string { return fmt.Sprintf("%s.%d/opcode=%#x/%d", section, i+1, op, k) }
	bad := []want{closedWith(protocol.CloseProtocol)}
	after := []want{textPong(), closedWith(protocol.CloseProtocol)}
	return []wsCase{
		{id(1), whole(opFrame(op, nil)), bad},
		{id(2), whole(opFrame(op, []byte("reserved"))), bad},
		{id(3), whole(ping, opFrame(op, nil), pingFrame(nil)), after},
		{id(4), each(ping, opFrame(op, []byte("reserved")), pingFrame(nil)), after},
		{id(5), chopped(1, ping, opFrame(op, []byte("reserved")), pingFrame(nil)), after},
	}
}

func TestRFC6455Fragmentation(t *testing.T) { // Autobahn section 5
	n := startNode(t, nil)
	msg := []byte(pingJSON(40))
	f1 := frameOf(byte(ws.OpText), msg[:20])
	f2 := frameOf(fin|byte(ws.OpContinuation), msg[20:])
	mid := frameOf(byte(ws.OpContinuation), msg[20:30])
	last := frameOf(fin|byte(ws.OpContinuation), msg[30:])
	ping := pingFrame([]byte("between"))
	orphanFin := frameOf(fin|byte(ws.OpContinuation), []byte("fragment"))
	orphan := frameOf(byte(ws.OpContinuation), []byte("fragment"))
	bad := []want{closedWith(protocol.CloseProtocol)}
	var five [][]byte // five fragments, pings between the 2nd/3rd and 4th/5th
	for i, part := range fragments(ws.OpText, msg, 8) {
		if i == 2 || i == 4 {
			five = append(five, pingFrame([]byte(fmt.Sprint("ping-", i))))
		}
		five = append(five, part)
	}
	fiveWant := []want{pongOf([]byte("ping-2")), pongOf([]byte("ping-4")), textPong()}
	runCases(t, n, []wsCase{
		{"5.1", whole(frameOf(byte(ws.OpPing), []byte("frag")), frameOf(fin|byte(ws.OpContinuation), []byte("ment"))), bad},
		{"5.2", whole(frameOf(byte(ws.OpPong), []byte("frag")), frameOf(fin|byte(ws.OpContinuation), []byte("ment"))), bad},
		{"5.3", whole(f1, f2), []want{textPong()}},
		{"5.4", each(f1, f2), []want{textPong()}},
		{"5.5", chopped(1, f1, f2), []want{textPong()}},
		{"5.6", whole(f1, ping, f2), []want{pongOf([]byte("between")), textPong()}},
		{"5.7", each(f1, ping, f2), []want{pongOf([]byte("between")), textPong()}},
		{"5.8", chopped(1, f1, ping, f2), []want{pongOf([]byte("between")), textPong()}},
		{"5.9", whole(orphanFin, f1, f2), bad},
		{"5.10", each(orphanFin, f1, f2), bad},
		{"5.11", chopped(1, orphanFin, f1, f2), bad},
		{"5.12", whole(orphan, f1, f2), bad},
		{"5.13", each(orphan, f1, f2), bad},
		{"5.14", chopped(1, orphan, f1, f2), bad},
		{"5.15", whole(f1, f2, orphan, f1, f2), []want{textPong(), closedWith(protocol.CloseProtocol)}},
		{"5.16", whole(orphan, f1, f2, orphan, f1, f2), bad},
		{"5.17", whole(orphanFin, f1, f2, orphanFin, f1, f2), bad},
		{"5.18", whole(f1, frameOf(fin|byte(ws.OpText), msg[20:])), bad},
		{"5.19", each(five...), fiveWant},
		{"5.20", chopped(1, five...), fiveWant},
		{"herald-three-fragments", whole(f1, mid, last), []want{textPong()}},
		{"herald-binary-inside-text", whole(f1, frameOf(fin|byte(ws.OpBinary), msg[20:])), bad},
		{"herald-close-between-fragments", whole(f1, closeCode(1000, ""), f2), []want{closedWith(1000)}},
	})
}

// utf8Cases are Autobahn section 6's texts (6.2 and 6.5-6.23): valid
// UTF-8, including noncharacters, and invalid UTF-8 (truncated and
// unexpected sequences, impossible bytes, overlong forms, surrogates).
var utf8Cases = []struct {
	id    string
	text  string
	valid bool
}{
	{"6.2.1", "Hello-µ@ßöäüàá-UTF-8!!", true},
	{"6.5.1", "κόσμε", true},
	{"6.5.2", "κόσμε-\xed\xa0\x80edited", false},
	{"6.6.1", "\xce", false},
	{"6.6.2", "\xce\xba", true},
	{"6.6.3", "\xce\xba\xe1", false},
	{"6.6.4", "\xce\xba\xe1\xbd", false},
	{"6.6.5", "\xce\xba\xe1\xbd\xb9", true},
	{"6.6.7", "\xce\xba\xe1\xbd\xb9\xcf", false},
	{"6.6.11", "κόσμε", true},
	{"6.7.2", "\xc2\x80", true},
	{"6.7.3", "\xe0\xa0\x80", true},
	{"6.7.4", "\xf0\x90\x80\x80", true},
	{"6.8.1", "\xf8\x88\x80\x80\x80", false},
	{"6.8.2", "\xfc\x84\x80\x80\x80\x80", false},
	{"6.9.2", "\xdf\xbf", true},
	{"6.9.3", "\xef\xbf\xbf", true},
	{"6.9.4", "\xf4\x8f\xbf\xbf", true},
	{"6.10.1", "\xf7\xbf\xbf\xbf", false},
	{"6.10.2", "\xfb\xbf\xbf\xbf\xbf", false},
	{"6.10.3", "\xfd\xbf\xbf\xbf\xbf\xbf", false},
	{"6.11.1", "\xed\x9f\xbf", true},
	{"6.11.2", "\xee\x80\x80", true},
	{"6.11.3", "\xef\xbf\xbd", true},
	{"6.11.4", "\xf4\x8f\xbf\xbf", true},
	{"6.11.5", "\xf4\x90\x80\x80", false},
	{"6.12.1", "\x80", false},
	{"6.12.2", "\xbf", false},
	{"6.12.3", "\x80\xbf", false},
	{"6.12.4", "\x80\xbf\x80", false},
	{"6.12.8", "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe", false},
	{"6.13.1", "\xc0 \xc1 \xc2 \xdf ", false},
	{"6.13.2", "\xe0 \xe1 \xef ", false},
	{"6.13.3", "\xf0 \xf1 \xf7 ", false},
	{"6.13.4", "\xf8 \xf9 \xfb ", false},
	{"6.13.5", "\xfc \xfd ", false},
	{"6.14.1", "\xc0", false},
	{"6.14.2", "\xe0\x80", false},
	{"6.14.3", "\xf0\x80\x80", false},
	{"6.14.4", "\xf8\x80\x80\x80", false},
	{"6.14.5", "\xfc\x80\x80\x80\x80", false},
	{"6.14.6", "\xdf", false},
	{"6.14.7", "\xef\xbf", false},
	{"6.14.8", "\xf7\xbf\xbf", false},
	{"6.15.1", "\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf", false},
	{"6.16.1", "\xfe", false},
	{"6.16.2", "\xff", false},
	{"6.16.3", "\xfe\xfe\xff\xff", false},
	{"6.17.1", "\xc0\xaf", false},
	{"6.17.2", "\xe0\x80\xaf", false},
	{"6.17.3", "\xf0\x80\x80\xaf", false},
	{"6.17.4", "\xf8\x80\x80\x80\xaf", false},
	{"6.17.5", "\xfc\x80\x80\x80\x80\xaf", false},
	{"6.18.1", "\xc1\xbf", false},
	{"6.18.2", "\xe0\x9f\xbf", false},
	{"6.18.3", "\xf0\x8f\xbf\xbf", false},
	{"6.19.1", "\xc0\x80", false},
	{"6.19.2", "\xe0\x80\x80", false},
	{"6.19.3", "\xf0\x80\x80\x80", false},
	{"6.20.1", "\xed\xa0\x80", false},
	{"6.20.2", "\xed\xad\xbf", false},
	{"6.20.3", "\xed\xae\x80", false},
	{"6.20.4", "\xed\xaf\xbf", false},
	{"6.20.5", "\xed\xb0\x80", false},
	{"6.20.6", "\xed\xbe\x80", false},
	{"6.20.7", "\xed\xbf\xbf", false},
	{"6.21.1", "\xed\xa0\x80\xed\xb0\x80", false},
	{"6.21.8", "\xed\xaf\xbf\xed\xbf\xbf", false},
	{"6.22.1", "\xef\xbf\xbe", true},
	{"6.22.2", "\xef\xbf\xbf", true},
	{"6.22.3", "\xf0\x9f\xbf\xbe", true},
	{"6.22.34", "\xf4\x8f\xbf\xbf", true},
	{"6.23.1", "\xef\xbf\xbd", true},
	{"herald-issue", "a\xffb", false},
}

func TestRFC6455UTF8(t *testing.T) { // Autobahn section 6
	n := startNode(t, nil)
	invalid := []want{closedWith(protocol.CloseInvalidData)}
	cases := []wsCase{
		{"6.1.1", whole(textFrame("")), []want{errorOf(protocol.ErrCodeInvalidFrame)}},
		{"6.1.2", whole(frameOf(byte(ws.OpText), nil), frameOf(byte(ws.OpContinuation), nil), frameOf(fin|byte(ws.OpContinuation), nil)),
			[]want{errorOf(protocol.ErrCodeInvalidFrame)}},
		{"6.1.3", whole(frameOf(byte(ws.OpText), nil), frameOf(byte(ws.OpContinuation), []byte(`{"type":"ping"}`)), frameOf(fin|byte(ws.OpContinuation), nil)),
			[]want{textPong()}},
		// 6.4: the invalid byte is in the first fragment; Herald checks
		// once the message is complete, so it closes after the last one.
		{"6.4.1", whole(frameOf(byte(ws.OpText), []byte(`{"type":"join","room":"κόσμε`+"\xf4\x90\x80\x80")), frameOf(fin|byte(ws.OpContinuation), []byte(`edited"}`))), invalid},
		{"6.4.2", each(frameOf(byte(ws.OpText), []byte(`{"type":"join","room":"κόσμε`+"\xf4")), frameOf(fin|byte(ws.OpContinuation), []byte("\x90\x80\x80edited\"}"))), invalid},
		{"herald-text-then-invalid", whole(textFrame(`{"type":"ping"}`), textFrame("\xff")), []want{textPong(), closedWith(protocol.CloseInvalidData)}},
	}
	for _, u := range utf8Cases {
		join := []byte(`{"type":"join","room":"` + u.text + `"}`)
		answer := []want{joined(u.text)}
		if !u.valid {
			answer = invalid
		}
		cases = append(cases,
			wsCase{u.id + "/whole", whole(textFrame(string(join))), answer},
			// Split into 1-byte fragments: code points cross fragments.
			wsCase{u.id + "/fragmented", whole(fragments(ws.OpText, join, 1)...), answer})
	}
	runCases(t, n, cases)
}

func TestRFC6455Close(t *testing.T) { // Autobahn section 7
	n := startNode(t, nil)
	ping := textFrame(`{"type":"ping"}`)
	cases := []wsCase{
		{"7.1.1", whole(ping, closeCode(1000, "")), []want{textPong(), closedWith(1000)}},
		{"7.1.2", whole(closeCode(1000, ""), closeCode(1000, "")), []want{closedWith(1000)}},
		{"7.1.3", whole(closeCode(1000, ""), pingFrame(nil)), []want{closedWith(1000)}},
		{"7.1.4", whole(closeCode(1000, ""), ping), []want{closedWith(1000)}},
		{"7.1.5", whole(frameOf(byte(ws.OpText), []byte(`{"type":`)), closeCode(1000, ""), frameOf(fin|byte(ws.OpContinuation), []byte(`"ping"}`))), []want{closedWith(1000)}},
		{"7.1.6", whole(textFrame(pingJSON(60000)), closeCode(1000, ""), pingFrame(nil)), []want{textPong(), closedWith(1000)}},
		{"7.3.1", whole(closeFrameOf(nil)), []want{closedWith(1000)}},
		{"7.3.2", whole(closeFrameOf([]byte{0x03})), []want{closedWith(protocol.CloseProtocol)}},
		{"7.3.3", whole(closeCode(1000, "")), []want{closedWith(1000)}},
		{"7.3.4", whole(closeCode(1000, "Hello World!")), []want{closedWith(1000)}},
		{"7.3.5", whole(closeCode(1000, strings.Repeat("*", 123))), []want{closedWith(1000)}},
		{"7.3.6", whole(closeCode(1000, strings.Repeat("*", 124))), []want{closedWith(protocol.CloseProtocol)}},
		{"7.5.1", whole(closeCode(1000, "κόσμε-\xed\xa0\x80edited")), []want{closedWith(protocol.CloseInvalidData)}},
		{"7.13.1", whole(closeCode(5000, "")), []want{closedWith(protocol.CloseProtocol)}},
		{"7.13.2", whole(closeCode(65535, "")), []want{closedWith(protocol.CloseProtocol)}},
		{"herald-close-chopped", chopped(1, closeCode(4321, "bye")), []want{closedWith(4321)}},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999, 1012, 1013, 1014} {
		cases = append(cases, wsCase{fmt.Sprintf("7.7.%d/code=%d", i+1, code), whole(closeCode(code, "")), []want{closedWith(code)}})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999} {
		cases = append(cases, wsCase{fmt.Sprintf("7.9.%d/code=%d", i+1, code), whole(closeCode(code, "")), []want{closedWith(protocol.CloseProtocol)}})
	}
	runCases(t, n, cases)

	// A close the client started is counted as 1000 whatever code it
	// carried: client-chosen codes never become metric labels.
	m := n.metrics()
	for _, code := range []string{"3000", "4999", "4321", "1012"} {
		if strings.Contains(m, `herald_gateway_disconnects_total{code="`+code+`"}`) {
			t.Errorf("disconnect metric has a label for the client's code %s", code)
		}
	}
	for _, code := range []string{"1000", "1002", "1007"} {
		if !strings.Contains(m, `herald_gateway_disconnects_total{code="`+code+`"}`) {
			t.Errorf("no disconnect counted with code %s", code)
		}
	}
}

// TestInvalidUTF8JoinsNothing is the reported case: a join for "a\xffb"
// used to join "a\ufffdb"; now the connection closes with 1007 and the
// user is in no room.
func TestInvalidUTF8JoinsNothing(t *testing.T) {
	n := startNode(t, nil)
	c := n.rawWS("user=mallory")
	c.write(whole(textFrame(`{"type":"join","room":"a` + "\xff" + `b"}`)))
	if op, p := c.read(); op != ws.OpClose || binary.BigEndian.Uint16(p) != protocol.CloseInvalidData {
		t.Fatalf("got %v %q, want close 1007", op, p)
	}
	c.expectEOF()
	if status, out := n.call("GET", "/v1/rooms/a%EF%BF%BDb", "", nil); status != 200 || out["conns"] != float64(0) {
		t.Fatalf("room a\ufffdb: %d %v", status, out)
	}
}
