package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats.go/jetstream"
)

// readyEvery is how long one readiness answer of the inbox stays valid:
// a flood of /readyz calls costs JetStream at most one probe a second.
const readyEvery = time.Second

// readyTimeout bounds one readiness probe.
const readyTimeout = 2 * time.Second

// readyProbe remembers the last readiness answer of the inbox and lets one
// caller at a time probe again.
type readyProbe struct {
	mu      sync.Mutex
	at      time.Time     // when err was found
	err     error         // the last answer
	running chan struct{} // closed when the probe under way ends; nil when none is
}

// Ready reports whether the inbox can serve now: connect (read a user's
// state from the stream leader), replay and store. It asks the stream's
// leader for the stream's info, which fails while the stream has no
// leader, and counts the replicas the leader heard from lately: fewer
// than a majority means writes cannot commit. The answer is kept for a
// second; concurrent callers share one probe.
func (ib *Inbox) Ready(ctx context.Context) error {
	p := &ib.ready
	for {
		p.mu.Lock()
		if !p.at.IsZero() && time.Since(p.at) < readyEvery {
			err := p.err
			p.mu.Unlock()
			return err
		}
		if wait := p.running; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return fmt.Errorf("natsinbox: inbox ready: %w", errors.Join(engine.ErrUnavailable, ctx.Err()))
			}
		}
		done := make(chan struct{})
		p.running = done
		p.mu.Unlock()

		err := ib.probe(ctx)
		p.mu.Lock()
		p.at, p.err, p.running = time.Now(), err, nil
		if ctx.Err() != nil { // the caller gave up; the answer says nothing about the stream
			p.at = time.Time{}
		}
		p.mu.Unlock()
		close(done)
		return err
	}
}

// probe asks the inbox stream's leader for the stream's info.
func (ib *Inbox) probe(ctx context.Context) error {
	c := ib.conn.Load()
	if c == nil || c.nc.IsClosed() || !c.nc.IsConnected() {
		return fmt.Errorf("natsinbox: inbox ready: %w", engine.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	s, err := c.js.Stream(ctx, Stream)
	if err != nil {
		return fmt.Errorf("natsinbox: inbox ready: %w", errors.Join(engine.ErrUnavailable, err))
	}
	return quorum(s.CachedInfo())
}

// recentPeer is how long ago a replica may have been heard from last and
// still count towards the stream's majority (Raft heartbeats come every
// second).
const recentPeer = 5 * time.Second

// quorum checks that the stream has a leader and that a majority of its
// replicas (the leader included) are online and heard from lately.
func quorum(si *jetstream.StreamInfo) error {
	ci := si.Cluster
	if si.Config.Replicas <= 1 || ci == nil {
		return nil
	}
	if ci.Leader == "" {
		return fmt.Errorf("natsinbox: inbox ready: stream %s has no leader: %w", Stream, engine.ErrUnavailable)
	}
	live := 1
	for _, p := range ci.Replicas {
		if p != nil && !p.Offline && p.Active < recentPeer {
			live++
		}
	}
	if need := si.Config.Replicas/2 + 1; live < need {
		return fmt.Errorf("natsinbox: inbox ready: stream %s has %d of %d replicas online, needs %d: %w",
			Stream, live, si.Config.Replicas, need, engine.ErrUnavailable)
	}
	return nil
}
