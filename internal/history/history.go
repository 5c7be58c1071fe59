package history

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"
)

// Interval is the time between two samples, and the width of a slot.
const Interval = 5 * time.Second

// Samples is how many points a ring keeps: 15 minutes.
const Samples = 180

// MaxApps bounds the apps a node keeps history for; a ring of an app that
// was idle for the whole window is dropped.
const MaxApps = 256

// Reading is a node's counts at one moment, for one app or in total.
type Reading struct {
	Conns, Users                     int
	Pushes, Deliveries, Stored, Acks uint64 // cumulative since the node started
	Backlog                          uint64 // webhook events not yet delivered (cluster-wide)
}

// Point is one slot: the counts at its end and the rates over it.
type Point struct {
	At         int64   `json:"at"` // the slot's end, in Unix milliseconds (a multiple of Interval)
	Conns      int     `json:"conns"`
	Users      int     `json:"users"`
	Pushes     float64 `json:"pushes"` // per second
	Deliveries float64 `json:"deliveries"`
	Stored     float64 `json:"stored"`
	Acks       float64 `json:"acks"`
	Backlog    uint64  `json:"webhook_backlog"`
}

// Reader reads the node's counts, keyed by app ("": every app).
type Reader func(ctx context.Context) map[string]Reading

// Sampler samples a node's counts. mu guards every field.
type Sampler struct {
	read   Reader
	now    func() time.Time
	mu     sync.Mutex
	prev   map[string]Reading
	prevAt time.Time
	rings  map[string]*ring
}

// ring is one app's last Samples points; buf[(start+i)%Samples] is the
// i-th oldest of n.
type ring struct {
	buf      [Samples]Point
	start, n int
	idle     int // trailing points with nothing in them
}

// New builds a sampler over read.
func New(read Reader) (*Sampler, error) {
	if read == nil {
		return nil, errors.New("history: missing reader")
	}
	return &Sampler{read: read, now: time.Now, prevAt: time.Now(), rings: map[string]*ring{}}, nil
}

// Run samples now, then at the end of every slot, until stop closes or
// ctx ends; each read is bounded by timeout.
func (s *Sampler) Run(ctx context.Context, stop <-chan struct{}, timeout time.Duration) {
	for {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		s.Sample(rctx)
		cancel()
		now := s.now()
		t := time.NewTimer(now.Truncate(Interval).Add(Interval).Sub(now))
		select {
		case <-stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Sample takes one sample now.
func (s *Sampler) Sample(ctx context.Context) {
	cur := s.read(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// A point is named by the slot boundary at or before now: Run wakes
	// just after one, and the point holds the counts there and the rates
	// over the slot that ended there.
	at := now.Truncate(Interval).UnixMilli()
	secs := max(0, now.Sub(s.prevAt).Seconds())
	if _, ok := cur[""]; !ok {
		cur[""] = Reading{}
	}
	for app, r := range s.rings {
		if _, ok := cur[app]; ok {
			continue
		}
		if r.idle >= Samples {
			delete(s.rings, app) // idle for the whole window
		} else {
			cur[app] = Reading{} // gone: its counts are 0 now
		}
	}
	for app, r := range cur {
		g, ok := s.rings[app]
		if !ok {
			if app != "" && s.apps() >= MaxApps {
				continue
			}
			g = &ring{}
			s.rings[app] = g
		}
		g.add(point(at, s.prev[app], r, secs))
	}
	s.prev, s.prevAt = cur, now
}

// apps is how many apps have a ring (the totals' ring "" is not one).
func (s *Sampler) apps() int {
	n := len(s.rings)
	if _, ok := s.rings[""]; ok {
		n--
	}
	return n
}

// point is the slot ending at `at` from the readings at its two ends,
// secs apart.
func point(at int64, prev, cur Reading, secs float64) Point {
	rate := func(a, b uint64) float64 {
		if secs == 0 || b < a {
			return 0
		}
		return float64(b-a) / secs
	}
	p := Point{At: at, Conns: cur.Conns, Users: cur.Users, Backlog: cur.Backlog,
		Pushes: rate(prev.Pushes, cur.Pushes), Deliveries: rate(prev.Deliveries, cur.Deliveries),
		Stored: rate(prev.Stored, cur.Stored), Acks: rate(prev.Acks, cur.Acks)}
	return p
}

// add appends p, replacing the last point when it has the same slot.
func (g *ring) add(p Point) {
	if p == (Point{At: p.At}) {
		g.idle++
	} else {
		g.idle = 0
	}
	if g.n > 0 {
		last := &g.buf[(g.start+g.n-1)%Samples]
		if last.At == p.At {
			*last = p
			return
		}
	}
	if g.n < Samples {
		g.buf[(g.start+g.n)%Samples] = p
		g.n++
		return
	}
	g.buf[g.start] = p
	g.start = (g.start + 1) % Samples
}

// Points returns app's points after since (Unix milliseconds; 0: all),
// oldest first ("": the node's totals).
func (s *Sampler) Points(app string, since int64) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.rings[app]
	if !ok {
		return []Point{}
	}
	out := make([]Point, 0, g.n)
	for i := range g.n {
		if p := g.buf[(g.start+i)%Samples]; p.At > since {
			out = append(out, p)
		}
	}
	return out
}

// Merge sums the nodes' points slot by slot, oldest first. The webhook
// backlog is cluster-wide already: a slot takes the largest reading.
func Merge(nodes ...[]Point) []Point {
	bySlot := map[int64]*Point{}
	for _, list := range nodes {
		for _, p := range list {
			m, ok := bySlot[p.At]
			if !ok {
				m = &Point{At: p.At}
				bySlot[p.At] = m
			}
			m.Conns += p.Conns
			m.Users += p.Users
			m.Pushes += p.Pushes
			m.Deliveries += p.Deliveries
			m.Stored += p.Stored
			m.Acks += p.Acks
			m.Backlog = max(m.Backlog, p.Backlog)
		}
	}
	out := make([]Point, 0, len(bySlot))
	for _, at := range slices.Sorted(maps.Keys(bySlot)) {
		out = append(out, *bySlot[at])
	}
	return out
}
