package hub

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"

	"github.com/heraldpush/herald/internal/protocol"
)

// Sender receives the frames fanned out to one connection, in order. Send
// must not block and must not call back into the Hub (it runs under a shard
// lock).
type Sender interface {
	Send(frames ...*protocol.Outgoing)
}

// InlineSender is a Sender that can also write on the caller's goroutine
// (Targets.Inline): SendInline is Send from a caller that holds no lock and
// may wait for one socket write.
type InlineSender interface {
	Sender
	SendInline(frames ...*protocol.Outgoing)
}

// Conn is one live connection as the hub knows it. Identity fields are set
// before Add and never change after.
type Conn struct {
	ID     string
	App    string
	User   string
	Device string
	Addr   string
	Since  int64 // Unix milliseconds
	Out    Sender

	member sync.Mutex // held across the two shards a membership change touches
	rooms  []string   // guarded by the shard of ID
}

// Key names a user or a room inside an app.
type Key struct{ App, Name string }

// Hub is the sharded registry. The zero value is not usable; call New.
type Hub struct {
	seed   maphash.Seed
	shards []shard
}

type shard struct {
	mu    sync.RWMutex
	conns map[string]*Conn
	users map[Key][]*Conn
	rooms map[Key]map[*Conn]struct{}
}

// New returns a hub with n shards (rounded up to a power of two, at least 1).
func New(n int) *Hub {
	size := 1
	for size < n {
		size <<= 1
	}
	h := &Hub{seed: maphash.MakeSeed(), shards: make([]shard, size)}
	for i := range h.shards {
		s := &h.shards[i]
		s.conns = make(map[string]*Conn)
		s.users = make(map[Key][]*Conn)
		s.rooms = make(map[Key]map[*Conn]struct{})
	}
	return h
}

func (h *Hub) shardOf(s string) *shard {
	return &h.shards[maphash.String(h.seed, s)&uint64(len(h.shards)-1)]
}

func (h *Hub) shardOfKey(k Key) *shard {
	var m maphash.Hash
	m.SetSeed(h.seed)
	m.WriteString(k.App)
	m.WriteByte(0)
	m.WriteString(k.Name)
	return &h.shards[m.Sum64()&uint64(len(h.shards)-1)]
}

// Add registers c.
func (h *Hub) Add(c *Conn) { h.AddLimited(c, 0) }

// AddLimited registers c unless its user already has limit connections on
// this node (limit <= 0: no limit), and reports whether it did. The count
// and the insertion happen under the user's shard lock, so concurrent
// connects of one user never exceed the limit. c must not be passed to
// Remove before AddLimited returned.
func (h *Hub) AddLimited(c *Conn, limit int) bool {
	k := Key{c.App, c.User}
	s := h.shardOfKey(k)
	s.mu.Lock()
	if limit > 0 && len(s.users[k]) >= limit {
		s.mu.Unlock()
		return false
	}
	s.users[k] = append(s.users[k], c)
	s.mu.Unlock()

	s = h.shardOf(c.ID)
	s.mu.Lock()
	s.conns[c.ID] = c
	s.mu.Unlock()
	return true
}

// Remove unregisters c and takes it out of every room. It returns the rooms
// c was in, and false if c was not registered.
func (h *Hub) Remove(c *Conn) (rooms []string, ok bool) {
	c.member.Lock()
	defer c.member.Unlock()
	s := h.shardOf(c.ID)
	s.mu.Lock()
	ok = s.conns[c.ID] == c
	if ok {
		delete(s.conns, c.ID)
	}
	rooms = c.rooms
	c.rooms = nil
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	for _, r := range rooms {
		h.removeMember(Key{c.App, r}, c)
	}

	k := Key{c.App, c.User}
	s = h.shardOfKey(k)
	s.mu.Lock()
	list := s.users[k]
	for i, o := range list {
		if o == c {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(s.users, k)
	} else {
		s.users[k] = list
	}
	s.mu.Unlock()
	return rooms, true
}

// Join adds c to room. It reports false if c already was a member or is
// not registered.
func (h *Hub) Join(c *Conn, room string) bool {
	c.member.Lock()
	defer c.member.Unlock()
	s := h.shardOf(c.ID)
	s.mu.Lock()
	if _, live := s.conns[c.ID]; !live || contains(c.rooms, room) {
		s.mu.Unlock()
		return false
	}
	c.rooms = append(c.rooms, room)
	s.mu.Unlock()

	k := Key{c.App, room}
	s = h.shardOfKey(k)
	s.mu.Lock()
	m := s.rooms[k]
	if m == nil {
		m = make(map[*Conn]struct{}, 1)
		s.rooms[k] = m
	}
	m[c] = struct{}{}
	s.mu.Unlock()
	return true
}

// Leave removes c from room. It reports whether c was a member.
func (h *Hub) Leave(c *Conn, room string) bool {
	c.member.Lock()
	defer c.member.Unlock()
	s := h.shardOf(c.ID)
	s.mu.Lock()
	i := index(c.rooms, room)
	if i >= 0 {
		c.rooms = append(c.rooms[:i], c.rooms[i+1:]...)
	}
	s.mu.Unlock()
	if i < 0 {
		return false
	}
	h.removeMember(Key{c.App, room}, c)
	return true
}

// RoomCount returns how many of this node's connections are in the room
// and how many distinct users they belong to.
func (h *Hub) RoomCount(app, room string) (conns, users int) {
	k := Key{app, room}
	s := h.shardOfKey(k)
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := make(map[string]struct{}, len(s.rooms[k]))
	for c := range s.rooms[k] {
		seen[c.User] = struct{}{}
	}
	return len(s.rooms[k]), len(seen)
}

func (h *Hub) removeMember(k Key, c *Conn) {
	s := h.shardOfKey(k)
	s.mu.Lock()
	if m := s.rooms[k]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(s.rooms, k)
		}
	}
	s.mu.Unlock()
}

// Rooms returns the rooms c is in, sorted.
func (h *Hub) Rooms(c *Conn) []string {
	s := h.shardOf(c.ID)
	s.mu.RLock()
	out := append([]string{}, c.rooms...)
	s.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Conn returns the connection with this id, or nil.
func (h *Hub) Conn(id string) *Conn {
	s := h.shardOf(id)
	s.mu.RLock()
	c := s.conns[id]
	s.mu.RUnlock()
	return c
}

// UserConns returns a snapshot of the user's connections on this node.
func (h *Hub) UserConns(app, user string) []*Conn {
	k := Key{app, user}
	s := h.shardOfKey(k)
	s.mu.RLock()
	out := append([]*Conn(nil), s.users[k]...)
	s.mu.RUnlock()
	return out
}

// Online reports whether the user has a connection on this node.
func (h *Hub) Online(app, user string) bool {
	k := Key{app, user}
	s := h.shardOfKey(k)
	s.mu.RLock()
	n := len(s.users[k])
	s.mu.RUnlock()
	return n > 0
}

// RoomMembers returns a snapshot of the room's members on this node, sorted
// by connection id.
func (h *Hub) RoomMembers(app, room string) []*Conn {
	k := Key{app, room}
	s := h.shardOfKey(k)
	s.mu.RLock()
	out := make([]*Conn, 0, len(s.rooms[k]))
	for c := range s.rooms[k] {
		out = append(out, c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Counts is a snapshot of the hub's size.
type Counts struct{ Conns, Users, Rooms int }

// Counts returns how many connections, users and rooms the hub holds.
func (h *Hub) Counts() Counts {
	var n Counts
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n.Conns += len(s.conns)
		n.Users += len(s.users)
		n.Rooms += len(s.rooms)
		s.mu.RUnlock()
	}
	return n
}

// Range calls fn for every connection, one shard at a time, until fn
// returns false. fn runs under a shard read lock and must not call the Hub.
func (h *Hub) Range(fn func(*Conn) bool) {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, c := range s.conns {
			if !fn(c) {
				s.mu.RUnlock()
				return
			}
		}
		s.mu.RUnlock()
	}
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// RoomConns returns the rooms of app on this node whose names start with
// prefix, with their connection counts. It walks every room: use it for
// queries, not hot paths.
func (h *Hub) RoomConns(app, prefix string) map[string]int {
	out := map[string]int{}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for k, m := range s.rooms {
			if k.App == app && len(m) > 0 && strings.HasPrefix(k.Name, prefix) {
				out[k.Name] = len(m)
			}
		}
		s.mu.RUnlock()
	}
	return out
}

// AppCounts returns how many connections, users and rooms one app has on
// this node. It walks every connection: use it for queries, not hot paths.
func (h *Hub) AppCounts(app string) Counts {
	var n Counts
	users := map[string]struct{}{}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, c := range s.conns {
			if c.App == app {
				n.Conns++
				users[c.User] = struct{}{}
			}
		}
		for k := range s.rooms {
			if k.App == app {
				n.Rooms++
			}
		}
		s.mu.RUnlock()
	}
	n.Users = len(users)
	return n
}

// CountsByApp returns every app's connections and users on this node
// (rooms are not counted), in one pass over the users: for periodic
// sampling, not hot paths.
func (h *Hub) CountsByApp() map[string]Counts {
	out := map[string]Counts{}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for k, conns := range s.users {
			n := out[k.App]
			n.Users++
			n.Conns += len(conns)
			out[k.App] = n
		}
		s.mu.RUnlock()
	}
	return out
}
