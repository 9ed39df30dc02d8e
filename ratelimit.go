package redisstreams

import (
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
