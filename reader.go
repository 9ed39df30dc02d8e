package redisstreams

import (
	"context"
	"math/rand/v2"
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
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (a *Adapter) startReader(stream, startID string) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamReader{a: a, stream: stream, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	a.readers[stream] = r
	batches := make(chan []rdb.Entry, 4)
	a.wg.Go(func() {
		defer close(batches)
		r.read(startID, batches)
	})
	a.wg.Go(func() {
		defer close(r.done)
		for entries := range batches {
			for i := range entries {
				a.dispatchEntry(stream, &entries[i])
			}
		}
	})
}

// read runs the XREAD loop from lastID (when empty: the newest entry once Redis answers). It never reads from "$",
// which loses entries written between two empty reads, and resumes from the last ID it saw after every error.
func (r *streamReader) read(lastID string, out chan<- []rdb.Entry) {
	a := r.a
	log := a.log.With("stream", r.stream)
	var reader rdb.Reader
	defer func() {
		if reader != nil {
			_ = reader.Close()
		}
	}()
	failures := 0
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
			lastID, err = a.client.LastID(ctx, r.stream)
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
			if !sleepCtx(r.ctx, backoff(failures)) {
				return
			}
			continue
		}
		if failures > 0 {
			log.Info("redisstreams: stream read recovered", "after_failures", failures, "last_id", lastID)
			failures = 0
		}
		if len(entries) == 0 {
			continue
		}
		lastID = entries[len(entries)-1].ID
		select {
		case out <- entries:
		case <-r.ctx.Done():
			return
		}
	}
}

// backoff grows exponentially with full jitter.
func backoff(failures int) time.Duration {
	d := minBackoff << min(failures-1, 10)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
