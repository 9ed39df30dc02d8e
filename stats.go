package redisstreams

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of an Adapter's counters since it was created, and of its gauges now.
type Stats struct {
	Published     uint64 // writes (XADD and PUBLISH) that Redis accepted
	PublishErrors uint64 // writes that failed
	Received      uint64 // stream entries and PUB/SUB messages read
	Invalid       uint64 // malformed entries and messages, skipped
	ReadErrors    uint64 // failed XREAD calls (each retried with backoff)
	Timeouts      uint64 // requests that ended without every response
	SessionErrors uint64 // connection state recovery reads and writes that failed (each attempt)
	Restored      uint64 // sessions restored by this server (connection state recovery)
	// Restores that gave the client a fresh session: no session under its private id (unknown, expired, already
	// restored, or lost with Redis's data), or an offset that is malformed or no longer in the stream. Malformed
	// sessions count in Invalid, and Redis errors in SessionErrors.
	RestoreNoSession uint64
	RestoreNoOffset  uint64
	Superseded       uint64 // sockets of this server whose session was restored elsewhere while they were connected here: closed (SessionsLive)
	Lost             uint64 // stream entries trimmed, deleted or lost with Redis's data before this server read them (see docs/delivery.md)
	Dropped          uint64 // writes given up after the outage bound (never retried again); each one counted
	DroppedSent      uint64 // of Dropped, the stream writes sent at least once before: they may have reached Redis (see docs/delivery.md)
	Duplicates       uint64 // stream entries skipped because they repeat one already delivered (a retried write)
	CheckErrors      uint64 // stream checks Redis refused (e.g. NOPERM): loss counting is partly off meanwhile (see StreamStats.CheckError)

	// Gauges.
	QueuedWrites    int           // writes waiting to be sent, held ones included
	QueuedBytes     int64         // their size
	HeldWrites      int           // writes held because Redis is unreachable (a subset of QueuedWrites)
	PendingRequests int           // requests (fetchSockets, serverSideEmit, broadcast acks) waiting for responses
	LiveSessions    int           // sessions of connected sockets kept in Redis (SessionsLive)
	Streams         []StreamStats // one per stream this server reads, sorted by name
}

// StreamStats describes the reader of one stream.
type StreamStats struct {
	Stream     string  // the stream key
	LastID     string  // the last entry ID read ("" before the first)
	LagEntries int64   // entries in the stream after LastID, as of the last check
	LagSeconds float64 // age of the oldest unread entry (from its ID's milliseconds), 0 when caught up
	// CheckError is why Redis refused the reader's last check ("" when it did not): until checks work again,
	// entries lost before this server read them may go uncounted. Ping reports it too.
	CheckError string
}

// Observer receives measurements from the adapter's paths, for metrics (the redisstreamsprom and redisstreamsotel
// modules implement it). Set Options.Observer. Its methods are called inline on hot paths: they must be fast, must
// not block, and must be safe for concurrent use. An Observer that also implements OutageObserver, LossObserver
// or DropObserver is told of those events too (see Callbacks for an Observer made of functions).
type Observer interface {
	// WriteBatch: one pipelined round trip of n writes (XADD/PUBLISH) took rtt; err is its first failure.
	WriteBatch(n int, rtt time.Duration, err error)
	// Request: a request to the other servers ("fetchSockets", "serverSideEmit", "broadcastWithAck") completed
	// after rtt; err is ErrTimeout (wrapped) when some responses were missing.
	Request(kind string, rtt time.Duration, err error)
	// Delivered: a broadcast read from stream for namespace nsp reached local delivery, delay after its entry ID's
	// timestamp.
	Delivered(stream, nsp string, delay time.Duration)
}

type counters struct {
	published, publishErrors, received, invalid, readErrors, timeouts, sessionErrors, lost, dropped, droppedSent, duplicates, checkErrors atomic.Uint64
	restored, restoreNoSession, restoreNoOffset, superseded                                                                               atomic.Uint64
}

// Stats returns the adapter's counters and gauges.
func (a *Adapter) Stats() Stats {
	c := &a.stats
	droppedSent := c.droppedSent.Load() // before Dropped, which is counted first
	s := Stats{
		Published:        c.published.Load(),
		PublishErrors:    c.publishErrors.Load(),
		Received:         c.received.Load(),
		Invalid:          c.invalid.Load(),
		ReadErrors:       c.readErrors.Load(),
		Timeouts:         c.timeouts.Load(),
		SessionErrors:    c.sessionErrors.Load(),
		Restored:         c.restored.Load(),
		RestoreNoSession: c.restoreNoSession.Load(),
		RestoreNoOffset:  c.restoreNoOffset.Load(),
		Superseded:       c.superseded.Load(),
		Lost:             c.lost.Load(),
		Dropped:          c.dropped.Load(),
		DroppedSent:      droppedSent,
		Duplicates:       c.duplicates.Load(),
		CheckErrors:      c.checkErrors.Load(),
	}
	s.QueuedWrites, s.QueuedBytes, s.HeldWrites = a.pub.gauges()
	s.LiveSessions = a.sessions.liveCount()
	a.mu.Lock()
	readers := make([]*streamReader, 0, len(a.readers))
	for _, r := range a.readers {
		readers = append(readers, r)
	}
	var nsps []*nspAdapter
	for _, list := range a.nsps {
		nsps = append(nsps, list...)
	}
	a.mu.Unlock()
	for _, n := range nsps {
		n.reqMu.Lock()
		s.PendingRequests += len(n.requests) + len(n.ackRequests)
		n.reqMu.Unlock()
	}
	for _, r := range readers {
		s.Streams = append(s.Streams, r.stats())
	}
	slices.SortFunc(s.Streams, func(x, y StreamStats) int { return strings.Compare(x.Stream, y.Stream) })
	return s
}
