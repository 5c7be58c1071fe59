package natsengine_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
)

func TestNodesRegistry(t *testing.T) {
	e := newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "n1"}, func([][]byte) {})
	start(t, e)
	reg := e.Nodes(time.Second)
	ctx := context.Background()
	for _, id := range []string{"b", "a.b c"} {
		if err := reg.Announce(ctx, engine.NodeInfo{ID: id, Addr: "127.0.0.1:1", Conns: 3, Load: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "a.b c" || list[1].Conns != 3 {
		t.Fatalf("list %v, %v", list, err)
	}
	if err := reg.Leave(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if list, _ := reg.List(ctx); len(list) != 1 || list[0].ID != "a.b c" {
		t.Fatalf("after leave: %v", list)
	}
	// A node that stops announcing disappears once the TTL has passed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := reg.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired node still listed: %v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
