package server

import (
	"fmt"
	"slices"
	"testing"
)

// recentIDs returns the ids and nodes of GET /v1/messages's answer.
func recentIDs(out map[string]any) (ids, nodes []string) {
	for _, m := range out["messages"].([]any) {
		e := m.(map[string]any)
		ids = append(ids, e["id"].(string))
		nodes = append(nodes, e["node"].(string))
	}
	return ids, nodes
}

// TestRecentMessagesMergeAcrossNodes: three nodes each accept pushes; any
// node lists them all, newest first with the node that took each, paged
// by cursor without repeats or gaps; a stored push says so.
func TestRecentMessagesMergeAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	var want []string // oldest first
	for i := range 9 {
		n := nodes[i%3]
		body := map[string]any{"to": map[string]any{"users": []string{fmt.Sprint("u", i)}}, "data": i, "offline": i == 8}
		want = append(want, n.push("", body))
	}
	slices.Reverse(want)
	out := nodes[1].ok(200, "GET", "/v1/messages?limit=100", nil)
	ids, from := recentIDs(out)
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("recent ids %v, want %v", ids, want)
	}
	if _, more := out["next"]; more {
		t.Fatalf("a complete list names a next page: %v", out["next"])
	}
	// Pushed round-robin: every third message came from the same node.
	for i := range from {
		if from[i] == "" || from[i] != from[i%3] || i%3 > 0 && from[i] == from[i-1] {
			t.Fatalf("messages came from nodes %v", from)
		}
	}
	first := out["messages"].([]any)[0].(map[string]any)
	to := first["to"].(map[string]any)
	if first["offline"] != true || to["users"].(float64) != 1 || to["first"] != "u8" {
		t.Fatalf("newest message %v", first)
	}
	var paged []string
	cursor := ""
	for range 10 {
		out := nodes[2].ok(200, "GET", "/v1/messages?limit=4&cursor="+cursor, nil)
		page, _ := recentIDs(out)
		paged = append(paged, page...)
		next, _ := out["next"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Fatalf("paged %v, want %v", paged, want)
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?cursor=nope"} {
		if status, out := nodes[0].call("GET", "/v1/messages"+bad, "", nil); status != 400 || errCode(out) != "invalid_argument" {
			t.Errorf("GET /v1/messages%s: %d %v", bad, status, out)
		}
	}
}

// TestStatsHistorySumsNodes: the history endpoint answers points at once
// (each node samples when it starts), and its latest point sums the
// connections of every node.
func TestStatsHistorySumsNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, nil)
	out := nodes[0].ok(200, "GET", "/v1/stats/history", nil)
	if out["interval"].(float64) != 5 || len(out["points"].([]any)) == 0 {
		t.Fatalf("history at start: %v", out)
	}
	for i, n := range nodes {
		n.dial(fmt.Sprint("user=h", i), dialOpt{})
	}
	// The next slot (5 s at most) counts the three connections.
	waitFor(t, func() bool {
		pts := nodes[2].ok(200, "GET", "/v1/stats/history", nil)["points"].([]any)
		last := pts[len(pts)-1].(map[string]any)
		return last["conns"].(float64) == 3 && last["users"].(float64) == 3
	})
	pts := nodes[1].ok(200, "GET", "/v1/stats/history", nil)["points"].([]any)
	last := pts[len(pts)-1].(map[string]any)["at"].(float64)
	since := nodes[1].ok(200, "GET", fmt.Sprintf("/v1/stats/history?since=%d", int64(last)-1), nil)["points"].([]any)
	if len(since) == 0 || since[0].(map[string]any)["at"].(float64) != last {
		t.Fatalf("points since just before the last one's time: %v", since)
	}
	if status, out := nodes[0].call("GET", "/v1/stats/history?since=-1", "", nil); status != 400 {
		t.Fatalf("negative since: %d %v", status, out)
	}
}
