package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

// A worker of Pusher clients against a real node: they connect and
// subscribe, and count the coordinator's room pushes as Pusher events,
// in order.
func TestPusherWorker(t *testing.T) {
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Dev = "127.0.0.1:0", t.TempDir(), true
	cfg.DevPusher = &config.Pusher{AppID: "1", Key: "bench-key", Secret: "bench-secret"}
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

	const conns, pushes = 5, 3
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go RunWorker(WorkerConfig{URL: "ws://" + srv.Addr + "/app/bench-key?protocol=7", Source: "127.0.0.1", Count: conns,
		Room: "bench", Dial: 2, Protocol: "pusher"}, inR, outW)
	defer inW.Close()
	answers := bufio.NewScanner(outR)
	ask := func(cmd string) report {
		t.Helper()
		io.WriteString(inW, cmd+"\n")
		var r report
		if !answers.Scan() || json.Unmarshal(answers.Bytes(), &r) != nil || r.Err != "" {
			t.Fatalf("%s: %s", cmd, answers.Bytes())
		}
		return r
	}
	if r := ask("connect"); r.Conns != conns {
		t.Fatalf("connected %d of %d", r.Conns, conns)
	}
	c, err := newCoordinator(Options{URL: "http://" + srv.Addr, Conns: conns, Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(pushes) {
		if err := c.pushRoom(ctx, i+1); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(20 * time.Second); ; {
		r := ask("report")
		if r.Received == conns*pushes {
			if r.Dups != 0 || r.Hist.Total() != conns*pushes {
				t.Fatalf("report %+v", r)
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("received %d of %d", r.Received, conns*pushes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
