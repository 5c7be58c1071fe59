package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// Step is one publish rate of the knee search.
type Step struct {
	Rate           int     `json:"rate"` // target pushes per second
	PushesPerSec   float64 `json:"pushes_per_sec"`
	DeliveriesPerS float64 `json:"deliveries_per_sec"`
	Lost           int64   `json:"lost"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	ServerCPU      float64 `json:"server_cpu_cores"`
	// Past says why the step is past the knee: "p99", "lost" or
	// "behind" (the publisher did not reach 90 % of the rate); "" within.
	Past string `json:"past,omitempty"`
}

// rooms is the workload's room count: Conns × Joins memberships in rooms
// of RoomSize members.
func (o Options) rooms() int {
	return max(1, o.Conns*max(1, o.Joins)/max(1, o.RoomSize))
}

// nodes are the base URLs clients connect to.
func (o Options) nodes() []string {
	if len(o.Connect) > 0 {
		return o.Connect
	}
	return []string{o.URL}
}

// workloadArgs are the worker flags that put client i in its rooms.
func (c *coordinator) workloadArgs() []string {
	if c.opts.Scenario != "workload" {
		return nil
	}
	return []string{"--rooms", strconv.Itoa(c.opts.rooms()), "--joins", strconv.Itoa(max(1, c.opts.Joins))}
}

// roomSizes counts the members of each workload room, placed as
// WorkerConfig.rooms places them.
func (o Options) roomSizes() []uint64 {
	sizes := make([]uint64, o.rooms())
	joins := min(max(1, o.Joins), len(sizes))
	for i := range o.Conns {
		for k := range joins {
			sizes[(i*joins+k)%len(sizes)]++
		}
	}
	return sizes
}

// workload is the table of other servers' published benchmarks: Conns
// clients connect (the connect rate is the ramp-up), each joins Joins of
// Conns×Joins/RoomSize rooms, then Concurrency publishers push Rate
// messages per second to the rooms in turn for Duration, through URL or
// (PublishAll) every node in turn. It reports messages in, deliveries
// out, the delivery latency and the servers' CPU and RSS.
func (c *coordinator) workload(ctx context.Context) (Result, error) {
	rate, err := c.connect()
	if err != nil {
		return Result{}, err
	}
	c.settle()
	if _, err := c.all("reset"); err != nil {
		return Result{}, err
	}
	pubs := []*herald.Client{c.api}
	if c.opts.PublishAll {
		pubs = nil
		for _, u := range c.opts.nodes() {
			api, err := herald.NewClient(u, c.opts.Key, herald.WithHTTPClient(c.http), herald.WithMaxAttempts(1), herald.WithAutoID(false))
			if err != nil {
				return Result{}, err
			}
			pubs = append(pubs, api)
		}
	}
	sizes := c.opts.roomSizes()
	n := int(c.opts.Duration.Seconds() * float64(max(1, c.opts.Rate)))
	var want atomic.Uint64
	_, cpu0, err := c.sampleServers()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	sent, err := c.publish(ctx, n, max(1, c.opts.Rate), max(1, c.opts.Concurrency), func(k int) error {
		room := k % len(sizes)
		// Unordered indexes: concurrent publishers and several nodes do
		// not keep a room's order.
		req := herald.PushRequest{To: herald.Target{Rooms: []string{"w" + strconv.Itoa(room)}},
			Data: json.RawMessage(c.payload(1<<40 + c.index.Add(1)))}
		if _, err := pubs[k%len(pubs)].Push(ctx, req); err != nil {
			return err
		}
		want.Add(sizes[room])
		return nil
	})
	pushed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	r, err := c.waitDelivered(want.Load(), 5*time.Second)
	if err != nil {
		return Result{}, err
	}
	rss, cpu1, err := c.sampleServers()
	if err != nil {
		return Result{}, err
	}
	elapsed := max(pushed, time.Unix(0, r.LastNS).Sub(start))
	h := r.Hist
	return Result{Nodes: len(c.opts.nodes()), Joins: c.opts.Conns * min(max(1, c.opts.Joins), len(sizes)), Rooms: len(sizes),
		ConnectPerSec: rate, Pushes: sent, PushesPerSec: float64(sent) / pushed.Seconds(),
		Deliveries: r.Received, Expected: want.Load(), Lost: int64(want.Load()) - int64(r.Received), Dups: r.Dups,
		DeliveriesPerS: float64(r.Received) / elapsed.Seconds(), Seconds: pushed.Seconds(),
		P50ms: ms(h.Quantile(.5)), P95ms: ms(h.Quantile(.95)), P99ms: ms(h.Quantile(.99)), Maxms: ms(h.Quantile(1)),
		ServerCPU: (cpu1 - cpu0).Seconds() / elapsed.Seconds(), ServerRSSMiB: float64(rss) / (1 << 20)}, nil
}

// publish calls fn(k) for k in [0, n) from conc goroutines, call k due at
// k/rate seconds from the start, and returns how many calls succeeded.
func (c *coordinator) publish(ctx context.Context, n, rate, conc int, fn func(k int) error) (int, error) {
	start := time.Now()
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n || ctx.Err() != nil {
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(k) * time.Second / time.Duration(rate))))
				if err := fn(k); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // the others stop too
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return int(done.Load()), first
}

// knee puts every client in one room and, after a short warm-up, steps
// the publish rate up from Rate by Step, Duration per step, until the
// delivery p99 passes Limit (twice in a row at one rate), a message is
// lost or the publisher falls behind. The knee is the last rate within.
func (c *coordinator) knee(ctx context.Context) (Result, error) {
	if _, err := c.connect(); err != nil {
		return Result{}, err
	}
	c.settle()
	limit := c.opts.Limit
	if limit <= 0 {
		limit = 100 * time.Millisecond
	}
	factor := c.opts.Step
	if factor <= 1 {
		factor = 1.5
	}
	res := Result{Nodes: len(c.opts.nodes())}
	var knee, over *Step
	// A warm-up at the first rate, not counted: the first pushes after
	// the connects meet their garbage and cold caches.
	if _, err := c.kneeStep(ctx, max(1, c.opts.Rate), min(c.opts.Duration, 3*time.Second)); err != nil {
		return res, err
	}
	measure := func(rate int) (Step, error) {
		st, err := c.kneeStep(ctx, rate, c.opts.Duration)
		switch {
		case err != nil:
		case st.Lost != 0:
			st.Past = "lost"
		case st.PushesPerSec < 0.9*float64(rate):
			st.Past = "behind"
		case st.P99ms > ms(limit):
			st.Past = "p99"
		}
		if err == nil {
			res.Steps = append(res.Steps, st)
			fmt.Fprintf(c.opts.Progress, "  %d/s: %.1f pushes/s, %.0f deliveries/s, p50 %.1f ms, p99 %.1f ms, lost %d, server CPU %.2f cores%s\n",
				rate, st.PushesPerSec, st.DeliveriesPerS, st.P50ms, st.P99ms, st.Lost, st.ServerCPU, map[bool]string{true: "", false: "  (past the knee: " + st.Past + ")"}[st.Past == ""])
		}
		return st, err
	}
	try := func(rate int) error {
		st, err := measure(rate)
		if err == nil && st.Past == "p99" {
			// Tried again: on a shared machine one neighbour's burst
			// must not end the search.
			st, err = measure(rate)
		}
		if err != nil {
			return err
		}
		if st.Past == "" {
			knee = &st
		} else {
			over = &st
		}
		return nil
	}
	// Step up until a rate fails, then halve the gap twice.
	for rate := max(1, c.opts.Rate); over == nil && len(res.Steps) < 30; rate = int(math.Ceil(float64(rate) * factor)) {
		if err := try(rate); err != nil {
			return res, err
		}
	}
	for range 2 {
		if knee == nil || over == nil || over.Rate-knee.Rate < 2 {
			break
		}
		if err := try((knee.Rate + over.Rate) / 2); err != nil {
			return res, err
		}
	}
	res.Knee, res.Over = knee, over
	return res, nil
}

// kneeStep pushes to the room at rate for d and measures the deliveries.
func (c *coordinator) kneeStep(ctx context.Context, rate int, d time.Duration) (Step, error) {
	if _, err := c.all("reset"); err != nil {
		return Step{}, err
	}
	n := max(1, int(d.Seconds()*float64(rate)))
	_, cpu0, err := c.sampleServers()
	if err != nil {
		return Step{}, err
	}
	start := time.Now()
	// One publisher through URL: the room's messages stay in order, which
	// the workers check.
	if err := c.pace(ctx, n, rate, func() error { return c.pushRoom(ctx, c.index.Add(1)) }); err != nil {
		return Step{}, err
	}
	sent := time.Since(start)
	want := uint64(n) * uint64(c.opts.Conns)
	r, err := c.waitDelivered(want, 5*time.Second)
	if err != nil {
		return Step{}, err
	}
	_, cpu1, err := c.sampleServers()
	if err != nil {
		return Step{}, err
	}
	if r.Dups > 0 {
		return Step{}, fmt.Errorf("bench: %d messages duplicated or out of order at %d pushes/s", r.Dups, rate)
	}
	elapsed := max(sent, time.Unix(0, r.LastNS).Sub(start))
	return Step{Rate: rate, PushesPerSec: float64(n) / sent.Seconds(), DeliveriesPerS: float64(r.Received) / elapsed.Seconds(),
		Lost: int64(want) - int64(r.Received), P50ms: ms(r.Hist.Quantile(.5)), P99ms: ms(r.Hist.Quantile(.99)),
		ServerCPU: (cpu1 - cpu0).Seconds() / elapsed.Seconds()}, nil
}

// sampleServers sums RSS and CPU time over ServerPIDs, or reads the one
// server (ServerPID, else URL's /metrics), or with several nodes and no
// process ids sums every node's /metrics.
func (c *coordinator) sampleServers() (int64, time.Duration, error) {
	var rss int64
	var cpu time.Duration
	add := func(r int64, t time.Duration, err error) error {
		rss += r
		cpu += t
		return err
	}
	switch {
	case len(c.opts.ServerPIDs) > 0:
		for _, pid := range c.opts.ServerPIDs {
			if err := add(procSample(pid)); err != nil {
				return 0, 0, err
			}
		}
	case c.opts.ServerPID > 0 || len(c.opts.Connect) == 0:
		return c.serverSample()
	default:
		for _, u := range c.opts.Connect {
			if err := add(metricsSample(c.http, u)); err != nil {
				return 0, 0, err
			}
		}
	}
	return rss, cpu, nil
}

// get is *s, or the zero Step when there is none.
func (s *Step) get() Step {
	if s == nil {
		return Step{}
	}
	return *s
}

// settle gives a cluster a second to spread the interest of the rooms just
// joined to every node (NATS routes carry it asynchronously).
func (c *coordinator) settle() {
	if len(c.opts.nodes()) > 1 {
		time.Sleep(time.Second)
	}
}
