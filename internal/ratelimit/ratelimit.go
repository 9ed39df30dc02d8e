// Package ratelimit holds back log lines that can repeat per message: one line of a kind per interval, with the
// count of those held back since the last one.
package ratelimit

import (
	"sync"
	"time"
)

// Every is the shortest interval between two log lines of one kind.
const Every = 10 * time.Second

// Limiter lets one log line of a kind through per Every and counts the ones it holds back, so that a flood of bad
// entries or failed writes costs one line every few seconds, with the count of those not logged. The zero value
// is ready; a Limiter is safe for concurrent use.
type Limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged now, and how many were held back since the last one.
func (r *Limiter) Allow() (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && time.Since(r.last) < Every {
		r.suppressed++
		return false, 0
	}
	r.last = time.Now()
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// Add counts n more lines held back (when a caller logs a batch as one).
func (r *Limiter) Add(n int) {
	r.mu.Lock()
	r.suppressed += n - 1
	r.mu.Unlock()
}
