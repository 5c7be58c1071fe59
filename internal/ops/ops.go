package ops

import (
	"context"
	"errors"
	"math"
	"sort"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/push"
)

// Config describes this node.
type Config struct {
	NodeID  string
	Addr    string // host:port clients reach this node at (until announced otherwise)
	Version string
	MaxConn int // connections this process can hold (open-file limit); 0: unknown
}

// Ops runs the server API's operations on the whole cluster.
type Ops struct {
	cfg      Config
	hub      *hub.Hub
	gw       *gateway.Gateway
	svc      *push.Service
	registry engine.Nodes
}

// New builds the operations over this node's hub, gateway and push service
// and the cluster's node registry.
func New(cfg Config, h *hub.Hub, gw *gateway.Gateway, svc *push.Service, registry engine.Nodes) (*Ops, error) {
	if h == nil || gw == nil || svc == nil || registry == nil {
		return nil, errors.New("ops: missing dependency")
	}
	if cfg.NodeID == "" {
		return nil, errors.New("ops: empty node id")
	}
	return &Ops{cfg: cfg, hub: h, gw: gw, svc: svc, registry: registry}, nil
}

// PageSize is how many members one RoomPage holds at most.
const PageSize = 100

// RoomPage is one page of a room's members and the room's counts.
type RoomPage struct {
	Room    string
	Conns   int      // connections in the room, cluster-wide
	Users   int      // distinct users in the room, cluster-wide
	Members []Member // this page, ordered by connection id
	Next    string   // cursor of the next page; "" when this is the last
}

// Member is one connection in a room.
type Member struct{ Conn, User, Node string }

// UserInfo is a user's connections.
type UserInfo struct {
	User   string
	Online bool
	Conns  []ConnInfo // ordered by ID
}

// ConnInfo describes one connection.
type ConnInfo struct {
	ID, Node, Device, Addr string
	Since                  time.Time
	Rooms                  []string // sorted
}

// Stats are the counts of live nodes summed.
type Stats struct {
	Nodes               int
	Conns, Users, Rooms int
	Pushes, Deliveries  uint64
}

// Route names a node for a new connection.
type Route struct {
	Node string
	URL  string // ws://host:port/v1/ws
	Load float64
}

// Join puts the named users' connections and the named connections into
// room; each connection that joins gets a joined frame. Unknown users and
// connections are skipped.
func (o *Ops) Join(ctx context.Context, app, room string, users, conns []string) error {
	return o.membership(app, room, users, conns, o.gw.Join)
}

// Leave takes the named users' connections and the named connections out of
// room; each connection that leaves gets a left frame.
func (o *Ops) Leave(ctx context.Context, app, room string, users, conns []string) error {
	return o.membership(app, room, users, conns, o.gw.Leave)
}

func (o *Ops) membership(app, room string, users, conns []string, op func(*hub.Conn, string) bool) error {
	if err := protocol.ValidName("room", room); err != nil {
		return push.Errorf(push.CodeInvalidArgument, "%v", err)
	}
	if len(users)+len(conns) == 0 {
		return push.Errorf(push.CodeInvalidTarget, "name users or conns")
	}
	for _, c := range o.conns(app, users, conns) {
		op(c, room)
	}
	return nil
}

// conns resolves users and connection ids to this node's connections of app.
func (o *Ops) conns(app string, users, ids []string) []*hub.Conn {
	var out []*hub.Conn
	for _, u := range users {
		out = append(out, o.hub.UserConns(app, u)...)
	}
	for _, id := range ids {
		if c := o.hub.Conn(id); c != nil && c.App == app {
			out = append(out, c)
		}
	}
	return out
}

// Room returns one page of the room's members, after cursor, and its counts.
func (o *Ops) Room(ctx context.Context, app, room, cursor string) (RoomPage, error) {
	all := o.hub.RoomMembers(app, room)
	conns, users := o.hub.RoomCount(app, room)
	start := sort.Search(len(all), func(i int) bool { return all[i].ID > cursor })
	page := all[start:min(len(all), start+PageSize)]
	p := RoomPage{Room: room, Conns: conns, Users: users, Members: make([]Member, len(page))}
	for i, c := range page {
		p.Members[i] = Member{Conn: c.ID, User: c.User, Node: o.cfg.NodeID}
	}
	if start+PageSize < len(all) {
		p.Next = page[len(page)-1].ID
	}
	return p, nil
}

// User returns the user's connections.
func (o *Ops) User(ctx context.Context, app, user string) (UserInfo, error) {
	conns := o.hub.UserConns(app, user)
	sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
	info := UserInfo{User: user, Online: len(conns) > 0, Conns: make([]ConnInfo, len(conns))}
	for i, c := range conns {
		info.Conns[i] = ConnInfo{ID: c.ID, Node: o.cfg.NodeID, Device: c.Device, Addr: c.Addr,
			Since: time.UnixMilli(c.Since).UTC(), Rooms: o.hub.Rooms(c)}
	}
	return info, nil
}

// KickConn closes one connection with the kicked code (push.CodeNotFound
// when no node has it in app).
func (o *Ops) KickConn(ctx context.Context, app, id string) error {
	c := o.hub.Conn(id)
	if c == nil || c.App != app {
		return push.Errorf(push.CodeNotFound, "no such connection")
	}
	o.gw.Kick(c)
	return nil
}

// KickUser closes every connection of the user with the kicked code
// (push.CodeNotFound when there is none); it returns how many it closed.
func (o *Ops) KickUser(ctx context.Context, app, user string) (int, error) {
	conns := o.hub.UserConns(app, user)
	if len(conns) == 0 {
		return 0, push.Errorf(push.CodeNotFound, "user has no connection")
	}
	for _, c := range conns {
		o.gw.Kick(c)
	}
	return len(conns), nil
}

// Stats returns the counts of one app, or of every app when app is "".
func (o *Ops) Stats(ctx context.Context, app string) (Stats, error) {
	n := o.hub.Counts()
	if app != "" {
		n = o.hub.AppCounts(app)
	}
	pushes, deliveries := o.svc.Counters(app)
	return Stats{Nodes: 1, Conns: n.Conns, Users: n.Users, Rooms: n.Rooms, Pushes: pushes, Deliveries: deliveries}, nil
}

// Nodes lists the live nodes from the registry, with this node's own entry
// brought up to date (the registry holds what it last announced).
func (o *Ops) Nodes(ctx context.Context) ([]engine.NodeInfo, error) {
	list, err := o.registry.List(ctx)
	if err != nil {
		return nil, &push.Error{Code: push.CodeUnavailable, Message: "node registry unavailable", Err: err}
	}
	self := o.Self()
	for i, n := range list {
		if n.ID == self.ID {
			self.Addr = n.Addr
			list[i] = self
			return list, nil
		}
	}
	return append(list, self), nil // not announced yet
}

// Route names the least-loaded live node and its WebSocket URL.
func (o *Ops) Route(ctx context.Context) (Route, error) {
	list, err := o.Nodes(ctx)
	if err != nil {
		return Route{}, err
	}
	best := list[0]
	for _, n := range list[1:] {
		if n.Load < best.Load {
			best = n
		}
	}
	return Route{Node: best.ID, URL: "ws://" + best.Addr + "/v1/ws", Load: best.Load}, nil
}

// Self reports this node as the registry should show it now.
func (o *Ops) Self() engine.NodeInfo {
	n := o.hub.Counts()
	load := 0.0
	if o.cfg.MaxConn > 0 {
		load = math.Round(float64(n.Conns)/float64(o.cfg.MaxConn)*1e4) / 1e4
	}
	return engine.NodeInfo{ID: o.cfg.NodeID, Addr: o.cfg.Addr, Conns: n.Conns, Load: load,
		Version: o.cfg.Version, Heartbeat: time.Now().UTC()}
}
