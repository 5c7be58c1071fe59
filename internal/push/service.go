package push

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/jsonscan"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/recent"
)

// Limits bound what one push may carry.
type Limits struct {
	MaxPayload     int           // bytes of data
	MaxTargets     int           // users + conns + rooms in one push
	DefaultTTL     time.Duration // when a push names none
	MaxTTL         time.Duration
	IdempotencyTTL time.Duration // how long a push id is remembered
	// IdempotencyMax is how many push ids the node remembers at most (0:
	// DefaultIdempotencyMax); past it the oldest are forgotten first.
	IdempotencyMax int
	RoomHistory    []RoomHistory // rooms that keep their recent messages
	// Alone says this node is the whole cluster: a user with no connection
	// in its hub has none anywhere, so a stored message for that user is
	// not published live (the user's next connect replays it), and pushes
	// to users and connections go to the hub directly (publishTopic).
	Alone bool
	// EngineTimeout bounds the engine calls the service makes on its own,
	// without a caller's (0: DefaultEngineTimeout).
	EngineTimeout time.Duration
}

// DefaultEngineTimeout is Limits.EngineTimeout when none is given.
const DefaultEngineTimeout = 5 * time.Second

// Target lists a push's recipients.
type Target struct {
	Users []string `json:"users,omitempty"`
	Conns []string `json:"conns,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
	App   bool     `json:"app,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// Request is one push as the API adapters hand it over.
type Request struct {
	App     string          // resolved by the adapter from the key (or "app" for admins)
	Admin   bool            // the caller holds an admin key
	To      Target          //
	Data    json.RawMessage // any JSON value
	TTL     *int64          // seconds; nil: the default
	Offline bool
	ID      string // optional idempotency key and message id
	// Event is the Pusher event name of the message ("": "message").
	Event string
	// Except is a connection (a Pusher socket_id) left out of the live
	// delivery: the sender of a Pusher API event.
	Except string
}

// Service publishes pushes and delivers received ones to the local hub.
type Service struct {
	limits  Limits
	broker  engine.Broker
	inbox   engine.Inbox
	records engine.Records
	hub     *hub.Hub
	metrics *metrics.Metrics
	log     *slog.Logger

	counters sync.Map // app ("" = node total) → *counters

	idem *idemTable // app + "\x00" + id

	seenMu sync.Mutex
	seen   map[string]int64 // dedup'd message ids → expiry (unix ms)

	delivered delivery
	order     orderLocks
	events    Events // message events; nil: none
	recent    recent.Log
	taps      Taps // observers of the pushes that skip the engine
}

// New builds a Service.
func New(l Limits, b engine.Broker, in engine.Inbox, rec engine.Records, h *hub.Hub, m *metrics.Metrics, log *slog.Logger) (*Service, error) {
	if b == nil || in == nil || rec == nil || h == nil || m == nil {
		return nil, errors.New("push: missing dependency")
	}
	if l.MaxPayload <= 0 || l.MaxTargets <= 0 || l.DefaultTTL <= 0 || l.MaxTTL < l.DefaultTTL || l.IdempotencyTTL <= 0 {
		return nil, errors.New("push: limits must be positive and the default TTL within the maximum")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if l.EngineTimeout <= 0 {
		l.EngineTimeout = DefaultEngineTimeout
	}
	return &Service{limits: l, broker: b, inbox: in, records: rec, hub: h, metrics: m, log: log,
		idem: newIdemTable(l.IdempotencyTTL, l.IdempotencyMax), seen: make(map[string]int64)}, nil
}

type counters struct{ pushes, deliveries, stored, acks atomic.Uint64 }

func (s *Service) countersOf(app string) *counters {
	if c, ok := s.counters.Load(app); ok {
		return c.(*counters)
	}
	c, _ := s.counters.LoadOrStore(app, new(counters))
	return c.(*counters)
}

// Counters returns pushes accepted and deliveries made by this node for
// one app, or for all apps when app is empty.
func (s *Service) Counters(app string) (pushes, deliveries uint64) {
	c := s.countersOf(app)
	return c.pushes.Load(), c.deliveries.Load()
}

func (s *Service) count(app string, pushes, deliveries int) {
	for _, c := range []*counters{s.countersOf(""), s.countersOf(app)} {
		c.pushes.Add(uint64(pushes))
		c.deliveries.Add(uint64(deliveries))
	}
}

// Push validates and publishes one push and returns its message id.
func (s *Service) Push(ctx context.Context, r *Request) (string, error) {
	id, err := s.push(ctx, r)
	if err == nil {
		s.accepted(r, id)
	}
	return id, err
}

// logPush logs an accepted push at debug level. It costs one level check
// at other levels: it is on the push path.
func (s *Service) logPush(r *Request, id string) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "push accepted", slog.String("id", id), slog.String("app", r.App),
		slog.Int("users", len(r.To.Users)), slog.Int("conns", len(r.To.Conns)), slog.Int("rooms", len(r.To.Rooms)),
		slog.Bool("to_app", r.To.App), slog.Bool("to_all", r.To.All), slog.Bool("offline", r.Offline))
}

func (s *Service) push(ctx context.Context, r *Request) (string, error) {
	if err := s.validate(r); err != nil {
		return "", err
	}
	if r.ID == "" {
		return s.publish(ctx, r, newID())
	}
	return s.idempotent(r.App+"\x00"+r.ID, func() (string, error) {
		return s.publish(ctx, r, r.ID)
	})
}

// idempotent runs fn once per key within the idempotency window; repeats
// get the first answer. A failed attempt is forgotten.
func (s *Service) idempotent(key string, fn func() (string, error)) (string, error) {
	for {
		e, own := s.claim(key)
		if !own {
			<-e.done
			if e.err != nil {
				continue
			}
			return e.id, nil
		}
		id, err := fn()
		s.settle(key, e, id, err)
		return id, err
	}
}

// claim returns the key's entry within the idempotency window and whether
// the caller made it (and so must settle it); otherwise the entry's done
// closes once its owner settled it.
func (s *Service) claim(key string) (*idemEntry, bool) { return s.idem.claim(key, time.Now()) }

// settle records the outcome of a claimed key; a failure is forgotten.
func (s *Service) settle(key string, e *idemEntry, id string, err error) {
	s.idem.settle(key, e, id, err)
}

func (s *Service) validate(r *Request) error {
	t := &r.To
	if err := protocol.ValidName("app", r.App); err != nil {
		return Errorf(CodeInvalidArgument, "%v", err)
	}
	if t.All && !r.Admin {
		return Errorf(CodeForbidden, "to.all needs an admin key")
	}
	n := len(t.Users) + len(t.Conns) + len(t.Rooms)
	if n == 0 && !t.App && !t.All {
		return Errorf(CodeInvalidTarget, "push has no target: set to.users, to.conns, to.rooms, to.app or to.all")
	}
	if n > s.limits.MaxTargets {
		return Errorf(CodeInvalidTarget, "push has %d targets; the limit is %d", n, s.limits.MaxTargets)
	}
	for _, list := range []struct {
		what  string
		names []string
	}{{"user", t.Users}, {"conn", t.Conns}, {"room", t.Rooms}} {
		for _, name := range list.names {
			if err := protocol.ValidName(list.what, name); err != nil {
				return Errorf(CodeInvalidTarget, "%v", err)
			}
		}
	}
	for _, c := range t.Conns {
		if _, ok := protocol.ConnNode(c); !ok {
			return Errorf(CodeInvalidTarget, "conn %q is not a connection id", c)
		}
	}
	if r.Event != "" {
		if err := protocol.ValidName("event", r.Event); err != nil || len(r.Event) > 200 {
			return Errorf(CodeInvalidArgument, "event must be 1 to 200 bytes without control characters")
		}
	}
	if len(r.Data) == 0 {
		return Errorf(CodeInvalidArgument, "push needs data")
	}
	if len(r.Data) > s.limits.MaxPayload {
		return Errorf(CodeTooLarge, "data is %d bytes; the limit is %d", len(r.Data), s.limits.MaxPayload)
	}
	if !jsonscan.Valid(r.Data) {
		return Errorf(CodeInvalidArgument, "data is not valid JSON")
	}
	if r.TTL != nil {
		maxTTL := int64(s.limits.MaxTTL / time.Second)
		if *r.TTL <= 0 || *r.TTL > maxTTL {
			return Errorf(CodeInvalidArgument, "ttl must be between 1 and %d seconds", maxTTL)
		}
	}
	if r.Offline && len(t.Users) == 0 {
		return Errorf(CodeInvalidArgument, "offline keeps messages for users: name to.users")
	}
	if r.ID != "" {
		if err := protocol.ValidName("id", r.ID); err != nil {
			return Errorf(CodeInvalidArgument, "%v", err)
		}
	}
	return nil
}

// publish encodes the message once and publishes it to every target topic.
func (s *Service) publish(ctx context.Context, r *Request, id string) (string, error) {
	t := &r.To
	m := protocol.Message{ID: id, Event: r.Event, Data: r.Data, TS: time.Now().UnixMilli()}
	if len(t.Rooms) == 1 && len(t.Users)+len(t.Conns) == 0 && !t.App && !t.All {
		m.Room = t.Rooms[0]
	}
	if r.Offline {
		ttl := s.limits.DefaultTTL
		if r.TTL != nil {
			ttl = time.Duration(*r.TTL) * time.Second
		}
		if err := s.store(ctx, r, &m, ttl); err != nil {
			return "", err
		}
		// The other targets get the live message; the stored users' own
		// connections already got their copy with its seq.
		rest := Target{Conns: t.Conns, Rooms: t.Rooms, App: t.App, All: t.All}
		if len(rest.Conns)+len(rest.Rooms) > 0 || rest.App || rest.All {
			if err := s.sendSkipping(ctx, r.App, &rest, &m, "", t.Users); err != nil {
				return "", err
			}
		} else {
			s.count(r.App, 1, 0)
		}
	} else if err := s.send(ctx, r.App, t, &m, r.Except); err != nil {
		return "", err
	}
	s.metrics.Pushed("api", 1)
	return id, nil
}

func (s *Service) send(ctx context.Context, app string, t *Target, m *protocol.Message, except string) error {
	return s.sendSkipping(ctx, app, t, m, except, nil)
}

// sendSkipping publishes a live message to t's topics, leaving out the
// connections of skip users.
func (s *Service) sendSkipping(ctx context.Context, app string, t *Target, m *protocol.Message, except string, skip []string) error {
	rooms, err := s.storeHistory(ctx, app, t.Rooms, m, except)
	if err != nil {
		return err
	}
	if len(rooms) != len(t.Rooms) {
		rest := *t
		rest.Rooms = rooms
		if len(rest.Users)+len(rest.Conns)+len(rest.Rooms) == 0 && !rest.App && !rest.All {
			s.count(app, 1, 0)
			return nil
		}
		t = &rest
	}
	mp := bufPool.Get().(*[]byte)
	msg := protocol.AppendMessage((*mp)[:0], m)
	defer func() { *mp = msg; bufPool.Put(mp) }()
	kinds := 0
	for _, k := range []bool{len(t.Users) > 0, len(t.Conns) > 0, len(t.Rooms) > 0, t.App, t.All} {
		if k {
			kinds++
		}
	}
	dedup := kinds > 1 || len(t.Rooms) > 1
	full := envelope{App: app, ID: m.ID, Except: except, Skip: skip}
	if dedup {
		full = envelope{App: app, Users: t.Users, Conns: t.Conns, Rooms: t.Rooms, Whole: t.App, All: t.All, ID: m.ID, Dedup: true, Except: except, Skip: skip}
	}
	var errs []error
	pub := func(topic engine.Topic, e *envelope) {
		if dedup {
			e = &full
		}
		if err := s.publishTopic(ctx, topic, e, msg, true); err != nil {
			errs = append(errs, err)
		}
	}
	for i, u := range t.Users {
		e := full
		e.Users = t.Users[i : i+1]
		pub(engine.Topic{Kind: engine.User, App: app, Name: u}, &e)
	}
	for node, conns := range groupByNode(t.Conns) {
		e := full
		e.Conns = conns
		pub(engine.Topic{Kind: engine.Node, Name: node}, &e)
	}
	for i, room := range t.Rooms {
		e := full
		e.Rooms = t.Rooms[i : i+1]
		pub(engine.Topic{Kind: engine.Room, App: app, Name: room}, &e)
	}
	if t.App {
		e := full
		e.Whole = true
		pub(engine.Topic{Kind: engine.App, App: app}, &e)
	}
	if t.All {
		e := full
		e.All = true
		pub(engine.Topic{Kind: engine.All}, &e)
	}
	if err := errors.Join(errs...); err != nil {
		return &Error{Code: CodeUnavailable, Message: "the engine did not accept the push", Err: err}
	}
	s.count(app, 1, 0)
	return nil
}

// bufPool holds the buffers of encoded messages and engine payloads, which
// live only while a push is published (engines and the hub copy them).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// publishTopic publishes the payload of e and msg to t through the engine.
// On a node that is the whole cluster, user and connection topics skip the
// engine: every connection they can reach is in this hub, so the message
// is delivered here and now, on the caller's goroutine, without encoding
// or decoding an envelope and without a dispatcher hand-off. All of a
// user's or node's payloads take that path, so each topic keeps its
// publish order. Rooms, apps and all still go through the engine, whose
// dispatchers merge a burst to one room into one hub pass.
//
// inline says the caller holds no lock (a live push): a message delivered
// here to an idle connection is then written on the caller's goroutine.
func (s *Service) publishTopic(ctx context.Context, t engine.Topic, e *envelope, msg []byte, inline bool) error {
	if s.limits.Alone && (t.Kind == engine.User || t.Kind == engine.Node) {
		if !e.Dedup || !s.seenBefore(e.App+"\x00"+e.ID) {
			s.fanOut(e, []*protocol.Outgoing{frameOf(e, msg)}, inline)
		}
		if s.taps.watched() {
			s.taps.publish(t, appendEnvelope(nil, e, msg))
		}
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	buf := appendEnvelope((*bp)[:0], e, msg)
	err := s.broker.Publish(ctx, t, buf)
	*bp = buf
	bufPool.Put(bp)
	return err
}

// Taps are the node's observers of pushes that skip the engine.
func (s *Service) Taps() *Taps { return &s.taps }

func groupByNode(conns []string) map[string][]string {
	if len(conns) == 0 {
		return nil
	}
	g := make(map[string][]string)
	for _, c := range conns {
		n, _ := protocol.ConnNode(c)
		g[n] = append(g[n], c)
	}
	return g
}

// ClientSend publishes a client's send frame to users and rooms of its app,
// to every recipient but the sending connection.
func (s *Service) ClientSend(ctx context.Context, from *hub.Conn, to protocol.SendTarget, data json.RawMessage) error {
	if len(data) > s.limits.MaxPayload {
		return Errorf(CodeTooLarge, "data is %d bytes; the limit is %d", len(data), s.limits.MaxPayload)
	}
	if n := len(to.Users) + len(to.Rooms); n > s.limits.MaxTargets {
		return Errorf(CodeInvalidTarget, "send has %d targets; the limit is %d", n, s.limits.MaxTargets)
	}
	t := Target{Users: to.Users, Rooms: to.Rooms}
	m := protocol.Message{ID: newID(), From: from.User, Data: data, TS: time.Now().UnixMilli()}
	if len(to.Rooms) == 1 && len(to.Users) == 0 {
		m.Room = to.Rooms[0]
	}
	if err := s.send(ctx, from.App, &t, &m, from.ID); err != nil {
		return err
	}
	s.metrics.Pushed("client", 1)
	return nil
}

// Deliver is the engine handler: it hands received pushes to the local
// connections they target. Consecutive pushes with the same targets (a
// burst to one room, say) go out in one pass, each connection taking them
// all in one enqueue. The payloads are not retained.
func (s *Service) Deliver(payloads [][]byte) {
	var run []*protocol.Outgoing
	var runEnv envelope
	for _, p := range payloads {
		e, msg, err := splitEnvelope(p)
		if err != nil {
			s.log.Warn("dropping engine payload", "err", err)
			continue
		}
		if e.Dedup && s.seenBefore(e.App+"\x00"+e.ID) {
			continue
		}
		if len(run) > 0 && !sameTargets(&runEnv, &e) {
			s.fanOut(&runEnv, run, false)
			run = run[:0]
		}
		runEnv = e
		run = append(run, frameOf(&e, msg))
	}
	if len(run) > 0 {
		s.fanOut(&runEnv, run, false)
	}
}

// frameOf makes the frame a payload's message goes out in, marked with its
// seq (or room position) so that a replaying connection can spot it.
func frameOf(e *envelope, msg []byte) *protocol.Outgoing {
	if e.Kind != "" {
		return protocol.NewText(msg)
	}
	f := protocol.NewPush(msg)
	f.Seq = e.Seq
	if e.Pos > 0 {
		f.Seq, f.Room = e.Pos, e.Rooms[0]
	}
	return f
}

func (s *Service) fanOut(e *envelope, frames []*protocol.Outgoing, inline bool) {
	var except *hub.Conn
	if e.Except != "" {
		except = s.hub.Conn(e.Except)
	}
	n := s.hub.Send(&hub.Targets{App: e.App, Users: e.Users, Conns: e.Conns, Rooms: e.Rooms, Whole: e.Whole, All: e.All, SkipUsers: e.Skip, Inline: inline}, frames, except)
	if n > 0 && len(e.Users) == 1 {
		var seq uint64
		for _, f := range frames {
			seq = max(seq, f.Seq)
		}
		if seq > 0 {
			id := "" // looked up at the flush, if a message event wants it
			if e.Seq == seq && e.Pos == 0 {
				id = e.ID // e is the run's last envelope
			}
			s.delivered.note(e.App, e.Users[0], seq, id)
		}
	}
	if e.Kind == kindPresence {
		return // a notice, not a delivery
	}
	s.count(e.App, 0, n*len(frames))
	s.metrics.Delivered(n * len(frames))
}

// PresenceNotice tells the members of a presence room, on every node, that
// user became present in it (join) or is no longer (leave). The user's own
// connections are left out: a joiner gets no presence frame about itself.
func (s *Service) PresenceNotice(ctx context.Context, app, room, user string, join bool) error {
	return s.PresenceNoticeInfo(ctx, app, room, user, join, nil)
}

// PresenceNoticeInfo is PresenceNotice whose frame also carries the user's
// info (a JSON value; nil: none), as a Pusher presence channel announces
// its members.
func (s *Service) PresenceNoticeInfo(ctx context.Context, app, room, user string, join bool, info json.RawMessage) error {
	frame := protocol.Presence(room, join, []string{user})
	if len(info) > 0 {
		frame = append(append(append(frame[:len(frame)-1], `,"info":`...), info...), '}')
	}
	env := envelope{App: app, Rooms: []string{room}, ID: newID(), Skip: []string{user}, Kind: kindPresence}
	if err := s.publishTopic(ctx, engine.Topic{Kind: engine.Room, App: app, Name: room}, &env, frame, false); err != nil {
		return fmt.Errorf("push: presence notice for %s: %w", room, err)
	}
	return nil
}

// sameTargets reports whether two envelopes select the same connections.
func sameTargets(a, b *envelope) bool {
	return a.App == b.App && a.Whole == b.Whole && a.All == b.All && a.Except == b.Except && a.Kind == b.Kind &&
		slices.Equal(a.Skip, b.Skip) &&
		slices.Equal(a.Users, b.Users) && slices.Equal(a.Conns, b.Conns) && slices.Equal(a.Rooms, b.Rooms)
}

// seenBefore remembers dedup'd message keys (app and id) for a minute, so
// that a push published on several topics is delivered once per node.
func (s *Service) seenBefore(id string) bool {
	now := time.Now().UnixMilli()
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if exp, ok := s.seen[id]; ok && exp > now {
		return true
	}
	s.seen[id] = now + 60_000
	if len(s.seen)%1024 == 0 {
		for k, exp := range s.seen {
			if exp <= now {
				delete(s.seen, k)
			}
		}
	}
	return false
}

// idNode tells this process's ids from other processes' (random, drawn once);
// idCount tells its ids apart within a millisecond.
var (
	idNode  = func() uint64 { var b [8]byte; _, _ = rand.Read(b[:]); return binary.LittleEndian.Uint64(b[:]) }() & (1<<30 - 1)
	idCount atomic.Uint64
)

// idDigits are the digits of message ids (base 32, in sort order).
const idDigits = "0123456789abcdefghijklmnopqrstuv"

// newID returns "m_" + a time-ordered message id, unique across processes:
// 9 digits of unix milliseconds, 6 of a per-process random number and 4 of
// a per-process counter (base 32).
func newID() string {
	var b [2 + 19]byte
	b[0], b[1] = 'm', '_'
	put := func(at int, v uint64, n int) {
		for i := n - 1; i >= 0; i-- {
			b[at+i] = idDigits[v&31]
			v >>= 5
		}
	}
	put(2, uint64(time.Now().UnixMilli()), 9)
	put(11, idNode, 6)
	put(17, idCount.Add(1), 4)
	return string(b[:])
}

// ClientEvent publishes a Pusher client's client- event to room, to every
// recipient but the sending connection: a message with the event's name,
// from the sending user.
func (s *Service) ClientEvent(ctx context.Context, from *hub.Conn, room, event string, data json.RawMessage) error {
	if len(data) > s.limits.MaxPayload {
		return Errorf(CodeTooLarge, "data is %d bytes; the limit is %d", len(data), s.limits.MaxPayload)
	}
	m := protocol.Message{ID: newID(), Room: room, From: from.User, Event: event, Data: data, TS: time.Now().UnixMilli()}
	if err := s.send(ctx, from.App, &Target{Rooms: []string{room}}, &m, from.ID); err != nil {
		return err
	}
	s.metrics.Pushed("client", 1)
	s.noteClientEvent(ctx, from, room, event, data)
	return nil
}
