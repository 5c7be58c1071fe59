package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/pusher"
)

// Config holds the gateway's limits and timings.
type Config struct {
	NodeID           string
	Dev              bool          // accept ?app=&user= without a token
	Heartbeat        time.Duration // advertised client ping interval
	HeartbeatTimeout time.Duration // silence after which a client is closed
	AuthTimeout      time.Duration // wait for a first-frame token
	WriteTimeout     time.Duration // one writev's deadline
	EngineTimeout    time.Duration // one inbox call
	MaxFrame         int           // largest client message, bytes
	QueueBytes       int           // write queue limit per connection
	MaxRooms         int           // rooms one connection may be in
	SendRate         int           // client send frames per second
	AllowedOrigins   []string      // empty: any origin
	Pollers          int
	Writers          int // pool writers (default GOMAXPROCS)
	ReadBuffer       int // each poller's shared read buffer
	// MaxConnsPerUser bounds one user's connections on this node (0: no
	// limit); AppMaxConnsPerUser overrides it per app. A connection beyond
	// it is closed with 4009 after authentication.
	MaxConnsPerUser    int
	AppMaxConnsPerUser map[string]int
	// Lifecycle, if set, is told of connections and room memberships
	// (presence and lifecycle webhooks).
	Lifecycle Lifecycle
	// Presence, if set, lists the members of presence rooms in their
	// joined frames, at most PresenceMembers (default 1,000).
	Presence        Presence
	PresenceMembers int
	// Pusher lists the apps' Pusher identities by key: GET /app/{key}.
	// Each connection points at its app's (one copy per app).
	Pusher map[string]*PusherApp
	// PusherInfo, PusherPresence and Presence serve Pusher presence
	// channels.
	PusherInfo     PusherInfo
	PusherPresence PusherPresence
}

// Lifecycle is told when an authenticated connection opens and closes and
// when it joins and leaves rooms. Its methods must not block.
type Lifecycle interface {
	Opened(c *hub.Conn)
	// Closed: rooms are those c was still in; code its close code.
	Closed(c *hub.Conn, rooms []string, code int)
	Joined(c *hub.Conn, room string)
	Left(c *hub.Conn, room string)
}

// ClientSender is what the gateway needs of the push service: publishing a
// client's send frame, and noting stored messages handed to a connection.
type ClientSender interface {
	ClientSend(ctx context.Context, from *hub.Conn, to protocol.SendTarget, data json.RawMessage) error
	NoteDelivered(app, user string, seq uint64)
	// NoteAcked: the user's acked position reached seq (within ctx).
	NoteAcked(ctx context.Context, app, user string, seq uint64)
	RoomReplay(ctx context.Context, app, room string, since uint64) (frames []*protocol.Outgoing, resumed []byte, last uint64, ok bool, err error)
}

// Gateway accepts and serves client connections.
type Gateway struct {
	cfg     Config
	hub     *hub.Hub
	broker  engine.Broker
	stored  stored // the inbox and room history, for every transport
	keys    *auth.Keyring
	sender  ClientSender
	router  FrameRouter // SSE client frames to the node of their connection; nil: this node only
	metrics *metrics.Metrics
	log     *slog.Logger

	pollers []*poller
	ready   chan *wsConn // connections with frames to write, for the writer pool
	writers sync.WaitGroup
	next    atomic.Uint64  // round robin over pollers, and connection ids
	closing atomic.Int32   // 0 while accepting; then the close code for late upgrades
	live    sync.WaitGroup // sockets not yet closed, streams not yet ended
	liveMu  sync.Mutex     // orders live.Add against Shutdown's Wait
	shut    bool           // Shutdown waits for live: no connection joins it any more
	stop    chan struct{}
	sweeper sync.WaitGroup

	// life is the node's lifetime, given to Start: the engine calls the
	// gateway makes for its connections (welcome and replay, resume, acks,
	// room replays, client sends, catch-up) derive from it (engineCtx), so
	// the node's shutdown cancels them. It is kept here, against the rule
	// of passing contexts, because those calls start from callbacks whose
	// APIs carry no context: the poller's read events, the hub's fan-out,
	// the engine's reconnect handler, an upgrade that outlives its request.
	// Set once by Start, before any connection exists; read only for one.
	life      context.Context
	streamsMu sync.Mutex
	streams   map[*sseConn]struct{} // open SSE connections
}

// New validates cfg; it opens nothing and starts nothing.
func New(cfg Config, h *hub.Hub, b engine.Broker, in engine.Inbox, keys *auth.Keyring, s ClientSender, m *metrics.Metrics, log *slog.Logger) (*Gateway, error) {
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("gateway: empty node id")
	case cfg.Heartbeat <= 0 || cfg.HeartbeatTimeout <= cfg.Heartbeat:
		return nil, errors.New("gateway: heartbeat timeout must exceed a positive heartbeat")
	case cfg.AuthTimeout <= 0 || cfg.WriteTimeout <= 0 || cfg.EngineTimeout <= 0:
		return nil, errors.New("gateway: auth, write and engine timeouts must be positive")
	case cfg.MaxFrame < 128 || cfg.QueueBytes < cfg.MaxFrame:
		return nil, errors.New("gateway: frame limit must be at least 128 bytes and within the queue limit")
	case h == nil || b == nil || in == nil || s == nil || m == nil:
		return nil, errors.New("gateway: missing dependency")
	case keys == nil && !cfg.Dev:
		return nil, errors.New("gateway: no token keys outside dev mode")
	}
	if cfg.Pollers <= 0 {
		cfg.Pollers = 2
	}
	if cfg.ReadBuffer < cfg.MaxFrame {
		cfg.ReadBuffer = max(64<<10, cfg.MaxFrame)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	if cfg.PresenceMembers <= 0 {
		cfg.PresenceMembers = 1000
	}
	return &Gateway{cfg: cfg, hub: h, broker: b, stored: stored{inbox: in, sender: s}, keys: keys, sender: s, metrics: m, log: log,
		stop: make(chan struct{}), ready: make(chan *wsConn, 1<<16), streams: map[*sseConn]struct{}{}}, nil
}

// Start watches the node-wide topics and creates the pollers and the
// heartbeat sweeper. ctx is the node's lifetime: it bounds every engine
// call made for a connection; ending it cancels those in flight (the
// sockets themselves are closed by Shutdown).
func (g *Gateway) Start(ctx context.Context) error {
	g.life = ctx
	for _, t := range []engine.Topic{{Kind: engine.All}, {Kind: engine.Node, Name: g.cfg.NodeID}} {
		if err := g.broker.Watch(t); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	for range g.cfg.Pollers {
		p, err := newPoller()
		if err != nil {
			g.stopPollers()
			return err
		}
		g.pollers = append(g.pollers, p)
	}
	for _, p := range g.pollers {
		go p.run(g.cfg.ReadBuffer)
	}
	g.sweeper.Add(1)
	go g.sweep()
	for range g.cfg.Writers {
		g.writers.Add(1)
		go g.write()
	}
	return nil
}

// write is one pool writer: it drains connections in the order they became
// ready, until Shutdown.
func (g *Gateway) write() {
	defer g.writers.Done()
	var w writerScratch
	for {
		select {
		case c := <-g.ready:
			c.drain(&w, false)
		case <-g.stop:
			return
		}
	}
}

func (g *Gateway) stopPollers() {
	for _, p := range g.pollers {
		p.stop()
	}
}

// Shutdown stops accepting, closes every connection with code (1001)
// after what is queued, and waits for the sockets to close or ctx to end.
func (g *Gateway) Shutdown(ctx context.Context, code int) error {
	g.closing.Store(int32(code))
	g.liveMu.Lock()
	g.shut = true
	g.liveMu.Unlock()
	g.each(func(c *conn) { c.close(code, "server shutting down") })
	done := make(chan struct{})
	go func() { g.live.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway: shutdown: %w", ctx.Err())
	}
	close(g.stop)
	g.sweeper.Wait()
	g.writers.Wait()
	g.stopPollers()
	return err
}

// engineCtx bounds one engine call made for a connection: by the engine
// timeout and the node's lifetime.
func (g *Gateway) engineCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(g.life, g.cfg.EngineTimeout)
}

// each calls fn for every connection, including those not yet
// authenticated, outside any lock.
func (g *Gateway) each(fn func(*conn)) {
	var all []*conn
	for _, p := range g.pollers {
		p.mu.RLock()
		for _, c := range p.conns {
			if c != nil {
				all = append(all, &c.conn)
			}
		}
		p.mu.RUnlock()
	}
	g.streamsMu.Lock()
	for c := range g.streams {
		all = append(all, &c.conn)
	}
	g.streamsMu.Unlock()
	for _, c := range all {
		fn(c)
	}
}

// sweep pings silent connections and closes those silent for longer than
// the heartbeat timeout.
func (g *Gateway) sweep() {
	defer g.sweeper.Done()
	tick := time.NewTicker(max(g.cfg.Heartbeat/4, 50*time.Millisecond))
	defer tick.Stop()
	ping := &protocol.Outgoing{Frame: protocol.Frame(protocol.OpPing, nil)}
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		now := g.now()
		g.each(func(c *conn) {
			if !c.authed.Load() {
				return
			}
			silent := time.Duration(now-c.lastSeen.Load()) * time.Millisecond
			switch {
			case c.oneWay:
				if silent >= g.cfg.Heartbeat {
					c.lastSeen.Store(now)
					c.Send(ping) // a keep-alive comment on the stream
				}
			case silent >= g.cfg.HeartbeatTimeout:
				c.close(protocol.CloseHeartbeat, "heartbeat timeout")
			case silent >= g.cfg.Heartbeat && !c.pinged.Swap(true):
				c.Send(ping)
			}
		})
	}
}

// now is the gateway clock in Unix milliseconds.
func (g *Gateway) now() int64 { return time.Now().UnixMilli() }

// ServeHTTP upgrades GET /v1/ws.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.Accepting() {
		httpError(w, apierr.Unavailable, "node is draining or shutting down; connect to another node")
		return
	}
	if !g.originAllowed(r.Header.Get("Origin")) {
		httpError(w, apierr.Forbidden, "origin not allowed")
		return
	}
	q := r.URL.Query()
	var since *uint64
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpError(w, apierr.InvalidArgument, "since must be a non-negative integer")
			return
		}
		since = &n
	}
	id, authErr := g.identify(r)
	if authErr != nil {
		g.refused(authErr)
		httpError(w, apierr.Unauthorized, authMessage(authErr))
		return
	}
	nc, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close() // the upgrader answered the client on a connection it took over
		}
		return
	}
	c, err := g.adopt(nc)
	if err != nil {
		g.refuseAdopted(nc, err)
		return
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	if id != nil {
		g.register(&c.conn, *id, since, nil)
	} else {
		t := time.AfterFunc(g.cfg.AuthTimeout, func() {
			if !c.authed.Load() {
				c.close(protocol.CloseUnauthorized, "no auth frame in time")
			}
		})
		c.mu.Lock()
		c.pending = &pendingAuth{timer: t, since: since}
		c.mu.Unlock()
	}
	if len(early) > 0 {
		c.consume(early)
	}
	if err := c.poller.add(c); err != nil && !c.isClosed() {
		c.fail()
	}
	if code := g.closing.Load(); code != 0 { // Shutdown or Drain may have listed connections before this one
		c.close(int(code), "server shutting down")
	}
}

// devApp is the app of dev mode's tokenless clients.
const devApp = "demo"

// identity is who a connection is, from its token or dev parameters.
type identity struct {
	app, user, device string
	rooms             []string
	anyRoom, send     bool
}

// identify reads the token from the query or Authorization header. It
// returns nil, nil when there is none and the client must send an auth
// frame.
func (g *Gateway) identify(r *http.Request) (*identity, error) {
	tok := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); tok == "" && strings.HasPrefix(h, "Bearer ") {
		tok = strings.TrimPrefix(h, "Bearer ")
	}
	if tok != "" {
		return g.verify(tok)
	}
	if !g.cfg.Dev {
		return nil, nil
	}
	q := r.URL.Query()
	id := &identity{app: q.Get("app"), user: q.Get("user"), device: q.Get("device"), anyRoom: true, send: true}
	if id.app == "" {
		id.app = devApp
	}
	if id.user == "" {
		id.user = "anon-" + strconv.FormatUint(g.next.Add(1), 36)
	}
	for _, f := range [][2]string{{"app", id.app}, {"user", id.user}} {
		if err := protocol.ValidName(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if id.app != devApp && !g.keys.Has(id.app) {
		return nil, fmt.Errorf("no app %q: dev mode has app %q and the configured apps", id.app, devApp)
	}
	if id.device != "" {
		if err := protocol.ValidName("device", id.device); err != nil {
			return nil, err
		}
	}
	return id, nil
}

func (g *Gateway) verify(tok string) (*identity, error) {
	if g.keys == nil {
		return nil, auth.ErrInvalidToken
	}
	cl, err := g.keys.Verify(tok, time.Now())
	if err != nil {
		return nil, err
	}
	if err := protocol.ValidName("user", cl.User); err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
	}
	if cl.Device != "" {
		if err := protocol.ValidName("device", cl.Device); err != nil {
			return nil, fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
		}
	}
	return &identity{app: cl.App, user: cl.User, device: cl.Device, rooms: cl.Rooms, send: cl.Send}, nil
}

func (g *Gateway) originAllowed(origin string) bool {
	if len(g.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// adopt wraps an upgraded socket; it is not yet read from.
func (g *Gateway) adopt(nc net.Conn) (*wsConn, error) {
	tlsConn, _ := nc.(*tls.Conn)
	under := nc
	for { // TLS, the listener's connection cap, ...: down to the socket
		w, ok := under.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		under = w.NetConn()
	}
	tc, ok := under.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("gateway: %T is not a TCP connection", under)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn{g: g}, nc: nc, rc: rc, tls: tlsConn}
	c.wire = c
	c.parser.Max = g.cfg.MaxFrame
	if err := rc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		return nil, err
	}
	c.poller = g.pollers[g.next.Add(1)%uint64(len(g.pollers))]
	c.Addr = nc.RemoteAddr().String()
	c.Out = &c.conn
	c.lastSeen.Store(g.now())
	if !g.enter() {
		return nil, errShuttingDown
	}
	return c, nil
}

// refuseAdopted closes an upgraded connection that adopt refused.
func (g *Gateway) refuseAdopted(nc net.Conn, err error) {
	if !errors.Is(err, errShuttingDown) {
		g.log.Warn("adopting connection", "err", err)
	}
	_ = nc.Close()
}

// errShuttingDown refuses a connection that arrives once Shutdown waits.
var errShuttingDown = errors.New("gateway: shutting down")

// enter counts a new connection as live, for Shutdown to wait for, unless
// Shutdown has begun (false: the caller closes it). A WaitGroup must not
// grow from zero while it is waited for.
func (g *Gateway) enter() bool {
	g.liveMu.Lock()
	defer g.liveMu.Unlock()
	if g.shut {
		return false
	}
	g.live.Add(1)
	return true
}

// watchIdentity watches the topics of c's user and app; when the engine
// cannot, it closes c (to reconnect elsewhere or later) and says false.
func (g *Gateway) watchIdentity(c *conn) bool {
	user := engine.Topic{Kind: engine.User, App: c.App, Name: c.User}
	if !g.watch(user) {
		c.close(protocol.CloseDraining, "engine unavailable; reconnect")
		return false
	}
	if !g.watch(engine.Topic{Kind: engine.App, App: c.App}) {
		g.unwatch(user)
		c.close(protocol.CloseDraining, "engine unavailable; reconnect")
		return false
	}
	return true
}

// unwatchIdentity undoes watchIdentity.
func (g *Gateway) unwatchIdentity(c *conn) {
	g.unwatch(engine.Topic{Kind: engine.User, App: c.App, Name: c.User})
	g.unwatch(engine.Topic{Kind: engine.App, App: c.App})
}

// register makes an authenticated connection addressable and greets it;
// then it joins rooms as join frames would.
func (g *Gateway) register(c *conn, id identity, since *uint64, rooms []roomAt) {
	c.App, c.User, c.Device = id.app, id.user, id.device
	c.ID = protocol.ConnID(g.cfg.NodeID, g.next.Add(1))
	c.Since = time.Now().UnixMilli()
	c.allow, c.mayAny, c.maySend = id.rooms, id.anyRoom, id.send
	if !g.watchIdentity(c) {
		return
	}
	c.hold() // live frames wait for the welcome and the replay
	if !g.hub.AddLimited(&c.Conn, g.userLimit(c.App)) {
		// The newest is refused: a user's existing sessions stay, so a
		// leaked token cannot push them out (docs/security.md).
		g.unwatchIdentity(c)
		g.metrics.UserLimited()
		g.log.Debug("connection refused: too many for its user", "app", c.App, "user", c.User, "addr", c.Addr)
		c.close(protocol.CloseTooManyConns, "too many connections for this user")
		return
	}
	c.mu.Lock()
	closed := c.closed
	c.hubbed = !closed
	c.mu.Unlock()
	if closed {
		g.unregister(c)
		return
	}
	c.authed.Store(true)
	g.metrics.Connected()
	if g.cfg.Lifecycle != nil {
		g.cfg.Lifecycle.Opened(&c.Conn)
	}
	if g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.LogAttrs(context.Background(), slog.LevelDebug, "client connected", slog.String("conn", c.ID),
			slog.String("app", c.App), slog.String("user", c.User), slog.String("device", c.Device), slog.String("addr", c.Addr))
	}
	go g.greet(c, since, rooms)
}

// userLimit is how many connections one user of app may hold on this node.
func (g *Gateway) userLimit(app string) int {
	if n, ok := g.cfg.AppMaxConnsPerUser[app]; ok && n > 0 {
		return n
	}
	return g.cfg.MaxConnsPerUser
}

// unregister takes c out of the hub and drops its interest; it returns
// the rooms c was in.
func (g *Gateway) unregister(c *conn) []string {
	rooms, ok := g.hub.Remove(&c.Conn)
	if !ok {
		return nil
	}
	for _, r := range rooms {
		g.unwatch(engine.Topic{Kind: engine.Room, App: c.App, Name: r})
	}
	g.unwatchIdentity(c)
	return rooms
}

// detach is called once per connection when it starts closing, with the
// close code and reason (of the close frame, or why the socket broke).
func (g *Gateway) detach(c *conn, code int, reason string) {
	c.wire.stopReading()
	c.mu.Lock()
	if c.pending != nil {
		c.pending.timer.Stop()
		c.pending = nil
	}
	hubbed := c.hubbed
	c.hubbed = false
	c.mu.Unlock()
	if hubbed {
		if c.pusher != nil {
			g.pusherDetach(c)
		}
		rooms := g.unregister(c)
		if g.cfg.Lifecycle != nil {
			g.cfg.Lifecycle.Closed(&c.Conn, rooms, code)
		}
		g.metrics.Disconnected(code)
		if g.log.Enabled(context.Background(), slog.LevelDebug) {
			g.log.LogAttrs(context.Background(), slog.LevelDebug, "client disconnected", slog.String("conn", c.ID),
				slog.String("app", c.App), slog.String("user", c.User), slog.String("addr", c.Addr),
				slog.Int("code", code), slog.String("reason", reason))
		}
	}
}

// watch takes interest in t; on failure it logs and reports false, and the
// caller must not count on (or later drop) that interest.
func (g *Gateway) watch(t engine.Topic) bool {
	if err := g.broker.Watch(t); err != nil {
		g.log.Warn("watching topic", "err", err)
		return false
	}
	return true
}

func (g *Gateway) unwatch(t engine.Topic) {
	if err := g.broker.Unwatch(t); err != nil {
		g.log.Warn("unwatching topic", "err", err)
	}
}

// Join adds a connection to a room and tells the client. It reports false
// if the connection is gone or already a member.
func (g *Gateway) Join(hc *hub.Conn, room string) bool {
	if !g.join(hc, room) {
		return false
	}
	g.tellJoined(hc.Out.(*conn), room)
	return true
}

// join adds a connection to a room without telling the client. It fails
// when the connection is gone, already a member, or the engine refuses the
// room's interest.
func (g *Gateway) join(hc *hub.Conn, room string) bool {
	t := engine.Topic{Kind: engine.Room, App: hc.App, Name: room}
	if !g.watch(t) {
		return false
	}
	if !g.hub.Join(hc, room) {
		g.unwatch(t)
		return false
	}
	if g.cfg.Lifecycle != nil {
		g.cfg.Lifecycle.Joined(hc, room)
	}
	return true
}

// Leave takes a connection out of a room and tells the client. It reports
// whether the connection was a member.
func (g *Gateway) Leave(hc *hub.Conn, room string) bool {
	if !g.hub.Leave(hc, room) {
		return false
	}
	g.unwatch(engine.Topic{Kind: engine.Room, App: hc.App, Name: room})
	if g.cfg.Lifecycle != nil {
		g.cfg.Lifecycle.Left(hc, room)
	}
	hc.Out.(*conn).sendText(protocol.Left(room))
	return true
}

// Kick closes a connection with the kicked code.
func (g *Gateway) Kick(hc *hub.Conn) { hc.Out.(*conn).close(protocol.CloseKicked, "kicked") }

func (g *Gateway) errorFrame(c *conn, code int, reason string) {
	g.metrics.ClientError(code)
	c.sendText(protocol.ErrorFrame(code, reason))
}

// onText handles a client text message.
func (g *Gateway) onText(c *conn, payload []byte) error {
	f, ferr := protocol.DecodeClient(payload)
	if !c.authed.Load() {
		if ferr != nil || f.Type != protocol.TypeAuth {
			c.close(protocol.CloseUnauthorized, "first frame must be auth")
			return errClosing
		}
		id, err := g.verify(f.Token)
		if err != nil {
			g.refused(err)
			c.close(protocol.CloseUnauthorized, authMessage(err))
			return errClosing
		}
		c.mu.Lock()
		p := c.pending
		c.pending = nil
		c.mu.Unlock()
		if p == nil {
			return errClosing // closing already
		}
		p.timer.Stop()
		g.register(c, *id, p.since, nil)
		return nil
	}
	if ferr != nil {
		g.errorFrame(c, ferr.Code, ferr.Reason)
		return nil
	}
	g.dispatch(c, f)
	return nil
}

// dispatch runs an authenticated connection's client frame, for every
// transport. Caller: the connection's read side, one frame at a time.
func (g *Gateway) dispatch(c *conn, f protocol.ClientFrame) {
	switch f.Type {
	case protocol.TypePing:
		c.Send(pong)
	case protocol.TypeAuth:
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "already authenticated")
	case protocol.TypeJoin:
		g.clientJoin(c, f.Room, f.Since)
	case protocol.TypeLeave:
		if !g.Leave(&c.Conn, f.Room) {
			c.sendText(protocol.Left(f.Room))
		}
	case protocol.TypeAck:
		g.ack(c, f.Seq)
	case protocol.TypeResume:
		g.resume(c, *f.Since)
	case protocol.TypeSend:
		g.clientSend(c, f)
	}
}

var pong = protocol.NewText(protocol.Pong)

// joinRefused tells the client, and reports, when it may not join room
// itself: its token does not allow it, or it is in MaxRooms rooms.
func (g *Gateway) joinRefused(c *conn, room string) bool {
	switch {
	case !c.mayAny && !(auth.Claims{Rooms: c.allow}.MayJoin(room)):
		g.errorFrame(c, protocol.ErrCodeForbidden, "token does not allow joining room "+strconv.Quote(room))
		return true
	case len(g.hub.Rooms(&c.Conn)) >= g.cfg.MaxRooms:
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "connection is in the maximum of "+strconv.Itoa(g.cfg.MaxRooms)+" rooms")
		return true
	}
	return false
}

// clientJoin handles a join frame; with since, a room that keeps history
// then replays what the client missed (see roomReplay).
func (g *Gateway) clientJoin(c *conn, room string, since *uint64) {
	if g.joinRefused(c, room) {
		return
	}
	if since == nil {
		if !g.Join(&c.Conn, room) {
			if slices.Contains(g.hub.Rooms(&c.Conn), room) {
				g.tellJoined(c, room) // already a member
			} else {
				g.errorFrame(c, protocol.ErrCodeInvalidArgument, "could not join room "+strconv.Quote(room)+" now; retry")
			}
		}
		return
	}
	if !c.hold() {
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "a replay is already running; join again when it ends")
		return
	}
	g.join(&c.Conn, room) // false: already a member, which is fine
	go g.roomReplay(c, room, *since)
}

func (g *Gateway) clientSend(c *conn, f protocol.ClientFrame) {
	if !c.maySend {
		g.errorFrame(c, protocol.ErrCodeForbidden, "token does not allow sending")
		return
	}
	if sec := uint32(g.now() / 1000); sec != c.sendSec {
		c.sendSec, c.sendCount = sec, 0
	}
	if c.sendCount++; c.sendCount > uint32(g.cfg.SendRate) {
		g.errorFrame(c, protocol.ErrCodeRateLimited, "more than "+strconv.Itoa(g.cfg.SendRate)+" sends per second")
		return
	}
	// Publishing may wait for the engine (a room with history stores the
	// message): it runs off the read loop, one send at a time per
	// connection so that a client's sends keep their order.
	c.mu.Lock()
	c.sends = append(c.sends, f)
	start := !c.sending
	c.sending = true
	c.mu.Unlock()
	if start {
		go g.publishSends(c)
	}
}

// publishSends publishes a connection's queued sends in order, then exits.
func (g *Gateway) publishSends(c *conn) {
	for {
		c.mu.Lock()
		if len(c.sends) == 0 {
			c.sends, c.sending = nil, false
			c.mu.Unlock()
			return
		}
		f := c.sends[0]
		c.sends = c.sends[1:]
		c.mu.Unlock()
		ctx, cancel := g.engineCtx()
		var err error
		if f.Event != "" {
			err = g.sender.(PusherEvents).ClientEvent(ctx, c.pusherClientFrom(f.Room), f.Room, f.Event, f.Data)
		} else {
			err = g.sender.ClientSend(ctx, &c.Conn, *f.To, f.Data)
		}
		cancel()
		switch {
		case err != nil && c.pusher != nil:
			c.sendNow(protocol.NewText(pusher.Error(pusher.CodeClientEventError, err.Error())))
		case err != nil:
			g.errorFrame(c, protocol.ErrCodeInvalidArgument, err.Error())
		}
	}
}

// refused counts and (at debug level) logs a refused token or dev
// identity.
func (g *Gateway) refused(err error) {
	g.metrics.AuthRefused(errors.Is(err, auth.ErrExpiredToken))
	g.log.Debug("client auth refused", "err", err)
}

// authMessage is what a client is told about a refused token or dev
// identity, the same before the upgrade (401 body) and after it (close
// reason of 4001, cut to fit by protocol.CloseFrame): "token expired: …",
// "invalid token: …", or which name is wrong.
func authMessage(err error) string { return strings.TrimPrefix(err.Error(), "auth: ") }

// httpError writes the API's JSON error shape before an upgrade, with the
// status the code has in the catalogue (package apierr).
func httpError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")                         // a refused client gets no second try on this connection
	_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // nor is a body it announced waited for
	w.WriteHeader(apierr.Of(code).Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // as the API's answers
	_ = enc.Encode(map[string]map[string]string{"error": {"code": code, "message": msg}})
}
