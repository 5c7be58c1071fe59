package bench

import (
	"math"
	"time"
)

// histBuckets covers 1µs to ~100s in steps of 2%.
const (
	histStep    = 1.02
	histBuckets = 950
)

// Hist is a log-bucketed latency histogram (microseconds).
type Hist struct {
	Counts []uint64 `json:"c"`
	Max    int64    `json:"max"` // µs
}

func newHist() Hist { return Hist{Counts: make([]uint64, histBuckets)} }

// Add records one latency.
func (h *Hist) Add(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	if us > h.Max {
		h.Max = us
	}
	i := int(math.Log(float64(us)) / math.Log(histStep))
	h.Counts[min(i, histBuckets-1)]++
}

// Merge adds o into h.
func (h *Hist) Merge(o Hist) {
	if h.Counts == nil {
		*h = newHist()
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Max = max(h.Max, o.Max)
}

// Total is the number of samples.
func (h *Hist) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the latency at q (0..1), as the upper edge of its bucket.
func (h *Hist) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= want {
			us := math.Pow(histStep, float64(i+1))
			return time.Duration(min(us, float64(h.Max))) * time.Microsecond
		}
	}
	return time.Duration(h.Max) * time.Microsecond
}
