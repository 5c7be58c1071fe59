package hub

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// recorder is a Sender that counts the copies of each frame it is handed.
type recorder struct {
	mu  sync.Mutex
	got map[*protocol.Outgoing]int
	n   int
}

func (r *recorder) Send(frames ...*protocol.Outgoing) {
	r.mu.Lock()
	if r.got == nil {
		r.got = make(map[*protocol.Outgoing]int)
	}
	for _, f := range frames {
		r.got[f]++
		r.n++
	}
	r.mu.Unlock()
}

func (r *recorder) copies(f *protocol.Outgoing) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[f]
}

func newConn(id, app, user string) *Conn {
	return &Conn{ID: id, App: app, User: user, Out: &recorder{}}
}

func rec(c *Conn) *recorder { return c.Out.(*recorder) }

func ids(conns []*Conn) []string {
	out := make([]string, len(conns))
	for i, c := range conns {
		out[i] = c.ID
	}
	return out
}

func sortedIDs(conns []*Conn) []string {
	out := ids(conns)
	slices.Sort(out)
	return out
}

func frame(s string) *protocol.Outgoing { return protocol.NewText([]byte(s)) }

func TestNewShardCount(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{-3, 1}, {0, 1}, {1, 1}, {2, 2}, {3, 4}, {5, 8}, {64, 64}, {65, 128}} {
		if got := len(New(tt.in).shards); got != tt.want {
			t.Errorf("New(%d) has %d shards, want %d", tt.in, got, tt.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	for _, shards := range []int{1, 4, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) { testRegistry(t, New(shards)) })
	}
}

func testRegistry(t *testing.T, h *Hub) {
	if got := h.Counts(); got != (Counts{}) {
		t.Fatalf("empty hub Counts = %+v", got)
	}
	a1 := newConn("a1", "appA", "alice")
	a2 := newConn("a2", "appA", "alice")
	a3 := newConn("a3", "appA", "bob")
	b1 := newConn("b1", "appB", "alice")
	for _, c := range []*Conn{a1, a2, a3, b1} {
		h.Add(c)
	}

	// Conn by id.
	for _, c := range []*Conn{a1, a2, a3, b1} {
		if got := h.Conn(c.ID); got != c {
			t.Fatalf("Conn(%q) = %v, want the added conn", c.ID, got)
		}
	}
	if got := h.Conn("missing"); got != nil {
		t.Fatalf("Conn(missing) = %v", got)
	}

	// Users are per app.
	if got := sortedIDs(h.UserConns("appA", "alice")); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("UserConns(appA, alice) = %v", got)
	}
	if got := sortedIDs(h.UserConns("appB", "alice")); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("UserConns(appB, alice) = %v", got)
	}
	if got := h.UserConns("appA", "nobody"); len(got) != 0 {
		t.Fatalf("UserConns(nobody) = %v", ids(got))
	}
	if got := h.UserConns("appC", "alice"); len(got) != 0 {
		t.Fatalf("UserConns(appC, alice) = %v", ids(got))
	}
	// UserConns is a snapshot.
	snap := h.UserConns("appA", "alice")
	snap[0] = nil
	if got := h.UserConns("appA", "alice"); len(got) != 2 || got[0] == nil || got[1] == nil {
		t.Fatalf("writing to a UserConns result changed the hub: %v", got)
	}

	if got, want := h.Counts(), (Counts{Conns: 4, Users: 3, Rooms: 0}); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}

	// Join.
	if !h.Join(a1, "lobby") || !h.Join(a2, "lobby") || !h.Join(a3, "lobby") || !h.Join(a1, "zeta") || !h.Join(a1, "alpha") {
		t.Fatal("Join of a new member reported false")
	}
	if h.Join(a1, "lobby") {
		t.Fatal("second Join of the same room reported true")
	}
	if !h.Join(b1, "lobby") {
		t.Fatal("Join in another app reported false")
	}
	stranger := newConn("s1", "appA", "mallory")
	if h.Join(stranger, "lobby") {
		t.Fatal("Join of an unregistered conn reported true")
	}
	if h.Join(stranger, "stranger-room") {
		t.Fatal("Join of an unregistered conn reported true")
	}
	if got := h.Rooms(stranger); len(got) != 0 {
		t.Fatalf("unregistered conn has rooms %v", got)
	}
	if got := h.RoomMembers("appA", "stranger-room"); len(got) != 0 {
		t.Fatalf("unregistered conn's Join created a room with %v", ids(got))
	}

	if got := h.Rooms(a1); !slices.Equal(got, []string{"alpha", "lobby", "zeta"}) {
		t.Fatalf("Rooms(a1) = %v, want sorted [alpha lobby zeta]", got)
	}
	if got := h.Rooms(a3); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("Rooms(a3) = %v", got)
	}
	// Rooms is a copy.
	r := h.Rooms(a1)
	r[0] = "changed"
	if got := h.Rooms(a1); got[0] != "alpha" {
		t.Fatalf("writing to a Rooms result changed the hub: %v", got)
	}

	if got := ids(h.RoomMembers("appA", "lobby")); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Fatalf("RoomMembers(appA, lobby) = %v, want sorted [a1 a2 a3]", got)
	}
	if got := ids(h.RoomMembers("appB", "lobby")); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("RoomMembers(appB, lobby) = %v", got)
	}
	if got := h.RoomMembers("appA", "nowhere"); len(got) != 0 {
		t.Fatalf("RoomMembers(nowhere) = %v", ids(got))
	}
	for _, tt := range []struct {
		app, room    string
		conns, users int
	}{
		{"appA", "lobby", 3, 2}, // a1 and a2 are both alice
		{"appB", "lobby", 1, 1},
		{"appA", "zeta", 1, 1},
		{"appA", "nowhere", 0, 0},
		{"appC", "lobby", 0, 0},
	} {
		if c, u := h.RoomCount(tt.app, tt.room); c != tt.conns || u != tt.users {
			t.Fatalf("RoomCount(%s, %s) = %d, %d, want %d, %d", tt.app, tt.room, c, u, tt.conns, tt.users)
		}
	}
	if got, want := h.Counts(), (Counts{Conns: 4, Users: 3, Rooms: 4}); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
	if got, want := h.AppCounts("appA"), (Counts{Conns: 3, Users: 2, Rooms: 3}); got != want {
		t.Fatalf("AppCounts(appA) = %+v, want %+v", got, want)
	}
	if got, want := h.AppCounts("appB"), (Counts{Conns: 1, Users: 1, Rooms: 1}); got != want {
		t.Fatalf("AppCounts(appB) = %+v, want %+v", got, want)
	}
	if got := h.AppCounts("appC"); got != (Counts{}) {
		t.Fatalf("AppCounts(appC) = %+v", got)
	}
	if got, want := h.CountsByApp(), map[string]Counts{"appA": {Conns: 3, Users: 2}, "appB": {Conns: 1, Users: 1}}; !maps.Equal(got, want) {
		t.Fatalf("CountsByApp() = %+v, want %+v", got, want)
	}

	// Leave.
	if !h.Leave(a1, "zeta") {
		t.Fatal("Leave of a member reported false")
	}
	if h.Leave(a1, "zeta") {
		t.Fatal("second Leave reported true")
	}
	if h.Leave(a3, "alpha") {
		t.Fatal("Leave of a room the conn is not in reported true")
	}
	if got := h.Rooms(a1); !slices.Equal(got, []string{"alpha", "lobby"}) {
		t.Fatalf("Rooms(a1) after Leave = %v", got)
	}
	if got := h.RoomMembers("appA", "zeta"); len(got) != 0 {
		t.Fatalf("zeta still has %v", ids(got))
	}
	if got, want := h.Counts(), (Counts{Conns: 4, Users: 3, Rooms: 3}); got != want {
		t.Fatalf("Counts after the last member left = %+v, want %+v (empty room dropped)", got, want)
	}
	if !h.Join(a1, "zeta") {
		t.Fatal("re-Join after Leave reported false")
	}
	if !h.Leave(a1, "zeta") {
		t.Fatal("Leave after re-Join reported false")
	}

	// Remove.
	rooms, ok := h.Remove(a1)
	if !ok {
		t.Fatal("Remove of a registered conn reported false")
	}
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"alpha", "lobby"}) {
		t.Fatalf("Remove returned rooms %v, want [alpha lobby]", rooms)
	}
	if h.Conn("a1") != nil {
		t.Fatal("Conn(a1) after Remove")
	}
	if got := sortedIDs(h.UserConns("appA", "alice")); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("UserConns(alice) after Remove = %v", got)
	}
	if got := ids(h.RoomMembers("appA", "lobby")); !slices.Equal(got, []string{"a2", "a3"}) {
		t.Fatalf("lobby after Remove(a1) = %v", got)
	}
	if got := h.RoomMembers("appA", "alpha"); len(got) != 0 {
		t.Fatalf("alpha after Remove(a1) = %v", ids(got))
	}
	if got := h.Rooms(a1); len(got) != 0 {
		t.Fatalf("Rooms(a1) after Remove = %v", got)
	}
	if h.Join(a1, "lobby") {
		t.Fatal("Join after Remove reported true")
	}
	if h.Leave(a1, "lobby") {
		t.Fatal("Leave after Remove reported true")
	}
	if rooms, ok := h.Remove(a1); ok || rooms != nil {
		t.Fatalf("second Remove = %v, %v", rooms, ok)
	}
	if rooms, ok := h.Remove(stranger); ok || rooms != nil {
		t.Fatalf("Remove of an unregistered conn = %v, %v", rooms, ok)
	}
	if got, want := h.Counts(), (Counts{Conns: 3, Users: 3, Rooms: 2}); got != want {
		t.Fatalf("Counts after Remove(a1) = %+v, want %+v", got, want)
	}
	if c, u := h.RoomCount("appA", "lobby"); c != 2 || u != 2 {
		t.Fatalf("RoomCount(lobby) = %d, %d", c, u)
	}

	// Removing a user's last conn drops the user.
	if _, ok := h.Remove(a2); !ok {
		t.Fatal("Remove(a2)")
	}
	if got := h.UserConns("appA", "alice"); len(got) != 0 {
		t.Fatalf("UserConns(alice) = %v", ids(got))
	}
	if got := sortedIDs(h.UserConns("appB", "alice")); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("removing appA's alice touched appB's: %v", got)
	}
	if got, want := h.Counts(), (Counts{Conns: 2, Users: 2, Rooms: 2}); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
	for _, c := range []*Conn{a3, b1} {
		if _, ok := h.Remove(c); !ok {
			t.Fatalf("Remove(%s)", c.ID)
		}
	}
	if got := h.Counts(); got != (Counts{}) {
		t.Fatalf("Counts after removing everything = %+v", got)
	}
	if got := h.AppCounts("appA"); got != (Counts{}) {
		t.Fatalf("AppCounts after removing everything = %+v", got)
	}
}

func TestRemoveReturnsRoomsInAnyOrder(t *testing.T) {
	h := New(8)
	c := newConn("c", "app", "u")
	h.Add(c)
	want := []string{}
	for i := range 20 {
		room := fmt.Sprintf("room-%02d", i)
		h.Join(c, room)
		want = append(want, room)
	}
	for _, r := range []string{"room-03", "room-11", "room-19"} {
		h.Leave(c, r)
		want = slices.DeleteFunc(want, func(s string) bool { return s == r })
	}
	rooms, ok := h.Remove(c)
	slices.Sort(rooms)
	if !ok || !slices.Equal(rooms, want) {
		t.Fatalf("Remove = %v, %v; want %v", rooms, ok, want)
	}
	if got := h.Counts(); got != (Counts{}) {
		t.Fatalf("Counts = %+v", got)
	}
}

func TestRange(t *testing.T) {
	h := New(16)
	want := map[string]bool{}
	for i := range 50 {
		c := newConn(fmt.Sprintf("c%d", i), "app", fmt.Sprintf("u%d", i%7))
		h.Add(c)
		want[c.ID] = true
	}
	seen := map[string]bool{}
	h.Range(func(c *Conn) bool {
		if seen[c.ID] {
			t.Fatalf("Range visited %s twice", c.ID)
		}
		seen[c.ID] = true
		return true
	})
	if !maps.Equal(seen, want) {
		t.Fatalf("Range visited %d conns, want %d", len(seen), len(want))
	}
	n := 0
	h.Range(func(*Conn) bool { n++; return n < 5 })
	if n != 5 {
		t.Fatalf("Range went on after false: %d calls", n)
	}
}

// sendFixture is two apps with the same user and room names.
//
//	appA: a1 alice, a2 alice, a3 bob, a4 carol, a5 dave (no rooms)
//	      r1 {a1 a3}, r2 {a3 a4}, r3 {a2}
//	appB: b1 alice, b2 bob
//	      r1 {b1}, r2 {b1 b2}
type sendFixture struct {
	h     *Hub
	conns map[string]*Conn
}

func newSendFixture(shards int) *sendFixture {
	f := &sendFixture{h: New(shards), conns: map[string]*Conn{}}
	for _, c := range []struct{ id, app, user string }{
		{"a1", "appA", "alice"}, {"a2", "appA", "alice"}, {"a3", "appA", "bob"}, {"a4", "appA", "carol"}, {"a5", "appA", "dave"},
		{"b1", "appB", "alice"}, {"b2", "appB", "bob"},
	} {
		conn := newConn(c.id, c.app, c.user)
		f.conns[c.id] = conn
		f.h.Add(conn)
	}
	for _, j := range []struct{ id, room string }{
		{"a1", "r1"}, {"a3", "r1"}, {"a3", "r2"}, {"a4", "r2"}, {"a2", "r3"},
		{"b1", "r1"}, {"b1", "r2"}, {"b2", "r2"},
	} {
		if !f.h.Join(f.conns[j.id], j.room) {
			panic("join " + j.id + " " + j.room)
		}
	}
	return f
}

func TestSend(t *testing.T) {
	all := []string{"a1", "a2", "a3", "a4", "a5", "b1", "b2"}
	tests := []struct {
		name   string
		t      Targets
		except string
		want   []string
	}{
		{"nothing", Targets{App: "appA"}, "", nil},
		{"one user", Targets{App: "appA", Users: []string{"alice"}}, "", []string{"a1", "a2"}},
		{"two users", Targets{App: "appA", Users: []string{"alice", "bob"}}, "", []string{"a1", "a2", "a3"}},
		{"unknown user", Targets{App: "appA", Users: []string{"nobody"}}, "", nil},
		{"user in other app", Targets{App: "appB", Users: []string{"alice"}}, "", []string{"b1"}},
		{"user in unknown app", Targets{App: "appC", Users: []string{"alice"}}, "", nil},
		{"one conn", Targets{App: "appA", Conns: []string{"a3"}}, "", []string{"a3"}},
		{"two conns", Targets{App: "appA", Conns: []string{"a3", "a5"}}, "", []string{"a3", "a5"}},
		{"unknown conn", Targets{App: "appA", Conns: []string{"zz"}}, "", nil},
		{"conn of another app", Targets{App: "appA", Conns: []string{"b1"}}, "", nil},
		{"conns of both apps", Targets{App: "appB", Conns: []string{"a1", "b2"}}, "", []string{"b2"}},
		{"one room", Targets{App: "appA", Rooms: []string{"r1"}}, "", []string{"a1", "a3"}},
		{"same room name other app", Targets{App: "appB", Rooms: []string{"r1"}}, "", []string{"b1"}},
		{"unknown room", Targets{App: "appA", Rooms: []string{"r9"}}, "", nil},
		{"room in unknown app", Targets{App: "appC", Rooms: []string{"r1"}}, "", nil},
		{"two rooms sharing a member", Targets{App: "appA", Rooms: []string{"r1", "r2"}}, "", []string{"a1", "a3", "a4"}},
		{"two rooms sharing a member, other app", Targets{App: "appB", Rooms: []string{"r1", "r2"}}, "", []string{"b1", "b2"}},
		{"user and a room holding their conn", Targets{App: "appA", Users: []string{"alice"}, Rooms: []string{"r3"}}, "", []string{"a1", "a2"}},
		{"user and a room holding another's conn", Targets{App: "appA", Users: []string{"bob"}, Rooms: []string{"r1"}}, "", []string{"a1", "a3"}},
		{"conn and its user", Targets{App: "appA", Users: []string{"alice"}, Conns: []string{"a1"}}, "", []string{"a1", "a2"}},
		{"conns and their user", Targets{App: "appA", Users: []string{"alice"}, Conns: []string{"a1", "a2"}}, "", []string{"a1", "a2"}},
		{"conn and its room", Targets{App: "appA", Conns: []string{"a4"}, Rooms: []string{"r2"}}, "", []string{"a3", "a4"}},
		{"users, conns and rooms", Targets{App: "appA", Users: []string{"alice", "carol"}, Conns: []string{"a2", "a3", "b1"}, Rooms: []string{"r1", "r2", "r3"}}, "", []string{"a1", "a2", "a3", "a4"}},
		{"whole app", Targets{App: "appA", Whole: true}, "", []string{"a1", "a2", "a3", "a4", "a5"}},
		{"whole other app", Targets{App: "appB", Whole: true}, "", []string{"b1", "b2"}},
		{"whole unknown app", Targets{App: "appC", Whole: true}, "", nil},
		{"whole app and a user", Targets{App: "appA", Whole: true, Users: []string{"alice"}}, "", []string{"a1", "a2", "a3", "a4", "a5"}},
		{"whole app and a room", Targets{App: "appB", Whole: true, Rooms: []string{"r2"}}, "", []string{"b1", "b2"}},
		{"all apps", Targets{All: true}, "", all},
		{"all apps with an app set", Targets{App: "appA", All: true}, "", all},
		{"all apps and whole", Targets{App: "appA", All: true, Whole: true}, "", all},
		{"all apps and rooms", Targets{App: "appA", All: true, Rooms: []string{"r1", "r2"}}, "", all},

		{"except a user's conn", Targets{App: "appA", Users: []string{"alice"}}, "a2", []string{"a1"}},
		{"except the only conn", Targets{App: "appA", Conns: []string{"a3"}}, "a3", nil},
		{"except a room member", Targets{App: "appA", Rooms: []string{"r1"}}, "a1", []string{"a3"}},
		{"except a shared member of two rooms", Targets{App: "appA", Rooms: []string{"r1", "r2"}}, "a3", []string{"a1", "a4"}},
		{"except in user plus room", Targets{App: "appA", Users: []string{"alice"}, Rooms: []string{"r3"}}, "a2", []string{"a1"}},
		{"except in whole app", Targets{App: "appA", Whole: true}, "a4", []string{"a1", "a2", "a3", "a5"}},
		{"except in all apps", Targets{All: true}, "b2", []string{"a1", "a2", "a3", "a4", "a5", "b1"}},
		{"except a non-target", Targets{App: "appA", Rooms: []string{"r1"}}, "b1", []string{"a1", "a3"}},
	}
	for _, shards := range []int{1, 4, 64} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("shards=%d/%s", shards, tt.name), func(t *testing.T) {
				fx := newSendFixture(shards)
				var except *Conn
				if tt.except != "" {
					except = fx.conns[tt.except]
				}
				f := frame(`{"type":"test"}`)
				n := fx.h.Send(&tt.t, []*protocol.Outgoing{f}, except)

				var got []string
				total := 0
				for id, c := range fx.conns {
					k := rec(c).copies(f)
					if k > 1 {
						t.Errorf("%s got %d copies", id, k)
					}
					if k > 0 {
						got = append(got, id)
					}
					total += rec(c).n
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("delivered to %v, want %v", got, tt.want)
				}
				if n != len(tt.want) || total != n {
					t.Fatalf("Send returned %d and %d frames were handed out, want %d", n, total, len(tt.want))
				}
			})
		}
	}
}

// TestSendDuplicateNames is a regression test: the fast path of Send
// iterates Users and Conns one by one, so a name listed twice (e.g. a client
// "send" frame with to.users ["bob","bob"], which DecodeClient accepts)
// delivers two copies, against Send's "each connection once" contract.
func TestSendDuplicateNames(t *testing.T) {
	for _, tg := range []Targets{
		{App: "appA", Users: []string{"alice", "alice"}},
		{App: "appA", Conns: []string{"a1", "a1"}},
	} {
		fx := newSendFixture(4)
		f := frame("x")
		n := fx.h.Send(&tg, []*protocol.Outgoing{f}, nil)
		if k := rec(fx.conns["a1"]).copies(f); k != 1 {
			t.Errorf("%+v: a1 got %d copies (Send returned %d)", tg, k, n)
		}
	}
}

func TestSendHandsOutTheSameFrame(t *testing.T) {
	fx := newSendFixture(4)
	f := frame("shared")
	fx.h.Send(&Targets{All: true}, []*protocol.Outgoing{f}, nil)
	for id, c := range fx.conns {
		r := rec(c)
		if r.n != 1 || r.copies(f) != 1 {
			t.Fatalf("%s: %d frames, %d of them the one sent", id, r.n, r.copies(f))
		}
	}
}

func TestSendAfterRemoveAndLeave(t *testing.T) {
	fx := newSendFixture(4)
	h := fx.h
	h.Leave(fx.conns["a3"], "r1")
	h.Remove(fx.conns["a1"])
	f := frame("after")
	if n := h.Send(&Targets{App: "appA", Rooms: []string{"r1"}}, []*protocol.Outgoing{f}, nil); n != 0 {
		t.Fatalf("r1 should be empty, Send reached %d", n)
	}
	if n := h.Send(&Targets{App: "appA", Users: []string{"alice"}}, []*protocol.Outgoing{f}, nil); n != 1 || rec(fx.conns["a2"]).copies(f) != 1 {
		t.Fatalf("alice's remaining conn: Send reached %d", n)
	}
	if n := h.Send(&Targets{App: "appA", Conns: []string{"a1"}}, []*protocol.Outgoing{f}, nil); n != 0 {
		t.Fatalf("removed conn reached: %d", n)
	}
	if n := h.Send(&Targets{App: "appA", Whole: true}, []*protocol.Outgoing{f}, nil); n != 4 {
		t.Fatalf("whole app after one Remove reached %d, want 4", n)
	}
	if k := rec(fx.conns["a1"]).n; k != 0 {
		t.Fatalf("removed conn was sent %d frames", k)
	}
}

// atomicSender counts frames and catches a frame handed to it twice.
type atomicSender struct {
	n    atomic.Int64
	mu   sync.Mutex
	seen map[*protocol.Outgoing]struct{}
	dups atomic.Int64
}

func (s *atomicSender) Send(frames ...*protocol.Outgoing) {
	for _, f := range frames {
		s.send(f)
	}
}

func (s *atomicSender) send(f *protocol.Outgoing) {
	s.n.Add(1)
	s.mu.Lock()
	if _, dup := s.seen[f]; dup {
		s.dups.Add(1)
	}
	s.seen[f] = struct{}{}
	s.mu.Unlock()
}

func remove(t *testing.T, h *Hub, c *Conn, wantRooms int) {
	rooms, ok := h.Remove(c)
	if !ok || len(rooms) != wantRooms {
		t.Errorf("Remove(%s) = %v, %v; want %d rooms", c.ID, rooms, ok, wantRooms)
	}
	if h.Conn(c.ID) != nil {
		t.Errorf("Conn(%s) after Remove", c.ID)
	}
	if n := h.Send(&Targets{App: c.App, Conns: []string{c.ID}}, []*protocol.Outgoing{frame("late")}, nil); n != 0 {
		t.Errorf("Send to removed %s reached %d", c.ID, n)
	}
}

// TestConcurrent runs Add, Join, Send, Leave and Remove from many
// goroutines, each owning its connections, against readers that query and
// broadcast across all of them, then checks that the hub is empty.
func TestConcurrent(t *testing.T) {
	const (
		workers  = 16
		perWork  = 40
		rooms    = 8
		users    = 10
		readers  = 4
		apps     = 2
		joinEach = 3
	)
	h := New(8)
	var senders sync.Map // conn id → *atomicSender
	var stop atomic.Bool
	var readersDone sync.WaitGroup
	for r := range readers {
		readersDone.Go(func() {
			for i := 0; !stop.Load(); i++ {
				app := fmt.Sprintf("app%d", i%apps)
				room := fmt.Sprintf("room%d", i%rooms)
				f := frame("reader")
				switch (i + r) % 6 {
				case 0:
					h.Send(&Targets{App: app, Rooms: []string{room, fmt.Sprintf("room%d", (i+1)%rooms)}}, []*protocol.Outgoing{f}, nil)
				case 1:
					h.Send(&Targets{App: app, Whole: true, Users: []string{"u1"}}, []*protocol.Outgoing{f}, nil)
				case 2:
					h.Send(&Targets{All: true}, []*protocol.Outgoing{f}, nil)
				case 3:
					for _, c := range h.RoomMembers(app, room) {
						if c.App != app {
							t.Errorf("RoomMembers(%s) holds a conn of %s", app, c.App)
						}
					}
					h.RoomCount(app, room)
				case 4:
					c := h.Counts()
					if c.Conns > workers*perWork || c.Users > apps*users || c.Rooms > apps*rooms {
						t.Errorf("impossible Counts %+v", c)
					}
				case 5:
					h.AppCounts(app)
					h.Range(func(*Conn) bool { return true })
				}
			}
		})
	}

	var workersDone sync.WaitGroup
	for w := range workers {
		workersDone.Go(func() {
			mine := make([]*Conn, 0, perWork)
			wantRooms := map[*Conn]int{}
			for i := range perWork {
				s := &atomicSender{seen: map[*protocol.Outgoing]struct{}{}}
				c := &Conn{
					ID:   fmt.Sprintf("w%d-c%d", w, i),
					App:  fmt.Sprintf("app%d", (w+i)%apps),
					User: fmt.Sprintf("u%d", i%users),
					Out:  s,
				}
				senders.Store(c.ID, s)
				h.Add(c)
				mine = append(mine, c)
				for j := range joinEach {
					room := fmt.Sprintf("room%d", (w+i+j)%rooms)
					if !h.Join(c, room) {
						t.Errorf("Join(%s, %s) = false", c.ID, room)
					}
				}
				// Only this worker touches c, so a conn-targeted Send
				// reaches it exactly once.
				f := frame("direct")
				if n := h.Send(&Targets{App: c.App, Conns: []string{c.ID}}, []*protocol.Outgoing{f}, nil); n != 1 {
					t.Errorf("Send to %s reached %d", c.ID, n)
				}
				if n := h.Send(&Targets{App: c.App, Users: []string{c.User}}, []*protocol.Outgoing{frame("user")}, nil); n < 1 {
					t.Errorf("Send to %s's user reached %d", c.ID, n)
				}
				if n := h.Send(&Targets{App: c.App, Rooms: []string{fmt.Sprintf("room%d", (w+i)%rooms)}}, []*protocol.Outgoing{frame("room")}, c); n < 0 {
					t.Errorf("Send returned %d", n)
				}
				if got := len(h.Rooms(c)); got != joinEach {
					t.Errorf("Rooms(%s) has %d rooms, want %d", c.ID, got, joinEach)
				}
				wantRooms[c] = joinEach
				if i%3 == 0 {
					room := fmt.Sprintf("room%d", (w+i)%rooms)
					if !h.Leave(c, room) {
						t.Errorf("Leave(%s, %s) = false", c.ID, room)
					}
					wantRooms[c]--
				}
				// Remove every other conn as we go, the rest at the end.
				if i%2 == 1 {
					prev := mine[len(mine)-2]
					remove(t, h, prev, wantRooms[prev])
					mine = slices.Delete(mine, len(mine)-2, len(mine)-1)
				}
			}
			for _, c := range mine {
				remove(t, h, c, wantRooms[c])
			}
		})
	}
	workersDone.Wait()
	stop.Store(true)
	readersDone.Wait()

	if got := h.Counts(); got != (Counts{}) {
		t.Fatalf("Counts after every conn was removed = %+v", got)
	}
	for a := range apps {
		app := fmt.Sprintf("app%d", a)
		if got := h.AppCounts(app); got != (Counts{}) {
			t.Fatalf("AppCounts(%s) = %+v", app, got)
		}
		for r := range rooms {
			if m := h.RoomMembers(app, fmt.Sprintf("room%d", r)); len(m) != 0 {
				t.Fatalf("room%d of %s still has %v", r, app, ids(m))
			}
		}
	}
	var delivered int64
	senders.Range(func(_, v any) bool {
		s := v.(*atomicSender)
		if d := s.dups.Load(); d != 0 {
			t.Errorf("a conn was handed the same frame twice (%d times)", d)
		}
		delivered += s.n.Load()
		return true
	})
	// Every conn got at least its direct frame and its user frame.
	if delivered < 2*workers*perWork {
		t.Fatalf("only %d frames delivered", delivered)
	}
}

// TestAddLimitedConcurrent: many goroutines connect the same user at once;
// exactly limit of them are registered, the others refused and invisible,
// other users and apps are not counted against it, and a removal frees a
// place.
func TestAddLimitedConcurrent(t *testing.T) {
	const limit, tries = 7, 64
	h := New(4)
	other := newConn("other-1", "a", "bob")
	if !h.AddLimited(other, 1) {
		t.Fatal("first connection of bob refused")
	}
	var added atomic.Int32
	var wg sync.WaitGroup
	conns := make([]*Conn, tries)
	for i := range conns {
		conns[i] = newConn(fmt.Sprintf("c%d", i), "a", "alice")
		wg.Go(func() {
			if h.AddLimited(conns[i], limit) {
				added.Add(1)
			}
		})
	}
	wg.Wait()
	if n := added.Load(); n != limit {
		t.Fatalf("%d connections added, want %d", n, limit)
	}
	live := h.UserConns("a", "alice")
	if len(live) != limit {
		t.Fatalf("user has %d connections, want %d", len(live), limit)
	}
	registered := 0
	for _, c := range conns {
		if h.Conn(c.ID) != nil {
			registered++
		}
	}
	if registered != limit || h.Counts().Conns != limit+1 {
		t.Fatalf("%d of alice's connections by id and %d in all, want %d and %d", registered, h.Counts().Conns, limit, limit+1)
	}
	if !h.AddLimited(newConn("x1", "b", "alice"), 1) {
		t.Error("alice of another app refused")
	}
	if h.AddLimited(newConn("x2", "a", "alice"), limit) {
		t.Error("one more connection of alice added")
	}
	if _, ok := h.Remove(live[0]); !ok {
		t.Fatal("remove failed")
	}
	if !h.AddLimited(newConn("x3", "a", "alice"), limit) {
		t.Error("no place after a removal")
	}
	if !h.AddLimited(newConn("x4", "a", "alice"), 0) {
		t.Error("limit 0 refused a connection")
	}
}
