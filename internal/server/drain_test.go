package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestDrain: a drain through the API makes the node refuse new clients
// (503) and turn not-ready, leaves the other nodes' node list and route at
// once, closes its clients with 4000 gradually — observed as intermediate
// counts of closed clients, not as timings — while cluster operations
// still see them, then the node exits cleanly.
func TestDrain(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	idA := nodeIDOf(t, a)
	const n = 6
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = a.dial("user=drained", dialOpt{})
	}
	if out := b.ok(400, "POST", "/v1/admin/drain", `{"drain_time":"-1s"}`); errCode(out) != "invalid_argument" {
		t.Fatalf("negative drain time: %v", out)
	}
	out := a.ok(202, "POST", "/v1/admin/drain", `{"drain_time":"3s"}`)
	if out["node"] != idA || out["conns"] != float64(n) || out["drain_time"] != "3s" {
		t.Fatalf("drain answer: %v", out)
	}
	if out := a.ok(202, "POST", "/v1/admin/drain", nil); out["already"] != true {
		t.Fatalf("second drain answer: %v", out)
	}
	if out := a.ok(503, "GET", "/readyz", nil); out["reason"] != "node is draining" {
		t.Fatalf("readyz while draining: %v", out)
	}
	resp, err := http.Get(a.base + "/v1/ws?user=late")
	if err != nil {
		t.Fatal(err)
	}
	var refused map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	if resp.StatusCode != 503 || errCode(refused) != "unavailable" {
		t.Fatalf("connect while draining: %d %v", resp.StatusCode, refused)
	}
	waitFor(t, func() bool { return !slices.Contains(b.nodeIDs(), idA) })
	if out := b.ok(200, "GET", "/v1/route", nil); out["node"] == idA {
		t.Fatalf("route names the draining node: %v", out)
	}

	// The clients close one by one, each with 4000.
	codes := make([]int, n)
	closed := 0
	var seen []int     // distinct counts of closed clients observed
	stillSeen := false // the rest, seen from another node meanwhile
	waitFor(t, func() bool {
		for i, c := range clients {
			if codes[i] != 0 {
				continue
			}
			select {
			case code := <-c.closed:
				codes[i] = code
				closed++
			default:
			}
		}
		if len(seen) == 0 || seen[len(seen)-1] != closed {
			seen = append(seen, closed)
			if closed > 0 && closed < n && len(b.ok(200, "GET", "/v1/users/drained", nil)["conns"].([]any)) > 0 {
				stillSeen = true
			}
		}
		return closed == n
	})
	for i, code := range codes {
		if code != 4000 {
			t.Fatalf("client %d closed with %d, want 4000", i, code)
		}
	}
	intermediate := 0
	for _, k := range seen {
		if k > 0 && k < n {
			intermediate++
		}
	}
	if intermediate < 2 {
		t.Fatalf("closed counts observed %v: the clients were not closed gradually", seen)
	}
	if !stillSeen {
		t.Fatal("while draining, the node's remaining clients were never seen from another node")
	}
	if err := a.exited(); err != nil {
		t.Fatalf("drained node exited with %v", err)
	}
}
