package redisstreams

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is the shortest interval between two log lines of one kind that can repeat per message.
const logEvery = 10 * time.Second

// rateLimited lets one log line of a kind through per logEvery and counts the ones it holds back, so that a flood
// of bad entries or failed writes costs one line every few seconds, with the count of those not logged.
type rateLimited struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now, and how many were held back since the last one.
func (r *rateLimited) allow() (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && time.Since(r.last) < logEvery {
		r.suppressed++
		return false, 0
	}
	r.last = time.Now()
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// add counts n more lines held back (when a caller logs a batch as one).
func (r *rateLimited) add(n int) {
	r.mu.Lock()
	r.suppressed += n - 1
	r.mu.Unlock()
}

// logLimited logs through r: at most one line per logEvery, with the count of the lines held back.
func (a *Adapter) logLimited(r *rateLimited, level slog.Level, msg string, args ...any) {
	if ok, suppressed := r.allow(); ok {
		a.log.Log(context.Background(), level, msg, append(args, "unlogged_before", suppressed)...)
	}
}
