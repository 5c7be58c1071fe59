package hub

import (
	"slices"

	"github.com/heraldpush/herald/internal/protocol"
)

// Targets selects recipients inside one app. All selects every connection on
// the node regardless of app.
type Targets struct {
	App   string
	Users []string
	Conns []string
	Rooms []string
	Whole bool // the whole app
	All   bool // every app
	// SkipUsers are users whose connections are left out (they get the
	// message another way).
	SkipUsers []string
	// Inline says the caller holds no lock and may wait for a socket
	// write: a push to one user's or one connection's few connections is
	// handed over outside the hub's locks with SendInline (an idle
	// connection is then written on the caller's goroutine, without a
	// hand-off to a writer).
	Inline bool
}

// Send delivers frames (in order) to every local connection that t selects,
// each connection once even when several targets match it, skipping except
// (may be nil). It returns the number of connections the frames were handed
// to. Several frames for the same targets cost one pass and one enqueue per
// connection.
func (h *Hub) Send(t *Targets, f []*protocol.Outgoing, except *Conn) int {
	kinds := 0
	for _, n := range []int{len(t.Users), len(t.Conns), len(t.Rooms), b2i(t.Whole), b2i(t.All)} {
		if n > 0 {
			kinds++
		}
	}
	if kinds > 1 || len(t.Rooms) > 1 || len(t.Users) > 1 || len(t.Conns) > 1 || len(t.SkipUsers) > 0 {
		return h.sendUnion(t, f, except)
	}
	if t.Inline && len(t.Users)+len(t.Conns) == 1 && kinds == 1 {
		if n, ok := h.sendInline(t, f, except); ok {
			return n
		}
	}
	n := 0
	for _, u := range t.Users {
		n += h.sendUser(Key{t.App, u}, f, except)
	}
	for _, id := range t.Conns {
		n += h.sendConn(t.App, id, f, except)
	}
	if len(t.Rooms) == 1 {
		n += h.sendRoom(Key{t.App, t.Rooms[0]}, f, except)
	}
	if t.Whole || t.All {
		n += h.sendApp(t.App, t.All, f, except)
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (h *Hub) sendUser(k Key, f []*protocol.Outgoing, except *Conn) int {
	s := h.shardOfKey(k)
	s.mu.RLock()
	n := 0
	for _, c := range s.users[k] {
		if c != except {
			c.Out.Send(f...)
			n++
		}
	}
	s.mu.RUnlock()
	return n
}

// inlineMax is the most connections sendInline takes out of the lock.
const inlineMax = 8

// sendInline is sendUser or sendConn for Targets.Inline: the recipients
// are copied out under the read lock and handed the frames after it is
// released. false: too many connections, or one that cannot write inline;
// nothing was sent.
func (h *Hub) sendInline(t *Targets, f []*protocol.Outgoing, except *Conn) (int, bool) {
	var buf [inlineMax]InlineSender
	out := buf[:0]
	take := func(c *Conn) bool {
		if c == except {
			return true
		}
		is, ok := c.Out.(InlineSender)
		if !ok || len(out) == inlineMax {
			return false
		}
		out = append(out, is)
		return true
	}
	ok := true
	if len(t.Users) == 1 {
		k := Key{t.App, t.Users[0]}
		s := h.shardOfKey(k)
		s.mu.RLock()
		for _, c := range s.users[k] {
			if ok = take(c); !ok {
				break
			}
		}
		s.mu.RUnlock()
	} else {
		s := h.shardOf(t.Conns[0])
		s.mu.RLock()
		if c := s.conns[t.Conns[0]]; c != nil && c.App == t.App {
			ok = take(c)
		}
		s.mu.RUnlock()
	}
	if !ok {
		return 0, false
	}
	for _, c := range out {
		c.SendInline(f...)
	}
	return len(out), true
}

func (h *Hub) sendConn(app, id string, f []*protocol.Outgoing, except *Conn) int {
	s := h.shardOf(id)
	s.mu.RLock()
	n := 0
	if c := s.conns[id]; c != nil && c.App == app && c != except {
		c.Out.Send(f...)
		n = 1
	}
	s.mu.RUnlock()
	return n
}

// sendRoom is the hot path of a room broadcast: one read lock, one pass.
func (h *Hub) sendRoom(k Key, f []*protocol.Outgoing, except *Conn) int {
	s := h.shardOfKey(k)
	s.mu.RLock()
	n := 0
	for c := range s.rooms[k] {
		if c != except {
			c.Out.Send(f...)
			n++
		}
	}
	s.mu.RUnlock()
	return n
}

func (h *Hub) sendApp(app string, all bool, f []*protocol.Outgoing, except *Conn) int {
	n := 0
	h.Range(func(c *Conn) bool {
		if (all || c.App == app) && c != except {
			c.Out.Send(f...)
			n++
		}
		return true
	})
	return n
}

// sendUnion resolves overlapping targets into one set first, so that a
// connection matched by several targets gets one copy.
func (h *Hub) sendUnion(t *Targets, f []*protocol.Outgoing, except *Conn) int {
	set := make(map[*Conn]struct{})
	for _, u := range t.Users {
		for _, c := range h.UserConns(t.App, u) {
			set[c] = struct{}{}
		}
	}
	for _, id := range t.Conns {
		if c := h.Conn(id); c != nil && c.App == t.App {
			set[c] = struct{}{}
		}
	}
	for _, r := range t.Rooms {
		k := Key{t.App, r}
		s := h.shardOfKey(k)
		s.mu.RLock()
		for c := range s.rooms[k] {
			set[c] = struct{}{}
		}
		s.mu.RUnlock()
	}
	if t.Whole || t.All {
		h.Range(func(c *Conn) bool {
			if t.All || c.App == t.App {
				set[c] = struct{}{}
			}
			return true
		})
	}
	delete(set, except)
	if len(t.SkipUsers) > 0 {
		for c := range set {
			if slices.Contains(t.SkipUsers, c.User) {
				delete(set, c)
			}
		}
	}
	for c := range set {
		c.Out.Send(f...)
	}
	return len(set)
}
