package enginetest

import (
	"bytes"
	"context"
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
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
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
	} {
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

func (s *inboxSuite) testAck(t *testing.T) {
	b := s.inbox(t)
	if latest, acked := b.state("app", "acker"); latest != 0 || acked != 0 {
		t.Fatalf("fresh State = %d, %d", latest, acked)
	}
	if b.ack("app", "acker", 1) {
		t.Fatal("Ack(1) on an empty inbox applied")
	}
	for i := range 5 {
		b.one("app", "acker", strconv.Itoa(i), longTTL)
	}
	steps := []struct {
		seq       uint64
		ok        bool
		wantAcked uint64
	}{
		{3, true, 3},
		{2, true, 3}, // never lowers
		{3, true, 3},
		{6, false, 3}, // beyond latest
		{1 << 40, false, 3},
		{5, true, 5},
		{0, true, 5},
	}
	for _, st := range steps {
		if ok := b.ack("app", "acker", st.seq); ok != st.ok {
			t.Fatalf("Ack(%d) = %v, want %v", st.seq, ok, st.ok)
		}
		if latest, acked := b.state("app", "acker"); latest != 5 || acked != st.wantAcked {
			t.Fatalf("after Ack(%d): State = %d, %d; want 5, %d", st.seq, latest, acked, st.wantAcked)
		}
	}
	if p := b.read("app", "acker", 0, 0); p.Acked != 5 || p.Latest != 5 {
		t.Fatalf("Read: Latest %d Acked %d, want 5, 5", p.Latest, p.Acked)
	}
	// Acks are per user and app.
	b.one("app", "other", "x", longTTL)
	b.one("app2", "acker", "x", longTTL)
	for _, k := range [][2]string{{"app", "other"}, {"app2", "acker"}} {
		if _, acked := b.state(k[0], k[1]); acked != 0 {
			t.Fatalf("State(%s, %s): acked %d, want 0", k[0], k[1], acked)
		}
	}
}

func (s *inboxSuite) testAckConcurrent(t *testing.T) {
	b := s.inbox(t)
	const n = 40
	for i := range n {
		b.one("app", "racer", strconv.Itoa(i), longTTL)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			ctx, cancel := callCtx(t)
			defer cancel()
			var seen uint64
			for range 15 {
				seq := r.Uint64N(n) + 1
				if ok, err := b.ib.Ack(ctx, "app", "racer", seq); err != nil || !ok {
					errs <- fmt.Errorf("Ack(%d) = %v, %v", seq, ok, err)
					return
				}
				_, acked, err := b.ib.State(ctx, "app", "racer")
				if err != nil {
					errs <- err
					return
				}
				if acked < seq || acked < seen {
					errs <- fmt.Errorf("acked %d after Ack(%d) (previously saw %d)", acked, seq, seen)
					return
				}
				seen = acked
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !b.ack("app", "racer", n) {
		t.Fatal("final Ack failed")
	}
	if _, acked := b.state("app", "racer"); acked != n {
		t.Fatalf("acked %d, want %d", acked, n)
	}
}

// awaitGone polls until Read(after 0) no longer returns seq, and fails if
// a Read started after the message's expiry still returns it. It polls
// often, so that a backend that returns a message until it happens to
// delete it (a little after its expiry) is caught.
func (b *ibox) awaitGone(app, user string, seq uint64, expires time.Time) {
	b.t.Helper()
	poll(b.t, fmt.Sprintf("message %d of %s/%s expiring", seq, app, user), 2*time.Millisecond, func() bool {
		start := time.Now()
		p := b.read(app, user, 0, 0)
		has := slices.Contains(seqsOf(p.Msgs), seq)
		if has && start.After(expires) {
			b.t.Fatalf("Read started at %v returned message %d, which expired at %v", start, seq, expires)
		}
		return !has
	})
}

func (s *inboxSuite) testExpiry(t *testing.T) {
	b := s.inbox(t)
	b.one("app", "exp", "a", longTTL)
	b.one("app", "exp", "b", shortTTL)
	b.one("app", "exp", "c", longTTL)
	p := b.read("app", "exp", 0, 0)
	expectPage(t, "before expiry", p, []uint64{1, 2, 3}, 3, true)
	b.awaitGone("app", "exp", 2, p.Msgs[1].Expires)
	expectPage(t, "after expiry", b.read("app", "exp", 0, 0), []uint64{1, 3}, 3, false)
	expectPage(t, "after expiry, after 1", b.read("app", "exp", 1, 0), []uint64{3}, 3, false)
	expectPage(t, "after expiry, after 2", b.read("app", "exp", 2, 0), []uint64{3}, 3, true)
	if latest, _ := b.state("app", "exp"); latest != 3 {
		t.Fatalf("State latest %d after expiry, want 3", latest)
	}
	// The latest message expiring is a loss too.
	b.one("app", "exp2", "a", longTTL)
	b.one("app", "exp2", "b", shortTTL)
	p = b.read("app", "exp2", 0, 0)
	b.awaitGone("app", "exp2", 2, p.Msgs[1].Expires)
	expectPage(t, "latest expired", b.read("app", "exp2", 0, 0), []uint64{1}, 2, false)
	expectPage(t, "latest expired, after 1", b.read("app", "exp2", 1, 0), nil, 2, false)
}

func (s *inboxSuite) testExpiryBeyondPage(t *testing.T) {
	b := s.inbox(t)
	b.one("app", "beyond", "a", longTTL)
	b.one("app", "beyond", "b", longTTL)
	b.one("app", "beyond", "c", shortTTL)
	b.one("app", "beyond", "d", longTTL)
	p := b.read("app", "beyond", 0, 0)
	b.awaitGone("app", "beyond", 3, p.Msgs[2].Expires)
	// The page that would hold the lost message reports it, so a reader
	// going through the pages (ANDing Complete) always learns of it. (A
	// page cut before it may still count it as present while the backend
	// keeps the expired message; see engine.Page.)
	expectPage(t, "page of the loss", b.read("app", "beyond", 2, 1), []uint64{4}, 4, false)
	expectPage(t, "after the loss", b.read("app", "beyond", 3, 1), []uint64{4}, 4, true)
}

func (s *inboxSuite) testNotReused(t *testing.T) {
	b := s.inbox(t)
	for i := range 3 {
		b.one("app", "mayfly", strconv.Itoa(i), shortTTL)
	}
	p := b.read("app", "mayfly", 0, 0)
	expectPage(t, "before expiry", p, []uint64{1, 2, 3}, 3, true)
	for _, m := range p.Msgs {
		b.awaitGone("app", "mayfly", m.Seq, m.Expires)
	}
	expectPage(t, "all expired", b.read("app", "mayfly", 0, 0), nil, 3, false)
	if latest, _ := b.state("app", "mayfly"); latest != 3 {
		t.Fatalf("State latest %d after everything expired, want 3", latest)
	}
	if seq := b.one("app", "mayfly", "again", longTTL); seq != 4 {
		t.Fatalf("Append after everything expired: seq %d, want 4", seq)
	}
	expectPage(t, "after a new append", b.read("app", "mayfly", 3, 0), []uint64{4}, 4, true)
}

func (s *inboxSuite) testCap(t *testing.T) {
	b := s.inbox(t)
	const extra = 5
	for i := range InboxCap + extra {
		if seq := b.one("app", "capped", strconv.Itoa(i), longTTL); seq != uint64(i+1) {
			t.Fatalf("append %d: seq %d", i, seq)
		}
	}
	latest := uint64(InboxCap + extra)
	first := uint64(extra + 1)
	expectPage(t, "over the cap", b.read("app", "capped", 0, 0), seqRange(first, latest), latest, false)
	expectPage(t, "after the last dropped", b.read("app", "capped", first-1, 0), seqRange(first, latest), latest, true)
	expectPage(t, "after below the first kept", b.read("app", "capped", first-2, 0), seqRange(first, latest), latest, false)
	expectPage(t, "limit 2, after the last dropped", b.read("app", "capped", first-1, 2), []uint64{first, first + 1}, latest, true)
	expectPage(t, "limit 2, after below the first kept", b.read("app", "capped", 0, 2), []uint64{first, first + 1}, latest, false)
	// Other users keep their own cap.
	b.one("app", "uncapped", "x", longTTL)
	expectPage(t, "another user", b.read("app", "uncapped", 0, 0), []uint64{1}, 1, true)
}

func (s *inboxSuite) testRemove(t *testing.T) {
	b := s.inbox(t)
	for i := range 6 {
		b.one("app", "recall", strconv.Itoa(i), longTTL)
	}
	for _, c := range []struct {
		seq uint64
		ok  bool
	}{{3, true}, {3, false}, {0, false}, {7, false}, {1 << 40, false}, {1, true}, {5, true}} {
		if ok := b.remove("app", "recall", c.seq); ok != c.ok {
			t.Fatalf("Remove(%d) = %v, want %v", c.seq, ok, c.ok)
		}
	}
	expectPage(t, "after removals", b.read("app", "recall", 0, 0), []uint64{2, 4, 6}, 6, true)
	expectPage(t, "limit 1", b.read("app", "recall", 0, 1), []uint64{2}, 6, true)
	expectPage(t, "after 2, limit 1", b.read("app", "recall", 2, 1), []uint64{4}, 6, true)
	expectPage(t, "after 3", b.read("app", "recall", 3, 0), []uint64{4, 6}, 6, true)
	if seq := b.one("app", "recall", "next", longTTL); seq != 7 {
		t.Fatalf("Append after removals: seq %d, want 7", seq)
	}
	expectPage(t, "after another append", b.read("app", "recall", 0, 0), []uint64{2, 4, 6, 7}, 7, true)
	// Removal combines with loss: the expired one still counts as lost.
	b.one("app", "recall", "short", shortTTL)
	b.one("app", "recall", "last", longTTL)
	p := b.read("app", "recall", 0, 0)
	b.awaitGone("app", "recall", 8, p.Msgs[len(p.Msgs)-2].Expires)
	if b.remove("app", "recall", 8) {
		t.Fatal("Remove of an expired message reported true")
	}
	expectPage(t, "removed and expired", b.read("app", "recall", 0, 0), []uint64{2, 4, 6, 7, 9}, 9, false)
	expectPage(t, "after the expired one", b.read("app", "recall", 8, 0), []uint64{9}, 9, true)
	// Another user's messages are untouched by these removals.
	b.one("app", "bystander", "x", longTTL)
	b.one("app", "bystander", "y", longTTL)
	if b.remove("app", "bystander", 3) {
		t.Fatal("Remove of a seq the user does not have reported true")
	}
	expectPage(t, "bystander", b.read("app", "bystander", 0, 0), []uint64{1, 2}, 2, true)
}

func (s *inboxSuite) testRemoveLatest(t *testing.T) {
	b := s.inbox(t)
	b.one("app", "tail", "1", longTTL)
	b.one("app", "tail", "2", longTTL)
	if !b.remove("app", "tail", 2) {
		t.Fatal("Remove(latest) = false")
	}
	expectPage(t, "latest removed", b.read("app", "tail", 0, 0), []uint64{1}, 2, true)
	expectPage(t, "latest removed, after 1", b.read("app", "tail", 1, 0), nil, 2, true)
	if latest, _ := b.state("app", "tail"); latest != 2 {
		t.Fatalf("State latest %d after removing the latest, want 2", latest)
	}
	if seq := b.one("app", "tail", "3", longTTL); seq != 3 {
		t.Fatalf("Append after removing the latest: seq %d, want 3", seq)
	}
	expectPage(t, "after a new append", b.read("app", "tail", 0, 0), []uint64{1, 3}, 3, true)
	// Removing everything leaves an empty, complete inbox.
	for _, seq := range []uint64{1, 3} {
		if !b.remove("app", "tail", seq) {
			t.Fatalf("Remove(%d) = false", seq)
		}
	}
	expectPage(t, "all removed", b.read("app", "tail", 0, 0), nil, 3, true)
	if seq := b.one("app", "tail", "4", longTTL); seq != 4 {
		t.Fatalf("Append after removing everything: seq %d, want 4", seq)
	}
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

func (s *inboxSuite) testPayloads(t *testing.T) {
	b := s.inbox(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, InboxBigPayload)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	cases := []struct {
		id      string
		payload []byte
	}{
		{"", nil},
		{"empty", []byte{}},
		{"nul", []byte{0}},
		{"bytes\x00\xff", all},
		{"json", []byte(`{"a":[1,2,"\u00fc"],"b":null}` + "\r\n")},
		{"ü 日本語 🙂", []byte("NATS/1.0\r\nStatus: 404\r\n\r\n")},
		{"big", big},
	}
	for _, c := range cases {
		b.append("app", []string{"bin", "bin2"}, c.id, c.payload, longTTL)
	}
	for _, user := range []string{"bin", "bin2"} {
		p := b.read("app", user, 0, 0)
		expectPage(t, "payloads of "+user, p, seqRange(1, uint64(len(cases))), uint64(len(cases)), true)
		for i, c := range cases {
			if m := p.Msgs[i]; m.ID != c.id || !bytes.Equal(m.Payload, c.payload) {
				t.Fatalf("%s message %d: id %q, %d payload bytes; want id %q, %d bytes", user, i+1, m.ID, len(m.Payload), c.id, len(c.payload))
			}
		}
	}
}

// inboxNames are app and user names that are awkward for a backend's key
// syntax.
var inboxNames = []string{"", "a", "A", ".", "a.b", "*", ">", "~", "~YQ", "a b", "\x00", "ü", "hrl.inbox.a.b"}

func (s *inboxSuite) testInboxNames(t *testing.T) {
	b := s.inbox(t)
	for _, app := range inboxNames {
		for _, user := range inboxNames {
			b.append(app, []string{user}, "", []byte(app+"|"+user), longTTL)
		}
	}
	for _, app := range inboxNames {
		for _, user := range inboxNames {
			p := b.read(app, user, 0, 0)
			if len(p.Msgs) != 1 || string(p.Msgs[0].Payload) != app+"|"+user || p.Latest != 1 {
				t.Fatalf("inbox (%q, %q): %d messages, first %q, Latest %d", app, user, len(p.Msgs), firstPayload(p), p.Latest)
			}
		}
	}
}

func firstPayload(p engine.Page) string {
	if len(p.Msgs) == 0 {
		return ""
	}
	return string(p.Msgs[0].Payload)
}

func (s *inboxSuite) testInvalid(t *testing.T) {
	b := s.inbox(t)
	ctx, cancel := callCtx(t)
	defer cancel()
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := b.ib.Append(ctx, "app", []string{"u"}, "x", nil, ttl); !errors.Is(err, engine.ErrInvalidArgument) {
			t.Fatalf("Append with ttl %v: %v, want engine.ErrInvalidArgument", ttl, err)
		}
	}
	if latest, _ := b.state("app", "u"); latest != 0 {
		t.Fatalf("a refused Append assigned seq %d", latest)
	}
	seqs, err := b.ib.Append(ctx, "app", nil, "x", nil, longTTL)
	if err != nil || len(seqs) != 0 {
		t.Fatalf("Append to no users = %v, %v", seqs, err)
	}
}

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
