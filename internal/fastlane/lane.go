package fastlane

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a request the lane serves.
const (
	// maxUnread bounds what the lane reads of a body its handler left, so
	// that the connection can carry the next request (net/http's figure).
	maxUnread = 256 << 10
	// keptBody is the largest answer buffer a lane keeps between requests
	// (a push's answer is tens of bytes; a big batch's is allocated anew).
	keptBody = 8 << 10
	// rstAvoidance is how long a connection closed with a body left unread
	// waits after shutting its sending side, so that the client reads the
	// answer rather than a reset (net/http's rstAvoidanceDelay).
	rstAvoidance = 500 * time.Millisecond
)

// lane is one connection the lane serves.
type lane struct {
	l   *Lane
	h   http.Handler
	nc  net.Conn
	br  *bufio.Reader
	ctx context.Context // the first request's: lives as long as the lane

	remote   string
	deadline time.Time // the read deadline set on nc (zero: none)
	body     body
	w        response
	out      []byte // the answer being written

	mu   sync.Mutex // guards idle against Shutdown's wake
	idle bool       // waiting for (the rest of) a request head
}

// serve answers first (parsed by net/http) and then every request the
// connection sends, until it closes, errs, or sends one the lane does not
// take (handed back to net/http).
func (ln *lane) serve(first *http.Request) {
	defer ln.l.remove(ln)
	defer func() {
		if p := recover(); p != nil {
			_ = ln.nc.Close()
			panic(p) // net/http logs it
		}
	}()
	ln.remote = first.RemoteAddr
	ln.w.ln = ln
	first.Body = ln.body.reset(ln.br, first.ContentLength)
	if !ln.handle(first) {
		ln.end()
		return
	}
	for {
		r, err := ln.next()
		switch {
		case err == errHandBack:
			if !ln.l.back.give(&handedBack{Conn: ln.nc, br: ln.br}) {
				_ = ln.nc.Close()
			}
			return
		case err != nil:
			_ = ln.nc.Close()
			return
		}
		if !ln.handle(r) {
			ln.end()
			return
		}
	}
}

// end closes the connection after an answer. With the request's body left
// unread (a refusal), it shuts the sending side first and waits a moment:
// closing a socket with unread input sends a reset, which could reach the
// client before it read the answer.
func (ln *lane) end() {
	if ln.body.left > 0 {
		if cw, ok := socket(ln.nc).(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			time.Sleep(rstAvoidance)
		}
	}
	_ = ln.nc.Close()
}

// socket is the connection under wrappers (the listener's cap).
func socket(nc net.Conn) net.Conn {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nc
		}
		nc = u.NetConn()
	}
}

// next reads the next request head; errHandBack: net/http's to serve.
func (ln *lane) next() (*http.Request, error) {
	// Up to four CR or LF bytes before a request line are skipped, as
	// net/http does after a POST (RFC 9112 section 2.2).
	skip := 4
	for {
		if ln.br.Buffered() == 0 {
			if now, slack := time.Now(), min(time.Second, ln.l.idleTimeout/10); ln.deadline.IsZero() ||
				ln.deadline.Before(now.Add(ln.l.idleTimeout-slack)) {
				ln.setDeadline(now.Add(ln.l.idleTimeout))
			}
			if err := ln.wait(1); err != nil {
				return nil, err
			}
		}
		lead, _ := ln.br.Peek(min(skip, ln.br.Buffered()))
		n := 0
		for n < len(lead) && (lead[n] == '\r' || lead[n] == '\n') {
			n++
		}
		_, _ = ln.br.Discard(n)
		skip -= n
		if ln.br.Buffered() > 0 {
			break
		}
	}
	head, err := ln.head()
	if err != nil {
		return nil, err
	}
	var r http.Request
	if !parseHead(&r, head, ln.l.take) {
		return nil, errHandBack
	}
	_, _ = ln.br.Discard(len(head))
	r.RemoteAddr = ln.remote
	r.Body = ln.body.reset(ln.br, r.ContentLength)
	return r.WithContext(ln.ctx), nil
}

// wait reads until n bytes are buffered, or the deadline, or Shutdown
// (which wakes a lane waiting here).
func (ln *lane) wait(n int) error {
	ln.mu.Lock()
	if ln.l.closing.Load() {
		ln.mu.Unlock()
		return net.ErrClosed
	}
	ln.idle = true
	ln.mu.Unlock()
	_, err := ln.br.Peek(n)
	ln.mu.Lock()
	ln.idle = false
	ln.mu.Unlock()
	return err
}

// head peeks at a whole request head (through its empty line) in the
// buffer, waiting at most the header timeout for the rest of it. A head
// longer than the buffer, or with a bare LF, is net/http's.
func (ln *lane) head() ([]byte, error) {
	armed := false
	for {
		buf, _ := ln.br.Peek(ln.br.Buffered())
		if i := bytes.Index(buf, crlf2); i >= 0 {
			buf = buf[:i+4]
			if bareLF(buf) {
				return nil, errHandBack
			}
			return buf, nil
		}
		if bareLF(buf) || len(buf) == ln.br.Size() {
			return nil, errHandBack
		}
		if !armed {
			ln.setDeadline(time.Now().Add(ln.l.headerTimeout))
			armed = true
		}
		if err := ln.wait(len(buf) + 1); err != nil {
			if len(buf) > 0 && err == io.EOF {
				return nil, errHandBack // a truncated request: net/http words it
			}
			return nil, err
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

// bareLF reports a line feed without its carriage return.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// handle runs the handler and writes its answer; false: the connection
// ends after it.
func (ln *lane) handle(r *http.Request) bool {
	ln.h.ServeHTTP(&ln.w, r)
	w := &ln.w
	keep := !ln.l.closing.Load() && !closes(w.hdr)
	if keep && ln.body.left > 0 {
		// The rest of a body left unread is skipped when it is small;
		// otherwise the connection ends (as net/http does).
		keep = ln.body.left < maxUnread && discard(&ln.body, maxUnread)
	}
	ln.out, keep = w.appendAnswer(ln.out[:0], keep)
	_, err := ln.nc.Write(ln.out)
	if cap(ln.out) > keptBody {
		ln.out = nil
	}
	w.reset()
	ln.body.r = nil
	return err == nil && keep
}

// setDeadline sets nc's read deadline.
func (ln *lane) setDeadline(t time.Time) {
	_ = ln.nc.SetReadDeadline(t)
	ln.deadline = t
}

// setReadDeadline is http.ResponseController's SetReadDeadline: a
// deadline for a body already in the buffer is moot and costs nothing.
func (ln *lane) setReadDeadline(t time.Time) error {
	switch {
	case t.IsZero() && ln.deadline.IsZero():
	case !t.IsZero() && ln.body.left <= int64(ln.br.Buffered()) && t.After(time.Now()):
	default:
		ln.setDeadline(t)
	}
	return nil
}

// wake makes a lane waiting for a request head stop waiting (Shutdown).
func (ln *lane) wake() {
	ln.mu.Lock()
	if ln.idle {
		_ = ln.nc.SetReadDeadline(time.Unix(1, 0))
	}
	ln.mu.Unlock()
}

// body is a request body of a known length read from the lane's buffer.
type body struct {
	r    *bufio.Reader
	left int64
}

func (b *body) reset(r *bufio.Reader, n int64) io.ReadCloser {
	b.r, b.left = r, n
	if n == 0 {
		return http.NoBody
	}
	return b
}

func (b *body) Read(p []byte) (int, error) {
	if b.left <= 0 || b.r == nil {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if b.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *body) Close() error { return nil }

// response is the lane's http.ResponseWriter, reused for every request of
// its connection; the answer is written once, when the handler returns.
type response struct {
	ln     *lane
	hdr    http.Header
	status int
	body   []byte
}

func (w *response) Header() http.Header {
	if w.hdr == nil {
		w.hdr = make(http.Header, 4)
	}
	return w.hdr
}

func (w *response) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // a second status, or an informational one, is not sent
	}
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.ln.setReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.ln.nc.SetWriteDeadline(t) }

func (w *response) reset() {
	clear(w.hdr)
	w.status = 0
	w.body = w.body[:0]
	if cap(w.body) > keptBody {
		w.body = nil
	}
}

// bodyAllowed: not a 204 or 304 (informational answers are not sent).
func bodyAllowed(status int) bool { return status != 204 && status != 304 }

// appendAnswer appends the status line, headers and body to b, as net/http
// writes them for a handler that has returned; keep is false if the
// connection ends after it (the answer then says so).
func (w *response) appendAnswer(b []byte, keep bool) ([]byte, bool) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	h, body := w.hdr, w.body
	length := int64(len(body))
	if v := h.Get("Content-Length"); v != "" && bodyAllowed(status) {
		// The handler's own length: kept; a body that does not match it
		// ends the connection (and is cut to it), as with net/http.
		if n, ok := digits([]byte(v)); ok && n != length {
			length, keep = n, false
			body = body[:min(int64(len(body)), n)]
		}
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	b = append(b, "\r\n"...)
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 && bodyAllowed(status) && h.Get("Content-Encoding") == "" {
		b = appendField(b, "Content-Type", http.DetectContentType(body))
	}
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, date()...)
		b = append(b, "\r\n"...)
	}
	for k, vs := range h {
		if suppressed(k, status, keep) || !validName(k) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	if bodyAllowed(status) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, "\r\n"...)
	}
	if !keep {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...), keep
}

// suppressed reports a handler header the lane does not write as is: the
// length and the connection's fate are the lane's to say, a 304 has no
// content headers, and trailers are not sent.
func suppressed(k string, status int, keep bool) bool {
	switch k {
	case "Content-Length", "Transfer-Encoding":
		return true
	case "Connection":
		return !keep
	case "Content-Type":
		return status == http.StatusNotModified
	}
	return strings.HasPrefix(k, http.TrailerPrefix)
}

// appendField appends "k: v", v trimmed and a line break in it turned
// into a space (as net/http does).
func appendField(b []byte, k, v string) []byte {
	v = textproto.TrimString(v)
	b = append(b, k...)
	b = append(b, ": "...)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// closes reports a handler's Connection: close.
func closes(h http.Header) bool {
	for _, v := range h["Connection"] {
		if asciiEqualFold(v, "close") {
			return true
		}
	}
	return false
}

// dateCache is the Date header of the current second, shared by every lane
// of the process (a string made once a second).
var dateCache atomic.Pointer[dateStamp]

type dateStamp struct {
	sec  int64
	text string
}

func date() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateStamp{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}
