package fastlane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Lane takes over keep-alive HTTP/1.1 connections for the requests take
// accepts. Build it with New, install Wrap as the server's outermost
// handler, serve its Listener with an HTTP/1-only server of the same
// handler and timeouts, call Close when the servers' shutdown begins and
// Shutdown after theirs.
type Lane struct {
	take          func(method, path string) bool
	idleTimeout   time.Duration
	headerTimeout time.Duration
	back          *backListener

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*lane]struct{}
	done    chan struct{} // closed when closing and the last lane ended
}

// New is a lane serving what take accepts; idle and header bound the wait
// for a request and for the rest of its head once it has begun (the
// server's IdleTimeout and ReadHeaderTimeout).
func New(take func(method, path string) bool, idle, header time.Duration) *Lane {
	return &Lane{take: take, idleTimeout: idle, headerTimeout: header, back: newBackListener(),
		conns: map[*lane]struct{}{}, done: make(chan struct{})}
}

// Listener yields the connections the lane hands back, to be served by an
// http.Server with the same handler and HTTP/1 only (a connection in the
// middle of its life must not start HTTP/2 with a preface); Close and that
// server's Shutdown close it.
func (l *Lane) Listener() net.Listener { return l.back }

// Wrap is h behind the lane: a request the lane takes, on a plain-text
// HTTP/1.1 connection, moves its connection onto the lane (this request
// included); every other request goes to h as usual.
func (l *Lane) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.takes(r) {
			h.ServeHTTP(w, r)
			return
		}
		nc, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			h.ServeHTTP(w, r)
			return
		}
		ln := &lane{l: l, h: h, nc: nc, br: rw.Reader, ctx: r.Context()}
		if !l.add(ln) {
			_ = nc.Close()
			return
		}
		ln.serve(r)
	})
}

// takes reports whether a request net/http parsed is one the lane would
// have taken itself.
func (l *Lane) takes(r *http.Request) bool {
	if r.TLS != nil || r.ProtoMajor != 1 || r.ProtoMinor != 1 || len(r.TransferEncoding) > 0 || r.ContentLength < 0 ||
		r.Close || r.Host == "" || !l.take(r.Method, r.URL.Path) {
		return false
	}
	for _, k := range []string{"Expect", "Upgrade", "Connection"} {
		if v := r.Header[k]; len(v) > 0 && (k != "Connection" || len(v) > 1 || !asciiEqualFold(v[0], "keep-alive")) {
			return false
		}
	}
	return true
}

// Open is the number of connections on the lane.
func (l *Lane) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func (l *Lane) add(ln *lane) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.conns[ln] = struct{}{}
	return true
}

func (l *Lane) remove(ln *lane) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, ln)
	if l.closing.Load() && len(l.conns) == 0 {
		close(l.done)
	}
}

// Close begins Shutdown without waiting: idle connections close now, busy
// ones after the request they serve (its answer says Connection: close),
// and no connection comes onto the lane or back from it.
func (l *Lane) Close() {
	l.mu.Lock()
	if !l.closing.Swap(true) && len(l.conns) == 0 {
		close(l.done)
	}
	for ln := range l.conns {
		ln.wake()
	}
	l.mu.Unlock()
	_ = l.back.Close()
}

// Shutdown closes the lane and waits for its connections until ctx ends,
// then closes what is left.
func (l *Lane) Shutdown(ctx context.Context) error {
	l.Close()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	for ln := range l.conns {
		_ = ln.nc.Close()
	}
	l.mu.Unlock()
	return ctx.Err()
}

// backListener hands connections back to net/http.
type backListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newBackListener() *backListener {
	return &backListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (b *backListener) Accept() (net.Conn, error) {
	select {
	case c := <-b.conns:
		return c, nil
	case <-b.done:
		return nil, net.ErrClosed
	}
}

func (b *backListener) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

func (b *backListener) Addr() net.Addr { return laneAddr{} }

// give hands c to net/http; false if the server no longer serves it.
func (b *backListener) give(c net.Conn) bool {
	select {
	case b.conns <- c:
		return true
	case <-b.done:
		return false
	}
}

type laneAddr struct{}

func (laneAddr) Network() string { return "fastlane" }
func (laneAddr) String() string  { return "fastlane" }

// handedBack is a connection net/http takes over from the lane: it reads
// what the lane had buffered first.
type handedBack struct {
	net.Conn
	br *bufio.Reader
}

func (c *handedBack) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// errHandBack: the next request is net/http's.
var errHandBack = errors.New("fastlane: not taken")

// discard reads what a handler left of a body, if it is at most max bytes.
func discard(r io.Reader, max int64) bool {
	n, err := io.CopyN(io.Discard, r, max+1)
	return err == io.EOF && n <= max
}

// NetConn is the connection under it (for code that needs the socket, as
// the gateway's WebSocket upgrade). What the lane had buffered is net/http's
// by then: its first read takes all of it (both buffers are 4 KiB).
func (c *handedBack) NetConn() net.Conn { return c.Conn }
