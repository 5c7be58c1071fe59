package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/nats-io/nats-server/v2/server"
)

// startCluster runs n nodes sharing one NATS server (JetStream on) and
// waits until every node lists them all.
func startCluster(t *testing.T, n int, edit func(*config.Config)) (*server.Server, []*node) {
	t.Helper()
	ns := runNATS(t, server.RANDOM_PORT, t.TempDir())
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, func(c *config.Config) {
			c.NATSURL = ns.ClientURL()
			if edit != nil {
				edit(c)
			}
		})
	}
	for _, nd := range nodes {
		waitFor(t, func() bool { return len(nd.nodeIDs()) == n })
	}
	return ns, nodes
}

// nodeIDs lists the ids in the node's /v1/nodes.
func (n *node) nodeIDs() []string {
	n.t.Helper()
	status, out := n.call("GET", "/v1/nodes", "", nil)
	if status != 200 {
		n.t.Fatalf("/v1/nodes: %d %v", status, out)
	}
	var ids []string
	for _, e := range out["nodes"].([]any) {
		ids = append(ids, e.(map[string]any)["id"].(string))
	}
	return ids
}

// ok fails the test unless the call answers want.
func (n *node) ok(want int, method, path string, body any) map[string]any {
	n.t.Helper()
	status, out := n.call(method, path, "", body)
	if status != want {
		n.t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// userConns returns the ids and nodes of GET /v1/users/{user}'s conns.
func userConns(out map[string]any) (ids, nodes []string) {
	for _, c := range out["conns"].([]any) {
		m := c.(map[string]any)
		ids = append(ids, m["id"].(string))
		nodes = append(nodes, m["node"].(string))
	}
	return ids, nodes
}

func nodeOfConn(id string) string { return id[2:strings.LastIndexByte(id, '_')] }

// TestClusterWideOperations: three nodes on one NATS; every query, count,
// kick and membership change made on one node sees and acts on the
// connections of all of them.
func TestClusterWideOperations(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	aliceA := a.dial("user=alice&device=laptop", dialOpt{})
	aliceB := b.dial("user=alice&device=phone", dialOpt{})
	bob := b.dial("user=bob", dialOpt{})
	carol := c.dial("user=carol", dialOpt{})

	// A user connected on A and B, queried on C, shows both connections.
	out := c.ok(200, "GET", "/v1/users/alice", nil)
	ids, on := userConns(out)
	want := []string{aliceA.id, aliceB.id}
	sort.Strings(want)
	if out["online"] != true || !slices.Equal(ids, want) {
		t.Fatalf("alice seen from C: %v, want conns %v", out, want)
	}
	for i, id := range ids {
		if on[i] != nodeOfConn(id) {
			t.Fatalf("conn %s reported on node %s", id, on[i])
		}
	}

	// Join through C: alice's connections on A and B and bob's on B; carol's
	// connection on C joins through A, by id.
	c.ok(204, "POST", "/v1/rooms/lobby/join", map[string]any{"users": []string{"alice", "bob"}})
	a.ok(204, "POST", "/v1/rooms/lobby/join", map[string]any{"conns": []string{carol.id}})
	for _, cl := range []*client{aliceA, aliceB, bob, carol} {
		if f := cl.expect("joined"); f["room"] != "lobby" {
			t.Fatalf("joined frame %v", f)
		}
	}
	// The room spans the nodes: counted whole from each, paged by cursor.
	members := []string{aliceA.id, aliceB.id, bob.id, carol.id}
	sort.Strings(members)
	for _, n := range nodes {
		out := n.ok(200, "GET", "/v1/rooms/lobby", nil)
		if out["conns"] != float64(4) || out["users"] != float64(3) || !slices.Equal(memberIDs(out), members) || out["next"] != nil {
			t.Fatalf("room lobby from %s: %v, want members %v", n.base, out, members)
		}
	}
	if out := b.ok(200, "GET", "/v1/rooms/lobby?cursor="+members[1], nil); !slices.Equal(memberIDs(out), members[2:]) || out["conns"] != float64(4) {
		t.Fatalf("room lobby after %s: %v", members[1], out)
	}
	// Membership made remotely is real: a room push reaches all four.
	a.push("", map[string]any{"to": map[string]any{"rooms": []string{"lobby"}}, "data": "hi lobby"})
	for _, cl := range []*client{aliceA, aliceB, bob, carol} {
		cl.expectData("hi lobby")
	}

	// Stats sum the nodes.
	if out := a.ok(200, "GET", "/v1/stats", nil); out["conns"] != float64(4) || out["nodes"] != float64(3) || out["pushes"] != float64(1) || out["deliveries"] != float64(4) {
		t.Fatalf("stats: %v", out)
	}

	// Leave through B takes alice out on A and B.
	b.ok(204, "POST", "/v1/rooms/lobby/leave", map[string]any{"users": []string{"alice"}})
	aliceA.expect("left")
	aliceB.expect("left")
	if out := c.ok(200, "GET", "/v1/rooms/lobby", nil); out["conns"] != float64(2) || out["users"] != float64(2) {
		t.Fatalf("room lobby after alice left: %v", out)
	}

	// A kick through C closes alice's connections on A and B with 4002.
	c.ok(204, "DELETE", "/v1/users/alice/conns", nil)
	for _, cl := range []*client{aliceA, aliceB} {
		if code := cl.expectClose(); code != 4002 {
			t.Fatalf("kicked connection closed with %d, want 4002", code)
		}
	}
	waitFor(t, func() bool { return a.ok(200, "GET", "/v1/users/alice", nil)["online"] == false })
	if out := b.ok(404, "DELETE", "/v1/users/alice/conns", nil); errCode(out) != "not_found" {
		t.Fatalf("kick of a user with no connection: %v", out)
	}
	// One connection, by id, through another node; then it is gone.
	a.ok(204, "DELETE", "/v1/conns/"+carol.id, nil)
	if code := carol.expectClose(); code != 4002 {
		t.Fatalf("kicked connection closed with %d, want 4002", code)
	}
	for _, id := range []string{carol.id, "c_nosuchnode_1", "junk"} {
		if out := b.ok(404, "DELETE", "/v1/conns/"+id, nil); errCode(out) != "not_found" {
			t.Fatalf("kick of %s: %v", id, out)
		}
	}
	if out := a.ok(200, "GET", "/v1/users/bob", nil); out["online"] != true {
		t.Fatalf("bob was kicked too: %v", out)
	}
}

func memberIDs(out map[string]any) []string {
	var ids []string
	for _, m := range out["members"].([]any) {
		ids = append(ids, m.(map[string]any)["conn"].(string))
	}
	return ids
}

// TestClusterRecall: message status and recall read the shared JetStream
// state: a message pushed through A, its status read and recalled through
// B, and the online client on C gets recall.
func TestClusterRecall(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	dave := c.dial("user=dave", dialOpt{})
	id := a.offline("", "oops", "dave", "erin")
	dave.expectData("oops")
	waitFor(t, func() bool { return b.ok(200, "GET", "/v1/messages/"+id, nil)["delivered"] == float64(1) })
	b.ok(204, "DELETE", "/v1/messages/"+id, nil)
	if f := dave.expect("recall"); f["id"] != id {
		t.Fatalf("recall frame %v", f)
	}
	if out := c.ok(200, "GET", "/v1/messages/"+id, nil); out["recalled"] != true || out["targeted"] != float64(2) {
		t.Fatalf("status after recall: %v", out)
	}
}

// TestClusterNodeNotAnswering: a node listed in the registry that is gone
// holds nothing and is skipped; one that is there but does not answer
// leaves queries answered by the others, marked partial and naming it
// (never a silently short answer), and makes a kick that would need it
// fail with a clear 503 naming it.
func TestClusterNodeNotAnswering(t *testing.T) {
	ns, nodes := startCluster(t, 2, func(c *config.Config) { c.Limits.EngineTimeout = time.Second })
	a := nodes[0]
	a.dial("user=frank", dialOpt{})
	js := jetStreamAt(t, ns.ClientURL())
	nc := js.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	kv, err := js.KeyValue(ctx, "HERALD_NODES")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone", "stuck"} {
		entry, _ := json.Marshal(map[string]any{"id": id, "addr": "127.0.0.1:1", "heartbeat": time.Now()})
		if _, err := kv.Put(ctx, id, entry); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(a.nodeIDs()) == 4 })
	if out := a.ok(200, "GET", "/v1/users/frank", nil); out["online"] != true {
		t.Fatalf("frank with a gone node listed: %v", out)
	}

	// "stuck" listens and never answers.
	sub, err := nc.SubscribeSync("hrl.ctl.stuck")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/users/frank", "/v1/rooms/lobby", "/v1/stats"} {
		out := a.ok(200, "GET", path, nil)
		if out["partial"] != true || fmt.Sprint(out["missing"]) != "[stuck]" {
			t.Fatalf("%s with a stuck node: %v", path, out)
		}
	}
	if out := a.ok(200, "GET", "/v1/users/frank", nil); out["online"] != true || len(out["conns"].([]any)) != 1 {
		t.Fatalf("frank with a stuck node listed: %v", out)
	}
	// A connection of another node is asked of that node alone.
	if out := a.ok(404, "DELETE", "/v1/conns/c_"+nodeIDOf(t, nodes[1])+"_99", nil); errCode(out) != "not_found" {
		t.Fatalf("kick of an unknown conn of a live node: %v", out)
	}
	// A kick cannot claim what the stuck node did not confirm.
	out := a.ok(503, "DELETE", "/v1/users/frank/conns", nil)
	if errCode(out) != "unavailable" || !strings.Contains(out["error"].(map[string]any)["message"].(string), "stuck") {
		t.Fatalf("kick with a stuck node: %v", out)
	}
}

// nodeIDOf returns a node's id, from the connection id it assigns.
func nodeIDOf(t *testing.T, n *node) string {
	t.Helper()
	c := n.dial("user=probe", dialOpt{})
	defer c.conn.Close()
	return nodeOfConn(c.id)
}
