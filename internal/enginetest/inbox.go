package enginetest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// Parameters of the inbox suite.
const (
	// InboxCap is the per-user cap of the inboxes RunInbox's open must
	// return.
	InboxCap = 20
	// InboxBigPayload is the size of the largest payload the inbox suite
	// stores.
	InboxBigPayload = 256 << 10
	// inboxWait bounds every call and every poll of the inbox suite.
	inboxWait = 30 * time.Second
	// shortTTL is the lifetime of messages the suite waits to see expire;
	// longTTL of those it does not.
	shortTTL = time.Second
	longTTL  = time.Hour
)

// RunInbox runs the conformance suite against the inboxes open returns:
// one fresh, started inbox per subtest (with per-user cap InboxCap), which
// open arranges through t.Cleanup to stop. The subtests run in parallel,
// so open must be safe to call concurrently.
//
// Besides engine.Inbox's documented contract the suite requires that apps
// and users of any bytes (empty, '.', '*', '>', '~', spaces, NUL,
// non-ASCII) are distinct inboxes; that payloads up to InboxBigPayload and
// ids of any bytes round-trip exactly; that StoredMessage.Expires is Created
// plus the TTL (to the millisecond); and that an expired message's loss
// shows in Complete once the backend has dropped it (the suite polls for
// that with a deadline). Expiry is waited for by polling with a deadline;
// nothing is asserted about how long anything takes.
func RunInbox(t *testing.T, open func(t *testing.T) engine.Inbox) {
	t.Helper()
	if open == nil {
		t.Fatal("enginetest: nil inbox opener")
	}
	s := &inboxSuite{open: open}
	runParallel(t, []subtest{
		{"SequencesContiguous", s.testSequences},
		{"ManyUsers", s.testManyUsers},
		{"ReadPaging", s.testPaging},
		{"StateAndAck", s.testAck},
		{"AckConcurrent", s.testAckConcurrent},
		{"Expiry", s.testExpiry},
		{"ExpiryBeyondPage", s.testExpiryBeyondPage},
		{"SeqNotReusedAfterExpiry", s.testNotReused},
		{"Cap", s.testCap},
		{"Remove", s.testRemove},
		{"RemoveLatest", s.testRemoveLatest},
		{"ConcurrentAppends", s.testConcurrentAppends},
		{"PayloadIntact", s.testPayloads},
		{"NamesDistinct", s.testInboxNames},
		{"InvalidArguments", s.testInvalid},
		{"AppendManyOrder", s.testManyOrder},
		{"AppendManyLikeAppends", s.testManyLikeAppends},
		{"AppendManyBig", s.testManyBig},
		{"AppendManyConcurrent", s.testManyConcurrent},
		{"AppendManyPartialFailure", s.testManyPartial},
	})
}

// subtest is one named check of a suite.
type subtest struct {
	name string
	run  func(*testing.T)
}

// runParallel runs each check as a parallel subtest of t.
func runParallel(t *testing.T, checks []subtest) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

type inboxSuite struct {
	open func(t *testing.T) engine.Inbox
}

// ibox is one inbox under test with helpers that fail the test on error.
type ibox struct {
	t  *testing.T
	ib engine.Inbox
}

func (s *inboxSuite) inbox(t *testing.T) *ibox {
	t.Helper()
	ib := s.open(t)
	if ib == nil {
		t.Fatal("inbox opener returned nil")
	}
	return &ibox{t: t, ib: ib}
}

func callCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), inboxWait)
}

func (b *ibox) append(app string, users []string, id string, payload []byte, ttl time.Duration) []uint64 {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	seqs, err := b.ib.Append(ctx, app, users, id, payload, ttl)
	if err != nil {
		b.t.Fatalf("Append(%q, %d users, %q): %v", app, len(users), id, err)
	}
	if len(seqs) != len(users) {
		b.t.Fatalf("Append(%q, %d users) returned %d seqs", app, len(users), len(seqs))
	}
	return seqs
}

// one appends to one user and returns its seq.
func (b *ibox) one(app, user, id string, ttl time.Duration) uint64 {
	b.t.Helper()
	return b.append(app, []string{user}, id, []byte("payload:"+id), ttl)[0]
}

func (b *ibox) read(app, user string, after uint64, limit int) engine.Page {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	start := time.Now()
	p, err := b.ib.Read(ctx, app, user, after, limit)
	if err != nil {
		b.t.Fatalf("Read(%q, %q, after %d, limit %d): %v", app, user, after, limit, err)
	}
	for _, m := range p.Msgs {
		if !m.Expires.After(start) {
			b.t.Fatalf("Read(%q, %q) started at %v returned message %d, which expired at %v", app, user, start, m.Seq, m.Expires)
		}
	}
	if limit > 0 && len(p.Msgs) > limit {
		b.t.Fatalf("Read(%q, %q, after %d, limit %d) returned %d messages", app, user, after, limit, len(p.Msgs))
	}
	for i, m := range p.Msgs {
		if m.Seq <= after || m.Seq > p.Latest || i > 0 && m.Seq <= p.Msgs[i-1].Seq {
			b.t.Fatalf("Read(%q, %q, after %d): seqs %v not increasing within (after, Latest %d]", app, user, after, seqsOf(p.Msgs), p.Latest)
		}
	}
	return p
}

func (b *ibox) state(app, user string) (uint64, uint64) {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	latest, acked, err := b.ib.State(ctx, app, user)
	if err != nil {
		b.t.Fatalf("State(%q, %q): %v", app, user, err)
	}
	return latest, acked
}

func (b *ibox) ack(app, user string, seq uint64) bool {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	ok, err := b.ib.Ack(ctx, app, user, seq)
	if err != nil {
		b.t.Fatalf("Ack(%q, %q, %d): %v", app, user, seq, err)
	}
	return ok
}

func (b *ibox) remove(app, user string, seq uint64) bool {
	b.t.Helper()
	ctx, cancel := callCtx(b.t)
	defer cancel()
	ok, err := b.ib.Remove(ctx, app, user, seq)
	if err != nil {
		b.t.Fatalf("Remove(%q, %q, %d): %v", app, user, seq, err)
	}
	return ok
}

// poll calls cond every interval until it reports true, failing t at the
// deadline.
func poll(t *testing.T, what string, interval time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(inboxWait)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, inboxWait)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		}
	}
}

func seqsOf(msgs []engine.StoredMessage) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func seqRange(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

// expectPage fails unless p holds exactly seqs and the given Latest and
// Complete.
func expectPage(t *testing.T, what string, p engine.Page, seqs []uint64, latest uint64, complete bool) {
	t.Helper()
	if got := seqsOf(p.Msgs); !slices.Equal(got, seqs) || p.Latest != latest || p.Complete != complete {
		t.Fatalf("%s: got seqs %v Latest %d Complete %v; want seqs %v Latest %d Complete %v",
			what, got, p.Latest, p.Complete, seqs, latest, complete)
	}
}

func (s *inboxSuite) testSequences(t *testing.T) {
	b := s.inbox(t)
	want := map[string]uint64{}
	for i := range 12 {
		app, user := "app1", []string{"alice", "bob", "carol"}[i%3]
		if i%4 == 3 {
			app = "app2"
		}
		key := app + "/" + user
		want[key]++
		if got := b.one(app, user, "m"+strconv.Itoa(i), longTTL); got != want[key] {
			t.Fatalf("append %d to %s: seq %d, want %d", i, key, got, want[key])
		}
	}
	for key, n := range want {
		app, user, _ := cutSlash(key)
		if latest, acked := b.state(app, user); latest != n || acked != 0 {
			t.Fatalf("State(%s) = %d, %d; want %d, 0", key, latest, acked, n)
		}
		expectPage(t, "Read "+key, b.read(app, user, 0, 0), seqRange(1, n), n, true)
	}
	if latest, _ := b.state("app3", "alice"); latest != 0 {
		t.Fatalf("State of an untouched inbox: latest %d", latest)
	}
}

func cutSlash(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (s *inboxSuite) testManyUsers(t *testing.T) {
	b := s.inbox(t)
	const n = 1100 // more than one round of a batched backend, typically
	users := make([]string, n)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	for i, seq := range b.append("many", users, "first", []byte("one"), longTTL) {
		if seq != 1 {
			t.Fatalf("first append: user %s got seq %d", users[i], seq)
		}
	}
	// Again, with new users mixed in and one user listed twice.
	second := append([]string{"new0", users[7]}, users[:50]...)
	second = append(second, "new1")
	seqs := b.append("many", second, "second", []byte("two"), longTTL)
	for i, u := range second {
		want := uint64(2)
		if u == "new0" || u == "new1" {
			want = 1
		}
		if seqs[i] != want {
			t.Fatalf("second append: user %s (position %d) got seq %d, want %d", u, i, seqs[i], want)
		}
	}
	expectPage(t, "twice-listed user", b.read("many", users[7], 0, 0), []uint64{1, 2}, 2, true)
	for _, i := range []int{0, 49, 50, 517, 1023, 1024, n - 1} {
		p := b.read("many", users[i], 0, 0)
		want := []uint64{1}
		if i < 50 {
			want = []uint64{1, 2}
		}
		expectPage(t, "user "+users[i], p, want, uint64(len(want)), true)
		if p.Msgs[0].ID != "first" || string(p.Msgs[0].Payload) != "one" {
			t.Fatalf("user %s: message 1 is %q %q", users[i], p.Msgs[0].ID, p.Msgs[0].Payload)
		}
	}
}

func (s *inboxSuite) testPaging(t *testing.T) {
	b := s.inbox(t)
	const n = 10
	before := time.Now()
	for i := 1; i <= n; i++ {
		b.one("app", "pager", "id"+strconv.Itoa(i), longTTL)
	}
	after := time.Now()
	p := b.read("app", "pager", 0, 0)
	expectPage(t, "Read all", p, seqRange(1, n), n, true)
	for _, m := range p.Msgs {
		id := "id" + strconv.FormatUint(m.Seq, 10)
		if m.ID != id || string(m.Payload) != "payload:"+id {
			t.Fatalf("message %d: id %q payload %q", m.Seq, m.ID, m.Payload)
		}
		if m.Created.Before(before.Add(-time.Second)) || m.Created.After(after.Add(time.Second)) {
			t.Fatalf("message %d: Created %v not within the appends [%v, %v]", m.Seq, m.Created, before, after)
		}
		if d := m.Expires.Sub(m.Created) - longTTL; d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("message %d: Expires - Created = %v, want %v", m.Seq, m.Expires.Sub(m.Created), longTTL)
		}
	}
	expectPage(t, "Read after 3 limit 4", b.read("app", "pager", 3, 4), seqRange(4, 7), n, true)
	expectPage(t, "Read after 8 limit 4", b.read("app", "pager", 8, 4), seqRange(9, 10), n, true)
	expectPage(t, "Read after Latest", b.read("app", "pager", n, 5), nil, n, true)
	expectPage(t, "Read after beyond Latest", b.read("app", "pager", n+5, 5), nil, n, true)
	// Paging through with limit 3 yields everything once, in order.
	var got []uint64
	for cursor := uint64(0); ; {
		p := b.read("app", "pager", cursor, 3)
		if !p.Complete {
			t.Fatalf("page after %d incomplete", cursor)
		}
		if len(p.Msgs) == 0 {
			break
		}
		got = append(got, seqsOf(p.Msgs)...)
		cursor = p.Msgs[len(p.Msgs)-1].Seq
	}
	if !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("paging with limit 3: %v", got)
	}
	expectPage(t, "Read of an untouched inbox", b.read("app", "nobody", 0, 10), nil, 0, true)
}

func (s *inboxSuite) testConcurrentAppends(t *testing.T) {
	b := s.inbox(t)
	const workers, each = 8, 25
	var mu sync.Mutex
	bySeq := map[uint64]string{}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx, cancel := callCtx(t)
			defer cancel()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				users := []string{"hot"}
				if i%3 == 0 { // some appends also go to other users at once
					users = append(users, "cold"+strconv.Itoa(w), "shared")
				}
				seqs, err := b.ib.Append(ctx, "app", users, id, []byte(id), longTTL)
				if err != nil {
					errs <- fmt.Errorf("append %s: %w", id, err)
					return
				}
				mu.Lock()
				if prev, dup := bySeq[seqs[0]]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("seq %d assigned to %s and %s", seqs[0], prev, id)
					return
				}
				bySeq[seqs[0]] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = workers * each
	for seq := uint64(1); seq <= total; seq++ {
		if _, ok := bySeq[seq]; !ok {
			t.Fatalf("seq %d of %d never assigned", seq, total)
		}
	}
	p := b.read("app", "hot", 0, 0)
	expectPage(t, "hot user", p, seqRange(total-InboxCap+1, total), total, false)
	for _, m := range p.Msgs {
		if id := bySeq[m.Seq]; m.ID != id || string(m.Payload) != id {
			t.Fatalf("message %d is %q %q, but Append returned %d for %q", m.Seq, m.ID, m.Payload, m.Seq, id)
		}
	}
	shared := uint64(workers * ((each + 2) / 3))
	expectPage(t, "shared user", b.read("app", "shared", shared-3, 0), seqRange(shared-2, shared), shared, true)
}
