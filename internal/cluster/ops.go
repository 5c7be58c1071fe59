package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/recent"
)

// Config describes this node.
type Config struct {
	NodeID  string
	Addr    string // host:port clients reach this node at (until announced otherwise)
	Version string
	MaxConn int // connections this process can hold (open-file limit); 0: unknown
	// Alone says this node is the whole cluster (an embedded, unclustered
	// engine): operations then answer from this node without asking the
	// registry who else there is.
	Alone bool
	// DrainTime is how long a drain spreads closing this node's clients
	// over when the call names no time.
	DrainTime time.Duration
	// EngineTimeout bounds one registry write.
	EngineTimeout time.Duration
	Log           *slog.Logger
}

// Gateway is what the operations need of this node's gateway
// (*gateway.Gateway): to put its connections in and out of rooms, close
// them, run an SSE connection's client frame, and stop taking connections
// for a drain.
type Gateway interface {
	Join(c *hub.Conn, room string) bool
	Leave(c *hub.Conn, room string) bool
	Kick(c *hub.Conn)
	// ClientFrame's errors are gateway.ErrUnknownConn, ErrNotYourConn and
	// ErrBadFrame.
	ClientFrame(ctx context.Context, app, user, id string, frame []byte) error
	StopAccepting() bool
}

var _ Gateway = (*gateway.Gateway)(nil)

// Counters is what the operations need of the push service
// (*push.Service): the node's push and delivery counters, for Stats, and
// the pushes it accepted lately, for Recent.
type Counters interface {
	Counters(app string) (pushes, deliveries uint64)
	Recent(app string, cursor recent.Key, limit int) ([]recent.Entry, bool)
}

var _ Counters = (*push.Service)(nil)

// Ops runs the server API's operations on the whole cluster.
type Ops struct {
	cfg      Config
	hub      *hub.Hub
	gw       Gateway
	svc      Counters
	hist     Histories // nil: no history
	hooks    Webhooks  // nil: no webhooks
	registry engine.Nodes
	ctl      engine.Control

	// known is the last list read from the registry, used while the
	// registry does not answer (see listNodes).
	known struct {
		mu   sync.Mutex
		list []engine.NodeInfo
		ok   bool // a list was read
	}

	proc     *procStats // uptime, CPU and memory for Self
	draining atomic.Bool
	drains   chan time.Duration // the one drain's time, for the server
	wake     chan struct{}      // announce now
}

// New builds the operations over this node's hub, gateway and push service
// (its counters), the cluster's node registry and the engine's control
// requests, which carry operations to the other nodes.
func New(cfg Config, h *hub.Hub, gw Gateway, svc Counters, registry engine.Nodes, ctl engine.Control) (*Ops, error) {
	if h == nil || gw == nil || svc == nil || registry == nil || ctl == nil {
		return nil, errors.New("cluster: missing dependency")
	}
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: empty node id")
	}
	if cfg.EngineTimeout <= 0 || cfg.DrainTime < 0 || cfg.DrainTime > MaxDrainTime {
		return nil, errors.New("cluster: engine timeout must be positive, drain time from 0 to 24h")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Ops{cfg: cfg, hub: h, gw: gw, svc: svc, registry: registry, ctl: ctl,
		drains: make(chan time.Duration, 1), wake: make(chan struct{}, 1), proc: newProcStats()}, nil
}

// Start answers the other nodes' requests until the engine closes.
func (o *Ops) Start(ctx context.Context) error {
	if err := o.ctl.Serve(ctx, o.serve); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// RoomPage is one page of a room's members and the room's counts.
type RoomPage struct {
	Room    string
	Conns   int      // connections in the room, cluster-wide
	Users   int      // distinct users in the room, cluster-wide
	Members []Member // this page, ordered by connection id
	Next    string   // cursor of the next page; "" when this is the last
	// Missing names the listed nodes that did not answer in time: the
	// counts and members leave their connections out.
	Missing []string
}

// Member is one connection in a room.
type Member struct{ Conn, User, Node string }

// UserInfo is one page of a user's connections.
type UserInfo struct {
	User   string
	Online bool
	Count  int        // the user's connections, cluster-wide
	Conns  []ConnInfo // this page, ordered by ID
	Next   string     // cursor of the next page; "" when this is the last
	// Missing names the listed nodes that did not answer in time: the
	// user's connections there, if any, are not counted or listed.
	Missing []string
}

// ConnInfo describes one connection.
type ConnInfo struct {
	ID, Node, Device, Addr string
	Since                  time.Time
	Rooms                  []string // sorted
}

// Stats are the counts of the live nodes, summed.
type Stats struct {
	Nodes               int
	Conns, Users, Rooms int
	Pushes, Deliveries  uint64
	// Missing names the listed nodes that did not answer in time and are
	// not counted.
	Missing []string
}

// Join puts the named users' connections (all of them, on every node) and
// the named connections into room; each connection that joins gets a
// joined frame. Unknown users and connections are skipped.
func (o *Ops) Join(ctx context.Context, app, room string, users, conns []string) error {
	return o.membership(ctx, opJoin, app, room, users, conns)
}

// Leave takes the named users' connections (on every node) and the named
// connections out of room; each connection that leaves gets a left frame.
func (o *Ops) Leave(ctx context.Context, app, room string, users, conns []string) error {
	return o.membership(ctx, opLeave, app, room, users, conns)
}

func (o *Ops) membership(ctx context.Context, op, app, room string, users, conns []string) error {
	if err := protocol.ValidName("room", room); err != nil {
		return push.Errorf(push.CodeInvalidArgument, "%v", err)
	}
	if len(users)+len(conns) == 0 {
		return push.Errorf(push.CodeInvalidTarget, "name users or conns")
	}
	nodes := connNodes(conns)
	if len(users) > 0 {
		all, err := o.everyone(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes { // a draining node is no longer listed
			if !slices.Contains(all, n) {
				all = append(all, n)
			}
		}
		nodes = all
	}
	_, err := o.ask(ctx, nodes, &request{Op: op, App: app, Name: room, Users: users, Conns: conns})
	return err
}

// Room returns one page (at most PageSize members, ordered by connection
// id, after cursor) of the room's members on every node, and the
// cluster-wide counts.
func (o *Ops) Room(ctx context.Context, app, room, cursor string) (RoomPage, error) {
	answers, missing, err := o.queryAll(ctx, &request{Op: opRoom, App: app, Name: room, Cursor: cursor})
	if err != nil {
		return RoomPage{}, err
	}
	p := RoomPage{Room: room, Members: []Member{}, Missing: missing}
	users := map[uint64]bool{}
	more := false
	for _, a := range answers {
		p.Conns += a.N
		for b := a.Users; len(b) >= 8; b = b[8:] {
			users[binary.LittleEndian.Uint64(b)] = true
		}
		p.Members = append(p.Members, a.Members...)
		more = more || a.More
	}
	p.Users = len(users)
	p.Members, p.Next = mergePage(p.Members, more, memberID, cursor, PageSize)
	return p, nil
}

// User returns one page of the user's connections on every node: at most
// limit (0: PageSize; above MaxPageSize: CodeInvalidArgument), ordered by
// id, after cursor; and how many there are.
func (o *Ops) User(ctx context.Context, app, user, cursor string, limit int) (UserInfo, error) {
	switch {
	case limit == 0:
		limit = PageSize
	case limit < 0 || limit > MaxPageSize:
		return UserInfo{}, push.Errorf(push.CodeInvalidArgument, "limit must be from 1 to %d", MaxPageSize)
	}
	answers, missing, err := o.queryAll(ctx, &request{Op: opUser, App: app, Name: user, Cursor: cursor, Limit: limit})
	if err != nil {
		return UserInfo{}, err
	}
	info := UserInfo{User: user, Conns: []ConnInfo{}, Missing: missing}
	more := false
	for _, a := range answers {
		info.Count += max(a.N, len(a.Conns))
		info.Conns = append(info.Conns, a.Conns...)
		more = more || a.More
	}
	info.Conns, info.Next = mergePage(info.Conns, more, connID, cursor, limit)
	info.Online = info.Count > 0
	return info, nil
}

// KickConn closes one connection, wherever it is, with the kicked code
// (push.CodeNotFound when no node has it in app).
func (o *Ops) KickConn(ctx context.Context, app, id string) error {
	node, ok := protocol.ConnNode(id)
	if !ok {
		return push.Errorf(push.CodeNotFound, "no such connection")
	}
	answers, err := o.ask(ctx, []string{node}, &request{Op: opKick, App: app, Conns: []string{id}})
	if err != nil {
		return err
	}
	if answers[0].N == 0 {
		return push.Errorf(push.CodeNotFound, "no such connection")
	}
	return nil
}

// KickUser closes every connection of the user on every node with the
// kicked code (push.CodeNotFound when there is none); it returns how many
// it closed.
func (o *Ops) KickUser(ctx context.Context, app, user string) (int, error) {
	answers, err := o.askAll(ctx, &request{Op: opKick, App: app, Users: []string{user}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range answers {
		n += a.N
	}
	if n == 0 {
		return 0, push.Errorf(push.CodeNotFound, "user has no connection")
	}
	return n, nil
}

// KickRoom closes every member of the room on every node with the kicked
// code; it returns how many it closed.
func (o *Ops) KickRoom(ctx context.Context, app, room string) (int, error) {
	answers, err := o.askAll(ctx, &request{Op: opKick, App: app, Name: room})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range answers {
		n += a.N
	}
	return n, nil
}

// Rooms returns app's rooms whose names start with prefix that have a
// member on some node, with their connection counts cluster-wide (from
// the nodes that answer in time, as Room).
func (o *Ops) Rooms(ctx context.Context, app, prefix string) (map[string]int, error) {
	answers, _, err := o.queryAll(ctx, &request{Op: opRooms, App: app, Name: prefix})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, a := range answers {
		for r, n := range a.Rooms {
			out[r] += n
		}
	}
	return out, nil
}

// Stats sums the counts of every live node for one app, or for every app
// when app is "". A user or room present on several nodes counts on each.
func (o *Ops) Stats(ctx context.Context, app string) (Stats, error) {
	answers, missing, err := o.queryAll(ctx, &request{Op: opStats, App: app})
	if err != nil {
		return Stats{}, err
	}
	s := Stats{Missing: missing}
	for _, a := range answers {
		if n := a.Stats; n != nil {
			s.Nodes++
			s.Conns, s.Users, s.Rooms = s.Conns+n.Conns, s.Users+n.Users, s.Rooms+n.Rooms
			s.Pushes, s.Deliveries = s.Pushes+n.Pushes, s.Deliveries+n.Deliveries
		}
	}
	return s, nil
}

// askAll runs r on every node.
func (o *Ops) askAll(ctx context.Context, r *request) ([]answer, error) {
	nodes, err := o.everyone(ctx)
	if err != nil {
		return nil, err
	}
	return o.ask(ctx, nodes, r)
}

// queryAll runs the read r on every node and returns the answers and the
// nodes that did not answer in time (see query).
func (o *Ops) queryAll(ctx context.Context, r *request) ([]answer, []string, error) {
	nodes, err := o.everyone(ctx)
	if err != nil {
		return nil, nil, err
	}
	answers, missing := o.query(ctx, nodes, r)
	return answers, missing, nil
}

// ClientFrame runs a client frame of an SSE connection (POST
// /v1/sse/{conn}) on the node that holds it, for user of app. Its errors
// are gateway.ClientFrame's, or a *push.Error (CodeUnavailable) when that
// node does not answer in time.
func (o *Ops) ClientFrame(ctx context.Context, app, user, conn string, frame []byte) error {
	node, ok := protocol.ConnNode(conn)
	if !ok {
		return gateway.ErrUnknownConn
	}
	answers, err := o.ask(ctx, []string{node}, &request{Op: opFrame, App: app, Name: user, Conns: []string{conn}, Frame: frame})
	if err != nil {
		return err
	}
	switch a := answers[0]; {
	case a.N == 1:
		return nil
	case a.Status == 403:
		return gateway.ErrNotYourConn
	case a.Status == 400:
		return gateway.ErrBadFrame
	}
	return gateway.ErrUnknownConn
}
