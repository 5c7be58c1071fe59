package fastlane

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a request the lane serves.
const (
	// maxUnread bounds what the lane reads of a body its handler left, so
	// that the connection can carry the next request (net/http's figure).
	maxUnread = 256 << 10
	// keptBody is the largest answer buffer a lane keeps between requests.
	keptBody = 64 << 10
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
	idle bool       // waiting for the next request
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
		_ = ln.nc.Close()
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
			_ = ln.nc.Close()
			return
		}
	}
}

// next reads the next request head; errHandBack: net/http's to serve.
func (ln *lane) next() (*http.Request, error) {
	if ln.br.Buffered() == 0 {
		ln.mu.Lock()
		if ln.l.closing.Load() {
			ln.mu.Unlock()
			return nil, net.ErrClosed
		}
		ln.idle = true
		if now := time.Now(); ln.deadline.IsZero() || ln.deadline.Before(now.Add(ln.l.idleTimeout-time.Second)) {
			ln.setDeadline(now.Add(ln.l.idleTimeout))
		}
		ln.mu.Unlock()
		_, err := ln.br.Peek(1)
		ln.mu.Lock()
		ln.idle = false
		ln.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	head, err := ln.head()
	if err != nil {
		return nil, err
	}
	r, ok := parseHead(head, ln.l.take)
	if !ok {
		return nil, errHandBack
	}
	_, _ = ln.br.Discard(len(head))
	r.RemoteAddr = ln.remote
	r.Body = ln.body.reset(ln.br, r.ContentLength)
	return r.WithContext(ln.ctx), nil
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
		if _, err := ln.br.Peek(len(buf) + 1); err != nil {
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
	ln.out = w.appendAnswer(ln.out[:0], keep)
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

// wake makes an idle lane stop waiting (Shutdown).
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

func bodyAllowed(status int) bool { return status != 204 && status != 304 }

// appendAnswer appends the status line, headers and body to b.
func (w *response) appendAnswer(b []byte, keep bool) []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
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
	h := w.hdr
	if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 {
		b = appendField(b, "Content-Type", http.DetectContentType(w.body))
	}
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, date()...)
		b = append(b, "\r\n"...)
	}
	for k, vs := range h {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" || !validName(k) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	if bodyAllowed(status) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n"...)
	}
	if !keep {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, w.body...)
}

// appendField appends "k: v", a line break in v turned into a space (as
// net/http does).
func appendField(b []byte, k, v string) []byte {
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

// dateCache is the Date header of the current second.
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
