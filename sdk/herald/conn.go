package herald

import (
	"context"
	"fmt"
	"net/url"
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
	node      func(context.Context) (string, error)
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

// WithNodeFunc calls f for the URL of every connection attempt instead of
// using Dial's URL (which stays the fallback when f fails): for example
// the WebSocket URL Client.Route names, so that a client closed by a
// draining node reconnects to the least-loaded live one.
func WithNodeFunc(f func(ctx context.Context) (string, error)) DialOption {
	return func(c *dialConfig) { c.node = f }
}

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
