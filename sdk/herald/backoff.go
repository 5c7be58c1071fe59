package herald

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: the delay before retry
// n (0-based) is uniform in [0, min(max, base·2ⁿ)].
type backoff struct{ base, max time.Duration }

func (b backoff) delay(n int) time.Duration {
	d := b.max
	if n < 32 {
		if e := b.base << n; e > 0 && e < d {
			d = e
		}
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// sleep waits d or until ctx ends, and reports ctx's error in that case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
