package enginetest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

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
