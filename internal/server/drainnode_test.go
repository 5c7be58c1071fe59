package server

import (
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// TestDrainAnotherNode: POST /v1/admin/drain with "node" drains the named
// node from any node; GET /v1/nodes?draining=1 still lists it, marked
// draining, while /v1/nodes leaves it out; a node that is not there is
// 404. Every node reports its uptime, CPU and memory.
func TestDrainAnotherNode(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	idA := nodeIDOf(t, a)
	waitFor(t, func() bool {
		for _, e := range b.ok(200, "GET", "/v1/nodes", nil)["nodes"].([]any) {
			m := e.(map[string]any)
			if m["rss"] == nil || m["uptime"] == nil {
				return false
			}
			if rss := m["rss"].(float64); rss <= 0 {
				t.Fatalf("rss %v", rss)
			}
		}
		return true
	})
	// Two clients: the drain closes one at once, the other in 30 minutes,
	// so the node stays up, draining, while the test looks.
	c1, c2 := a.dial("user=moved", dialOpt{}), a.dial("user=moved", dialOpt{})
	if out := b.ok(404, "POST", "/v1/admin/drain", `{"node":"nosuchnode"}`); errCode(out) != "not_found" {
		t.Fatalf("drain of an unknown node: %v", out)
	}
	if out := b.ok(400, "GET", "/v1/nodes?draining=maybe", nil); errCode(out) != "invalid_argument" {
		t.Fatalf("bad draining parameter: %v", out)
	}
	out := b.ok(202, "POST", "/v1/admin/drain", `{"node":"`+idA+`","drain_time":"1h"}`)
	if out["node"] != idA || out["conns"] != float64(2) || out["drain_time"] != "1h0m0s" {
		t.Fatalf("drain answer: %v", out)
	}
	waitFor(t, func() bool { return !slices.Contains(b.nodeIDs(), idA) })
	listed := false
	for _, e := range b.ok(200, "GET", "/v1/nodes?draining=1", nil)["nodes"].([]any) {
		if m := e.(map[string]any); m["id"] == idA {
			listed = m["draining"] == true
		}
	}
	if !listed {
		t.Fatalf("/v1/nodes?draining=1 does not list the draining node %s as draining: %v", idA, b.ok(200, "GET", "/v1/nodes?draining=1", nil))
	}
	if out := a.ok(503, "GET", "/readyz", nil); out["reason"] != "node is draining" {
		t.Fatalf("readyz of the drained node: %v", out)
	}
	select {
	case code := <-c1.closed:
		if code != protocol.CloseDraining {
			t.Fatalf("close code %d", code)
		}
	case code := <-c2.closed:
		if code != protocol.CloseDraining {
			t.Fatalf("close code %d", code)
		}
	case <-time.After(wait):
		t.Fatal("no client of the drained node was closed")
	}
	_, _ = c1.conn.Close(), c2.conn.Close()
}
