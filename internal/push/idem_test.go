package push

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestIdempotencyTableIsBounded pushes many more distinct ids than the
// table holds: it keeps at most its maximum, forgetting the oldest first,
// and still answers repeats of the recent ones.
func TestIdempotencyTableIsBounded(t *testing.T) {
	s := &Service{idem: newIdemTable(time.Hour, 1600)}
	runs := map[string]int{}
	push := func(key string) {
		if _, err := s.idempotent(key, func() (string, error) { runs[key]++; return key, nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20_000 {
		push("shop\x00k" + strconv.Itoa(i))
	}
	if n := s.idem.len(); n > 1600 {
		t.Fatalf("the table holds %d ids; its maximum is 1600", n)
	}
	last := "shop\x00k19999"
	push(last)
	if runs[last] != 1 {
		t.Fatalf("a repeat of the newest id ran again (%d runs)", runs[last])
	}
	first := "shop\x00k0"
	push(first)
	if runs[first] != 2 {
		t.Fatalf("the oldest id was not forgotten (%d runs)", runs[first])
	}
	for i := range s.idem.shards {
		sh := &s.idem.shards[i]
		if q := len(sh.queue) - sh.head; q > 2*s.idem.max+1 {
			t.Fatalf("shard %d queues %d refs for at most %d ids", i, q, s.idem.max)
		}
	}
}

// TestIdempotencyExpiresFromTheFront checks that ids leave the table once
// their window ends, as later claims come in, without a sweep.
func TestIdempotencyExpiresFromTheFront(t *testing.T) {
	tab := newIdemTable(time.Minute, 1000)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 400 {
		e, own := tab.claim("a\x00k"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Millisecond))
		if !own {
			t.Fatalf("id %d claimed twice", i)
		}
		tab.settle("a\x00k"+strconv.Itoa(i), e, "k", nil)
	}
	if _, own := tab.claim("a\x00k5", t0.Add(30*time.Second)); own {
		t.Fatal("an id was forgotten within its window")
	}
	// One claim per shard at the end of the window expires that shard's
	// old ids.
	late := t0.Add(time.Minute + time.Hour)
	for i := 0; tab.len() > idemShards && i < 10_000; i++ {
		e, _ := tab.claim("b\x00late"+strconv.Itoa(i), late)
		tab.settle("b\x00late"+strconv.Itoa(i), e, "x", nil)
	}
	for i := range 400 {
		if tab.has("a\x00k" + strconv.Itoa(i)) {
			t.Fatalf("id %d is still remembered after its window", i)
		}
	}
}

// TestIdempotencyFailuresStayBounded fails the same id over and over: each
// failure is forgotten and the queue does not grow with them.
func TestIdempotencyFailuresStayBounded(t *testing.T) {
	tab := newIdemTable(time.Hour, 160)
	now := time.Unix(1_700_000_000, 0)
	for range 10_000 {
		e, own := tab.claim("a\x00same", now)
		if !own {
			t.Fatal("a failed id was remembered")
		}
		tab.settle("a\x00same", e, "", errors.New("engine down"))
	}
	sh := tab.shard("a\x00same")
	if q := len(sh.queue) - sh.head; q > 2*tab.max+1 {
		t.Fatalf("the queue holds %d refs after repeated failures", q)
	}
}
