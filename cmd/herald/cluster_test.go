package main

// Cluster tests with real processes on loopback: three herald nodes that
// cluster their embedded NATS servers, and three herald nodes on a cluster
// of three nats-server processes (built from the module version go.mod
// names). Nodes and NATS servers are killed with SIGKILL, or restarted one
// by one, while a backend pushes stored messages and clients follow their
// inboxes; at the end every message the API acknowledged must have reached
// its user exactly once, in order.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServer is the nats-server binary, built once per test run next to
// heraldBin (and removed with it).
var natsServer struct {
	once sync.Once
	path string
	err  error
}

// natsServerBin builds nats-server from the module version go.mod requires,
// the same code herald embeds.
func natsServerBin(t *testing.T) string {
	t.Helper()
	natsServer.once.Do(func() {
		path := filepath.Join(filepath.Dir(heraldBin), "nats-server")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServer.err = fmt.Errorf("go build nats-server: %v\n%s", err, out)
			return
		}
		natsServer.path = path
	})
	if natsServer.err != nil {
		t.Fatal(natsServer.err)
	}
	return natsServer.path
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls cond until it holds, failing the test after deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	giveUp := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(giveUp) {
			t.Fatalf("%s: not within %v", what, deadline)
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

// cluster is a set of herald nodes that can be killed, stopped and started
// again with the same flags (and so the same data directory).
type cluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	args []string
	proc *proc
	addr string // the HTTP address; "" while the node is down (guarded by cluster.mu)
}

// newCluster starts one herald node per argument list and waits until all
// are ready.
func newCluster(t *testing.T, args ...[]string) *cluster {
	c := &cluster{t: t}
	for _, a := range args {
		c.nodes = append(c.nodes, &clusterNode{args: a})
	}
	// Started together: clustered nodes wait for each other's JetStream.
	for i := range c.nodes {
		c.nodes[i].proc = start(t, nil, c.nodes[i].args...)
	}
	for i := range c.nodes {
		c.ready(i)
	}
	return c
}

// embeddedCluster starts three herald nodes that cluster their embedded
// NATS servers.
func embeddedCluster(t *testing.T) *cluster {
	var routes [3]string
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	args := make([][]string, 3)
	for i := range args {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, "nats://"+r)
			}
		}
		args[i] = []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--node-id", fmt.Sprintf("node%d", i+1), "--cluster-name", "herald-test",
			"--cluster-listen", routes[i], "--cluster-peers", strings.Join(peers, ",")}
	}
	return newCluster(t, args...)
}

// restart starts node i again with its flags and waits until it is ready.
func (c *cluster) restart(i int) {
	c.t.Helper()
	c.nodes[i].proc = start(c.t, nil, c.nodes[i].args...)
	c.ready(i)
}

// ready waits for node i's serving line and /readyz, then lists it as up.
func (c *cluster) ready(i int) {
	c.t.Helper()
	n := c.nodes[i]
	m := servingRE.FindStringSubmatch(n.proc.waitLine(`msg="herald serving"`))
	if m == nil {
		c.t.Fatalf("node %d: no address in its serving line", i+1)
	}
	eventually(c.t, fmt.Sprintf("node %d ready", i+1), func() bool {
		status, _ := get(c.t, m[1], "/readyz")
		return status == 200
	})
	c.mu.Lock()
	n.addr = m[1]
	c.mu.Unlock()
}

// addr is node i's address ("" while it is down).
func (c *cluster) addr(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].addr
}

// up lists the addresses of the nodes up, in node order.
func (c *cluster) up() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.nodes {
		if n.addr != "" {
			out = append(out, n.addr)
		}
	}
	return out
}

// down stops listing node i (before it is signalled, so that no new client
// or push is sent its way) and returns its process.
func (c *cluster) down(i int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i].addr = ""
	return c.nodes[i].proc
}

// kill ends node i with SIGKILL.
func (c *cluster) kill(i int) {
	c.t.Helper()
	sendSignal(c.t, c.down(i), syscall.SIGKILL)
}

// stop ends node i with SIGTERM, which must exit it cleanly.
func (c *cluster) stop(i int) {
	c.t.Helper()
	p := c.down(i)
	if code := sendSignal(c.t, p, syscall.SIGTERM); code != 0 {
		c.t.Fatalf("node %d exited with %d after SIGTERM; stderr:\n%s", i+1, code, p.stderr())
	}
}

// sendSignal sends sig to the process (by its PID) and waits for it to exit.
func sendSignal(t *testing.T, p *proc, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
	return p.waitExit()
}

// pusher is a backend pushing stored messages to users in turn, one push at
// a time (so a user's acknowledged pushes are in seq order), each with its
// own id, through the node via names. A push answered 503, or not answered,
// is retried with the same id until it is accepted or deadline passes, as a
// backend does. Its data is its id.
type pusher struct {
	users []string
	via   func(n int) string
	max   int // pushes per user, below the inbox cap of 1,000
	quit  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	acked   map[string][]string // user → ids the API acknowledged, in order
	retries int                 // attempts answered 503 or not at all
	err     error
}

func startPusher(t *testing.T, users []string, via func(n int) string) *pusher {
	p := &pusher{users: users, via: via, max: 900, quit: make(chan struct{}), done: make(chan struct{}),
		acked: map[string][]string{}}
	go p.run()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *pusher) run() {
	defer close(p.done)
	// Paced (100 pushes a second), so that p.max lasts longer than a test
	// needs; a test waits on what was received, never on time.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: deadline}
	for n := 0; n < p.max*len(p.users); n++ {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		user := p.users[n%len(p.users)]
		id := user + "-" + strconv.Itoa(n/len(p.users)+1)
		if err := p.push(client, n, user, id); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.acked[user] = append(p.acked[user], id)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.err = fmt.Errorf("the pusher ran out: %d pushes per user is the most it makes", p.max)
	p.mu.Unlock()
}

// push sends one push until it is accepted. It never gives up on quit: a
// push that failed may still be retried, and only an accepted one counts.
func (p *pusher) push(client *http.Client, n int, user, id string) error {
	body := fmt.Sprintf(`{"to":{"users":[%q]},"offline":true,"id":%q,"data":%q}`, user, id, id)
	giveUp := time.Now().Add(deadline)
	for {
		addr := p.via(n)
		resp, err := client.Post("http://"+addr+"/v1/push", "application/json", strings.NewReader(body))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				if !strings.Contains(string(b), `"id":"`+id+`"`) {
					return fmt.Errorf("push %s through %s: answer %s", id, addr, b)
				}
				return nil
			case 503:
				err = fmt.Errorf("%d %s", resp.StatusCode, b)
			default:
				return fmt.Errorf("push %s through %s: %d %s", id, addr, resp.StatusCode, b)
			}
		}
		p.mu.Lock()
		p.retries++
		p.mu.Unlock()
		if time.Now().After(giveUp) {
			return fmt.Errorf("push %s not accepted within %v; last attempt through %s: %v", id, deadline, addr, err)
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// stop stops pushing (after the push under way) and returns what was acknowledged.
func (p *pusher) stop() map[string][]string {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// retried is how many attempts were answered 503 or not at all.
func (p *pusher) retried() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries
}

func (p *pusher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// follower is one client of a user. It checks that the stored messages it
// is sent come in seq order, with no gap and no duplicate, and a complete
// resumed frame on every connect. When its connection ends it reconnects,
// if it may, to the node pick names, with since = its last seq; a client
// that may not counts the end as an error.
type follower struct {
	t         *testing.T
	user      string
	pick      func(prev string) string // the node to connect to, given the last one ("" at first)
	reconnect bool
	quit      chan struct{}
	done      chan struct{}

	mu    sync.Mutex
	ids   []string // ids[i] is the id of seq i+1
	conns int      // connections made
	err   error
}

func startFollower(t *testing.T, user string, reconnect bool, pick func(prev string) string) *follower {
	f := &follower{t: t, user: user, pick: pick, reconnect: reconnect, quit: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.stop)
	return f
}

func (f *follower) run() {
	defer close(f.done)
	prev := ""
	giveUp := time.Time{} // while reconnecting: when to stop trying
	for {
		addr := f.pick(prev)
		since := f.count()
		c, err := tryDialWS(f.t, addr, fmt.Sprintf("?user=%s&since=%d", f.user, since))
		if err == nil {
			prev, giveUp = addr, time.Time{}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			err = f.follow(c, since)
			c.close()
		}
		select {
		case <-f.quit:
			return
		default:
		}
		if giveUp.IsZero() {
			giveUp = time.Now().Add(deadline)
		}
		if !f.reconnect || time.Now().After(giveUp) {
			f.fail(fmt.Errorf("connection to %s: %v", addr, err))
			return
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// follow reads one connection's frames until it ends (the returned error
// says how) or the follower is stopped.
func (f *follower) follow(c *wsClient, since int) error {
	for {
		var m map[string]any
		select {
		case <-f.quit:
			return nil
		case code := <-c.closed:
			return fmt.Errorf("closed with %d", code)
		case m = <-c.frames:
		}
		switch m["type"] {
		case "welcome":
			if seq, _ := m["seq"].(float64); m["user"] != f.user || seq < float64(since) {
				f.fail(fmt.Errorf("welcome %v after seq %d", m, since))
			}
		case "push":
			for _, x := range m["msgs"].([]any) {
				msg := x.(map[string]any)
				seq, _ := msg["seq"].(float64)
				f.mu.Lock()
				want := len(f.ids) + 1
				if int(seq) == want {
					f.ids = append(f.ids, msg["id"].(string))
				}
				f.mu.Unlock()
				if int(seq) != want {
					f.fail(fmt.Errorf("message %v; want seq %d (no gap, no duplicate)", msg, want))
				}
			}
		case "resumed":
			if m["complete"] != true || m["since"] != float64(since) {
				f.fail(fmt.Errorf("resumed %v after since=%d", m, since))
			}
		default:
			f.fail(fmt.Errorf("frame %v", m))
		}
	}
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = fmt.Errorf("%s's client: %w", f.user, err)
	}
}

func (f *follower) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// state returns the ids received, how often the client reconnected, and
// the first error it met.
func (f *follower) state() (ids []string, reconnects int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids), max(f.conns-1, 0), f.err
}

// load is a pusher and the followers of its users.
type load struct {
	t         *testing.T
	pusher    *pusher
	followers []*follower
}

// progress waits until every follower has received at least n more
// messages than it had, failing early on any error.
func (l *load) progress(what string, n int) {
	l.t.Helper()
	from := make([]int, len(l.followers))
	for i, f := range l.followers {
		from[i] = f.count()
	}
	eventually(l.t, what, func() bool {
		l.check()
		for i, f := range l.followers {
			if f.count() < from[i]+n {
				return false
			}
		}
		return true
	})
}

// check fails the test on a pusher or follower error.
func (l *load) check() {
	l.t.Helper()
	if err := l.pusher.failed(); err != nil {
		l.t.Fatal(err)
	}
	for _, f := range l.followers {
		if _, _, err := f.state(); err != nil {
			l.t.Fatal(err)
		}
	}
}

// finish stops pushing, waits until every follower has received every
// acknowledged message, and checks each got exactly those, in order. It
// returns what was acknowledged.
func (l *load) finish() map[string][]string {
	l.t.Helper()
	acked := l.pusher.stop()
	l.check()
	eventually(l.t, "every acknowledged message received", func() bool {
		l.check()
		for _, f := range l.followers {
			if f.count() < len(acked[f.user]) {
				return false
			}
		}
		return true
	})
	for _, f := range l.followers {
		f.stop()
		ids, _, err := f.state()
		if err != nil {
			l.t.Fatal(err)
		}
		if !slices.Equal(ids, acked[f.user]) {
			l.t.Fatalf("%s received %d messages %v\nacknowledged %d: %v", f.user, len(ids), ids, len(acked[f.user]), acked[f.user])
		}
	}
	return acked
}

// readInbox connects a new client of user to addr with since=0 and
// returns the ids of its replay, checking seqs 1, 2, … and a complete
// resumed frame. While JetStream moves a stream's leadership a replay may
// be refused with 4000 (reconnect); it is retried then.
func readInbox(t *testing.T, addr, user string) []string {
	t.Helper()
	giveUp := time.Now().Add(deadline)
	for {
		c := dialWS(t, addr, "?user="+user+"&since=0")
		var ids []string
		for {
			f := c.nextOrClose()
			if f == nil {
				break
			}
			switch f["type"] {
			case "welcome":
			case "push":
				for _, x := range f["msgs"].([]any) {
					m := x.(map[string]any)
					if m["seq"] != float64(len(ids)+1) {
						t.Fatalf("%s's replay: message %v after %d messages", user, m, len(ids))
					}
					ids = append(ids, m["id"].(string))
				}
			case "resumed":
				if f["complete"] != true || f["to"] != float64(len(ids)) {
					t.Fatalf("%s's replay of %d messages ended with %v", user, len(ids), f)
				}
				c.close()
				return ids
			default:
				t.Fatalf("%s's replay: frame %v", user, f)
			}
		}
		if time.Now().After(giveUp) {
			t.Fatalf("%s's replay was refused for %v", user, deadline)
		}
		time.Sleep(100 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// checkInboxes reads every user's inbox through addr and checks it holds
// exactly the acknowledged messages, in order.
func checkInboxes(t *testing.T, addr string, acked map[string][]string) {
	t.Helper()
	for user, want := range acked {
		if got := readInbox(t, addr, user); !slices.Equal(got, want) {
			t.Errorf("%s's inbox through %s: %d messages %v\nacknowledged %d: %v", user, addr, len(got), got, len(want), want)
		}
	}
}

// nextOrClose is next, but returns nil when the server closed the
// connection instead.
func (c *wsClient) nextOrClose() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		return m
	case code := <-c.closed:
		c.closed <- code
		return nil
	case <-time.After(deadline):
		c.t.Fatalf("no frame within %v", deadline)
	}
	return nil
}

// TestEmbeddedClusterOfThreeNodes: three herald processes cluster their
// embedded NATS servers; a push taken by one node reaches a client of
// another, a stored message is replayed by a third, and every node lists
// all three. Then, under a steady load of stored pushes, a node is killed
// with SIGKILL (its NATS server and JetStream replica die with it): its
// clients reconnect to the other nodes and resume by sequence, the clients
// of the other nodes miss nothing and stay connected, and every
// acknowledged message, from before and after the kill, is in its inbox
// exactly once, in order.
func TestEmbeddedClusterOfThreeNodes(t *testing.T) {
	c := embeddedCluster(t)

	bob := dialWS(t, c.addr(2), "?user=bob")
	bob.welcome("bob")
	if r := run(t, nil, "push", "--url", "http://"+c.addr(0), "--user", "bob", "--data", `{"n":1}`); r.code != 0 {
		t.Fatalf("push on node 1: %v", r)
	}
	bob.awaitPush(map[string]any{"n": float64(1)})

	if r := run(t, nil, "push", "--url", "http://"+c.addr(0), "--user", "carol", "--offline", "--data", "7"); r.code != 0 {
		t.Fatalf("offline push on node 1: %v", r)
	}
	carol := dialWS(t, c.addr(1), "?user=carol")
	if w := carol.welcome("carol"); w["seq"] != float64(1) {
		t.Fatalf("welcome on node 2: %v", w)
	}
	if m := carol.awaitPush(float64(7)); m["seq"] != float64(1) {
		t.Fatalf("replayed on node 2: %v", m)
	}
	eventually(t, "every node listed", func() bool {
		_, body := get(t, c.addr(1), "/v1/nodes")
		return strings.Count(body, `"id":"node`) == 3
	})

	// The load: pushes through nodes 1 and 2 (the survivors; a push cut
	// off by a kill may have been stored, and its retry on another node
	// would store it again: idempotency is per node) to users followed
	// on every node.
	survivors := []int{0, 1}
	p := startPusher(t, []string{"k1", "k2", "s1", "s2"}, func(n int) string { return c.addr(survivors[n%2]) })
	// Node 3's clients reconnect to nodes 1 and 2 once it is down.
	on := func(node, then int) func(string) string {
		return func(string) string {
			if a := c.addr(node); a != "" {
				return a
			}
			return c.addr(then)
		}
	}
	l := &load{t: t, pusher: p, followers: []*follower{
		startFollower(t, "k1", true, on(2, 0)), startFollower(t, "k2", true, on(2, 1)),
		startFollower(t, "s1", false, on(0, 0)), startFollower(t, "s2", false, on(1, 1)),
	}}
	l.progress("messages received before the kill", 20)

	c.kill(2)
	l.progress("messages received after the kill", 20)
	for _, f := range l.followers[:2] {
		if _, reconnects, _ := f.state(); reconnects == 0 {
			t.Errorf("%s's client never reconnected after its node was killed", f.user)
		}
	}
	acked := l.finish()
	t.Logf("acknowledged %d pushes per user; %d attempts retried", len(acked["k1"]), p.retried())
	// JetStream data written before and after the kill is all there,
	// through either survivor.
	checkInboxes(t, c.addr(1), acked)
}

// TestRollingRestartUnderLoad: the three nodes of an embedded cluster are
// restarted one by one (SIGTERM, exit, start again with the same data
// directory and flags, /readyz) while a backend pushes stored messages
// through the nodes that are up and the users' clients reconnect and
// resume wherever they can: every acknowledged message reaches its user
// exactly once, in order, and stays in the inbox.
func TestRollingRestartUnderLoad(t *testing.T) {
	c := embeddedCluster(t)
	users := []string{"u1", "u2", "u3"}
	p := startPusher(t, users, func(n int) string {
		up := c.up() // never empty: one node is down at a time
		return up[n%len(up)]
	})
	l := &load{t: t, pusher: p}
	for i, u := range users {
		// u<i> starts on node i, then moves to any other node up.
		l.followers = append(l.followers, startFollower(t, u, true, func(prev string) string {
			if prev == "" {
				return c.addr(i)
			}
			up := c.up()
			for _, a := range up {
				if a != prev {
					return a
				}
			}
			return prev
		}))
	}
	l.progress("messages received before the restarts", 10)
	for i := range c.nodes {
		c.stop(i)
		l.progress(fmt.Sprintf("messages received while node %d is down", i+1), 10)
		c.restart(i)
		l.progress(fmt.Sprintf("messages received after node %d restarted", i+1), 10)
	}
	for _, f := range l.followers {
		if _, reconnects, _ := f.state(); reconnects == 0 {
			t.Errorf("%s's client never reconnected, though its node was restarted", f.user)
		}
	}
	acked := l.finish()
	t.Logf("acknowledged %d pushes per user; %d attempts retried", len(acked["u1"]), p.retried())
	checkInboxes(t, c.addr(0), acked)
}

// natsNode is one nats-server process of an external cluster.
type natsNode struct {
	name    string
	url     string // nats://127.0.0.1:port
	monitor string // host:port of its monitoring endpoint
	proc    *proc
}

// natsCluster starts three clustered nats-server processes with JetStream
// and waits until JetStream has a meta leader.
func natsCluster(t *testing.T) []*natsNode {
	bin := natsServerBin(t)
	nodes := make([]*natsNode, 3)
	routes := make([]string, 3)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("nats-%d", i+1), url: fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)),
			monitor: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	}
	for i, n := range nodes {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(n.url, "nats://"))
		_, mport, _ := net.SplitHostPort(n.monitor)
		peers := slices.Delete(slices.Clone(routes), i, i+1)
		n.proc = startBin(t, bin, nil, "-a", "127.0.0.1", "-p", port, "-m", mport, "-n", n.name,
			"-js", "-sd", t.TempDir(), "--cluster_name", "herald-ext", "--cluster", routes[i], "--routes", strings.Join(peers, ","))
	}
	for _, n := range nodes {
		n.proc.waitLine("Server is ready")
		eventually(t, n.name+": JetStream meta leader", func() bool {
			var jsz struct {
				Meta struct {
					Leader string `json:"leader"`
					Size   int    `json:"cluster_size"`
				} `json:"meta_cluster"`
			}
			_, body := get(t, n.monitor, "/jsz")
			return json.Unmarshal([]byte(body), &jsz) == nil && jsz.Meta.Leader != "" && jsz.Meta.Size == 3
		})
	}
	return nodes
}

// connectedTo names the NATS server herald node id is connected to.
func connectedTo(t *testing.T, servers []*natsNode, id string) *natsNode {
	t.Helper()
	for _, s := range servers {
		var connz struct {
			Conns []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		_, body := get(t, s.monitor, "/connz")
		if err := json.Unmarshal([]byte(body), &connz); err != nil {
			t.Fatalf("%s /connz: %v", s.name, err)
		}
		for _, c := range connz.Conns {
			if c.Name == "herald "+id {
				return s
			}
		}
	}
	t.Fatalf("herald %s is connected to no NATS server", id)
	return nil
}

// TestExternalNATSClusterSurvivesSIGKILLOfAServer: three herald nodes on
// an external cluster of three NATS servers (--nats-url, --replicas 3).
// Under a steady load of stored pushes through node 1 to users followed on
// every node, the NATS server that leads the inbox stream and serves node
// 3 is killed with SIGKILL: pushes keep being accepted (a 503 while
// JetStream elects a new leader is retried with the same id), clients keep
// receiving in order, and every acknowledged message, from before and
// after the kill, is in its inbox exactly once, in order.
func TestExternalNATSClusterSurvivesSIGKILLOfAServer(t *testing.T) {
	servers := natsCluster(t)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.url)
	}
	args := make([][]string, 3)
	for i := range args {
		args[i] = []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--node-id", fmt.Sprintf("ext%d", i+1), "--nats-url", strings.Join(urls, ","), "--replicas", "3"}
	}
	c := newCluster(t, args...)

	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// JetStream API calls are retried, each with a short deadline: a
	// request may go unanswered while the cluster settles or elects.
	var stream jetstream.Stream
	eventually(t, "the inbox stream's info", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stream, err = js.Stream(ctx, "HERALD_INBOX")
		return err == nil
	})
	if r := stream.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("the inbox stream has %d replicas; want 3", r)
	}
	// The server to kill serves node 3 and leads the inbox stream, so its
	// death makes node 3 reconnect and JetStream elect a leader.
	victim := connectedTo(t, servers, "ext3")
	eventually(t, "the inbox stream led by "+victim.name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := stream.Info(ctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
			return false
		}
		if info.Cluster.Leader != victim.name {
			_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.HERALD_INBOX",
				[]byte(`{"placement":{"preferred":"`+victim.name+`"}}`), time.Second)
			return false
		}
		return true
	})

	// A client whose node lost its NATS server may be closed with 4000
	// (its node could not read the inbox while JetStream elected a leader):
	// it reconnects, to the same node, and resumes.
	p := startPusher(t, []string{"x1", "x2", "x3", "x4"}, func(int) string { return c.addr(0) })
	node := func(i int) func(string) string { return func(string) string { return c.addr(i) } }
	l := &load{t: t, pusher: p, followers: []*follower{
		startFollower(t, "x1", true, node(2)), startFollower(t, "x2", true, node(2)),
		startFollower(t, "x3", true, node(1)), startFollower(t, "x4", true, node(0)),
	}}
	l.progress("messages received before the kill", 20)
	sendSignal(t, victim.proc, syscall.SIGKILL)
	l.progress("messages received after the kill", 20)
	acked := l.finish()
	t.Logf("acknowledged %d pushes per user; %d attempts retried", len(acked["x1"]), p.retried())
	checkInboxes(t, c.addr(1), acked)
}
