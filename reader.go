package redisstreams

import (
	"context"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// streamReader follows one stream on a connection of its own. Reading and dispatching run in two goroutines
// joined by a small bounded queue: slow local delivery stops further XREADs (Redis keeps the backlog) instead of
// dropping entries, and a Redis round trip never waits for local delivery.
type streamReader struct {
	a      *Adapter
	stream string

	// For loss detection: entries-added when reading started, entries read since, losses already reported.
	addedAtStart int64
	readSince    int64
	lostReported int64
	ctx          context.Context
	cancel       context.CancelFunc
	done         chan struct{}
}

func (a *Adapter) startReader(stream string, start rdb.StreamInfo) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamReader{a: a, stream: stream, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	a.readers[stream] = r
	batches := make(chan []rdb.Entry, 4)
	a.wg.Go(func() {
		defer close(batches)
		r.read(start, batches)
	})
	a.wg.Go(func() {
		defer close(r.done)
		for entries := range batches {
			if a.beforeDispatch != nil {
				a.beforeDispatch()
			}
			for i := range entries {
				a.dispatchEntry(stream, &entries[i])
			}
		}
	})
}

// read runs the XREAD loop from lastID (when empty: the newest entry once Redis answers). It never reads from "$",
// which loses entries written between two empty reads, and resumes from the last ID it saw after every error.
func (r *streamReader) read(start rdb.StreamInfo, out chan<- []rdb.Entry) {
	lastID := start.LastID
	r.addedAtStart = start.Added
	a := r.a
	log := a.log.With("stream", r.stream)
	var reader rdb.Reader
	defer func() {
		if reader != nil {
			_ = reader.Close()
		}
	}()
	failures := 0
	var lastCheck time.Time
	for r.ctx.Err() == nil {
		var err error
		if reader == nil {
			reader, err = a.client.NewReader()
			if err == nil {
				a.readerMu.Lock()
				a.readerConns[r.stream] = reader
				a.readerMu.Unlock()
			}
		}
		if err == nil && lastID == "" {
			ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
			var info rdb.StreamInfo
			if info, err = a.client.StreamInfo(ctx, r.stream); err == nil {
				lastID, r.addedAtStart = info.LastID, info.Added
			}
			cancel()
		}
		var entries []rdb.Entry
		if err == nil {
			entries, err = reader.Read(r.ctx, r.stream, lastID, a.opts.ReadCount, a.opts.BlockTime)
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			failures++
			a.stats.readErrors.Add(1)
			if failures == 1 || failures%20 == 0 {
				log.Warn("redisstreams: stream read failed, retrying", "err", err, "failures", failures, "last_id", lastID)
			}
			if !rdb.Sleep(r.ctx, rdb.Backoff(failures, minBackoff, maxBackoff)) {
				return
			}
			continue
		}
		if failures > 0 {
			log.Info("redisstreams: stream read recovered", "after_failures", failures, "last_id", lastID)
			failures = 0
		}
		if len(entries) > 0 {
			lastID = entries[len(entries)-1].ID
			r.readSince += int64(len(entries))
			select {
			case out <- entries:
			case <-r.ctx.Done():
				return
			}
		}
		if int64(len(entries)) < a.opts.ReadCount && time.Since(lastCheck) >= gapCheckInterval {
			lastCheck = time.Now()
			r.checkLoss(lastID) // caught up: a good moment to count
		}
	}
}

// gapCheckInterval bounds how often a reader that has caught up checks for lost entries (one XINFO STREAM).
const gapCheckInterval = time.Second

// checkLoss counts entries that were trimmed (MAXLEN) or deleted before this reader read them, which Node loses
// silently. When nothing newer than lastID exists, every entry added since the reader started has either been
// read or is gone: lost = added - added at start - read.
func (r *streamReader) checkLoss(lastID string) {
	a := r.a
	if r.addedAtStart < 0 || lastID == "" {
		return // Redis < 7 keeps no count of added entries
	}
	ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
	info, err := a.client.StreamInfo(ctx, r.stream)
	cancel()
	if err != nil || info.Added < 0 || info.LastID != lastID {
		return // not caught up after all (or Redis busy): later
	}
	lost := info.Added - r.addedAtStart - r.readSince
	if lost <= r.lostReported {
		return
	}
	a.stats.lost.Add(uint64(lost - r.lostReported))
	a.log.Error("redisstreams: stream entries were trimmed before this server read them; "+
		"their messages were lost (raise Options.MaxLen, or look for what held this server up)",
		"stream", r.stream, "lost", lost-r.lostReported, "lost_total", lost, "last_read", lastID)
	r.lostReported = lost
}
