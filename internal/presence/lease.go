package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Liveness. A node renews its lease (a key of the lease bucket) every
// LeaseTTL/4. Another node judges it by observed progress, on its own
// monotonic clock: it reads the lease's revision from the bucket's leader
// at each sweep and notes when it last saw it advance. A node is dead when
// its lease has not advanced for LeaseTTL as seen here while this node's
// own renewals succeed, and have succeeded without a miss for at least
// LeaseTTL/2: a lease bucket that cannot be written (its leader being
// elected, say) stalls every node's renewals alike, so nobody is judged
// dead for it, and after it heals every live node has time to renew
// before anyone judges again. A lease given up by Close (purged) is dead
// at once. Neither a missing key (aged out by the bucket's TTL while
// nobody could renew) nor a lagging replica can make a node look dead:
// only the absence of progress can.

// lease is what this node knows of its own renewals. Guarded by mu.
type lease struct {
	mu      sync.Mutex
	ok      time.Time // the last successful renewal
	healthy time.Time // the first renewal of the current run without a miss
	missed  bool      // the last renewal failed (logged once per run)
}

// seen is when a node's lease revision was last seen to advance, on the
// local clock. Used by the sweeper goroutine only.
type seen struct {
	rev uint64
	at  time.Time
}

// renewEvery is the lease renewal period.
func (t *Tracker) renewEvery() time.Duration { return t.cfg.LeaseTTL / 4 }

// renew (re)writes this node's lease and notes the success.
func (t *Tracker) renew(ctx context.Context) error {
	if _, err := t.leases.Put(ctx, tok(t.cfg.NodeID), []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("presence: renewing lease: %w", err)
	}
	now := time.Now()
	t.lease.mu.Lock()
	defer t.lease.mu.Unlock()
	if t.lease.ok.IsZero() || t.lease.missed {
		t.lease.healthy = now // a renewal was missed: start over
	}
	t.lease.ok, t.lease.missed = now, false
	return nil
}

// mayJudge reports whether this node may declare others dead at now: its
// own renewals succeed (the last one within two periods) and have for
// LeaseTTL/2 without a miss.
func (t *Tracker) mayJudge(now time.Time) bool {
	t.lease.mu.Lock()
	defer t.lease.mu.Unlock()
	return !t.lease.ok.IsZero() && !t.lease.missed && now.Sub(t.lease.ok) <= 2*t.renewEvery() &&
		now.Sub(t.lease.healthy) >= t.cfg.LeaseTTL/2
}

// renewer renews the lease until Close: every LeaseTTL/4, each attempt
// bounded by that period, a failed one retried soon. It runs apart from
// the sweeps, so that a slow sweep never lets this node's lease lapse.
func (t *Tracker) renewer() {
	defer t.wg.Done()
	every := t.renewEvery()
	wait := time.NewTimer(every)
	defer wait.Stop()
	for {
		select {
		case <-t.closing:
			return
		case <-wait.C:
		}
		ctx, cancel := context.WithTimeout(t.base, every)
		err := t.renew(ctx)
		cancel()
		if err == nil {
			wait.Reset(every)
			continue
		}
		t.lease.mu.Lock()
		if !t.lease.missed {
			t.cfg.Logger.Warn("presence: lease not renewed; retrying", "err", err)
		}
		t.lease.missed = true
		t.lease.mu.Unlock()
		wait.Reset(every / 8)
	}
}

// sweeper sweeps dead nodes every SweepEvery until Close.
func (t *Tracker) sweeper() {
	defer t.wg.Done()
	sweep := time.NewTicker(t.cfg.SweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-t.closing:
			return
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(t.base, 4*t.cfg.Timeout)
			if err := t.sweep(ctx); err != nil {
				t.cfg.Logger.Warn("presence: sweeping dead nodes", "err", err)
			}
			cancel()
		}
	}
}

// sweep sweeps every node of the roster found dead. The roster is the
// union of every listing so far, less the nodes swept, so that a listing
// that fails or comes back short while the cluster changes leaders
// delays nobody's sweep.
func (t *Tracker) sweep(ctx context.Context) error {
	listed, err := t.keys(ctx, "r.*")
	for _, k := range listed {
		t.roster[k] = true
	}
	if err != nil {
		t.cfg.Logger.Warn("presence: listing nodes", "err", err)
	}
	self := rosterKey(t.cfg.NodeID)
	for k := range t.roster {
		if k == self {
			continue
		}
		nt := strings.TrimPrefix(k, "r.")
		dead, err := t.dead(ctx, nt)
		if err != nil {
			return err
		}
		if !dead {
			continue
		}
		if node, err := untok(nt); err == nil {
			if err := t.sweepNode(ctx, node, k); err != nil {
				return err
			}
		}
		delete(t.seen, nt)
		delete(t.roster, k)
	}
	return nil
}

// dead reads the lease of the node whose key token is nt and judges it
// (see Liveness above). Called by the sweeper goroutine only.
func (t *Tracker) dead(ctx context.Context, nt string) (bool, error) {
	// A read sent while the lease bucket has no leader gets no answer at
	// all: bounded by a renewal period, it is tried again at the next
	// sweep rather than holding up every sweep after it.
	ctx, cancel := context.WithTimeout(ctx, t.renewEvery())
	defer cancel()
	rev, purged, err := t.readLease(ctx, nt)
	if err != nil {
		return false, err
	}
	if purged {
		return true, nil
	}
	now := time.Now()
	s, ok := t.seen[nt]
	if !ok || rev > s.rev {
		s = seen{rev: rev, at: now}
		t.seen[nt] = s
	}
	if now.Sub(s.at) < t.cfg.LeaseTTL {
		return false, nil
	}
	if !t.mayJudge(now) {
		t.cfg.Logger.Info("presence: a node's lease is stale, but so are this node's renewals: not judging", "node", nt)
		return false, nil
	}
	return true, nil
}

// readLease reads the lease of the node whose key token is nt from the
// lease bucket's leader (a replica may lag): its revision (0 if there is
// none) and whether it was given up.
func (t *Tracker) readLease(ctx context.Context, nt string) (rev uint64, purged bool, err error) {
	m, err := t.lastMsg(ctx, t.cfg.Bucket+"_LEASES", nt)
	if err != nil || m == nil {
		return 0, false, err
	}
	return m.Seq, m.op() != "", nil
}

// rawMsg is a stream message as JetStream's API returns it.
type rawMsg struct {
	Seq  uint64 `json:"seq"`
	Hdrs []byte `json:"hdrs"`
	Data []byte `json:"data"`
}

// op is the key-value operation of a removal ("DEL" or "PURGE"), "" for a
// value.
func (m *rawMsg) op() string {
	h := string(m.Hdrs)
	i := strings.Index(h, "KV-Operation:")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(h[i+len("KV-Operation:"):], "\r\n", 2)[0])
}

// lastMsg reads the last message of key in bucket from the bucket's
// stream leader (nil if there is none). Unlike a key-value Get, which any
// replica may answer, it never returns a lagging replica's view.
func (t *Tracker) lastMsg(ctx context.Context, bucket, key string) (*rawMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	m, err := t.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	var resp struct {
		Message *rawMsg `json:"message"`
		Error   *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errCodeNoMessage:
		return nil, nil
	case resp.Error != nil:
		return nil, fmt.Errorf("reading %s: %w: %s", key, errRead, resp.Error.Description)
	case resp.Message == nil:
		return nil, fmt.Errorf("reading %s: %w: empty answer", key, errRead)
	}
	return resp.Message, nil
}

// errCodeNoMessage is JetStream's error code for "no message found".
const errCodeNoMessage = 10037

var errRead = errors.New("presence: read refused")
