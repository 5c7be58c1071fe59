package main

// Cluster tests of starting, readiness and dead nodes, with real herald
// processes clustering their embedded NATS servers on loopback.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterNodeWaitsForMajority: a node of three started while the other
// two are down waits for JetStream (saying so every few seconds) instead
// of exiting, and becomes ready once a peer is back; /readyz is 503 on a
// node whose inbox cannot serve (it lost its majority) even though its
// NATS connection is up, and 200 only once it can: a client of a node
// that says ready is welcomed and replayed its stored message at once.
func TestClusterNodeWaitsForMajority(t *testing.T) {
	c := embeddedCluster(t)
	if r := run(t, nil, "push", "--url", "http://"+c.addr(0), "--user", "erin", "--offline", "--data", `"kept"`); r.code != 0 {
		t.Fatalf("offline push: %v", r)
	}

	// Node 3 leaves cleanly (as after a drain), node 2 is killed: node 1
	// is alone, its NATS up, its inbox without a majority.
	c.stop(2)
	c.kill(1)
	one := c.addr(0)
	eventually(t, "node 1 alone: /readyz 503", func() bool {
		status, _ := get(t, one, "/readyz")
		return status == 503
	})

	// Node 1 dies too; node 2 starts alone, with its original flags.
	c.kill(0)
	two := start(t, nil, c.nodes[1].args...)
	c.nodes[1].proc = two
	eventually(t, "node 2 waiting for JetStream, twice", func() bool {
		select {
		case <-two.done:
			t.Fatalf("node 2 exited (%v) instead of waiting; stderr:\n%s", two.state, two.stderr())
		default:
		}
		return strings.Count(two.stderr(), "waiting for JetStream") >= 2
	})
	if _, ok := two.find(`msg="herald serving"`); ok {
		t.Fatalf("node 2 served without a JetStream majority; stderr:\n%s", two.stderr())
	}

	// A peer comes back: both become ready, and ready means serving.
	c.nodes[0].proc = start(t, nil, c.nodes[0].args...)
	c.ready(1)
	c.ready(0)
	two.waitLine("JetStream is available")
	for i := range 2 {
		erin := dialWS(t, c.addr(i), "?user=erin")
		if w := erin.welcome("erin"); w["seq"] != float64(1) {
			t.Fatalf("welcome on node %d after the restart: %v", i+1, w)
		}
		if m := erin.awaitPush("kept"); m["seq"] != float64(1) {
			t.Fatalf("replay on node %d after the restart: %v", i+1, m)
		}
		erin.close()
	}
}

// clientsRE finds the embedded NATS server's client URL in a node's log.
var clientsRE = regexp.MustCompile(`msg="embedded NATS server clustering".* clients=(nats://[0-9.:]+)`)

// TestClusterQueryAfterSIGKILL: right after the node that leads the node
// registry is killed with SIGKILL, a user query on a survivor answers 200
// with the user's connections on the survivors (the registry is electing
// a new leader meanwhile, and still lists the dead node), and stats count
// the survivors.
func TestClusterQueryAfterSIGKILL(t *testing.T) {
	c := embeddedCluster(t)
	for i := range c.nodes {
		dialWS(t, c.addr(i), "?user=dora&device=d"+fmt.Sprint(i+1)).welcome("dora")
	}
	user := func(addr string) (int, map[string]any) {
		status, body := get(t, addr, "/v1/users/dora")
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("GET /v1/users/dora: %v: %s", err, body)
		}
		return status, out
	}
	nodesOf := func(out map[string]any) []string {
		var ids []string
		for _, cn := range out["conns"].([]any) {
			ids = append(ids, cn.(map[string]any)["node"].(string))
		}
		slices.Sort(ids)
		return ids
	}
	for i := range c.nodes {
		eventually(t, fmt.Sprintf("dora on every node, seen from node %d", i+1), func() bool {
			status, out := user(c.addr(i))
			return status == 200 && len(out["conns"].([]any)) == 3
		})
	}

	// The victim leads the registry's bucket.
	m := clientsRE.FindStringSubmatch(c.nodes[0].proc.waitLine(`msg="embedded NATS server clustering"`))
	if m == nil {
		t.Fatal("node 1 logged no client URL of its embedded NATS server")
	}
	nc, err := nats.Connect(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	eventually(t, "the node registry's leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_HERALD_NODES")
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		leader = s.CachedInfo().Cluster.Leader
		return leader != ""
	})
	victim := slices.Index([]string{"node1", "node2", "node3"}, leader)
	if victim < 0 {
		t.Fatalf("the registry is led by %q", leader)
	}
	nc.Close()
	survivor := (victim + 1) % 3
	var want []string
	for i := range 3 {
		if i != victim {
			want = append(want, fmt.Sprintf("node%d", i+1))
		}
	}

	c.kill(victim)
	// The registry elects a new leader for a few seconds: every query
	// meanwhile must answer.
	killed := time.Now()
	for q := 0; q < 3 || time.Since(killed) < 8*time.Second; q++ {
		status, out := user(c.addr(survivor))
		if status != 200 || out["online"] != true || !slices.Equal(nodesOf(out), want) || out["partial"] != nil {
			t.Fatalf("GET /v1/users/dora on node %d, %d queries after node %d was killed: %d %v; want dora's connections on %v",
				survivor+1, q, victim+1, status, out, want)
		}
	}
	statusCode, body := get(t, c.addr(survivor), "/v1/stats")
	var stats map[string]any
	if err := json.Unmarshal([]byte(body), &stats); statusCode != 200 || err != nil || stats["nodes"] != float64(2) {
		t.Fatalf("GET /v1/stats after the kill: %d %s; want 2 nodes", statusCode, body)
	}
}
