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
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
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
	// Below Linux's ephemeral range (32768 and up), which every ":0"
	// listener and outgoing connection of the tests running beside this one
	// draws from: a port picked there can be taken again before its node
	// binds it (CI once saw a node's route port answered by another
	// process's NATS client port).
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below 32768")
	return 0
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
// NATS servers; extra flags are given to every node.
func embeddedCluster(t *testing.T, extra ...string) *cluster {
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
		args[i] = append(args[i], extra...)
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
	checkInboxes(t, c.addr(1), p, acked)
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
	checkInboxes(t, c.addr(0), p, acked)
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
	checkInboxes(t, c.addr(1), p, acked)
}
