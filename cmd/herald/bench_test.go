package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/bench"
)

// TestBenchWorkload runs herald bench workload briefly against a real node
// and a real three-node cluster (clients on every node, pushes through
// every node): every room push reaches each of the room's members once,
// and the report's counts agree with each other.
func TestBenchWorkload(t *testing.T) {
	const conns, joins, roomSize, rate = 60, 2, 20, 40 // 6 rooms of 20; 40 pushes in 1 s
	check := func(t *testing.T, nodes int, args ...string) {
		t.Helper()
		r := run(t, nil, append([]string{"bench", "workload", "--conns", "60", "--joins", "2", "--room-size", "20",
			"--rate", "40", "--duration", "1s", "--concurrency", "4", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("herald bench workload: %v", r)
		}
		var res []bench.Result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res) != 1 {
			t.Fatalf("bench output %q: %v", r.stdout, err)
		}
		got := res[0]
		want := uint64(rate * roomSize) // equal rooms: every push has roomSize members
		if got.Nodes != nodes || got.Conns != conns || got.Joins != conns*joins || got.Rooms != conns*joins/roomSize ||
			got.Pushes != rate || got.Expected != want || got.Deliveries != want || got.Lost != 0 || got.Dups != 0 {
			t.Fatalf("report %+v; want %d nodes, %d joins, %d pushes, %d deliveries, none lost or duplicated", got, nodes, conns*joins, rate, want)
		}
		if got.ConnectPerSec <= 0 || got.DeliveriesPerS <= 0 || got.P99ms < got.P50ms || got.ServerRSSMiB <= 0 {
			t.Fatalf("report %+v: rates, quantiles or RSS missing", got)
		}
	}

	t.Run("one node", func(t *testing.T) {
		_, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", t.TempDir())
		check(t, 1, "--url", "http://"+addr, "--workers", "2")

		// The knee search on the same node: every step's pushes all reach
		// the room (a duplicate fails the run), and the step that ends
		// the search says why.
		r := run(t, nil, "bench", "knee", "--url", "http://"+addr, "--conns", "20", "--rate", "50", "--step", "4",
			"--duration", "1s", "--limit", "1s", "--json")
		var res []bench.Result
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res) != 1 || len(res[0].Steps) == 0 {
			t.Fatalf("herald bench knee: %v", r)
		}
		for _, st := range res[0].Steps {
			if st.Lost != 0 {
				t.Errorf("knee step %+v lost messages", st)
			}
		}
		if k, o := res[0].Knee, res[0].Over; (k != nil && k.Past != "") || (o != nil && o.Past == "") {
			t.Errorf("knee %+v, over %+v: the knee must be within the limits, the next step past them", k, o)
		}
	})
	t.Run("three nodes", func(t *testing.T) {
		c := embeddedCluster(t)
		var urls []string
		for i := range 3 {
			urls = append(urls, "http://"+c.addr(i))
		}
		check(t, 3, "--url", urls[0], "--connect", strings.Join(urls, ","), "--publish-all")
	})
}
