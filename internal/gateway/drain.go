package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// Accepting reports whether the gateway takes new connections: false once
// it drains or shuts down.
func (g *Gateway) Accepting() bool { return g.closing.Load() == 0 }

// StopAccepting makes new connections answer 503 from now on; the open ones
// stay. It reports false if the gateway had stopped accepting already.
func (g *Gateway) StopAccepting() bool {
	return g.closing.CompareAndSwap(0, protocol.CloseDraining)
}

// drainTick is the finest step of a drain: closes due within one tick go
// together.
const drainTick = 10 * time.Millisecond

// Drain stops accepting and closes the open connections with the draining
// code (4000: reconnect, to another node), after what is queued for each,
// spread evenly over the given time so that their clients come back
// elsewhere gradually: the first at once, the last about over·(n−1)/n
// later. It returns when every one was told to close, or ctx ends.
func (g *Gateway) Drain(ctx context.Context, over time.Duration) error {
	g.StopAccepting()
	var conns []*conn
	g.each(func(c *conn) { conns = append(conns, c) })
	n := len(conns)
	start := time.Now()
	var tick <-chan time.Time
	if over > 0 && n > 1 {
		t := time.NewTicker(max(over/time.Duration(n), drainTick))
		defer t.Stop()
		tick = t.C
	}
	for closed := 0; closed < n; {
		due := n
		if tick != nil {
			due = min(n, int(int64(n)*int64(time.Since(start))/int64(over))+1)
		}
		for ; closed < due; closed++ {
			conns[closed].close(protocol.CloseDraining, "node draining; reconnect to another node")
		}
		if closed == n {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: drain: %w", ctx.Err())
		case <-tick:
		}
	}
	return nil
}
