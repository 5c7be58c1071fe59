package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natstest"
)

// writeBatchHead stores a head carrying the messages msgs (given seqs
// latest+1... in order) for sj, as an append that died before copying them
// into .q.m would have left it, and returns their seqs.
func writeBatchHead(t *testing.T, ib *Inbox, sj *inboxSubjects, msgs ...record) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	c := ib.conn.Load()
	st, err := ib.state(ctx, c, sj)
	if err != nil {
		t.Fatal(err)
	}
	carried := st.pendingMsgs(time.Now().UnixNano())
	var seqs []uint64
	for i := range msgs {
		msgs[i].kind = recMsg
		msgs[i].seq = st.latest() + uint64(i+1)
		seqs = append(seqs, msgs[i].seq)
	}
	h := headRecord(st.latest()+uint64(len(msgs)), append(carried, msgs...))
	m := pubMsg(sj.h, appendRecord(nil, &h), 0)
	setCAS(m, sj.w, st.tip())
	m.Header[hdrRollup] = rollupSub
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// copyOne copies the head's first pending message into .q.m, as the
// head's writer would have before it died.
func copyOne(t *testing.T, ib *Inbox, sj *inboxSubjects) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	c := ib.conn.Load()
	st, err := ib.state(ctx, c, sj)
	if err != nil {
		t.Fatal(err)
	}
	p := st.pendingMsgs(time.Now().UnixNano())
	m := pubMsg(sj.m, appendRecord(nil, &p[0]), 3600)
	setCAS(m, sj.w, st.tip())
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestInboxUnfinishedBatchHead: messages a head carries but that never
// reached .q.m (their writer died) are read from the head, removable, and
// carried on (then copied) by the next append, in seq order; expired ones
// are lost, not carried.
func TestInboxUnfinishedBatchHead(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	sj := subjectsOf("app", "u")
	expect := func(what string, after uint64, limit int, seqs []uint64, latest uint64, complete bool) {
		t.Helper()
		p, err := ib.Read(ctx, "app", "u", after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pageSeqs(p), seqs) || p.Latest != latest || p.Complete != complete {
			t.Fatalf("%s: seqs %v Latest %d Complete %v; want %v %d %v", what, pageSeqs(p), p.Latest, p.Complete, seqs, latest, complete)
		}
		for _, m := range p.Msgs {
			if m.ID != "m"+strconv.FormatUint(m.Seq, 10) {
				t.Fatalf("%s: message %d has id %q", what, m.Seq, m.ID)
			}
		}
	}
	msg := func(seq int, ttl time.Duration) record {
		now := time.Now()
		return record{kind: recMsg, created: now.UnixNano(), expires: now.Add(ttl).UnixNano(), id: "m" + strconv.Itoa(seq), payload: []byte{byte(seq)}}
	}
	appendMany := func(ids ...int) []uint64 {
		t.Helper()
		var entries []engine.Entry
		for _, id := range ids {
			entries = append(entries, engine.Entry{User: "u", ID: "m" + strconv.Itoa(id), Payload: []byte{byte(id)}, TTL: time.Hour})
		}
		seqs, errs := ib.AppendMany(ctx, "app", entries)
		if errs != nil {
			t.Fatal(errors.Join(errs...))
		}
		return seqs
	}
	if seqs := appendMany(1, 2); !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("first batch: %v", seqs)
	}
	writeBatchHead(t, ib, &sj, msg(3, time.Hour), msg(4, time.Hour), msg(5, time.Hour))
	expect("pending batch", 0, 0, []uint64{1, 2, 3, 4, 5}, 5, true)
	expect("pending batch, limit 3", 0, 3, []uint64{1, 2, 3}, 5, true)
	expect("pending batch, after 3, limit 1", 3, 1, []uint64{4}, 5, true)
	copyOne(t, ib, &sj) // 3 reached .q.m
	expect("partly copied", 1, 0, []uint64{2, 3, 4, 5}, 5, true)
	if ok, err := ib.Remove(ctx, "app", "u", 4); !ok || err != nil {
		t.Fatalf("Remove of a pending message = %v, %v", ok, err)
	}
	expect("pending one removed", 0, 0, []uint64{1, 2, 3, 5}, 5, true)
	if ok, err := ib.Remove(ctx, "app", "u", 3); !ok || err != nil {
		t.Fatalf("Remove of a copied message the head carries = %v, %v", ok, err)
	}
	expect("copied one removed", 0, 0, []uint64{1, 2, 5}, 5, true)
	// The next append carries 5 on and copies it before its own.
	if seqs := appendMany(6, 7); !slices.Equal(seqs, []uint64{6, 7}) {
		t.Fatalf("batch after an unfinished one: %v", seqs)
	}
	expect("carried on", 0, 0, []uint64{1, 2, 5, 6, 7}, 7, true)
	st, err := ib.state(ctx, ib.conn.Load(), &sj)
	if err != nil || st.lastSeq != 7 || len(st.pendingMsgs(time.Now().UnixNano())) != 0 {
		t.Fatalf("state after the next append: last .m seq %d, pending %v, %v", st.lastSeq, st.pendingMsgs(time.Now().UnixNano()), err)
	}
	// .q.m holds every message once, in seq order.
	var inM []uint64
	if _, err := ib.conn.Load().getMany(ctx, nextReq(sj.m, 0, 100, true), func(s stored) error {
		r, err := parseRecord(s.data)
		inM = append(inM, r.seq)
		return err
	}); err != nil || !slices.Equal(inM, []uint64{1, 2, 5, 6, 7}) {
		t.Fatalf(".q.m holds %v, %v", inM, err)
	}
	if ok, _ := ib.Remove(ctx, "app", "u", 4); ok {
		t.Fatal("a removed message removed again")
	}
	// Expired pending messages are lost and not carried; Append (one
	// message) carries the rest too.
	writeBatchHead(t, ib, &sj, msg(8, time.Hour), msg(9, -time.Millisecond), msg(10, time.Hour))
	expect("expired in the pending batch", 7, 0, []uint64{8, 10}, 10, false)
	if seqs, err := ib.Append(ctx, "app", []string{"u"}, "m11", []byte{11}, time.Hour); err != nil || seqs[0] != 11 {
		t.Fatalf("Append after an unfinished batch = %v, %v", seqs, err)
	}
	expect("expired not carried", 7, 0, []uint64{8, 10, 11}, 11, false)
	expect("after it", 9, 0, []uint64{10, 11}, 11, true)
	// A plain Append's message left in the head (an older writer's
	// unfinished Append) is carried the same way.
	writeHead(t, ib, &sj, msg(12, time.Hour))
	if seqs := appendMany(13); seqs[0] != 13 {
		t.Fatalf("batch after an unfinished Append: %v", seqs)
	}
	expect("single carried", 10, 0, []uint64{11, 12, 13}, 13, true)
}

// TestInboxAppendManyTwoNodes: two nodes append batches (and single
// messages, and remove) to the same users at once, each with its own
// hints of its last writes, which the other's writes make stale.
func TestInboxAppendManyTwoNodes(t *testing.T) {
	srv := natstest.JetStream(t)
	nodes := []*Inbox{
		startedInbox(t, startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "a"}), Config{}),
		startedInbox(t, startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "b"}), Config{}),
	}
	users := []string{"x", "y", "z"}
	const workers, rounds = 3, 30
	var mu sync.Mutex
	seen := map[string]map[uint64]string{}
	for _, u := range users {
		seen[u] = map[uint64]string{}
	}
	errs := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for n, ib := range nodes {
		for w := range workers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
				defer cancel()
				for i := range rounds {
					var entries []engine.Entry
					for k := range 1 + (i+w)%4 {
						id := fmt.Sprintf("n%d-w%d-%d-%d", n, w, i, k)
						entries = append(entries, engine.Entry{User: users[(i+k+w)%len(users)], ID: id, Payload: []byte(id), TTL: time.Hour})
					}
					seqs, errs2 := ib.AppendMany(ctx, "app", entries)
					if errs2 != nil {
						errs <- errors.Join(errs2...)
						return
					}
					mu.Lock()
					for k, e := range entries {
						if prev, dup := seen[e.User][seqs[k]]; dup {
							errs <- fmt.Errorf("user %s seq %d given to %s and %s", e.User, seqs[k], prev, e.ID)
						}
						seen[e.User][seqs[k]] = e.ID
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	for _, u := range users {
		total := uint64(len(seen[u]))
		for _, ib := range nodes {
			p, err := ib.Read(ctx, "app", u, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(p.Msgs)) != total || p.Latest != total || !p.Complete {
				t.Fatalf("user %s: %d messages, Latest %d, Complete %v; want %d", u, len(p.Msgs), p.Latest, p.Complete, total)
			}
			for i, m := range p.Msgs {
				if m.Seq != uint64(i+1) || m.ID != seen[u][m.Seq] || string(m.Payload) != m.ID {
					t.Fatalf("user %s message %d: seq %d id %q, returned for %q", u, i, m.Seq, m.ID, seen[u][m.Seq])
				}
			}
		}
	}
	// A removal by one node, then appends by both (the first node's hint
	// is stale now).
	if ok, err := nodes[1].Remove(ctx, "app", "x", uint64(len(seen["x"]))); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	for i, ib := range nodes {
		want := uint64(len(seen["x"]) + 1 + i)
		if seqs, errs := ib.AppendMany(ctx, "app", []engine.Entry{{User: "x", ID: "after", TTL: time.Hour}}); errs != nil || seqs[0] != want {
			t.Fatalf("node %d: AppendMany after a removal = %v, %v; want seq %d", i, seqs, errs, want)
		}
	}
}

// TestInboxAppendManyTooLarge: an entry the server cannot take fails
// alone, as engine.ErrInvalidArgument; the user's other entries are stored
// around it.
func TestInboxAppendManyTooLarge(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	big := make([]byte, 300<<10) // beyond a shared head, one per head
	entries := []engine.Entry{
		{User: "u", ID: "a", Payload: []byte("a"), TTL: time.Hour},
		{User: "u", ID: "huge", Payload: make([]byte, 9<<20), TTL: time.Hour},
		{User: "v", ID: "b", Payload: big, TTL: time.Hour},
		{User: "u", ID: "c", Payload: big, TTL: time.Hour},
		{User: "u", ID: "d", Payload: []byte("d"), TTL: time.Hour},
		{User: "v", ID: "e", Payload: []byte("e"), TTL: time.Hour},
	}
	seqs, errs := ib.AppendMany(ctx, "app", entries)
	for i, err := range errs {
		if (i == 1) != (err != nil) || i == 1 && (!errors.Is(err, engine.ErrInvalidArgument) || errors.Is(err, engine.ErrUnavailable)) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if want := []uint64{1, 0, 1, 2, 3, 2}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs %v, want %v", seqs, want)
	}
	for user, ids := range map[string][]string{"u": {"a", "c", "d"}, "v": {"b", "e"}} {
		p, err := ib.Read(ctx, "app", user, 0, 0)
		if err != nil || !p.Complete || len(p.Msgs) != len(ids) {
			t.Fatalf("user %s: %d messages, complete %v, %v", user, len(p.Msgs), p.Complete, err)
		}
		for i, m := range p.Msgs {
			if m.ID != ids[i] || m.Seq != uint64(i+1) {
				t.Fatalf("user %s message %d: %d %q", user, i, m.Seq, m.ID)
			}
		}
	}
}

// TestInboxAppendManyClosed: entries of a batch on an inbox that is not
// started all fail with engine.ErrUnavailable.
func TestInboxAppendManyClosed(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	seqs, errs := ib.AppendMany(context.Background(), "app", []engine.Entry{{User: "u", TTL: time.Hour}, {User: "v", TTL: 0}})
	if len(seqs) != 2 || len(errs) != 2 || !errors.Is(errs[0], engine.ErrUnavailable) || !errors.Is(errs[1], engine.ErrInvalidArgument) {
		t.Fatalf("AppendMany after Close = %v, %v", seqs, errs)
	}
}

// TestInboxAppendManyEngineClosed: a batch in flight when the engine
// closes ends soon (not at its deadline), its unconfirmed entries failed.
func TestInboxAppendManyEngineClosed(t *testing.T) {
	e, err := natsengine.New(natsengine.Config{DataDir: t.TempDir(), NodeID: "n"}, func([][]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ib := startedInbox(t, e, Config{Timeout: time.Minute})
	entries := make([]engine.Entry, 20_000)
	for i := range entries {
		entries[i] = engine.Entry{User: "u" + strconv.Itoa(i), ID: "m", TTL: time.Hour}
	}
	done := make(chan []error)
	go func() {
		_, errs := ib.AppendMany(ctx, "app", entries)
		done <- errs
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case errs := <-done:
		for i, err := range errs {
			if err != nil && !errors.Is(err, engine.ErrUnavailable) {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		t.Logf("ended %v after the close; %d entries failed", time.Since(start), len(slices.DeleteFunc(errs, func(err error) bool { return err == nil })))
	case <-time.After(10 * time.Second):
		t.Fatal("AppendMany still running 10s after the engine closed")
	}
}
