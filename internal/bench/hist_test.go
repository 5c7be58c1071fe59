package bench

import (
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	if h.Total() != 1000 {
		t.Fatalf("total %d", h.Total())
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.99: 990 * time.Millisecond, 1: time.Second} {
		got := h.Quantile(q)
		if got < want || got > want+want/40 { // one 2 % bucket of resolution
			t.Errorf("q%.2f = %v, want %v (+2%%)", q, got, want)
		}
	}
	var merged Hist
	merged.Merge(h)
	merged.Merge(h)
	if merged.Total() != 2000 || merged.Quantile(0.5) != h.Quantile(0.5) || merged.Max != h.Max {
		t.Fatalf("merged: total %d p50 %v max %v", merged.Total(), merged.Quantile(0.5), merged.Max)
	}
	if (&Hist{Counts: make([]uint64, histBuckets)}).Quantile(0.99) != 0 {
		t.Fatal("an empty histogram has a quantile")
	}
}

func TestCountScansPushFrames(t *testing.T) {
	w := &worker{hist: newHist(), wire: heraldWire}
	c := &benchConn{last: -1}
	frame := []byte(`{"type":"push","msgs":[{"id":"m_1","data":{"i":1,"t":1,"p":"x"},"ts":1},{"id":"m_2","data":{"i":2,"t":1,"p":"x"},"ts":1},{"id":"m_3","data":{"i":2,"t":1,"p":"x"},"ts":1}]}`)
	w.count(c, frame)
	if w.received.Load() != 3 || w.dups.Load() != 1 || w.hist.Total() != 3 {
		t.Fatalf("received %d, dups %d, latencies %d", w.received.Load(), w.dups.Load(), w.hist.Total())
	}
}
