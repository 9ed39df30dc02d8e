package redisstreams

import "sync/atomic"

// Stats is a snapshot of an Adapter's counters since it was created.
type Stats struct {
	Published     uint64 // writes (XADD and PUBLISH) that Redis accepted
	PublishErrors uint64 // writes that failed
	Received      uint64 // stream entries and PUB/SUB messages read
	Invalid       uint64 // malformed entries and messages, skipped
	ReadErrors    uint64 // failed XREAD calls (each retried with backoff)
	Timeouts      uint64 // requests that ended without every response
	SessionErrors uint64 // connection state recovery reads and writes that failed
	Lost          uint64 // stream entries trimmed or deleted before this server read them
}

type counters struct {
	published, publishErrors, received, invalid, readErrors, timeouts, sessionErrors, lost atomic.Uint64
}

// Stats returns the adapter's counters.
func (a *Adapter) Stats() Stats {
	c := &a.stats
	return Stats{
		Published:     c.published.Load(),
		PublishErrors: c.publishErrors.Load(),
		Received:      c.received.Load(),
		Invalid:       c.invalid.Load(),
		ReadErrors:    c.readErrors.Load(),
		Timeouts:      c.timeouts.Load(),
		SessionErrors: c.sessionErrors.Load(),
		Lost:          c.lost.Load(),
	}
}
