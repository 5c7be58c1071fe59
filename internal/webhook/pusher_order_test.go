package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// orderReceiver is a Pusher receiver that also records the most requests
// it had in flight at once; before, if set, runs first in each request.
type orderReceiver struct {
	pusherReceiver
	before   func()
	fl       sync.Mutex // guards inflight and most
	inflight int
	most     int
}

func (r *orderReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.fl.Lock()
	r.inflight++
	r.most = max(r.most, r.inflight)
	r.fl.Unlock()
	defer func() {
		r.fl.Lock()
		r.inflight--
		r.fl.Unlock()
	}()
	if r.before != nil {
		r.before()
	}
	time.Sleep(20 * time.Millisecond) // a request takes a while: room for a second one
	r.pusherReceiver.ServeHTTP(w, req)
}

func (r *orderReceiver) mostInFlight() int {
	r.fl.Lock()
	defer r.fl.Unlock()
	return r.most
}

// startNodes starts n outboxes (nodes) of one cluster sending to url.
func startNodes(t *testing.T, n int, cfg Config) []*Outbox {
	natsURL := runNATS(t)
	var out []*Outbox
	for i := range n {
		cfg.NodeID = fmt.Sprintf("n%d", i)
		out = append(out, startOutbox(t, natsURL, cfg))
	}
	return out
}

func emitRoom(t *testing.T, o *Outbox, room string) {
	t.Helper()
	if err := o.Emit(context.Background(), "shop", RoomOccupied, time.Now(), map[string]any{"room": room}); err != nil {
		t.Fatal(err)
	}
}

// checkOrder fails unless the receiver got the rooms r00… r<n-1> once
// each, in order, one request at a time.
func checkOrder(t *testing.T, r *orderReceiver, n int) {
	t.Helper()
	waitFor(t, "every event", 30*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) >= n })
	ev, _ := r.delivered()
	var got []string
	for _, e := range ev {
		got = append(got, e.Channel)
	}
	for i, room := range got {
		if want := fmt.Sprintf("r%02d", i); room != want || len(got) != n {
			t.Fatalf("the endpoint got %v, want r00 to r%02d in order", got, n-1)
		}
	}
	if m := r.mostInFlight(); m != 1 {
		t.Fatalf("%d requests in flight at once for one endpoint", m)
	}
}

// Three nodes of one cluster: the events of a Pusher-format endpoint
// arrive in order, one request at a time, and events that come fast go
// in full batches.
func TestPusherOrderAcrossNodes(t *testing.T) {
	const n = 60
	emitted := make(chan struct{})
	var once sync.Once
	r := &orderReceiver{pusherReceiver: pusherReceiver{t: t}}
	r.before = func() { once.Do(func() { <-emitted }) } // the first request waits for every event
	srv := httptest.NewServer(r)
	defer srv.Close()
	nodes := startNodes(t, 3, Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}})
	for i := range n {
		emitRoom(t, nodes[i%len(nodes)], fmt.Sprintf("r%02d", i))
	}
	close(emitted)
	checkOrder(t, r, n)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, wh := range r.ok[1 : len(r.ok)-1] {
		if len(wh.Events) != pusherBatch {
			t.Fatalf("batch %d of %d has %d events, want %d", i+1, len(r.ok), len(wh.Events), pusherBatch)
		}
	}
}

// A node retrying a batch for several ack waits keeps the endpoint: the
// events that come meanwhile follow the batch, from the same node.
func TestPusherRetryKeepsOrder(t *testing.T) {
	const failures, n = 10, 6
	r := &orderReceiver{pusherReceiver: pusherReceiver{t: t, status: func(k int) int {
		if k < failures {
			return 503
		}
		return 200
	}}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	// The pin lasts 900 ms (AckWait; Timeout + AckWait/2 is shorter); the
	// retries, about 2 s.
	nodes := startNodes(t, 3, Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}, AckWait: 900 * time.Millisecond,
		Timeout: 300 * time.Millisecond, BaseBackoff: 300 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	emitRoom(t, nodes[0], "r00")
	waitFor(t, "a first attempt", 20*time.Second, func() bool { _, k := r.delivered(); return k > 0 })
	for i := 1; i < n; i++ {
		emitRoom(t, nodes[i%len(nodes)], fmt.Sprintf("r%02d", i))
	}
	checkOrder(t, r, n)
	if _, k := r.delivered(); k < failures+1 {
		t.Fatalf("%d requests, want at least %d", k, failures+1)
	}
}

// A node that dies pinned to a Pusher-format endpoint is replaced once its
// pin runs out (here Timeout + AckWait/2).
func TestPusherPinnedNodeDies(t *testing.T) {
	r := &orderReceiver{pusherReceiver: pusherReceiver{t: t}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	natsURL := runNATS(t)
	cfg := Config{NodeID: "a", Endpoints: []Endpoint{pusherEndpoint(srv.URL)}, AckWait: time.Second, Timeout: 2 * time.Second}
	a, nc := startNode(t, natsURL, cfg)
	emitRoom(t, a, "r00")
	waitFor(t, "r00 from node a", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 1 })
	cfg.NodeID = "b"
	b := startOutbox(t, natsURL, cfg)
	nc.Close() // node a is gone without a word: its pin runs out
	emitRoom(t, b, "r01")
	checkOrder(t, r, 2)
}

// In a batch retried until its oldest event is RetryFor old, only that
// event is dead-lettered: the others are sent again in a new body.
func TestPusherDeadLetterPerEvent(t *testing.T) {
	r := &pusherReceiver{t: t}
	r.status = func(int) int {
		if strings.Contains(string(r.bodies[len(r.bodies)-1]), `"old"`) {
			return 503
		}
		return 200
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}, RetryFor: time.Second})
	emitRoom(t, o, "old")
	time.Sleep(150 * time.Millisecond) // within the batch window, 150 ms younger
	emitRoom(t, o, "new")
	waitFor(t, "the younger event delivered", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 1 })
	ev, _ := r.delivered()
	r.mu.Lock()
	first := string(r.bodies[0])
	r.mu.Unlock()
	if ev[0].Channel != "new" || !strings.Contains(first, `"new"`) {
		t.Fatalf("delivered %+v; the first request %s should hold both events", ev, first)
	}
	d, _, err := o.Dead(context.Background(), "shop", 0, 10)
	if err != nil || len(d) != 1 || !strings.Contains(string(d[0].Event), `"old"`) {
		t.Fatalf("dead letters %+v, %v: want the old event alone", d, err)
	}
}
