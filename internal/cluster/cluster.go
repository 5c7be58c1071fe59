package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/recent"
	"github.com/heraldpush/herald/internal/webhook"
)

// The operations one node runs on its own connections for a request from
// any node (itself included).
const (
	opRoom  = "room"  // a page of the room's members, its size and users
	opUser  = "user"  // the user's connections
	opKick  = "kick"  // close the named users' and connections' connections (and the members of room Name)
	opJoin  = "join"  // put them into the room
	opLeave = "leave" // take them out of the room
	opStats = "stats" // the node's counts
	opRooms = "rooms" // the app's rooms whose names start with Name, with their connection counts
	opFrame = "frame" // run an SSE connection's client frame
	opDrain = "drain" // drain the node
)

// request is what one node asks another to do with its connections.
type request struct {
	Op     string   `json:"op"`
	App    string   `json:"app"`
	Name   string   `json:"name,omitempty"` // the room or user
	Cursor string   `json:"cursor,omitempty"`
	Limit  int      `json:"limit,omitempty"` // page size of opUser (0: PageSize)
	Users  []string `json:"users,omitempty"`
	Conns  []string `json:"conns,omitempty"`
	Frame  []byte   `json:"frame,omitempty"` // opFrame's client frame; Name is its user
	Time   string   `json:"time,omitempty"`  // opDrain's drain time ("": the node's own)
	Since  int64    `json:"since,omitempty"` // opHistory: points after this time (Unix ms)
}

// answer is one node's part of an operation's result.
type answer struct {
	Err      string                  `json:"err,omitempty"`     // a request the node did not understand
	N        int                     `json:"n,omitempty"`       // connections touched, in the room, or of the user
	Users    []byte                  `json:"users,omitempty"`   // the room's users, as 8-byte hashes
	Members  []Member                `json:"members,omitempty"` // the room's first members after the cursor
	More     bool                    `json:"more,omitempty"`    // members or conns beyond those
	Conns    []ConnInfo              `json:"conns,omitempty"`
	Stats    *Stats                  `json:"stats,omitempty"`
	Status   int                     `json:"status,omitempty"` // opFrame: 403 another user's connection, 400 a bad frame
	Drain    *Drain                  `json:"drain,omitempty"`  // opDrain: what the drain started
	Recent   []recent.Entry          `json:"recent,omitempty"`
	History  []history.Point         `json:"history,omitempty"`
	Webhooks []webhook.EndpointStats `json:"webhooks,omitempty"`
	Rooms    map[string]int          `json:"rooms,omitempty"` // opRooms
}

// serve answers a request from another node.
func (o *Ops) serve(raw []byte) []byte {
	var r request
	var a answer
	if err := json.Unmarshal(raw, &r); err != nil {
		a.Err = fmt.Sprintf("bad request: %v", err)
	} else {
		a = o.local(&r)
	}
	out, _ := json.Marshal(a)
	return out
}

// local runs r on this node's connections.
func (o *Ops) local(r *request) answer {
	switch r.Op {
	case opRoom:
		return o.localRoom(r.App, r.Name, r.Cursor)
	case opUser:
		return o.localUser(r.App, r.Name, r.Cursor, r.Limit)
	case opKick:
		conns := o.conns(r.App, r.Users, r.Conns)
		if r.Name != "" { // a room's members
			conns = append(conns, o.hub.RoomMembers(r.App, r.Name)...)
		}
		for _, c := range conns {
			o.gw.Kick(c)
		}
		return answer{N: len(conns)}
	case opJoin, opLeave:
		op := o.gw.Join
		if r.Op == opLeave {
			op = o.gw.Leave
		}
		n := 0
		for _, c := range o.conns(r.App, r.Users, r.Conns) {
			if op(c, r.Name) {
				n++
			}
		}
		return answer{N: n}
	case opStats:
		s := o.localStats(r.App)
		return answer{Stats: &s}
	case opRooms:
		return answer{Rooms: o.hub.RoomConns(r.App, r.Name)}
	case opFrame:
		return o.localFrame(r)
	case opDrain:
		return o.localDrain(r)
	case opRecent:
		return o.localRecent(r)
	case opHistory:
		return o.localHistory(r)
	case opWebhooks:
		return o.localWebhooks(r)
	}
	return answer{Err: "unknown operation " + r.Op}
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

func (o *Ops) localRoom(app, room, cursor string) answer {
	all := o.hub.RoomMembers(app, room)
	page, more := pageAfter(all, hubConnID, cursor, PageSize)
	a := answer{N: len(all), More: more, Members: make([]Member, len(page))}
	for i, c := range page {
		a.Members[i] = Member{Conn: c.ID, User: c.User, Node: o.cfg.NodeID}
	}
	seen := make(map[uint64]bool, len(all))
	for _, c := range all {
		if h := userHash(c.User); !seen[h] {
			seen[h] = true
			a.Users = binary.LittleEndian.AppendUint64(a.Users, h)
		}
	}
	return a
}

// userHash stands for a user in a room's cluster-wide user count: 8 bytes
// whatever the name's length, and collisions are negligible at room sizes.
func userHash(user string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(user))
	return h.Sum64()
}

// localUser answers one page of the user's connections on this node.
func (o *Ops) localUser(app, user, cursor string, limit int) answer {
	if limit <= 0 {
		limit = PageSize
	}
	all := o.hub.UserConns(app, user)
	slices.SortFunc(all, func(a, b *hub.Conn) int { return strings.Compare(a.ID, b.ID) })
	page, more := pageAfter(all, hubConnID, cursor, min(limit, MaxPageSize))
	a := answer{N: len(all), More: more, Conns: make([]ConnInfo, len(page))}
	for i, c := range page {
		a.Conns[i] = ConnInfo{ID: c.ID, Node: o.cfg.NodeID, Device: c.Device, Addr: c.Addr,
			Since: time.UnixMilli(c.Since).UTC(), Rooms: o.hub.Rooms(c)}
	}
	return a
}

func (o *Ops) localStats(app string) Stats {
	n := o.hub.Counts()
	if app != "" {
		n = o.hub.AppCounts(app)
	}
	pushes, deliveries := o.svc.Counters(app)
	return Stats{Nodes: 1, Conns: n.Conns, Users: n.Users, Rooms: n.Rooms, Pushes: pushes, Deliveries: deliveries}
}

// everyone returns the ids of the nodes in the registry, this one included.
func (o *Ops) everyone(ctx context.Context) ([]string, error) {
	if o.cfg.Alone {
		return []string{o.cfg.NodeID}, nil
	}
	list, err := o.listNodes(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{o.cfg.NodeID}
	for _, n := range list {
		if n.ID != o.cfg.NodeID {
			ids = append(ids, n.ID)
		}
	}
	return ids, nil
}

// registryWait bounds one read of the node registry before the last list
// read is used instead.
const registryWait = time.Second

// listNodes reads the node registry, giving it registryWait at most. When
// the registry does not answer (its bucket is electing a leader after a
// node died, or has no quorum) it answers the last list it read, which
// holds every node that was up a moment ago: one that died meanwhile is
// then skipped when asked (no responders). Without any list read yet it
// fails with CodeUnavailable.
func (o *Ops) listNodes(ctx context.Context) ([]engine.NodeInfo, error) {
	lctx, cancel := context.WithTimeout(ctx, registryWait)
	list, err := o.registry.List(lctx)
	cancel()
	o.known.mu.Lock()
	defer o.known.mu.Unlock()
	if err == nil {
		o.known.list, o.known.ok = list, true
		return list, nil
	}
	if !o.known.ok {
		return nil, &push.Error{Code: push.CodeUnavailable, Message: "node registry unavailable", Err: err}
	}
	o.cfg.Log.Debug("node registry unavailable; using the last list read", "err", err)
	return slices.Clone(o.known.list), nil
}

// connNodes returns the nodes holding the connection ids (unique, in the
// order first named), skipping ids that name no node.
func connNodes(ids []string) []string {
	var out []string
	for _, id := range ids {
		if n, ok := protocol.ConnNode(id); ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// nodeAnswerWait bounds how long a query waits for the nodes' answers: a
// live node answers in milliseconds; one that does not by then is left
// out of a query's answer (named in its Missing list).
const nodeAnswerWait = 2 * time.Second

// ask runs r on every node of nodes at once (this one directly, the others
// through the engine's control requests) and returns their answers. A node
// that is gone holds nothing and answers nothing; one that is there but
// does not answer by ctx's deadline fails the call with CodeUnavailable, as
// its part of the result would be missing. Operations that change
// something use it.
func (o *Ops) ask(ctx context.Context, nodes []string, r *request) ([]answer, error) {
	answers, missing, errs := o.gather(ctx, nodes, r)
	if len(missing) > 0 {
		return nil, &push.Error{Code: push.CodeUnavailable, Err: errs,
			Message: fmt.Sprintf("node %s did not answer in time; retry", strings.Join(missing, ", "))}
	}
	return answers, nil
}

// query is ask for a read: it waits nodeAnswerWait at most (within ctx)
// and returns the answers of the nodes that replied, and the ids of the
// listed nodes that are there but did not reply (their answers are empty),
// so that one stuck node makes a query partial, not failed.
func (o *Ops) query(ctx context.Context, nodes []string, r *request) ([]answer, []string) {
	ctx, cancel := context.WithTimeout(ctx, nodeAnswerWait)
	defer cancel()
	answers, missing, errs := o.gather(ctx, nodes, r)
	if len(missing) > 0 {
		o.cfg.Log.Warn("nodes did not answer a query; answering without them", "op", r.Op, "nodes", missing, "err", errs)
	}
	return answers, missing
}

// gather runs r on every node of nodes at once and returns the answers
// (empty for the nodes that did not answer), the nodes that are there but
// did not answer by ctx's deadline (or could not run r), and their errors.
// A node that is gone (no responders) holds nothing and is not missing.
func (o *Ops) gather(ctx context.Context, nodes []string, r *request) ([]answer, []string, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, nodes, fmt.Errorf("cluster: encoding a request: %w", err)
	}
	answers := make([]answer, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	self := -1
	for i, node := range nodes {
		if node == o.cfg.NodeID {
			self = i
			continue
		}
		wg.Go(func() {
			out, err := o.ctl.Ask(ctx, node, raw)
			switch {
			case errors.Is(err, engine.ErrNoNode):
				return
			case err == nil:
				err = json.Unmarshal(out, &answers[i])
			}
			if err == nil && answers[i].Err != "" {
				err = errors.New(answers[i].Err)
			}
			if err != nil {
				answers[i] = answer{}
			}
			errs[i] = err
		})
	}
	if self >= 0 {
		answers[self] = o.local(r)
	}
	wg.Wait()
	var missing []string
	for i, err := range errs {
		if err != nil {
			missing = append(missing, nodes[i])
		}
	}
	return answers, missing, errors.Join(errs...)
}

// localFrame runs an SSE client frame on this node's connection.
func (o *Ops) localFrame(r *request) answer {
	if len(r.Conns) != 1 {
		return answer{Err: "frame: name one connection"}
	}
	switch err := o.gw.ClientFrame(context.Background(), r.App, r.Name, r.Conns[0], r.Frame); {
	case err == nil:
		return answer{N: 1}
	case errors.Is(err, gateway.ErrNotYourConn):
		return answer{Status: 403}
	case errors.Is(err, gateway.ErrBadFrame):
		return answer{Status: 400}
	default:
		return answer{} // not here
	}
}
