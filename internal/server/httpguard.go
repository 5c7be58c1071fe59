package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTP/2 limits of every connection. A client that resets streams while
// their handlers run (the "rapid reset" attack: HEADERS then RST_STREAM,
// over and over) makes the node start work that nobody waits for, outside
// the concurrent stream limit; a connection that does so faster than
// h2ResetRate a second, beyond a burst of h2ResetBurst, is closed. Request
// rate itself is never limited: gRPC clients multiplex many thousands of
// pushes a second on one connection and rarely cancel one.
const (
	h2MaxStreams = 250
	h2ResetRate  = 200
	h2ResetBurst = 1000
)

type connKey struct{}

// connGuard is one client connection's state for guard.
type connGuard struct {
	conn net.Conn // the accepted connection (under TLS, if any)

	mu     sync.Mutex
	tokens float64 // resets still allowed
	last   time.Time
	closed bool
}

// connContext attaches a connGuard to every accepted connection
// (http.Server.ConnContext).
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connGuard{conn: c, tokens: h2ResetBurst})
}

// reset counts a stream the client canceled while its handler ran, and
// closes the connection when they come too fast; it reports whether it
// did.
func (g *connGuard) reset(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if !g.last.IsZero() {
		g.tokens = min(h2ResetBurst, g.tokens+now.Sub(g.last).Seconds()*h2ResetRate)
	}
	g.last = now
	if g.tokens--; g.tokens >= 0 {
		return false
	}
	g.closed = true
	_ = g.conn.Close()
	return true
}

// guard applies the connection-level rules of the HTTP server around h:
//   - an HTTP/1.x request with a Transfer-Encoding is answered, then its
//     connection closed. Go reads such a body by its Transfer-Encoding and
//     drops a Content-Length sent with it, so a request that carries both
//     (a request-smuggling attempt, RFC 9112 section 6.1) cannot be told
//     from a plain chunked one here; closing after every one of them is
//     what the RFC requires of the former and costs the latter a reconnect.
//   - an HTTP/2 stream whose request was canceled by the client before its
//     handler returned counts towards the connection's reset limit.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			s.metrics.TransferEncodingClose()
		}
		h.ServeHTTP(w, r)
		if r.ProtoMajor == 2 && r.Context().Err() != nil {
			if g, _ := r.Context().Value(connKey{}).(*connGuard); g != nil && g.reset(time.Now()) {
				s.metrics.ResetFlood()
				s.log.Warn("closed an HTTP/2 connection that reset too many streams", "remote", r.RemoteAddr,
					"limit", h2ResetRate, "burst", h2ResetBurst)
			}
		}
	})
}
