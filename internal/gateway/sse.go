package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// Errors of ClientFrame: the connection a frame names is not there (or
// not an SSE connection of the app), or belongs to another user.
var (
	ErrUnknownConn = errors.New("gateway: no such connection")
	ErrNotYourConn = errors.New("gateway: connection of another user")
	ErrBadFrame    = errors.New("gateway: invalid client frame")
)

// FrameRouter carries an SSE client's frame (POST /v1/sse/{conn}) to the
// node that holds the connection and runs it there with ClientFrame; its
// errors are ClientFrame's, or others for a node that did not answer.
type FrameRouter interface {
	ClientFrame(ctx context.Context, app, user, conn string, frame []byte) error
}

// SetFrameRouter makes POST /v1/sse/{conn} reach connections on every node
// through r. Without one, only this node's connections are reached. Call
// it before serving.
func (g *Gateway) SetFrameRouter(r FrameRouter) { g.router = r }

// sseConn is a Server-Sent Events connection: the connection and the
// response it streams on. Its handler goroutine is its writer: it waits for
// queued frames, writes each batch as events and flushes once per batch.
// Client frames arrive as POSTs (ClientFrame), run one at a time.
type sseConn struct {
	conn

	w    http.ResponseWriter
	rc   *http.ResponseController
	wake chan struct{} // frames are queued (capacity 1)
	done chan struct{} // closed by end: the stream is over
	in   sync.Mutex    // held while a client frame runs, as a read loop would
	buf  []byte        // events being written; only while a batch is

	dmu  sync.Mutex // guards over, so no deadline is set after the handler returned
	over bool
}

var _ wire = (*sseConn)(nil)

// writeInline wakes the stream's writer: the stream's response belongs to
// its handler goroutine.
func (c *sseConn) writeInline() { c.schedule() }

func (c *sseConn) schedule() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeFrame is the close frame of a stream: {"type":"close","code":…,
// "reason":"…"}, after which the stream ends; the code means what the
// WebSocket close code means.
func (c *sseConn) closeFrame(code int, reason string) *protocol.Outgoing {
	b := append(make([]byte, 0, 48+len(reason)), `{"type":"close","code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"reason":`...)
	b = protocol.AppendString(b, reason)
	return protocol.NewText(append(b, '}'))
}

func (c *sseConn) unblock() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !c.over {
		_ = c.rc.SetWriteDeadline(time.Now())
	}
}

// stopReading lists the stream no longer (no client frame reaches a
// closing connection: it is out of the hub).
func (c *sseConn) stopReading() {
	c.g.streamsMu.Lock()
	delete(c.g.streams, c)
	c.g.streamsMu.Unlock()
}

func (c *sseConn) end() { close(c.done) }

// run is the stream's writer, on the handler goroutine, until the
// connection ends or the client goes away.
func (c *sseConn) run(ctx context.Context) {
	defer func() {
		c.dmu.Lock()
		c.over = true
		c.dmu.Unlock()
		c.stopReading()
	}()
	for {
		select {
		case <-c.done:
			_ = c.rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
			return
		case <-ctx.Done():
			c.fail()
			c.take() // ends the connection: it is closed and its queue empty
			return
		case <-c.wake:
		}
		for {
			batch := c.take()
			if batch == nil {
				break
			}
			err := c.write(batch)
			c.g.metrics.Written(len(batch))
			if err != nil {
				c.writeFailed()
				return
			}
			c.recycle(batch)
		}
	}
}

// write sends one batch as events and flushes it.
func (c *sseConn) write(batch []*protocol.Outgoing) error {
	c.buf = appendEvents(c.buf[:0], batch)
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	_, err := c.w.Write(c.buf)
	if err == nil {
		err = c.rc.Flush()
	}
	if cap(c.buf) > 64<<10 {
		c.buf = nil // an idle stream holds no large buffer
	}
	return err
}

// appendEvents turns queued frames into SSE events: each text frame's JSON
// is one event's data, consecutive push messages share one push event (as
// they share a frame on a WebSocket), an event carrying stored messages
// has id: <highest inbox seq in it>, and a heartbeat ping is a comment.
func appendEvents(b []byte, batch []*protocol.Outgoing) []byte {
	for i := 0; i < len(batch); {
		f := batch[i]
		if f.Msg == nil {
			i++
			switch f.Frame[0] & 0x0f {
			case protocol.OpText:
				b = appendEvent(b, 0, wsPayload(f.Frame))
			case protocol.OpPing:
				b = append(b, ":\n\n"...)
			}
			continue
		}
		j, size, id := i, 0, uint64(0)
		for j < len(batch) && batch[j].Msg != nil && j-i < maxMergeMsgs && (j == i || size+len(batch[j].Msg) < maxMergeBytes) {
			size += 1 + len(batch[j].Msg)
			if batch[j].Room == "" {
				id = max(id, batch[j].Seq)
			}
			j++
		}
		if id > 0 {
			b = append(b, "id: "...)
			b = strconv.AppendUint(b, id, 10)
			b = append(b, '\n')
		}
		b = append(b, "data: "...)
		b = append(b, protocol.PushPrefix...)
		for k := i; k < j; k++ {
			if k > i {
				b = append(b, protocol.Comma...)
			}
			b = appendLines(b, batch[k].Msg)
		}
		b = append(b, protocol.PushSuffix...)
		b = append(b, "\n\n"...)
		i = j
	}
	return b
}

// appendEvent appends one event with data (and id, unless 0).
func appendEvent(b []byte, id uint64, data []byte) []byte {
	if id > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = appendLines(b, data)
	return append(b, "\n\n"...)
}

// appendLines appends JSON text as the data of an event: a line break in it
// (whitespace between tokens of a pushed value; inside strings they are
// escaped) starts a new data: line, which the client joins back with \n.
func appendLines(b, text []byte) []byte {
	for {
		i := bytes.IndexAny(text, "\r\n")
		if i < 0 {
			return append(b, text...)
		}
		b = append(b, text[:i]...)
		b = append(b, "\ndata: "...)
		text = text[i+1:]
	}
}

// wsPayload returns the payload of an unmasked server frame.
func wsPayload(frame []byte) []byte {
	switch n := frame[1] & 0x7f; {
	case n < 126:
		return frame[2:]
	case n == 126:
		return frame[4:]
	default:
		return frame[10:]
	}
}

// ServeSSE serves GET /v1/sse: a stream of v1 server frames, one per event.
// It refuses as /v1/ws does, before the stream starts.
func (g *Gateway) ServeSSE(w http.ResponseWriter, r *http.Request) {
	if !g.corsAllowed(w, r) {
		return
	}
	if !g.Accepting() {
		httpError(w, "unavailable", "node is draining or shutting down; connect to another node")
		return
	}
	q := r.URL.Query()
	var since *uint64
	s, what := q.Get("since"), "since"
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		s, what = v, "Last-Event-ID" // the browser reconnects to the same URL: its own position wins
	}
	if s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpError(w, "invalid_argument", what+" must be a non-negative integer")
			return
		}
		since = &n
	}
	rooms, err := parseRooms(q.Get("rooms"))
	if err != nil {
		httpError(w, "invalid_argument", err.Error())
		return
	}
	id, authErr := g.identify(r)
	if authErr == nil && id == nil {
		authErr = errNoToken
	}
	if authErr != nil {
		g.refused(authErr)
		httpError(w, "unauthorized", authMessage(authErr))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	c := &sseConn{conn: conn{g: g, oneWay: true}, w: w, rc: rc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.wire = c
	c.Out = &c.conn
	c.Addr = r.RemoteAddr
	c.lastSeen.Store(g.now())
	if !g.enter() {
		return
	}
	g.streamsMu.Lock()
	g.streams[c] = struct{}{}
	g.streamsMu.Unlock()
	g.register(&c.conn, *id, since, rooms)
	if code := g.closing.Load(); code != 0 { // Shutdown or Drain may have listed connections before this one
		c.close(int(code), "server shutting down")
	}
	c.run(r.Context())
}

// errNoToken refuses a stream or POST without a token outside dev mode:
// SSE has no first-frame auth.
var errNoToken = errors.New("token required: ?token= or Authorization: Bearer")

// parseRooms reads ?rooms=a,b:7: room names, each with an optional history
// position after its last colon.
func parseRooms(s string) ([]roomAt, error) {
	if s == "" {
		return nil, nil
	}
	var out []roomAt
	for _, part := range strings.Split(s, ",") {
		r := roomAt{name: part}
		if i := strings.LastIndexByte(part, ':'); i >= 0 {
			n, err := strconv.ParseUint(part[i+1:], 10, 64)
			if err != nil {
				return nil, errors.New("rooms: " + strconv.Quote(part) + ": the position after ':' must be a non-negative integer")
			}
			r.name, r.since = part[:i], &n
		}
		if err := protocol.ValidName("room", r.name); err != nil {
			return nil, errors.New("rooms: " + err.Error())
		}
		out = append(out, r)
	}
	return out, nil
}

// ServeSSEFrame serves POST /v1/sse/{conn}: one client frame for an SSE
// connection, with the token of its user. 202: it runs (on the node that
// holds the connection); its result arrives on the stream.
func (g *Gateway) ServeSSEFrame(w http.ResponseWriter, r *http.Request) {
	if !g.corsAllowed(w, r) {
		return
	}
	id, err := g.identify(r)
	if err == nil && id == nil {
		err = errNoToken
	}
	if err != nil {
		g.refused(err)
		httpError(w, "unauthorized", authMessage(err))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(g.cfg.MaxFrame)+1))
	switch {
	case err != nil:
		httpError(w, "invalid_json", "reading the body: "+err.Error())
		return
	case len(body) > g.cfg.MaxFrame:
		httpError(w, "payload_too_large", "a frame is at most "+strconv.Itoa(g.cfg.MaxFrame)+" bytes")
		return
	}
	if _, err := decodeFrame(body); err != nil {
		httpError(w, "invalid_json", strings.TrimPrefix(err.Error(), "gateway: "))
		return
	}
	route := g.ClientFrame
	if g.router != nil {
		route = g.router.ClientFrame
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.EngineTimeout)
	defer cancel()
	switch err := route(ctx, id.app, id.user, r.PathValue("conn"), body); {
	case err == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.Is(err, ErrUnknownConn):
		httpError(w, "not_found", "no such connection")
	case errors.Is(err, ErrNotYourConn):
		httpError(w, "forbidden", "the connection belongs to another user")
	case errors.Is(err, ErrBadFrame):
		httpError(w, "invalid_json", strings.TrimPrefix(err.Error(), "gateway: "))
	default:
		g.log.Warn("routing an SSE client frame", "err", err)
		httpError(w, "unavailable", "the connection's node did not answer; retry")
	}
}

// decodeFrame decodes a client frame sent by POST: any but auth.
func decodeFrame(body []byte) (protocol.ClientFrame, error) {
	f, ferr := protocol.DecodeClient(body)
	switch {
	case ferr != nil:
		return f, fmt.Errorf("%w: %s", ErrBadFrame, ferr.Reason)
	case f.Type == protocol.TypeAuth:
		return f, fmt.Errorf("%w: auth frames are not sent to a stream: give the token with the request", ErrBadFrame)
	}
	return f, nil
}

// ClientFrame runs a client frame of an SSE connection of this node for
// user of app, as the connection's read loop would: ErrUnknownConn when
// there is no such SSE connection in app, ErrNotYourConn when it is
// another user's (nothing happens to it then), ErrBadFrame for a frame
// that does not decode.
func (g *Gateway) ClientFrame(_ context.Context, app, user, id string, frame []byte) error {
	hc := g.hub.Conn(id)
	if hc == nil || hc.App != app {
		return ErrUnknownConn
	}
	c, ok := hc.Out.(*conn)
	if !ok {
		return ErrUnknownConn
	}
	sc, ok := c.wire.(*sseConn)
	if !ok {
		return ErrUnknownConn // a WebSocket takes its frames on the socket
	}
	if hc.User != user {
		return ErrNotYourConn
	}
	f, err := decodeFrame(frame)
	if err != nil {
		return err
	}
	sc.in.Lock()
	defer sc.in.Unlock()
	if c.isClosed() {
		return ErrUnknownConn
	}
	g.dispatch(c, f)
	return nil
}

// CloseStreams closes every SSE connection with code, after what is queued:
// call it when the HTTP server shuts down, which waits for running
// handlers (a stream's included) to return.
func (g *Gateway) CloseStreams(code int) {
	g.streamsMu.Lock()
	all := make([]*sseConn, 0, len(g.streams))
	for c := range g.streams {
		all = append(all, c)
	}
	g.streamsMu.Unlock()
	for _, c := range all {
		c.close(code, "server shutting down")
	}
}

// CORS answers cross-origin requests for the origins allowed_origins
// accepts (any, when it is empty), as the WebSocket endpoint's origin
// check does: a request from another origin gets 403, an allowed one the
// Access-Control headers, and a preflight (OPTIONS) 204.
func (g *Gateway) CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			g.Preflight(w, r)
			return
		}
		if g.corsAllowed(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// Preflight answers a CORS preflight for the browser endpoints.
func (g *Gateway) Preflight(w http.ResponseWriter, r *http.Request) {
	if !g.corsAllowed(w, r) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// corsAllowed sets the CORS headers for an allowed origin and reports
// true; for another origin it answers 403 and reports false.
func (g *Gateway) corsAllowed(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if !g.originAllowed(origin) {
		httpError(w, "forbidden", "origin not allowed")
		return false
	}
	if origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	return true
}
