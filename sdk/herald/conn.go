package herald

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Conn is a client connection to Herald that stays connected: it
// reconnects after network failures and server restarts, resumes from the
// last sequence it received, and rejoins its rooms. Events arrive on
// Events(). Its methods are safe for concurrent use, also from the
// goroutine that reads Events.
type Conn struct {
	url    url.URL // the /v1/ws URL; the Conn sets its since parameter
	cfg    dialConfig
	events chan Event
	kick   chan struct{} // wakes the run loop after Join, Leave or Ack
	stop   context.CancelFunc
	exited chan struct{} // closed when the run loop has returned

	mu        sync.Mutex
	rooms     map[string]*roomState // the rooms the Conn keeps joining
	reqs      []*req                // membership requests still to send on this session
	maxSeq    uint64                // highest seq received
	ackWant   uint64                // highest seq to ack
	ackDone   uint64                // highest seq acked
	stopped   bool
	err       error // why the Conn stopped
	authFails int   // refused tokens in a row

	dedup dedup // owned by the run loop
}

// roomState is a room the Conn is in. since is nil for a plain join, or
// the last position seen in a room that keeps history: a rejoin asks for
// what came after it.
type roomState struct{ since *uint64 }

// req is a request whose answer the run loop waits for before it sends
// the next: the server answers a connection's requests in order, and its
// error frames name no request, so one at a time is how an error finds
// its request.
type req struct {
	kind   string // "join", "leave" or "resume"
	room   string
	since  *uint64
	joined bool // a join with since got its joined frame; the replay follows
	first  bool // the inbox replay every session starts with
	forAck bool // a resume that makes an earlier ack acceptable
}

// DialOption configures a Conn.
type DialOption func(*dialConfig)

type dialConfig struct {
	token     func(context.Context) (string, error)
	fresh     bool // token can give a fresh token
	authFrame bool
	since     *uint64
	autoAck   bool
	backoff   backoff
	timeout   time.Duration
}

// WithToken authenticates with a client token (docs/protocol.md#client-tokens).
// Without one the connection is anonymous, which only --dev servers allow.
func WithToken(token string) DialOption {
	return func(c *dialConfig) {
		c.token, c.fresh = func(context.Context) (string, error) { return token, nil }, false
	}
}

// WithTokenFunc calls f for a token before every connection attempt, so
// that an expired token is replaced. After a refused token the Conn tries
// one fresh token, then stops.
func WithTokenFunc(f func(ctx context.Context) (string, error)) DialOption {
	return func(c *dialConfig) { c.token, c.fresh = f, true }
}

// WithAuthFrame sends the token in the first frame rather than in the
// Authorization header of the handshake.
func WithAuthFrame() DialOption { return func(c *dialConfig) { c.authFrame = true } }

// WithSince resumes from seq: the first connection replays the stored
// messages after it (and after the user's acked position). Use the last
// seq a previous run processed.
func WithSince(seq uint64) DialOption { return func(c *dialConfig) { c.since = &seq } }

// WithAutoAck acks every stored message as soon as the Events channel
// hands it over. Without it, call Ack after processing.
func WithAutoAck() DialOption { return func(c *dialConfig) { c.autoAck = true } }

// WithReconnectBackoff sets the wait before reconnect attempt n: random in
// [0, min(max, base·2ⁿ)] (default 500 ms, 30 s); it starts over after a
// connection is established.
func WithReconnectBackoff(base, max time.Duration) DialOption {
	return func(c *dialConfig) { c.backoff = backoff{base, max} }
}

// Dial connects to a Herald node's WebSocket endpoint and returns once the
// server has welcomed the connection. url is ws(s)://host[:port][/v1/ws]
// (http(s) is taken as ws(s)); its query may carry dev-mode parameters such
// as ?user=alice. Network errors and unavailable nodes are retried, with
// backoff, until ctx ends; a refused token or handshake is returned at
// once (an *Error or a *CloseError). ctx bounds Dial only: the Conn lives
// until Close.
func Dial(ctx context.Context, rawURL string, opts ...DialOption) (*Conn, error) {
	u, err := wsURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := &Conn{url: *u, events: make(chan Event), kick: make(chan struct{}, 1), exited: make(chan struct{}),
		rooms: map[string]*roomState{}}
	c.cfg = dialConfig{backoff: backoff{500 * time.Millisecond, 30 * time.Second}, timeout: 15 * time.Second}
	for _, o := range opts {
		o(&c.cfg)
	}
	if c.cfg.since != nil {
		c.maxSeq = *c.cfg.since
	}
	c.dedup.reset(c.maxSeq)
	var s *session
	for n := 0; ; n++ {
		if s, err = c.open(ctx); err == nil {
			break
		}
		if !c.retry(err) || ctx.Err() != nil {
			return nil, err
		}
		if serr := sleep(ctx, c.cfg.backoff.delay(n)); serr != nil {
			return nil, fmt.Errorf("%w (giving up: %w)", err, serr)
		}
	}
	life, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.run(life, s)
	return c, nil
}

// wsURL checks a WebSocket URL and defaults its path to /v1/ws.
func wsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("herald: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("herald: URL %q is not a ws(s):// URL", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("herald: URL %q has no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u, nil
}

// Events returns the channel the Conn's events arrive on, in order. It is
// closed when the Conn stops: after Close, or when the server refused it
// for good (see Err).
func (c *Conn) Events() <-chan Event { return c.events }

// Err returns why the Conn stopped: ErrClosed after Close, the last
// Disconnected error when it gave up, nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection (close code 1000) and waits until every
// goroutine of the Conn has returned. The events channel is then closed.
func (c *Conn) Close() error {
	c.stop()
	<-c.exited
	return nil
}

// Join joins a room, now and after every reconnect. The answer arrives as
// a Joined event, or a RequestError (e.g. 4003 when the token does not
// allow the room; the Conn then forgets the room).
func (c *Conn) Join(room string) error { return c.join(room, nil) }

// JoinFrom joins a room that keeps history and replays its messages after
// position pos (0: its newest ones), then a Resumed event with the room.
// Rejoins after a reconnect resume from the last position seen.
func (c *Conn) JoinFrom(room string, pos uint64) error { return c.join(room, &pos) }

func (c *Conn) join(room string, since *uint64) error {
	if err := validRoom(room); err != nil {
		return err
	}
	return c.request(func() {
		c.rooms[room] = &roomState{since: since}
		c.reqs = append(c.reqs, &req{kind: "join", room: room, since: since})
	})
}

// Leave leaves a room; a Left event follows.
func (c *Conn) Leave(room string) error {
	if err := validRoom(room); err != nil {
		return err
	}
	return c.request(func() {
		delete(c.rooms, room)
		c.reqs = append(c.reqs, &req{kind: "leave", room: room})
	})
}

// Ack confirms every stored message up to seq for the user, on all of the
// user's devices: they are not replayed again. An ack above the highest
// seq received counts up to that one.
func (c *Conn) Ack(seq uint64) error {
	return c.request(func() { c.ackWant = max(c.ackWant, min(seq, c.maxSeq)) })
}

// request changes the Conn's state under its lock and wakes the run loop.
func (c *Conn) request(change func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrClosed
	}
	change()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func validRoom(room string) error {
	if room == "" || len(room) > 256 || !utf8.ValidString(room) {
		return fmt.Errorf("herald: room %q must be 1-256 bytes of UTF-8", room)
	}
	for i := 0; i < len(room); i++ {
		if room[i] < 0x20 || room[i] == 0x7f {
			return fmt.Errorf("herald: room %q has a control character", room)
		}
	}
	return nil
}

// open makes one connection attempt, resuming after the highest seq
// received.
func (c *Conn) open(ctx context.Context) (*session, error) {
	var token string
	if c.cfg.token != nil {
		var err error
		if token, err = c.cfg.token(ctx); err != nil {
			return nil, fmt.Errorf("herald: getting a token: %w", err)
		}
	}
	u := c.url
	q := u.Query()
	c.mu.Lock()
	since := c.maxSeq
	c.mu.Unlock()
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	} else {
		q.Del("since")
	}
	u.RawQuery = q.Encode()
	return dialSession(ctx, &u, token, c.cfg.authFrame, c.cfg.timeout)
}

// retry reports whether to reconnect after err. It does not after the
// close codes and refusals the protocol says not to (and after a second
// refused token in a row).
func (c *Conn) retry(err error) bool {
	var ce *CloseError
	var he *Error
	switch {
	case errors.As(err, &ce):
		switch ce.Code {
		case CloseNormal, CloseProtocol, CloseTooLarge, CloseKicked:
			return false
		case CloseUnauthorized:
			return c.refusedToken()
		}
	case errors.As(err, &he):
		switch he.Status {
		case 401:
			return c.refusedToken()
		case 502, 503, 504:
			return true
		}
		return false
	}
	return true
}

// refusedToken counts a refused token and reports whether a fresh one is
// worth a try.
func (c *Conn) refusedToken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authFails++
	return c.authFails < 2 && c.cfg.fresh
}

// run is the Conn's run loop: it serves each session and reconnects after
// it, until Close or a refusal for good.
func (c *Conn) run(ctx context.Context, s *session) {
	defer close(c.exited)
	defer close(c.events)
	for {
		err := c.serve(ctx, s)
		for n := 0; ; n++ {
			if ctx.Err() != nil {
				c.finish(ErrClosed)
				return
			}
			retry := c.retry(err)
			var delay time.Duration
			if retry {
				delay = c.cfg.backoff.delay(n)
			}
			if c.emit(ctx, &Disconnected{Err: err, Retry: retry, Delay: delay}) != nil {
				continue // closed: finish above
			}
			if !retry {
				c.finish(err)
				return
			}
			if sleep(ctx, delay) != nil {
				continue
			}
			if s, err = c.open(ctx); err == nil {
				break
			}
		}
	}
}

// finish records why the Conn stopped; later calls get ErrClosed.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped, c.err = true, err
}

// emit hands ev to the Events channel, or gives up when the Conn closes.
func (c *Conn) emit(ctx context.Context, ev Event) error {
	select {
	case c.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serve runs one session until it ends; it returns why (nil after Close).
func (c *Conn) serve(ctx context.Context, s *session) error {
	defer s.close()
	go s.read()
	c.begin(s)
	if err := c.emit(ctx, &Connected{Conn: s.welcome.Conn, User: s.welcome.User, Seq: s.welcome.Seq, Heartbeat: s.heartbeat}); err != nil {
		return nil
	}
	ping := time.NewTicker(s.heartbeat)
	defer ping.Stop()
	for {
		if err := c.flush(s); err != nil {
			return err
		}
		var err error
		select {
		case <-ctx.Done():
			_ = c.flush(s) // an Ack just before Close
			s.goodbye()
			return nil
		case <-ping.C:
			err = s.send(clientFrame{Type: "ping"})
		case <-c.kick:
		case f := <-s.frames:
			err = c.handle(ctx, s, f)
		case <-s.readDone:
			return s.readErr
		}
		if err != nil {
			return err
		}
	}
}

// begin starts a session's state: the inbox replay comes first, then the
// joins of every room the Conn is in.
func (c *Conn) begin(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authFails = 0
	c.reqs = c.reqs[:0]
	for _, room := range slices.Sorted(maps.Keys(c.rooms)) {
		c.reqs = append(c.reqs, &req{kind: "join", room: room, since: c.rooms[room].since})
	}
	s.inflight = &req{kind: "resume", first: true}
}

// flush sends what the session owes the server: an ack, and the next
// request when none is awaiting its answer.
func (c *Conn) flush(s *session) error {
	var ack uint64
	var next *req
	c.mu.Lock()
	switch want := c.ackWant; {
	case want <= c.ackDone:
	case want <= s.seen:
		ack, c.ackDone = want, want
	case s.ready && s.inflight == nil && !s.ackAsked:
		// want came on an earlier session, and the server takes an ack
		// only for a seq it sent on this one: have it sent again (the
		// duplicate is dropped).
		since := want - 1
		next = &req{kind: "resume", since: &since, forAck: true}
		s.ackAsked = true
	}
	if next == nil && s.ready && s.inflight == nil && len(c.reqs) > 0 {
		next = c.reqs[0]
		c.reqs = c.reqs[1:]
	}
	c.mu.Unlock()
	if ack > 0 {
		if err := s.send(clientFrame{Type: "ack", Seq: ack}); err != nil {
			return err
		}
	}
	if next == nil {
		return nil
	}
	s.inflight = next
	return s.send(clientFrame{Type: next.kind, Room: next.room, Since: next.since})
}

// handle acts on one frame of the session.
func (c *Conn) handle(ctx context.Context, s *session, f *serverFrame) error {
	r := s.inflight
	switch f.Type {
	case "push":
		return c.onPush(ctx, s, f.Msgs)
	case "resumed":
		switch {
		case r != nil && r.kind == "resume" && f.Room == "":
			s.inflight, s.ready = nil, true
			if r.forAck {
				c.ackMoot(s)
			}
		case r != nil && r.kind == "join" && r.room == f.Room:
			s.inflight = nil
		}
		return c.emit(ctx, &Resumed{Room: f.Room, Since: f.Since, To: f.To, Complete: f.Complete})
	case "joined":
		if r != nil && r.kind == "join" && r.room == f.Room {
			if r.since == nil {
				s.inflight = nil
			} else {
				r.joined = true
			}
		}
		return c.emit(ctx, &Joined{Room: f.Room})
	case "left":
		if r != nil && r.kind == "leave" && r.room == f.Room {
			s.inflight = nil
		}
		return c.emit(ctx, &Left{Room: f.Room})
	case "recall":
		return c.emit(ctx, &Recall{ID: f.ID})
	case "error":
		return c.onError(ctx, s, f)
	}
	return nil // pong, and frame types added later
}

// ackMoot ends an ack the replay could not make acceptable: the server's
// acked position is already past it (or the message is gone).
func (c *Conn) ackMoot(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ackWant > s.seen {
		c.ackDone = max(c.ackDone, c.ackWant)
	}
}

// onPush delivers a push frame's messages, each once: by seq for stored
// messages, by id for the others (and for a stored message's second copy
// through a room that keeps history).
func (c *Conn) onPush(ctx context.Context, s *session, msgs []wireMessage) error {
	var top uint64
	for i := range msgs {
		m := &msgs[i]
		fresh := c.dedup.id(m.ID)
		c.mu.Lock()
		if m.Seq > 0 {
			fresh = c.dedup.seq(m.Seq) && fresh
			s.seen = max(s.seen, m.Seq)
			c.maxSeq = max(c.maxSeq, m.Seq)
			top = max(top, m.Seq)
		}
		if r := c.rooms[m.Room]; r != nil && m.Pos > 0 && (r.since == nil || *r.since < m.Pos) {
			pos := m.Pos
			r.since = &pos
		}
		c.mu.Unlock()
		if !fresh {
			continue
		}
		ev := &Message{ID: m.ID, Seq: m.Seq, Room: m.Room, Pos: m.Pos, From: m.From, Data: m.Data, Time: time.UnixMilli(m.TS)}
		if err := c.emit(ctx, ev); err != nil {
			return err
		}
	}
	if c.cfg.autoAck && top > 0 {
		c.mu.Lock()
		c.ackWant = max(c.ackWant, top)
		c.mu.Unlock()
	}
	return nil
}

// onError takes an error frame as the answer to the request in flight.
func (c *Conn) onError(ctx context.Context, s *session, f *serverFrame) error {
	r := s.inflight
	s.inflight = nil
	ev := &RequestError{Code: f.Code, Reason: f.Reason}
	if r != nil {
		ev.Op, ev.Room = r.kind, r.room
	}
	switch {
	case r == nil:
	case r.kind == "resume" && r.first && f.Code == ErrCodeInvalidArgument:
		// The since of the connect is beyond the inbox's latest seq: this
		// inbox is not the one the Conn saw (its data was lost). Start over
		// from the acked position.
		c.mu.Lock()
		c.maxSeq, c.ackWant, c.ackDone = 0, 0, 0
		c.mu.Unlock()
		c.dedup.reset(0)
		var zero uint64
		s.inflight = &req{kind: "resume", since: &zero}
		if err := s.send(clientFrame{Type: "resume", Since: &zero}); err != nil {
			return err
		}
	case r.kind == "resume":
		// The inbox could not be read: reconnect and resume.
		_ = c.emit(ctx, ev)
		return ev
	case r.kind == "join" && !r.joined:
		c.mu.Lock()
		delete(c.rooms, r.room)
		c.mu.Unlock()
	case r.kind == "join":
		// In the room, but it has no history from that position: later
		// rejoins are plain ones.
		c.mu.Lock()
		if rs := c.rooms[r.room]; rs != nil {
			rs.since = nil
		}
		c.mu.Unlock()
	}
	return c.emit(ctx, ev)
}
