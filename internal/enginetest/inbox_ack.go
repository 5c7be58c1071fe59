package enginetest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

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
