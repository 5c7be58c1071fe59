package pusherinfo

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/nats-io/nats.go"
)

func TestStore(t *testing.T) {
	nc, err := nats.Connect(natstest.JetStream(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := New(1)
	if err := s.Set(ctx, "a", "presence-r", "u", nil); err != ErrNotBound {
		t.Fatalf("before Bind: %v", err)
	}
	if err := s.Bind(ctx, nc); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ app, room, user, info string }{
		{"a", "presence-r", "u1", `{"name":"One"}`},
		{"a", "presence-r", "u.2 *>", `2`},
		{"a", "presence-r2", "u3", `3`},  // another room
		{"b", "presence-r", "u4", `4`},   // another app
		{"a", "presence-r", "u5", `"x"`}, // not asked for
	} {
		if err := s.Set(ctx, e.app, e.room, e.user, []byte(e.info)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Infos(ctx, "a", "presence-r", []string{"u1", "u.2 *>", "u3", "u4", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"u1": `{"name":"One"}`, "u.2 *>": `2`, "u3": `null`, "u4": `null`, "nobody": `null`}
	if len(got) != len(want) {
		t.Fatalf("got %d infos: %s", len(got), got)
	}
	for u, w := range want {
		if string(got[u]) != w {
			t.Errorf("%s: %s, want %s", u, got[u], w)
		}
	}
	info, rev, err := s.Get(ctx, "a", "presence-r", "u1")
	if err != nil || string(info) != `{"name":"One"}` || rev == 0 {
		t.Fatalf("get: %s %d %v", info, rev, err)
	}
	// A member who came back (stored again) keeps its info: the stale
	// revision forgets nothing.
	if err := s.Set(ctx, "a", "presence-r", "u1", []byte(`{"name":"Again"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(ctx, "a", "presence-r", "u1", rev); err != nil {
		t.Fatal(err)
	}
	if info, rev, _ = s.Get(ctx, "a", "presence-r", "u1"); string(info) != `{"name":"Again"}` {
		t.Fatalf("after a stale forget: %s", info)
	}
	if err := s.Forget(ctx, "a", "presence-r", "u1", rev); err != nil {
		t.Fatal(err)
	}
	if info, rev, _ = s.Get(ctx, "a", "presence-r", "u1"); string(info) != `null` || rev != 0 {
		t.Fatalf("after forget: %s %d", info, rev)
	}
}
