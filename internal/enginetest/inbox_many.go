package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// appendMany calls AppendMany and fails the test on any entry's error.
func (b *ibox) appendMany(app string, entries []engine.Entry) []uint64 {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	seqs, errs := b.ib.AppendMany(ctx, app, entries)
	if errs != nil {
		b.t.Fatalf("AppendMany(%q, %d entries): %v", app, len(entries), errors.Join(errs...))
	}
	if len(seqs) != len(entries) {
		b.t.Fatalf("AppendMany(%q, %d entries) returned %d seqs", app, len(entries), len(seqs))
	}
	return seqs
}

func entry(user, id string, ttl time.Duration) engine.Entry {
	return engine.Entry{User: user, ID: id, Payload: []byte("payload:" + id), TTL: ttl}
}

// checkMany checks that the seqs AppendMany returned give each user's
// entries increasing, contiguous seqs after the user's previous latest
// (prev, updated), and that a Read returns each entry under its seq.
func (b *ibox) checkMany(app string, entries []engine.Entry, seqs []uint64, prev map[string]uint64) {
	b.t.Helper()
	for i, e := range entries {
		prev[e.User]++
		if seqs[i] != prev[e.User] {
			b.t.Fatalf("entry %d (%s of %q): seq %d, want %d", i, e.ID, e.User, seqs[i], prev[e.User])
		}
	}
	for user, latest := range prev {
		p := b.read(app, user, 0, 0)
		if p.Latest != latest {
			b.t.Fatalf("user %q: Latest %d, want %d", user, p.Latest, latest)
		}
		got := map[uint64]engine.StoredMessage{}
		for _, m := range p.Msgs {
			got[m.Seq] = m
		}
		for i, e := range entries {
			if e.User != user {
				continue
			}
			m, ok := got[seqs[i]]
			if !ok && latest-seqs[i] < InboxCap {
				b.t.Fatalf("user %q: message %d (%s) not read; read %v", user, seqs[i], e.ID, seqsOf(p.Msgs))
			}
			if ok && (m.ID != e.ID || !bytes.Equal(m.Payload, e.Payload)) {
				b.t.Fatalf("user %q message %d: id %q payload %q, want %q %q", user, seqs[i], m.ID, m.Payload, e.ID, e.Payload)
			}
			if ok {
				if d := m.Expires.Sub(m.Created) - e.TTL; d < -time.Millisecond || d > time.Millisecond {
					b.t.Fatalf("user %q message %d: Expires - Created = %v, want %v", user, seqs[i], m.Expires.Sub(m.Created), e.TTL)
				}
			}
		}
	}
}

// testManyOrder: several entries per user, users mixed, in one batch and
// after single Appends: each user's entries get the next seqs in entry
// order.
func (s *inboxSuite) testManyOrder(t *testing.T) {
	b := s.inbox(t)
	prev := map[string]uint64{}
	b.one("app", "bob", "before", longTTL)
	prev["bob"] = 1
	entries := []engine.Entry{
		entry("alice", "a1", longTTL),
		entry("bob", "b1", longTTL),
		entry("alice", "a2", time.Minute),
		entry("carol", "c1", longTTL),
		entry("alice", "a3", longTTL),
		entry("bob", "b2", longTTL),
		entry("", "empty1", longTTL),
		entry("alice", "a4", longTTL),
		entry("", "empty2", longTTL),
	}
	b.checkMany("app", entries, b.appendMany("app", entries), prev)
	// Again, on top of what is there now, with a plain Append between.
	b.one("app", "carol", "between", longTTL)
	prev["carol"]++
	again := []engine.Entry{entry("carol", "c2", longTTL), entry("alice", "a5", longTTL), entry("carol", "c3", longTTL)}
	b.checkMany("app", again, b.appendMany("app", again), prev)
	for user, latest := range prev {
		expectPage(t, "complete "+user, b.read("app", user, 0, 0), seqRange(1, latest), latest, true)
	}
	// The other app's inboxes are untouched.
	if latest, _ := b.state("app2", "alice"); latest != 0 {
		t.Fatalf("another app's inbox has latest %d", latest)
	}
	if seqs, errs := b.ib.AppendMany(t.Context(), "app", nil); len(seqs) != 0 || errs != nil {
		t.Fatalf("AppendMany of nothing = %v, %v", seqs, errs)
	}
}

// testManyLikeAppends: a batch stores what the same Appends one after
// another store.
func (s *inboxSuite) testManyLikeAppends(t *testing.T) {
	b := s.inbox(t)
	r := rand.New(rand.NewPCG(3, 4))
	users := []string{"u0", "u1", "u2", "u3", "u4", "a.b", "*", ""}
	var entries []engine.Entry
	for i := range 60 {
		u := users[r.IntN(len(users))]
		e := entry(u, "m"+strconv.Itoa(i), time.Duration(1+r.IntN(100))*time.Minute)
		if i%7 == 0 {
			e.Payload = nil
		}
		entries = append(entries, e)
	}
	// Some history first, the same in both apps.
	for _, u := range users[:3] {
		b.append("seq", []string{u}, "h", []byte("h"), longTTL)
		b.append("batch", []string{u}, "h", []byte("h"), longTTL)
	}
	var want []uint64
	for _, e := range entries {
		want = append(want, b.append("seq", []string{e.User}, e.ID, e.Payload, e.TTL)[0])
	}
	got := b.appendMany("batch", entries)
	if !slices.Equal(got, want) {
		t.Fatalf("AppendMany seqs %v, sequential Appends %v", got, want)
	}
	for _, u := range users {
		ps, pb := b.read("seq", u, 0, 0), b.read("batch", u, 0, 0)
		if ps.Latest != pb.Latest || ps.Complete != pb.Complete || len(ps.Msgs) != len(pb.Msgs) {
			t.Fatalf("user %q: sequential Latest %d Complete %v %d msgs; batch Latest %d Complete %v %d msgs",
				u, ps.Latest, ps.Complete, len(ps.Msgs), pb.Latest, pb.Complete, len(pb.Msgs))
		}
		for i := range ps.Msgs {
			ms, mb := ps.Msgs[i], pb.Msgs[i]
			if ms.Seq != mb.Seq || ms.ID != mb.ID || !bytes.Equal(ms.Payload, mb.Payload) ||
				ms.Expires.Sub(ms.Created) != mb.Expires.Sub(mb.Created) {
				t.Fatalf("user %q message %d: sequential %d %q %q, batch %d %q %q", u, i, ms.Seq, ms.ID, ms.Payload, mb.Seq, mb.ID, mb.Payload)
			}
		}
	}
	// Acks, removals and appends after a batch work as after Appends.
	for _, app := range []string{"seq", "batch"} {
		if !b.ack(app, "u1", 2) || !b.remove(app, "u1", 3) {
			t.Fatalf("%s: ack or remove failed", app)
		}
	}
	for _, u := range users {
		if a, c := b.append("seq", []string{u}, "after", nil, longTTL), b.append("batch", []string{u}, "after", nil, longTTL); a[0] != c[0] {
			t.Fatalf("user %q: Append after: %d sequential, %d batch", u, a[0], c[0])
		}
		ps, pb := b.read("seq", u, 0, 0), b.read("batch", u, 0, 0)
		if !slices.Equal(seqsOf(ps.Msgs), seqsOf(pb.Msgs)) || ps.Acked != pb.Acked || ps.Latest != pb.Latest {
			t.Fatalf("user %q: sequential %v acked %d, batch %v acked %d", u, seqsOf(ps.Msgs), ps.Acked, seqsOf(pb.Msgs), pb.Acked)
		}
	}
}

// testManyBig: batches beyond one round of a batched backend: many users,
// and many (and big) entries for one user, past the cap.
func (s *inboxSuite) testManyBig(t *testing.T) {
	b := s.inbox(t)
	const users = 1100
	var entries []engine.Entry
	for i := range users {
		entries = append(entries, entry("u"+strconv.Itoa(i), "first", longTTL))
	}
	big := bytes.Repeat([]byte("0123456789"), 3000)
	for i := range 3 * InboxCap {
		e := entry("deep", "d"+strconv.Itoa(i), longTTL)
		if i%5 == 0 {
			e.Payload = big
		}
		entries = append(entries, e)
		if i%10 == 0 {
			entries = append(entries, entry("u"+strconv.Itoa(i), "second", longTTL))
		}
	}
	prev := map[string]uint64{}
	seqs := b.appendMany("big", entries)
	for i, e := range entries {
		prev[e.User]++
		if seqs[i] != prev[e.User] {
			t.Fatalf("entry %d (%s of %q): seq %d, want %d", i, e.ID, e.User, seqs[i], prev[e.User])
		}
	}
	const n = 3 * InboxCap
	p := b.read("big", "deep", 0, 0)
	expectPage(t, "deep user", p, seqRange(n-InboxCap+1, n), n, false)
	for _, m := range p.Msgs {
		e := entries[slices.IndexFunc(entries, func(e engine.Entry) bool { return e.ID == "d"+strconv.Itoa(int(m.Seq-1)) })]
		if !bytes.Equal(m.Payload, e.Payload) {
			t.Fatalf("deep message %d: %d payload bytes, want %d", m.Seq, len(m.Payload), len(e.Payload))
		}
	}
	expectPage(t, "deep user after the dropped", b.read("big", "deep", n-InboxCap, 0), seqRange(n-InboxCap+1, n), n, true)
	for _, i := range []int{0, 10, 11, 517, users - 1} {
		want := uint64(1)
		if i%10 == 0 && i < n {
			want = 2
		}
		expectPage(t, "user "+strconv.Itoa(i), b.read("big", "u"+strconv.Itoa(i), 0, 0), seqRange(1, want), want, true)
	}
}

// testManyConcurrent: AppendMany and Append to overlapping users at once
// give every user gap-free, unique seqs, each message under the seq its
// call returned.
func (s *inboxSuite) testManyConcurrent(t *testing.T) {
	b := s.inbox(t)
	const workers, rounds = 6, 12
	users := []string{"hot", "warm0", "warm1", "warm2"}
	var mu sync.Mutex
	bySeq := map[string]map[uint64]string{}
	for _, u := range users {
		bySeq[u] = map[uint64]string{}
	}
	record := func(user string, seq uint64, id string) error {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := bySeq[user][seq]; dup {
			return fmt.Errorf("user %s: seq %d given to %s and %s", user, seq, prev, id)
		}
		bySeq[user][seq] = id
		return nil
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx, cancel := callCtx(t)
			defer cancel()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range rounds {
				if w%3 == 2 { // a plain Append now and then
					id := fmt.Sprintf("w%d-%d", w, i)
					u := users[r.IntN(len(users))]
					seqs, err := b.ib.Append(ctx, "app", []string{u, "hot"}, id, []byte(id), longTTL)
					if err != nil {
						errs <- err
						return
					}
					for k, v := range []string{u, "hot"} {
						if k == 1 && u == "hot" {
							if seqs[1] != seqs[0] {
								errs <- fmt.Errorf("user listed twice got seqs %v", seqs)
								return
							}
							continue
						}
						if err := record(v, seqs[k], id); err != nil {
							errs <- err
							return
						}
					}
					continue
				}
				var entries []engine.Entry
				for k := range 1 + r.IntN(6) {
					id := fmt.Sprintf("w%d-%d-%d", w, i, k)
					entries = append(entries, engine.Entry{User: users[r.IntN(len(users))], ID: id, Payload: []byte(id), TTL: longTTL})
				}
				seqs, errs2 := b.ib.AppendMany(ctx, "app", entries)
				if errs2 != nil {
					errs <- errors.Join(errs2...)
					return
				}
				last := map[string]uint64{}
				for k, e := range entries {
					if seqs[k] <= last[e.User] {
						errs <- fmt.Errorf("user %s: entries of one batch got seqs %d then %d", e.User, last[e.User], seqs[k])
						return
					}
					last[e.User] = seqs[k]
					if err := record(e.User, seqs[k], e.ID); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, u := range users {
		total := uint64(len(bySeq[u]))
		for seq := uint64(1); seq <= total; seq++ {
			if _, ok := bySeq[u][seq]; !ok {
				t.Fatalf("user %s: seq %d of %d never assigned: %v", u, seq, total, bySeq[u])
			}
		}
		p := b.read("app", u, 0, 0)
		if p.Latest != total {
			t.Fatalf("user %s: Latest %d, %d seqs assigned", u, p.Latest, total)
		}
		first := uint64(1)
		if total > InboxCap {
			first = total - InboxCap + 1
		}
		expectPage(t, "user "+u, p, seqRange(first, total), total, first == 1)
		for _, m := range p.Msgs {
			if id := bySeq[u][m.Seq]; m.ID != id || string(m.Payload) != id {
				t.Fatalf("user %s message %d is %q %q, but it was returned for %q", u, m.Seq, m.ID, m.Payload, id)
			}
		}
	}
}

// testManyPartial: entries that can never be stored fail alone; the
// others are stored, and the failed ones take no seq.
func (s *inboxSuite) testManyPartial(t *testing.T) {
	b := s.inbox(t)
	ctx, cancel := callCtx(t)
	defer cancel()
	entries := []engine.Entry{
		entry("u", "ok1", longTTL),
		entry("u", "zero", 0),
		entry("v", "ok2", longTTL),
		entry("u", "negative", -time.Second),
		entry("u", "ok3", longTTL),
		entry("w", "zero", 0),
	}
	seqs, errs := b.ib.AppendMany(ctx, "app", entries)
	if len(seqs) != len(entries) || len(errs) != len(entries) {
		t.Fatalf("AppendMany: %d seqs, %d errs for %d entries", len(seqs), len(errs), len(entries))
	}
	for i, e := range entries {
		bad := e.TTL <= 0
		if bad != errors.Is(errs[i], engine.ErrInvalidArgument) || !bad && errs[i] != nil {
			t.Fatalf("entry %d (ttl %v): error %v", i, e.TTL, errs[i])
		}
	}
	if want := []uint64{1, 0, 1, 0, 2, 0}; seqs[0] != 1 || seqs[2] != 1 || seqs[4] != 2 {
		t.Fatalf("seqs %v, want %v (where stored)", seqs, want)
	}
	expectPage(t, "u", b.read("app", "u", 0, 0), []uint64{1, 2}, 2, true)
	if p := b.read("app", "u", 0, 0); p.Msgs[1].ID != "ok3" {
		t.Fatalf("u's message 2 is %q", p.Msgs[1].ID)
	}
	if latest, _ := b.state("app", "w"); latest != 0 {
		t.Fatalf("a refused entry assigned seq %d", latest)
	}
	// Nothing valid at all.
	_, errs = b.ib.AppendMany(ctx, "app", []engine.Entry{entry("w", "x", 0)})
	if len(errs) != 1 || !errors.Is(errs[0], engine.ErrInvalidArgument) {
		t.Fatalf("AppendMany of one invalid entry: %v", errs)
	}
}
