package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// receiver is the webhooks scenario's endpoint: it refuses every event
// (503) until open, then answers 204 and counts each event id once,
// timing the first and the last accepted.
type receiver struct {
	prefix      string // this run's users: other events are answered, not counted
	mu          sync.Mutex
	open        bool
	seen        map[string]bool
	refused     int
	repeats     int
	first, last time.Time
	srv         *http.Server
	addr        string // where it listens
}

// listenReceiver serves a receiver on addr (host:port on loopback).
func listenReceiver(addr, prefix string) (*receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: webhook receiver: %w", err)
	}
	r := &receiver{prefix: prefix, seen: map[string]bool{}, addr: ln.Addr().String()}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }() // ends with close
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var ev struct {
		Data struct {
			User string `json:"user"`
		} `json:"data"`
	}
	body, _ := io.ReadAll(req.Body)
	_ = json.Unmarshal(body, &ev)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		r.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if id == "" || req.Header.Get("webhook-signature") == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !strings.HasPrefix(ev.Data.User, r.prefix) {
		w.WriteHeader(http.StatusNoContent) // an earlier run's
		return
	}
	now := time.Now()
	if r.first.IsZero() {
		r.first = now
	}
	if r.seen[id] {
		r.repeats++
	} else {
		r.seen[id] = true
		r.last = now
	}
	w.WriteHeader(http.StatusNoContent)
}

// accept starts answering 2xx.
func (r *receiver) accept() {
	r.mu.Lock()
	r.open = true
	r.mu.Unlock()
}

// count returns the distinct events accepted.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// webhooks measures how fast a node delivers a backlog of lifecycle
// events to one endpoint. The server must have been started with
// --webhook-url http://<Receiver>/ (and --dev or --allow-private-webhooks).
// Every client connects (each its own user, no room) and, once the node
// has queued their arrivals, disconnects, while the receiver answers 503,
// so that 4 events per client (conn.opened, user.online, conn.closed,
// user.offline) pile up in the outbox; once the node has queued them all
// the receiver answers 204, and the rate is distinct events over the time
// from the first to the last one accepted.
func (c *coordinator) webhooks(ctx context.Context) (Result, error) {
	r, err := listenReceiver(c.opts.Receiver, c.prefix)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	queued0, err := c.queuedEvents()
	if err != nil {
		return Result{}, err
	}
	queued := func(want int) error {
		start := time.Now()
		err := c.poll(ctx, 2*time.Minute, func() (bool, error) {
			q, err := c.queuedEvents()
			return q-queued0 >= float64(want), err
		})
		if err != nil {
			return fmt.Errorf("bench: waiting for %d queued events: %w", want, err)
		}
		fmt.Fprintf(c.opts.Progress, "  %d events queued, %.2fs after the last step\n", want, time.Since(start).Seconds())
		return nil
	}
	if _, err := c.connect(); err != nil {
		return Result{}, err
	}
	// Every open written before the close: a connection that comes and
	// goes before the node has written its user's arrival makes no
	// user.online/user.offline (the coalescing that bounds a flood).
	if err := queued(2 * c.opts.Conns); err != nil {
		return Result{}, err
	}
	if _, err := c.all("close"); err != nil {
		return Result{}, err
	}
	want := 4 * c.opts.Conns
	// user.offline waits for the offline delay (5 s by default).
	if err := queued(want); err != nil {
		return Result{}, err
	}
	r.mu.Lock()
	refused := r.refused
	r.mu.Unlock()
	fmt.Fprintf(c.opts.Progress, "  %d attempts refused; the receiver accepts now\n", refused)
	opened := time.Now()
	r.accept()
	werr := c.poll(ctx, 10*time.Minute, func() (bool, error) { return r.count() >= want, nil })
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Expected: uint64(want), Deliveries: uint64(len(r.seen)), Dups: uint64(r.repeats),
		Lost: int64(want - len(r.seen))}
	if len(r.seen) > 1 {
		res.DeliveriesPerS = float64(len(r.seen)-1) / r.last.Sub(r.first).Seconds()
		res.DrainS = r.last.Sub(opened).Seconds()
	}
	return res, werr
}

// poll calls cond every 50 ms until it holds, for at most limit.
func (c *coordinator) poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	giveUp := time.Now().Add(limit)
	lastReport := time.Now()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		if time.Now().After(giveUp) {
			return errors.New("not within " + limit.String())
		}
		if time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintln(c.opts.Progress, "  waiting…")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queuedEvents sums herald_webhook_events_queued_total over the endpoints
// in the server's /metrics.
func (c *coordinator) queuedEvents() (float64, error) {
	resp, err := c.http.Get(c.opts.URL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "herald_webhook_events_queued_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
