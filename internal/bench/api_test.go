package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
	"github.com/heraldpush/herald/sdk/herald"
)

// TestPushesReachTheServer: the coordinator's pushes (single, to a room,
// batched, and over a stream; stored) are taken by a real node, and a
// refused batch item fails the run.
func TestPushesReachTheServer(t *testing.T) {
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Dev = "127.0.0.1:0", t.TempDir(), true
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready:
	case err := <-done:
		t.Fatal(err)
	}

	c, err := newCoordinator(Options{URL: "http://" + srv.Addr, Conns: 10, Size: 100, Batch: 3, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pushRoom(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.postBatch(ctx); err != nil {
		t.Fatal(err)
	}
	bad := c.userPush("", 5)
	if err := c.pushBatch(ctx, []herald.PushRequest{c.userPush("u", 4), bad}); herald.ErrorCode(err) != herald.CodeInvalidTarget {
		t.Fatalf("a batch with a refused item: %v", err)
	}
	st, err := c.api.Stats(ctx)
	if err != nil || st.Pushes != 5 {
		t.Fatalf("stats %+v, %v; want 5 pushes", st, err)
	}
	var p struct{ I int64 }
	if err := json.Unmarshal(c.userPush("u", 7).Data.(json.RawMessage), &p); err != nil || p.I != 7 {
		t.Fatalf("bench payload %v: %v", p, err)
	}

	// A stream publisher with a window of 4 (its sender waits for answers
	// many times): every push it counts was answered and taken.
	c.opts.Window = 4
	h := newHist()
	n, err := c.streamPushes(ctx, time.Now().Add(300*time.Millisecond), &h)
	if err != nil || n == 0 {
		t.Fatalf("stream publisher: %d pushes, %v", n, err)
	}
	if st, err = c.api.Stats(ctx); err != nil || st.Pushes != int64(5+n) || h.Total() != uint64(n) {
		t.Fatalf("stats %+v, %v, %d latencies; want %d pushes", st, err, h.Total(), 5+n)
	}
}
