package natsinbox

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/heraldpush/herald/internal/natsengine"
)

// TestInboxConformanceExclusive runs the suite with Config.Exclusive
// (and with no tip cache, so every append reads or trusts the index).
func TestInboxConformanceExclusive(t *testing.T) {
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		return embeddedInbox(t, t.TempDir(), Config{Cap: enginetest.InboxCap, Exclusive: true, TipCache: -1})
	})
}

// TestInboxExclusiveRestart: an exclusive inbox started on existing data
// knows every inbox stored before; it answers for unknown ones at once.
func TestInboxExclusiveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	users := []string{"a", "b", "", "ü.*>", "~x"}
	func() {
		e, err := natsengine.New(natsengine.Config{DataDir: dir, NodeID: "inbox"}, func([][]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		ib := startedInbox(t, e, Config{Exclusive: true})
		if _, err := ib.Append(ctx, "app", users, "one", nil, time.Hour); err != nil {
			t.Fatal(err)
		}
		var entries []engine.Entry
		for _, u := range users[:2] {
			entries = append(entries, engine.Entry{User: u, ID: "two", TTL: time.Hour}, engine.Entry{User: u, ID: "three", TTL: time.Second})
		}
		if _, errs := ib.AppendMany(ctx, "app", entries); errs != nil {
			t.Fatal(errors.Join(errs...))
		}
		if ok, err := ib.Ack(ctx, "app", "a", 2); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}()
	ib := embeddedInbox(t, dir, Config{Exclusive: true})
	if n := ib.index.len(); n != len(users) {
		t.Fatalf("index of %d inboxes after restart, want %d", n, len(users))
	}
	for i, u := range users {
		want := uint64(1)
		if i < 2 {
			want = 3
		}
		latest, acked, err := ib.State(ctx, "app", u)
		if err != nil || latest != want || (u == "a") != (acked == 2) {
			t.Fatalf("State(%q) = %d, %d, %v; want latest %d", u, latest, acked, err, want)
		}
		if p, err := ib.Read(ctx, "app", u, 0, 0); err != nil || p.Latest != want {
			t.Fatalf("Read(%q): Latest %d, %v", u, p.Latest, err)
		}
	}
	for _, k := range [][2]string{{"app", "nobody"}, {"other", "a"}} {
		if latest, acked, err := ib.State(ctx, k[0], k[1]); latest != 0 || acked != 0 || err != nil {
			t.Fatalf("State(%q, %q) = %d, %d, %v", k[0], k[1], latest, acked, err)
		}
		if p, err := ib.Read(ctx, k[0], k[1], 0, 10); err != nil || p.Latest != 0 || !p.Complete || len(p.Msgs) != 0 {
			t.Fatalf("Read(%q, %q) = %+v, %v", k[0], k[1], p, err)
		}
	}
	// New inboxes after the restart, by both append paths.
	if seqs, err := ib.Append(ctx, "app", []string{"new1", "a"}, "x", nil, time.Hour); err != nil || seqs[0] != 1 || seqs[1] != 4 {
		t.Fatalf("Append after restart = %v, %v", seqs, err)
	}
	if seqs, errs := ib.AppendMany(ctx, "app", []engine.Entry{{User: "new2", TTL: time.Hour}, {User: "new2", TTL: time.Hour}}); errs != nil || seqs[1] != 2 {
		t.Fatalf("AppendMany after restart = %v, %v", seqs, errs)
	}
	for _, u := range []string{"new1", "new2"} {
		if latest, _, err := ib.State(ctx, "app", u); err != nil || latest == 0 {
			t.Fatalf("State(%q) = %d, %v", u, latest, err)
		}
	}
	// Closed: unavailable, not empty.
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ib.State(ctx, "app", "nobody"); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("State after Close = %v", err)
	}
}

// TestInboxIndexPaging: the index of an exclusive inbox is loaded in
// pages of 100,000 inboxes.
func TestInboxIndexPaging(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100,100 inboxes")
	}
	e := startedEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "inbox"})
	ib := startedInbox(t, e, Config{TipCache: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 4*inboxWait)
	defer cancel()
	const users = 100_100
	entries := make([]engine.Entry, 0, 1000)
	for lo := 0; lo < users; lo += cap(entries) {
		entries = entries[:0]
		for i := lo; i < min(lo+cap(entries), users); i++ {
			entries = append(entries, engine.Entry{User: "u" + strconv.Itoa(i), TTL: time.Hour})
		}
		if _, errs := ib.AppendMany(ctx, "app", entries); errs != nil {
			t.Fatal(errors.Join(errs...))
		}
	}
	ix, err := New(e, Config{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ix.index.len(); n != users {
		t.Fatalf("index of %d inboxes, want %d", n, users)
	}
	for _, i := range []int{0, 99_999, 100_000, users - 1} {
		if latest, _, err := ix.State(ctx, "app", "u"+strconv.Itoa(i)); latest != 1 || err != nil {
			t.Fatalf("State of u%d = %d, %v", i, latest, err)
		}
	}
}

func TestTipCache(t *testing.T) {
	c := newTipCache(4)
	for i := range 10 {
		c.put("k"+strconv.Itoa(i), tipHint{tip: uint64(i), latest: uint64(i)})
		if h, ok := c.get("k" + strconv.Itoa(i)); !ok || h.tip != uint64(i) {
			t.Fatalf("just put k%d: %v %v", i, h, ok)
		}
		n := len(c.cur) + len(c.old)
		if n > 4 {
			t.Fatalf("cache holds %d", n)
		}
	}
	if _, ok := c.get("k0"); ok {
		t.Fatal("the oldest kept")
	}
	c.drop("k9")
	if _, ok := c.get("k9"); ok {
		t.Fatal("dropped kept")
	}
	var none *tipCache
	none.put("x", tipHint{})
	if _, ok := none.get("x"); ok || newTipCache(-1) != nil {
		t.Fatal("a disabled cache keeps something")
	}
}

// headOf returns the seq the inbox's head holds (0: no head).
func headOf(t *testing.T, ib *Inbox, app, user string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	var seq uint64
	sj := subjectsOf(app, user)
	if _, err := ib.conn.Load().lastOf(ctx, []string{sj.h}, func(s stored) error {
		r, err := parseRecord(s.data)
		seq = r.seq
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestInboxExclusiveHeads: an exclusive writer's heads lag behind its
// messages until they are flushed, at the latest when the Inbox closes; a
// writer that stopped without closing has its heads repaired by the next
// Start; either way every head ends at its inbox's latest seq.
func TestInboxExclusiveHeads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	users := []string{"a", "b", "c"}
	appendAll := func(ib *Inbox, n int) {
		t.Helper()
		var entries []engine.Entry
		for range n {
			for _, u := range users {
				entries = append(entries, engine.Entry{User: u, ID: "m", TTL: time.Hour})
			}
		}
		if _, errs := ib.AppendMany(ctx, "app", entries); errs != nil {
			t.Fatal(errors.Join(errs...))
		}
	}
	for _, clean := range []bool{true, false} {
		t.Run(map[bool]string{true: "Close", false: "Crash"}[clean], func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Exclusive: true, HeadDelay: time.Hour}
			func() {
				e, err := natsengine.New(natsengine.Config{DataDir: dir, NodeID: "inbox"}, func([][]byte) {})
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Start(ctx); err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				ib := startedInbox(t, e, cfg)
				appendAll(ib, 3)
				for _, u := range users {
					if h := headOf(t, ib, "app", u); h != 0 {
						t.Fatalf("head of %q is %d before any flush, want none", u, h)
					}
					if latest, _, err := ib.State(ctx, "app", u); err != nil || latest != 3 {
						t.Fatalf("State(%q) = %d, %v before the heads are written", u, latest, err)
					}
				}
				if clean {
					if err := ib.Close(); err != nil {
						t.Fatal(err)
					}
				}
			}()
			ib := embeddedInbox(t, dir, cfg)
			for _, u := range users {
				if h := headOf(t, ib, "app", u); h != 3 {
					t.Fatalf("head of %q is %d after restart, want 3", u, h)
				}
			}
			appendAll(ib, 1)
			if latest, _, err := ib.State(ctx, "app", "b"); err != nil || latest != 4 {
				t.Fatalf("State = %d, %v after restart and one more append", latest, err)
			}
		})
	}
}
