package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// TestShutdownCancelsEngineCalls: with its NATS gone, a node whose engine
// calls may each wait an hour still stops when its context ends, once its
// grace period is over: the engine calls in flight (the registry removal
// Run makes on the way out, an API call's) derive from the node's
// lifetime, which ends with the graceful phase. Before, the registry
// removal had a root of its own and Run waited out the engine timeout.
func TestShutdownCancelsEngineCalls(t *testing.T) {
	ns, _ := natsOnFreePort(t)
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Dev, cfg.NATSURL = "127.0.0.1:0", t.TempDir(), true, ns.ClientURL()
	cfg.Limits.EngineTimeout = time.Hour
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, time.Second) }()
	select {
	case <-srv.Ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(wait):
		t.Fatal("server did not start in time")
	}
	n := &node{t: t, base: "http://" + srv.Addr, http: http.DefaultClient}
	id := n.push("", map[string]any{"to": map[string]any{"users": []string{"u"}}, "data": "x", "offline": true})

	ns.Shutdown()
	ns.WaitForShutdown()
	// An API call that waits on the engine (its status record), sent
	// before the node is told to stop.
	wrote, answered := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(answered)
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", n.base+"/v1/messages/"+id, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-wrote:
	case <-answered:
		t.Fatal("the status call failed before it was sent")
	}

	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended: it waits on engine calls its shutdown should cancel")
	}
	select {
	case <-answered:
	case <-time.After(wait):
		t.Fatal("the API call waiting on the engine was not ended by the shutdown")
	}
}
