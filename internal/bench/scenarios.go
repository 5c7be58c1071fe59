package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/sdk/herald"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// idle opens every client (each its own user, all in one room), lets the
// server settle and reports the connect rate and RSS per connection.
func (c *coordinator) idle(ctx context.Context) (Result, error) {
	rss0, _, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	rate, err := c.connect()
	if err != nil {
		return Result{}, err
	}
	settle := c.opts.Duration
	if settle <= 0 {
		settle = 5 * time.Second
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	rss1, _, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	r, err := c.all("report")
	if err != nil {
		return Result{}, err
	}
	return Result{ConnectPerSec: rate, ServerRSSMiB: float64(rss1) / (1 << 20),
		RSSPerConnKiB: float64(rss1-rss0) / 1024 / float64(r.Conns), Lost: r.Closed}, nil
}

// broadcast sends Pushes pushes to one room holding every client, back to
// back (or at Rate per second), and measures delivery throughput and the
// server's CPU per delivery.
func (c *coordinator) broadcast(ctx context.Context) (Result, error) {
	if _, err := c.connect(); err != nil {
		return Result{}, err
	}
	conns := c.opts.Conns
	if _, err := c.all("reset"); err != nil {
		return Result{}, err
	}
	_, cpu0, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	if err := c.pace(ctx, c.opts.Pushes, c.opts.Rate, func() error { return c.pushRoom(ctx, c.index.Add(1)) }); err != nil {
		return Result{}, err
	}
	want := uint64(c.opts.Pushes) * uint64(conns)
	r, err := c.waitDelivered(want, 5*time.Second)
	if err != nil {
		return Result{}, err
	}
	_, cpu1, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	elapsed := time.Unix(0, r.LastNS).Sub(start)
	return Result{Pushes: c.opts.Pushes, Deliveries: r.Received, Expected: want, Lost: int64(want) - int64(r.Received),
		Dups: r.Dups, DeliveriesPerS: float64(r.Received) / elapsed.Seconds(), Seconds: elapsed.Seconds(),
		CPUPerMillion: (cpu1 - cpu0).Seconds() / float64(r.Received) * 1e6,
		P50ms:         ms(r.Hist.Quantile(.5)), P99ms: ms(r.Hist.Quantile(.99)), Maxms: ms(r.Hist.Quantile(1))}, nil
}

// latency pushes to the room at Rate per second for Duration and reports
// the distribution of push-sent → frame-received time.
func (c *coordinator) latency(ctx context.Context) (Result, error) {
	if _, err := c.connect(); err != nil {
		return Result{}, err
	}
	if _, err := c.all("reset"); err != nil {
		return Result{}, err
	}
	n := int(c.opts.Duration.Seconds() * float64(c.opts.Rate))
	cpu0, ccpu0, err := c.cpuTimes()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	if err := c.pace(ctx, n, c.opts.Rate, func() error { return c.pushRoom(ctx, c.index.Add(1)) }); err != nil {
		return Result{}, err
	}
	sent := time.Since(start)
	want := uint64(n) * uint64(c.opts.Conns)
	r, err := c.waitDelivered(want, 5*time.Second)
	if err != nil {
		return Result{}, err
	}
	cpu1, ccpu1, err := c.cpuTimes()
	if err != nil {
		return Result{}, err
	}
	h := r.Hist
	perM := func(d time.Duration) float64 { return d.Seconds() / float64(max(r.Received, 1)) * 1e6 }
	return Result{Pushes: n, PushesPerSec: float64(n) / sent.Seconds(), Deliveries: r.Received, Expected: want,
		Lost: int64(want) - int64(r.Received), Dups: r.Dups, Seconds: sent.Seconds(),
		CPUPerMillion: perM(cpu1 - cpu0), ClientCPUPerM: perM(ccpu1 - ccpu0),
		P50ms: ms(h.Quantile(.5)), P99ms: ms(h.Quantile(.99)), P999ms: ms(h.Quantile(.999)), Maxms: ms(h.Quantile(1))}, nil
}

// unicast pushes to random single users from Concurrency publishers for
// Duration (Batch > 0: Batch pushes per batch request; Rate > 0: that many
// pushes per second in all, evenly paced).
func (c *coordinator) unicast(ctx context.Context) (Result, error) {
	if _, err := c.connect(); err != nil {
		return Result{}, err
	}
	if _, err := c.all("reset"); err != nil {
		return Result{}, err
	}
	c.live.Store(0)
	conc := max(1, c.opts.Concurrency)
	var mu sync.Mutex
	api := newHist()
	pushes := 0
	var firstErr error
	_, cpu0, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	deadline := time.Now().Add(c.opts.Duration)
	start := time.Now()
	var sent atomic.Int64 // requests started, for pacing
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := newHist()
			n := 0
			var err error
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if c.opts.Rate > 0 {
					per := max(1, c.opts.Batch)
					due := start.Add(time.Duration(sent.Add(1)-1) * time.Duration(per) * time.Second / time.Duration(c.opts.Rate))
					time.Sleep(time.Until(due))
				}
				if c.opts.Stream {
					n, err = c.streamPushes(ctx, deadline, &local)
					break
				}
				t0 := time.Now()
				if c.opts.Batch > 0 {
					err = c.postBatch(ctx)
					n += c.opts.Batch
				} else {
					err = c.pushUser(ctx, c.target(), 1<<40+c.index.Add(1))
					n++
				}
				if err != nil {
					break
				}
				local.Add(time.Since(t0))
			}
			mu.Lock()
			api.Merge(local)
			pushes += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	pushed := time.Since(start)
	if firstErr != nil {
		return Result{}, firstErr
	}
	want := c.live.Load() // pushes to users without a connection are not delivered
	r, err := c.waitDelivered(uint64(want), 5*time.Second)
	if err != nil {
		return Result{}, err
	}
	_, cpu1, err := c.serverSample()
	if err != nil {
		return Result{}, err
	}
	elapsed := max(pushed, time.Unix(0, r.LastNS).Sub(start))
	return Result{Pushes: pushes, PushesPerSec: float64(pushes) / pushed.Seconds(), Deliveries: r.Received,
		CPUPerPushUS: (cpu1 - cpu0).Seconds() / float64(max(pushes, 1)) * 1e6,
		Expected:     uint64(want), Lost: want - int64(r.Received), Dups: r.Dups,
		DeliveriesPerS: float64(r.Received) / elapsed.Seconds(), Seconds: pushed.Seconds(),
		APIP50ms: ms(api.Quantile(.5)), APIP99ms: ms(api.Quantile(.99)),
		P50ms: ms(r.Hist.Quantile(.5)), P99ms: ms(r.Hist.Quantile(.99)), Maxms: ms(r.Hist.Quantile(1))}, nil
}

func (c *coordinator) postBatch(ctx context.Context) error {
	items := make([]herald.PushRequest, c.opts.Batch)
	for i := range items {
		items[i] = c.userPush(c.target(), 1<<40+c.index.Add(1))
	}
	return c.pushBatch(ctx, items)
}

// churn connects every client and drops them all at once, Rounds times,
// and reports the connect rate and how long the server took to let go of
// every connection.
func (c *coordinator) churn(ctx context.Context) (Result, error) {
	var res Result
	rounds := max(1, c.opts.Rounds)
	for round := 1; round <= rounds; round++ {
		rate, err := c.connect()
		if err != nil {
			return res, err
		}
		res.ConnectPerSec += rate / float64(rounds)
		start := time.Now()
		if _, err := c.all("close"); err != nil {
			return res, err
		}
		for {
			st, err := c.api.Stats(ctx)
			if err != nil {
				return res, err
			}
			if st.Conns == 0 {
				break
			}
			if time.Since(start) > time.Minute {
				return res, fmt.Errorf("bench: server still holds %d connections a minute after the mass disconnect", st.Conns)
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(start).Seconds()
		res.DisconnectS = max(res.DisconnectS, d)
		fmt.Fprintf(c.opts.Progress, "  round %d: all %d gone in %.2fs\n", round, c.opts.Conns, d)
	}
	return res, nil
}

// pace calls fn n times, back to back (rate 0) or rate times per second,
// reporting progress every second.
func (c *coordinator) pace(ctx context.Context, n, rate int, fn func() error) error {
	start := time.Now()
	lastReport := start
	for i := 0; i < n; i++ {
		if rate > 0 {
			next := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
		if time.Since(lastReport) > time.Second {
			lastReport = time.Now()
			fmt.Fprintf(c.opts.Progress, "  %d/%d pushes sent\n", i+1, n)
		}
	}
	return nil
}

// resume stores Pushes offline messages for one user through the batch API,
// then connects that user and times connect → the resumed frame, checking
// that every message arrived once and in order.
func (c *coordinator) resume(ctx context.Context) (Result, error) {
	user := fmt.Sprintf("resume-%d", time.Now().UnixNano())
	n := max(1, c.opts.Pushes)
	start := time.Now()
	for sent := 0; sent < n; {
		k := min(1000, n-sent)
		items := make([]herald.PushRequest, k)
		for i := range items {
			items[i] = herald.PushRequest{To: herald.Target{Users: []string{user}}, Offline: true, Data: json.RawMessage(c.payload(int64(sent + i + 1)))}
		}
		if err := c.pushBatch(ctx, items); err != nil {
			return Result{}, err
		}
		sent += k
	}
	stored := time.Since(start)
	got, took, err := c.replayOnce(ctx, user)
	if err != nil {
		return Result{}, err
	}
	res := Result{Pushes: n, PushesPerSec: float64(n) / stored.Seconds(), ResumeMS: ms(took), Deliveries: uint64(len(got)), Expected: uint64(n)}
	res.Lost = int64(n) - int64(len(got))
	for i, idx := range got {
		if idx != int64(i+1) {
			res.Dups++
		}
	}
	return res, nil
}

// replayOnce connects as user and returns the bench indexes of the
// messages replayed before the resumed frame, and how long that took.
func (c *coordinator) replayOnce(ctx context.Context, user string) ([]int64, time.Duration, error) {
	url := "ws" + strings.TrimPrefix(c.opts.URL, "http") + "/v1/ws?user=" + user
	if c.opts.App != "" {
		tok, err := auth.Mint(c.opts.App, []byte(c.opts.TokenSecret), auth.Claims{App: c.opts.App, User: user, Expires: time.Now().Add(time.Hour)})
		if err != nil {
			return nil, 0, err
		}
		url = "ws" + strings.TrimPrefix(c.opts.URL, "http") + "/v1/ws?token=" + tok
	}
	start := time.Now()
	nc, br, _, err := ws.Dialer{Timeout: 30 * time.Second}.Dial(ctx, url)
	if err != nil {
		return nil, 0, err
	}
	defer nc.Close()
	var rd io.Reader = nc
	if br != nil {
		rd = io.MultiReader(br, nc)
	}
	r := bufio.NewReaderSize(rd, 64<<10)
	var got []int64
	var buf []byte
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		op, p, err := readFrame(r, &buf)
		if err != nil {
			return got, 0, err
		}
		if op != ws.OpText {
			continue
		}
		if bytes.HasPrefix(p, []byte(`{"type":"resumed"`)) {
			return got, time.Since(start), nil
		}
		for {
			k := bytes.Index(p, heraldWire.keyIndex)
			if k < 0 {
				break
			}
			var idx int64
			idx, p = parseInt(p[k+len(heraldWire.keyIndex):])
			got = append(got, idx)
		}
	}
}

// streamPushes is one unicast publisher over a gRPC PushStream until
// deadline: pushes go out without waiting, at most Window unanswered; each
// answer's latency (sent → answered) goes to h. It returns the pushes
// answered.
func (c *coordinator) streamPushes(ctx context.Context, deadline time.Time, h *Hist) (int, error) {
	// A connection of its own (cleartext HTTP/2), from this run's subnet.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &p,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.subnet + "1")}}).DialContext}}
	defer hc.CloseIdleConnections()
	api, err := herald.NewClient(c.opts.URL, c.opts.Key, herald.WithGRPC(), herald.WithHTTPClient(hc),
		herald.WithMaxAttempts(1), herald.WithAutoID(false))
	if err != nil {
		return 0, err
	}
	s, err := api.PushStream(ctx)
	if err != nil {
		return 0, err
	}
	window := max(1, c.opts.Window)
	slots := make(chan struct{}, window)
	sent := make([]time.Time, window) // by index % window: at most window in flight
	answered := make(chan error, 1)
	n := 0
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				answered <- err
				return
			}
			if r.Err != nil {
				answered <- fmt.Errorf("bench: stream push refused: %w", r.Err)
				return
			}
			h.Add(time.Since(sent[r.Index%uint64(window)]))
			n++
			<-slots
		}
	}()
	var i uint64
	var sendErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case err := <-answered:
			return n, err // the stream ended early
		}
		sent[i%uint64(window)] = time.Now()
		if sendErr = s.Send(c.userPush(c.target(), 1<<40+c.index.Add(1))); sendErr != nil {
			break
		}
		i++
	}
	_ = s.Close()
	if err := <-answered; err != nil {
		return n, err
	}
	return n, sendErr
}
