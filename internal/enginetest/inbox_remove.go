package enginetest

import (
	"strconv"
	"testing"
)

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
