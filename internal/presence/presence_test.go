package presence

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// recorder is a Sink that keeps what it is told, in order.
type recorder struct {
	mu      sync.Mutex
	changes []Change
	lost    []Conn // closed with 1006
	opened  []Conn
	closed  []Conn // closed otherwise
}

func (r *recorder) Changed(_ context.Context, c Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}
func (r *recorder) ConnOpened(_ context.Context, c Conn) {
	r.mu.Lock()
	r.opened = append(r.opened, c)
	r.mu.Unlock()
}
func (r *recorder) ConnClosed(_ context.Context, c Conn, code int, _ time.Time) {
	r.mu.Lock()
	if code == CodeLost {
		r.lost = append(r.lost, c)
	} else {
		r.closed = append(r.closed, c)
	}
	r.mu.Unlock()
}

// events renders the changes of scope s, across recorders, as "+"/"-"
// sorted by time (each recorder's own list is in its order; a scope's
// changes are serialized by the bucket, so At orders them).
func events(s Scope, rs ...*recorder) string {
	var all []Change
	for _, r := range rs {
		r.mu.Lock()
		for _, c := range r.changes {
			if c.Scope == s {
				all = append(all, c)
			}
		}
		r.mu.Unlock()
	}
	slices.SortStableFunc(all, func(a, b Change) int { return a.At.Compare(b.At) })
	out := ""
	for _, c := range all {
		if c.Up {
			out += "+"
		} else {
			out += "-"
		}
	}
	return out
}

func lostIDs(rs ...*recorder) []string {
	var ids []string
	for _, r := range rs {
		r.mu.Lock()
		for _, c := range r.lost {
			ids = append(ids, c.ID)
		}
		r.mu.Unlock()
	}
	slices.Sort(ids)
	return ids
}

// poll polls cond until it holds (true) or the deadline passes (false).
func poll(deadline time.Duration, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runServer starts an embedded NATS server with JetStream on a loopback
// port.
func runServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv.ClientURL()
}

// runCluster starts three clustered NATS servers with JetStream on
// loopback and returns their client URLs once there is a meta leader.
func runCluster(t *testing.T) []string {
	urls, _ := runClusterServers(t)
	return urls
}

// runClusterServers is runCluster, also returning the servers.
func runClusterServers(t *testing.T) ([]string, []*server.Server) {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
	}
	var srvs []*server.Server
	for i, p := range ports {
		srv, err := server.NewServer(&server.Options{ServerName: "s" + strconv.Itoa(i), Host: "127.0.0.1",
			Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "herald", Host: "127.0.0.1", Port: p},
			Routes:  routes, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		srvs = append(srvs, srv)
	}
	var urls []string
	for _, srv := range srvs {
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		urls = append(urls, srv.ClientURL())
	}
	waitFor(t, "a JetStream meta leader", 30*time.Second, func() bool {
		for _, srv := range srvs {
			if srv.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return urls, srvs
}

// node starts a tracker connected to url; it is closed when t ends
// unless the test crashed it.
func node(t *testing.T, url string, cfg Config) (*Tracker, *recorder) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r := &recorder{}
	tr, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A fresh cluster may need a moment to place the buckets.
	for {
		err = tr.Start(ctx, nc)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, r
}

// crash stops tr as a SIGKILL would: no queue drained, no lease given up.
func crash(tr *Tracker) { tr.halt() }

func cfg(node string) Config {
	return Config{NodeID: node, LeaseTTL: 2 * time.Second, OfflineDelay: 300 * time.Millisecond}
}

var alice = Scope{Kind: Member, App: "shop", Room: "chat-1", User: "alice"}

// Two tabs of one user on one node: one join, and one leave only when
// the last tab goes.
func TestTwoTabs(t *testing.T) {
	a, r := node(t, runServer(t), cfg("a"))
	now := time.Now()
	a.Open(Conn{ID: "c1", App: "shop", User: "alice"})
	a.Open(Conn{ID: "c2", App: "shop", User: "alice"})
	a.Add(alice, now)
	a.Add(alice, now)
	waitFor(t, "join", 10*time.Second, func() bool { return events(alice, r) == "+" })
	a.Closed("c1", 1000, time.Now())
	a.Closed("c2", 1001, time.Now())
	waitFor(t, "connections opened and closed", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.opened) == 2 && len(r.closed) == 2
	})
	if ks, _ := a.keys(context.Background(), "c.>"); len(ks) != 0 {
		t.Fatalf("connection records left: %v", ks)
	}
	a.Remove(alice, time.Now())
	users, _, err := a.Members(context.Background(), "shop", "chat-1", "", 10)
	if err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("Members with one tab left = %v, %v", users, err)
	}
	a.Remove(alice, time.Now())
	waitFor(t, "leave", 10*time.Second, func() bool { return events(alice, r) == "+-" })
	waitFor(t, "no members", 10*time.Second, func() bool {
		users, _, err := a.Members(context.Background(), "shop", "chat-1", "", 10)
		return err == nil && len(users) == 0
	})
	if got := events(alice, r); got != "+-" {
		t.Fatalf("events = %q, want +-", got)
	}
}

// A user who leaves one node and arrives at another within the offline
// delay is neither reported leaving nor joining again.
func TestMoveNoFlicker(t *testing.T) {
	url := runServer(t)
	c := cfg("a")
	c.OfflineDelay = 3 * time.Second
	a, ra := node(t, url, c)
	c.NodeID = "b"
	b, rb := node(t, url, c)
	a.Add(alice, time.Now())
	waitFor(t, "join", 10*time.Second, func() bool { return events(alice, ra, rb) == "+" })
	a.Remove(alice, time.Now())
	b.Add(alice, time.Now())
	b.Remove(alice, time.Now())
	waitFor(t, "leave", 20*time.Second, func() bool { return events(alice, ra, rb) != "+" })
	if got := events(alice, ra, rb); got != "+-" {
		t.Fatalf("events = %q, want +- (no flicker)", got)
	}
}

// A dead node's users leave and its connections are reported lost,
// within the bound, exactly once across the surviving nodes.
func TestDeadNode(t *testing.T) {
	url := runServer(t)
	a, ra := node(t, url, cfg("a"))
	b, rb := node(t, url, cfg("b"))
	c, rc := node(t, url, cfg("c"))
	bob := Scope{Kind: Member, App: "shop", Room: "chat-1", User: "bob"}
	a.Open(Conn{ID: "c_a1", App: "shop", User: "alice"})
	a.Add(alice, time.Now())
	a.Add(bob, time.Now())
	b.Add(bob, time.Now()) // bob also has a tab on b: he stays
	waitFor(t, "joins", 10*time.Second, func() bool {
		return events(alice, ra, rb, rc) == "+" && events(bob, ra, rb, rc) == "+"
	})
	waitFor(t, "a's connection record", 10*time.Second, func() bool {
		ks, _ := a.keys(context.Background(), "c.>")
		return len(ks) == 1
	})
	crash(a)
	waitFor(t, "alice leaves with a", b.Bound()+5*time.Second, func() bool {
		return events(alice, ra, rb, rc) == "+-"
	})
	waitFor(t, "a's connection lost", 10*time.Second, func() bool {
		return slices.Equal(lostIDs(ra, rb, rc), []string{"c_a1"})
	})
	users, _, err := c.Members(context.Background(), "shop", "chat-1", "", 10)
	if err != nil || !slices.Equal(users, []string{"bob"}) {
		t.Fatalf("Members = %v, %v; want [bob]", users, err)
	}
	if got := events(bob, ra, rb, rc); got != "+" {
		t.Fatalf("bob's events = %q, want + (his other tab stays)", got)
	}
}

// A node restarted under the same id reports what its previous run left.
func TestRestartSweepsItself(t *testing.T) {
	url := runServer(t)
	c := cfg("a")
	c.LeaseTTL = time.Minute // the restart comes long before expiry
	a, ra := node(t, url, c)
	a.Open(Conn{ID: "c_a1", App: "shop", User: "alice"})
	a.Add(alice, time.Now())
	waitFor(t, "join", 10*time.Second, func() bool { return events(alice, ra) == "+" })
	waitFor(t, "connection record", 10*time.Second, func() bool {
		ks, _ := a.keys(context.Background(), "c.>")
		return len(ks) == 1
	})
	crash(a)
	_, ra2 := node(t, url, c)
	waitFor(t, "leave after restart", 10*time.Second, func() bool { return events(alice, ra, ra2) == "+-" })
	if got := lostIDs(ra, ra2); !slices.Equal(got, []string{"c_a1"}) {
		t.Fatalf("lost = %v", got)
	}
}

func TestMembersPaged(t *testing.T) {
	a, _ := node(t, runServer(t), cfg("a"))
	for i := range 25 {
		a.Add(Scope{Kind: Member, App: "shop", Room: "doc-1", User: fmt.Sprintf("u%02d", i)}, time.Now())
	}
	a.Add(Scope{Kind: Member, App: "shop", Room: "doc-2", User: "other"}, time.Now())
	a.Add(Scope{Kind: Member, App: "other", Room: "doc-1", User: "other"}, time.Now())
	var all []string
	waitFor(t, "25 members", 10*time.Second, func() bool {
		all = all[:0]
		cursor := ""
		for {
			page, next, err := a.Members(context.Background(), "shop", "doc-1", cursor, 10)
			if err != nil || len(page) > 10 {
				return false
			}
			all = append(all, page...)
			if next == "" {
				return len(all) == 25
			}
			cursor = next
		}
	})
	if !slices.IsSorted(all) || all[0] != "u00" || all[24] != "u24" {
		t.Fatalf("members = %v", all)
	}
}

// Three nodes on a three-server cluster, the user's tabs coming and going
// on all of them at once: joins and leaves strictly alternate, and the
// user ends absent with exactly as many leaves as joins. Then one node
// dies with tabs open and the survivors report the leave once.
func TestClusterExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls := runCluster(t)
	var trs []*Tracker
	var rs []*recorder
	for i, u := range urls {
		c := cfg("n" + strconv.Itoa(i))
		c.Replicas = 3
		c.OfflineDelay = 0 // every 1→0 counts, to stress the exchange
		tr, r := node(t, u, c)
		trs, rs = append(trs, tr), append(rs, r)
	}
	var wg sync.WaitGroup
	for _, tr := range trs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each step waits until this node applied it, so the nodes
			// really race on the shared entry (unapplied steps coalesce).
			for range 20 {
				tr.Add(alice, time.Now())
				tr.Add(alice, time.Now())
				if !poll(30*time.Second, func() bool { return applied(tr) }) {
					t.Error("add not applied")
					return
				}
				tr.Remove(alice, time.Now())
				tr.Remove(alice, time.Now())
				if !poll(30*time.Second, func() bool { return applied(tr) }) {
					t.Error("remove not applied")
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all changes applied", 60*time.Second, func() bool {
		return applied(trs[0]) && applied(trs[1]) && applied(trs[2])
	})
	checkAlternating(t, alice, rs)

	// Tabs on n0 and n1; n0 dies: no leave while n1 holds one.
	trs[0].Add(alice, time.Now())
	trs[1].Add(alice, time.Now())
	n := len(events(alice, rs...))
	waitFor(t, "join", 10*time.Second, func() bool { return len(events(alice, rs...)) == n+1 })
	crash(trs[0])
	trs[1].Remove(alice, time.Now())
	waitFor(t, "leave after n0's death", trs[1].Bound()+10*time.Second, func() bool {
		return len(events(alice, rs...)) == n+2
	})
	checkAlternating(t, alice, rs)
}

// applied reports whether tr has no change left to write.
func applied(tr *Tracker) bool {
	for _, sh := range tr.shards {
		sh.mu.Lock()
		n := len(sh.queue)
		if sh.busy {
			n++
		}
		for _, st := range sh.scopes {
			if st.count == 0 {
				n++ // a departure still owned
			}
		}
		sh.mu.Unlock()
		if n > 0 {
			return false
		}
	}
	return true
}

// checkAlternating fails unless s's changes across rs go +-+-…- .
func checkAlternating(t *testing.T, s Scope, rs []*recorder) {
	t.Helper()
	ev := events(s, rs...)
	t.Logf("%d changes", len(ev))
	if len(ev) == 0 || len(ev)%2 != 0 {
		t.Fatalf("events = %q: want alternating joins and leaves ending in a leave", ev)
	}
	for i := range len(ev) {
		if want := "+-"[i%2]; ev[i] != want {
			t.Fatalf("events = %q: position %d is %c", ev, i, ev[i])
		}
	}
}

// Each node's copy of the members follows joins and leaves made on any
// node, and is capped like a listing.
func TestMembersCached(t *testing.T) {
	t.Log("start", time.Now().Format("05.000"))
	defer t.Log("end", time.Now().Format("05.000"))
	url := runServer(t)
	a, _ := node(t, url, cfg("a"))
	b, _ := node(t, url, cfg("b"))
	room := func(u string) Scope { return Scope{Kind: Member, App: "shop", Room: "doc-1", User: u} }
	for i := range 5 {
		a.Add(room(fmt.Sprintf("u%d", i)), time.Now())
	}
	b.Add(room("u9"), time.Now())
	b.Add(Scope{Kind: Member, App: "shop", Room: "doc-2", User: "other"}, time.Now())
	want := []string{"u0", "u1", "u2", "u3", "u4", "u9"}
	for _, tr := range []*Tracker{a, b} {
		waitFor(t, "six members in each copy", 10*time.Second, func() bool {
			users, more, err := tr.MembersCached(context.Background(), "shop", "doc-1", 0)
			return err == nil && !more && slices.Equal(users, want)
		})
		users, more, err := tr.MembersCached(context.Background(), "shop", "doc-1", 4)
		if err != nil || !more || !slices.Equal(users, want[:4]) {
			t.Fatalf("capped at 4: %v %v %v", users, more, err)
		}
	}
	t.Log("phase 2", time.Now().Format("05.000"))
	a.Remove(room("u0"), time.Now())
	b.Remove(room("u9"), time.Now())
	for _, tr := range []*Tracker{a, b} {
		waitFor(t, "u0 and u9 gone from each copy", 10*time.Second, func() bool {
			users, _, err := tr.MembersCached(context.Background(), "shop", "doc-1", 0)
			return err == nil && slices.Equal(users, want[1:5])
		})
		if users, _, _ := tr.MembersCached(context.Background(), "shop", "doc-2", 0); !slices.Equal(users, []string{"other"}) {
			t.Fatalf("doc-2: %v", users)
		}
	}
}

// An arrival stored on one node is in the very next MembersCached of
// another: the copy is waited for, never answered behind the bucket.
func TestMembersCachedSeesStoredArrivals(t *testing.T) {
	url := runServer(t)
	a, ra := node(t, url, cfg("a"))
	b, _ := node(t, url, cfg("b"))
	waitFor(t, "b's copy", 10*time.Second, func() bool {
		_, _, err := b.MembersCached(context.Background(), "shop", "doc-1", 0)
		return err == nil
	})
	for i := range 50 {
		u := fmt.Sprintf("u%02d", i)
		s := Scope{Kind: Member, App: "shop", Room: "doc-1", User: u}
		a.Add(s, time.Now())
		// The join is reported once stored: ask b at that moment.
		for !strings.HasSuffix(events(s, ra), "+") {
			runtime.Gosched()
		}
		users, _, err := b.MembersCached(context.Background(), "shop", "doc-1", 0)
		if err != nil || !slices.Contains(users, u) {
			t.Fatalf("%s is stored, but b's members are %v (%v)", u, users, err)
		}
	}
}
