package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketio-go/redisstreams/internal/ledger"
	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/socketio-go/redisstreams/wstransport"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// checkInterval is how often a reader checks its stream for entries lost before it read them (one XINFO STREAM
// and one SET NX GET, plus one XRANGE when it is behind; see internal/ledger), whether it is caught up, behind, or
// held up by slow local delivery.
const checkInterval = time.Second

// streamReader follows one stream on a connection of its own. Reading and dispatching run in two goroutines
// joined by a small bounded queue: slow local delivery stops further XREADs (Redis keeps the backlog) instead of
// dropping entries, and a Redis round trip never waits for local delivery.
//
// The read goroutine owns the reader's books (ledger.Ledger): they drop the repeats of retried writes and count the
// entries that vanished before the reader read them. This file does the I/O around them: the reads, the checks
// (XINFO STREAM and the epoch key, every checkInterval), and the counters and logs of what they find.
type streamReader struct {
	a      *Adapter
	stream string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Read goroutine only.
	books     *ledger.Ledger
	epochKey  string // its value changes when Redis loses its data set
	candidate string // what this reader writes to epochKey when it is missing
	lossLog   rateLimited
	checkLog  rateLimited
	lastCheck time.Time
	checkDue  bool // check before the next XREAD (after an error, or a check Redis did not answer)

	failingSince atomic.Int64 // unix nanoseconds of the first of the current read failures; 0 when reading

	gaugeMu  sync.Mutex
	gauge    StreamStats
	checkErr error // the last check's failure other than "unavailable" (NOPERM...); nil when checks work
}

func (a *Adapter) startReader(stream string, start rdb.StreamInfo) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamReader{a: a, stream: stream, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		books: ledger.New(stream, start, 2*a.opts.MaxOutage), epochKey: epochKey(stream), candidate: randomID()}
	r.gauge.Stream = stream
	a.readers[stream] = r
	batches := make(chan []rdb.Entry, 4)
	a.wg.Go(func() {
		defer close(batches)
		r.read(batches)
	})
	a.wg.Go(func() {
		defer close(r.done)
		// The broadcasts of one XREAD go out to each wstransport socket in one write, once they are all dispatched.
		var writes wstransport.Batch
		for entries := range batches {
			if a.beforeDispatch != nil {
				a.beforeDispatch()
			}
			for i := range entries {
				a.dispatchEntry(stream, &entries[i], &writes)
			}
			writes.Flush()
		}
	})
}

// epochKey is the key whose value tells a reader of stream whether Redis still has its data: in the stream's hash
// slot, so that it lives and dies with the stream on a cluster node.
func epochKey(stream string) string {
	if i := strings.IndexByte(stream, '{'); i >= 0 {
		if j := strings.IndexByte(stream[i+1:], '}'); j > 0 {
			return stream + ":epoch" // keeps the stream's hash tag
		}
	}
	if strings.IndexByte(stream, '{') < 0 {
		// "<stream>:{<stream>}:epoch": the hash tag puts it in the stream's slot (on the node whose data set it
		// marks), and the stream's name as prefix keeps it inside an ACL key pattern such as ~socket.io*.
		return stream + ":{" + stream + "}:epoch"
	}
	return "{" + stream + "}:epoch"
}

// read runs the XREAD loop from the books' start position (when unknown: the newest entry once Redis answers). It
// never reads from "$", which loses entries written between two empty reads, and resumes from the last ID it saw
// after every error.
func (r *streamReader) read(out chan<- []rdb.Entry) {
	r.checkDue = true
	a := r.a
	log := a.log.With("stream", r.stream)
	var reader rdb.Reader
	defer func() {
		if reader != nil {
			_ = reader.Close()
		}
	}()
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	failures := 0
	var failedSince time.Time
	for r.ctx.Err() == nil {
		var err error
		if reader == nil {
			reader, err = a.client.NewReader(a.ownEntry)
			if err == nil {
				a.readerMu.Lock()
				a.readerConns[r.stream] = reader
				a.readerMu.Unlock()
			}
		}
		if err == nil && r.books.LastID() == "" {
			ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
			var info rdb.StreamInfo
			if info, err = a.client.StreamInfo(ctx, r.stream); err == nil {
				r.books.Start(info)
			}
			cancel()
		}
		if err == nil && (r.checkDue || time.Since(r.lastCheck) >= checkInterval) {
			// Before reading: a restarted Redis is noticed before its entries are read. So a check that Redis did
			// not answer stops the read too (the reader's own connection may already reach a new data set).
			err = r.check()
		}
		var entries []rdb.Entry
		if err == nil {
			block := a.opts.BlockTime
			if r.books.Recheck() { // a read that finds nothing new is followed by a check within a second too
				block = min(block, checkInterval)
			}
			entries, err = reader.Read(r.ctx, r.stream, r.books.LastID(), a.opts.ReadCount, block)
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			failures++
			r.checkDue = true
			r.books.Failed()
			if !errors.Is(err, errCheckFailed) {
				a.stats.readErrors.Add(1)
			}
			if failures == 1 {
				failedSince = time.Now()
				r.failingSince.Store(failedSince.UnixNano())
				log.Warn("redisstreams: stream read failed, retrying until Redis answers", "err", err, "last_id", r.books.LastID())
			}
			if !rdb.Sleep(r.ctx, rdb.Backoff(failures, minBackoff, maxBackoff)) {
				return
			}
			continue
		}
		if failures > 0 {
			r.failingSince.Store(0)
			log.Info("redisstreams: stream read recovered", "failed_for", time.Since(failedSince).Round(time.Millisecond),
				"failures", failures, "last_id", r.books.LastID())
			failures = 0
		}
		if len(entries) == 0 {
			continue
		}
		if r.books.Recheck() && len(entries) < int(a.opts.ReadCount) {
			r.checkDue = true // caught up: count now what was jumped over since the last check
		}
		entries, res := r.books.Read(entries, time.Now())
		a.stats.received.Add(uint64(res.Skipped + res.Duplicates)) // never dispatched
		a.stats.duplicates.Add(uint64(res.Duplicates))
		r.lose(res.Lost, LossDataSet)
		if res.CheckNow {
			r.checkDue = true // before the next XREAD: the gap just counted may hold entries this read jumped over
		}
		r.setGauge(func(g *StreamStats) { g.LastID = r.books.LastID() })
		if len(entries) == 0 {
			continue
		}
		for sent := false; !sent; {
			select {
			case out <- entries:
				sent = true
			case <-tick.C:
				_ = r.check() // held up by local delivery: entries may be trimmed meanwhile, say so now
			case <-r.ctx.Done():
				return
			}
		}
	}
}

const (
	lostWithDataSet = "entries vanished with Redis's data set (restart or failover) before this server read them"
	lostTrimmed     = "stream entries were trimmed before this server read them; their messages were lost " +
		"(raise Options.MaxLen, or look for what held this server up)"
)

// errCheckFailed: Redis did not answer a reader's check; the reader waits before reading on.
var errCheckFailed = errors.New("redisstreams: stream check failed")

// check asks Redis how the stream stands (XINFO STREAM, and the epoch key with SET NX GET) and has the books count
// what vanished before this server read it (ledger.Ledger.Check): trimmed or deleted entries, and entries lost
// with Redis's data set. It also refreshes the lag gauges.
//
// A check Redis did not answer (unreachable, loading, failing over) is made again before the next read, which
// waits for it: the error wraps errCheckFailed. A check Redis refused (NOPERM from an ACL, a wrong type at the
// epoch key) is counted in Stats.CheckErrors, logged (rate-limited), reported by Ping, and made again at the next
// interval; while the epoch key is refused, a restarted Redis is told only by the stream's own counters.
func (r *streamReader) check() error {
	a := r.a
	r.lastCheck = time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
	defer cancel()
	info, err := a.client.StreamInfo(ctx, r.stream)
	if err != nil {
		return r.checkFailed("XINFO STREAM", err)
	}
	obs := ledger.Observation{Info: info}
	var refused error
	if epoch, err := a.client.Epoch(ctx, r.epochKey, r.candidate); err == nil {
		obs.Epoch, obs.EpochKnown = epoch, true
		if epoch == r.candidate {
			// This reader marked the data set: should it mark the next one too, the mark must differ.
			r.candidate = randomID()
		}
	} else if err := r.checkFailed("SET NX GET "+r.epochKey, err); err != nil {
		// Whether Redis lost its data set cannot be told now: the entries read since the last check stay on the
		// books (a new data set is measured with them), and the check is made again before the next read.
		return err
	} else {
		refused = r.checkError()
	}
	res := r.books.Check(ctx, obs, a.client)
	if res.NewData {
		if a.onNewDataSet != nil {
			a.onNewDataSet(r.stream)
		}
		what := "Redis lost the stream's data (restart without persistence, or failover to a replica that was behind)"
		if res.Kept {
			what = "Redis lost the newest entries of the stream (failover to a replica that was behind)"
		}
		a.log.Error("redisstreams: "+what+"; entries this server had not read are lost, counted for Go servers only",
			"stream", r.stream, "last_read", res.LastRead, "stream_last_id", info.LastID, "stream_entries", info.Length)
	}
	r.lose(res.LostDataSet, LossDataSet)
	r.lose(res.LostTrimmed, LossTrimmed)
	r.checkDue = false
	if refused == nil {
		r.setCheckError(nil)
	}
	r.updateLag(ctx, info, res.Behind)
	return nil
}

// checkFailed handles a check's command that failed: nil when the check goes on without it (Redis refused it: counted,
// logged, kept for Ping), an error wrapping errCheckFailed when Redis did not answer.
func (r *streamReader) checkFailed(command string, err error) error {
	if rdb.Unavailable(err) {
		r.checkDue = true
		r.books.Failed() // also when the check was made while the reader is held up (and not reading)
		return fmt.Errorf("%w: %w", errCheckFailed, err)
	}
	err = fmt.Errorf("%s: %w", command, err)
	r.checkDue = false // at the next interval, not before every read
	r.a.stats.checkErrors.Add(1)
	r.setCheckError(err)
	if ok, suppressed := r.checkLog.Allow(); ok {
		r.a.log.Error("redisstreams: Redis refused a stream check: entries lost before this server read them may go "+
			"uncounted until it is allowed (see docs/operations.md, ACL)", "stream", r.stream, "err", err,
			"refusals_unlogged", suppressed)
	}
	return nil
}

// lose counts n lost entries, tells the Observer, and logs them (rate-limited).
func (r *streamReader) lose(n int64, cause LossCause) {
	if n <= 0 {
		return
	}
	r.a.stats.lost.Add(uint64(n))
	if o, ok := r.a.opts.Observer.(LossObserver); ok {
		o.EntriesLost(Loss{Stream: r.stream, Entries: n, Cause: cause})
	}
	why := lostTrimmed
	if cause == LossDataSet {
		why = lostWithDataSet
	}
	if ok, suppressed := r.lossLog.Allow(); ok {
		r.a.log.Error("redisstreams: "+why, "stream", r.stream, "lost", n, "lost_total", r.a.stats.lost.Load(),
			"last_read", r.books.LastID(), "reports_unlogged", suppressed)
	}
}

// updateLag refreshes the lag gauges from info (and the age of the oldest unread entry).
func (r *streamReader) updateLag(ctx context.Context, info rdb.StreamInfo, behind bool) {
	var entries int64
	next := ""
	lastID, pos := r.books.LastID(), r.books.Pos()
	switch {
	case lastID == "" || !behind || wire.CompareIDs(info.LastID, lastID) < 0:
	case info.Length > 0 && wire.CompareIDs(lastID, info.FirstID) < 0:
		entries, next = info.Length, info.FirstID
	default:
		if info.Added >= 0 && pos >= 0 {
			entries = max(info.Added-pos, 0)
		}
		if e, err := r.a.client.XRange(ctx, r.stream, "("+lastID, "+", 1); err == nil && len(e) == 1 {
			next = e[0].ID
			if entries == 0 {
				entries = 1
			}
		}
	}
	var seconds float64
	if ms, ok := wire.IDMillis(next); ok {
		seconds = max(float64(time.Now().UnixMilli()-ms)/1000, 0)
	}
	r.setGauge(func(g *StreamStats) { g.LagEntries, g.LagSeconds = entries, seconds })
}

func (r *streamReader) setGauge(f func(*StreamStats)) {
	r.gaugeMu.Lock()
	f(&r.gauge)
	r.gaugeMu.Unlock()
}

func (r *streamReader) setCheckError(err error) {
	r.gaugeMu.Lock()
	r.checkErr = err
	r.gauge.CheckError = ""
	if err != nil {
		r.gauge.CheckError = err.Error()
	}
	r.gaugeMu.Unlock()
}

// checkError is the last check's refusal, nil when checks work.
func (r *streamReader) checkError() error {
	r.gaugeMu.Lock()
	defer r.gaugeMu.Unlock()
	return r.checkErr
}

func (r *streamReader) stats() StreamStats {
	r.gaugeMu.Lock()
	defer r.gaugeMu.Unlock()
	return r.gauge
}
