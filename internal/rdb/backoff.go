package rdb

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the pause before reconnecting after the given number of consecutive failures (1 or more): it doubles
// from lo up to hi, with jitter (half fixed, half random) so that many servers do not retry in step.
func Backoff(failures int, lo, hi time.Duration) time.Duration {
	d := lo << min(max(failures, 1)-1, 16)
	if d > hi || d <= 0 {
		d = hi
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d, or less if ctx ends first; it reports whether the whole wait happened.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
