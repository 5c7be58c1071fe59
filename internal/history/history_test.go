package history

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// clocked is a sampler over readings the test sets, on a clock it moves.
func clocked(t *testing.T, read map[string]Reading) (*Sampler, *time.Time) {
	t.Helper()
	s, err := New(func(context.Context) map[string]Reading {
		out := map[string]Reading{}
		for k, v := range read {
			out[k] = v
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_000).Truncate(Interval)
	s.now = func() time.Time { return now }
	s.prevAt = now
	return s, &now
}

// TestRingKeepsFifteenMinutesOfRates: each sample is a point at its slot's
// end with the counters' rates over the slot; past Samples the oldest go.
func TestRingKeepsFifteenMinutesOfRates(t *testing.T) {
	read := map[string]Reading{}
	s, now := clocked(t, read)
	for i := range Samples + 20 {
		*now = now.Add(Interval)
		read[""] = Reading{Conns: i, Users: i / 2, Pushes: uint64(10 * i), Deliveries: uint64(30 * i), Stored: uint64(5 * i), Acks: uint64(i), Backlog: 7}
		read["a"] = Reading{Conns: 1, Pushes: uint64(10 * i)}
		s.Sample(context.Background())
	}
	pts := s.Points("", 0)
	if len(pts) != Samples {
		t.Fatalf("%d points, want %d", len(pts), Samples)
	}
	last := pts[len(pts)-1]
	if last.At != now.UnixMilli() || last.Conns != Samples+19 || last.Pushes != 2 || last.Deliveries != 6 || last.Stored != 1 || last.Acks != 0.2 || last.Backlog != 7 {
		t.Fatalf("last point %+v", last)
	}
	if pts[0].At != now.Add(-(Samples-1)*Interval).UnixMilli() {
		t.Fatalf("oldest point at %d", pts[0].At)
	}
	if got := s.Points("", last.At-Interval.Milliseconds()); len(got) != 1 || got[0] != last {
		t.Fatalf("points since the one before the last: %+v", got)
	}
	if a := s.Points("a", 0); len(a) != Samples || a[len(a)-1].Pushes != 2 {
		t.Fatalf("app a: %d points, last %+v", len(a), a[len(a)-1])
	}
}

// TestSlotIsReplacedAndIdleAppsGo: two samples in one slot leave one
// point; an app with nothing for a whole window is dropped.
func TestSlotIsReplacedAndIdleAppsGo(t *testing.T) {
	read := map[string]Reading{"a": {Conns: 2}}
	s, now := clocked(t, read)
	*now = now.Add(Interval / 2)
	s.Sample(context.Background())
	read["a"] = Reading{Conns: 3}
	*now = now.Add(Interval / 4)
	s.Sample(context.Background())
	if pts := s.Points("a", 0); len(pts) != 1 || pts[0].Conns != 3 || pts[0].At%Interval.Milliseconds() != 0 {
		t.Fatalf("one slot gave %+v", pts)
	}
	delete(read, "a")
	for range Samples + 1 {
		*now = now.Add(Interval)
		s.Sample(context.Background())
	}
	s.mu.Lock()
	_, kept := s.rings["a"]
	s.mu.Unlock()
	if kept {
		t.Fatal("an app idle for the whole window kept its ring")
	}
	if pts := s.Points("a", 0); len(pts) != 0 {
		t.Fatalf("dropped app has points %+v", pts)
	}
}

// TestAppsAreBounded: past MaxApps, new apps get no ring; the totals do.
func TestAppsAreBounded(t *testing.T) {
	read := map[string]Reading{}
	for i := range MaxApps + 10 {
		read[fmt.Sprint("app", i)] = Reading{Conns: 1}
	}
	s, now := clocked(t, read)
	*now = now.Add(Interval)
	s.Sample(context.Background())
	s.mu.Lock()
	n := len(s.rings)
	s.mu.Unlock()
	if n != MaxApps+1 {
		t.Fatalf("%d rings, want %d", n, MaxApps+1)
	}
	if len(s.Points("", 0)) != 1 {
		t.Fatal("no total point")
	}
}

// TestMergeSumsSlots: the nodes' points of one slot are summed; the
// cluster-wide backlog takes the largest reading.
func TestMergeSumsSlots(t *testing.T) {
	a := []Point{{At: 5000, Conns: 1, Pushes: 2, Backlog: 4}, {At: 10000, Conns: 2, Users: 1, Acks: 1, Backlog: 3}}
	b := []Point{{At: 10000, Conns: 5, Users: 2, Deliveries: 3, Stored: 1, Backlog: 6}, {At: 15000, Conns: 5}}
	got := Merge(a, b)
	want := []Point{{At: 5000, Conns: 1, Pushes: 2, Backlog: 4}, {At: 10000, Conns: 7, Users: 3, Deliveries: 3, Stored: 1, Acks: 1, Backlog: 6}, {At: 15000, Conns: 5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("merged %+v\nwant %+v", got, want)
	}
}

// TestRunSamplesAtOnceAndStops: Run takes a sample at start (a page
// opened right after has a point) and returns when stop closes.
func TestRunSamplesAtOnceAndStops(t *testing.T) {
	s, err := New(func(context.Context) map[string]Reading { return map[string]Reading{"": {Conns: 4}} })
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.Run(context.Background(), stop, time.Second); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Points("", 0)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no point after start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := s.Points("", 0)[0]; p.Conns != 4 {
		t.Fatalf("point %+v", p)
	}
	close(stop)
	<-done
}

// TestPointsAreNeverAhead: sampling a little after each boundary, as Run
// does, names each point by the boundary just passed, never a later one.
func TestPointsAreNeverAhead(t *testing.T) {
	read := map[string]Reading{"": {Conns: 1}}
	s, now := clocked(t, read)
	start := *now
	for i := 1; i <= 5; i++ {
		*now = start.Add(time.Duration(i)*Interval + 30*time.Millisecond)
		s.Sample(context.Background())
		pts := s.Points("", 0)
		last := pts[len(pts)-1]
		if want := start.Add(time.Duration(i) * Interval).UnixMilli(); last.At != want {
			t.Fatalf("sample %d at %v: point named %d, want %d (the boundary just passed)", i, *now, last.At, want)
		}
	}
}
