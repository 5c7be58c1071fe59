package bench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

// TestWebhooksReceiver: the webhooks scenario's pieces against a real
// node whose webhook points at the bench's receiver: the node's queued
// count is read from /metrics, the receiver refuses until it accepts,
// and then counts each event of this run's users once (another user's
// events are answered, not counted).
func TestWebhooksReceiver(t *testing.T) {
	const prefix = "run-"
	r, err := listenReceiver("127.0.0.1:0", prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Dev = "127.0.0.1:0", t.TempDir(), true
	cfg.Limits.OfflineDelay = 100 * time.Millisecond
	cfg.DevWebhooks = []config.Webhook{{URL: "http://" + r.addr + "/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready:
	case err := <-done:
		t.Fatal(err)
	}
	c, err := newCoordinator(Options{URL: "http://" + srv.Addr, Conns: 1, Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	c.prefix = prefix

	// One connection of this run's user and one of another user: 8 events.
	// Each stays until its arrival's 2 events are queued (a visit shorter
	// than the tracker's first write is coalesced away, by design).
	for i, user := range []string{c.prefix + "0", "someone-else"} {
		resp, err := http.Get(c.opts.URL + "/v1/sse?user=" + user)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("SSE of %s: %v %v", user, resp, err)
		}
		if err := c.poll(ctx, 30*time.Second, func() (bool, error) {
			q, err := c.queuedEvents()
			return q == float64(4*i+2), err
		}); err != nil {
			t.Fatalf("the arrival of %s queued: %v", user, err)
		}
		resp.Body.Close()
		if err := c.poll(ctx, 30*time.Second, func() (bool, error) {
			st, err := c.api.Stats(ctx)
			return err == nil && st.Conns == 0, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.poll(ctx, 30*time.Second, func() (bool, error) {
		q, err := c.queuedEvents()
		return q == 8, err
	}); err != nil {
		t.Fatalf("8 queued events: %v", err)
	}
	if err := c.poll(ctx, 30*time.Second, func() (bool, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.refused > 0, nil
	}); err != nil {
		t.Fatalf("a refused attempt: %v", err)
	}
	if r.count() != 0 {
		t.Fatalf("%d events counted while refusing", r.count())
	}
	r.accept()
	if err := c.poll(ctx, 30*time.Second, func() (bool, error) { return r.count() == 4, nil }); err != nil {
		t.Fatalf("4 events of this run: %v (counted %d)", err, r.count())
	}
}
