package push

import (
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/internal/engine"
)

// Taps lets an observer (the admin live tail) see the pushes a node that
// is the whole cluster hands to its hub directly: user and connection
// pushes skip the engine there (Limits.Alone), so a subscription to the
// engine's topic alone would miss them. A push costs one atomic load
// while nobody taps.
type Taps struct {
	n  atomic.Int32
	mu sync.Mutex
	by map[engine.Topic]map[*tap]struct{}
}

type tap struct{ h func(payload []byte) }

// Add calls h with the engine payload of every push to t that skips the
// engine, until stop is called. h must not block.
func (ts *Taps) Add(t engine.Topic, h func(payload []byte)) (stop func()) {
	tp := &tap{h: h}
	ts.mu.Lock()
	if ts.by == nil {
		ts.by = map[engine.Topic]map[*tap]struct{}{}
	}
	if ts.by[t] == nil {
		ts.by[t] = map[*tap]struct{}{}
	}
	ts.by[t][tp] = struct{}{}
	ts.n.Add(1)
	ts.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			ts.mu.Lock()
			delete(ts.by[t], tp)
			if len(ts.by[t]) == 0 {
				delete(ts.by, t)
			}
			ts.n.Add(-1)
			ts.mu.Unlock()
		})
	}
}

// watched reports whether anyone taps at all.
func (ts *Taps) watched() bool { return ts.n.Load() > 0 }

// publish hands payload to t's taps.
func (ts *Taps) publish(t engine.Topic, payload []byte) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for tp := range ts.by[t] {
		tp.h(payload)
	}
}
