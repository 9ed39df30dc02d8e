package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/socketio-go/redisstreams/wstransport"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// checkInterval is how often a reader checks its stream for entries lost before it read them (one XINFO STREAM
// and one SET NX GET, plus one XRANGE when it is behind), whether it is caught up, behind, or held up by slow
// local delivery.
const checkInterval = time.Second

// streamReader follows one stream on a connection of its own. Reading and dispatching run in two goroutines
// joined by a small bounded queue: slow local delivery stops further XREADs (Redis keeps the backlog) instead of
// dropping entries, and a Redis round trip never waits for local delivery.
//
// The read goroutine also keeps the books: it drops the repeats of retried writes (wire.SeqField), and counts the
// entries that vanished before it read them (trimmed, deleted, or lost with Redis's data set), see check.
type streamReader struct {
	a      *Adapter
	stream string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Read goroutine only.
	lastID     string            // the last entry read; the next XREAD starts after it
	pos        int64             // entries added to the stream up to lastID in this data set; -1: unknown (Redis < 7)
	epochKey   string            // its value changes when Redis loses its data set
	epoch      string            // "" until the first check
	candidate  string            // what this reader writes to epochKey when it is missing
	sinceCheck []span            // batches read since the last check
	writers    map[string]*seqOf // by writer: the sequence read so far
	armed      int               // writers whose next entry tells how many of theirs vanished with a data set
	lossLog    rateLimited
	lastCheck  time.Time
	checkDue   bool // check before the next XREAD (after an error, or a check that failed)
	rearm      bool // Redis failed to answer: arm every writer at the next check that succeeds
	// Entries missing from writers' numbering, seen since the last check while they were not armed. A check that
	// finds a new data set counts them lost: entries of the new data set may be read before it is noticed (a Redis
	// client that reconnects by itself does not fail the read; checks run every checkInterval), and the gap before
	// them is what vanished. Any other check forgets them (trimmed entries are counted apart, dropped writes by
	// their publisher).
	gaps int64
	// The last check found this reader behind: what it jumps over after that check (entries trimmed ahead of it)
	// is counted by the next one, which the first read that finds it caught up makes at once, rather than after
	// its next XREAD BLOCK. Also when jumpedOver could count only part.
	recheck bool

	failingSince atomic.Int64 // unix nanoseconds of the first of the current read failures; 0 when reading

	gaugeMu sync.Mutex
	gauge   StreamStats
}

// span is one batch of entries, as read in one XREAD.
type span struct {
	first string
	n     int64
}

// seqOf is what a reader knows of one writer's sequence.
type seqOf struct {
	last  uint64 // the highest sequence number read
	floor uint64 // the entries up to here were read or counted lost (trimmed before this reader got to them)
	seen  time.Time
	armed bool // Redis lost its data set since this writer's last entry: the gap before its next one is lost
	// While armed: the last entry ID up to which every gap in its sequence is lost (the stream's last ID when
	// Redis answered again after a failure); "" when its next entry alone tells.
	until string
}

func (a *Adapter) startReader(stream string, start rdb.StreamInfo) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamReader{a: a, stream: stream, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		epochKey: epochKey(stream), candidate: randomID(), writers: map[string]*seqOf{}}
	r.gauge.Stream = stream
	a.readers[stream] = r
	batches := make(chan []rdb.Entry, 4)
	a.wg.Go(func() {
		defer close(batches)
		r.read(start, batches)
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

// read runs the XREAD loop from the start position (when empty: the newest entry once Redis answers). It never
// reads from "$", which loses entries written between two empty reads, and resumes from the last ID it saw after
// every error.
func (r *streamReader) read(start rdb.StreamInfo, out chan<- []rdb.Entry) {
	r.lastID, r.pos = start.LastID, start.Added
	if r.lastID == "" {
		r.pos = -1
	}
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
		if err == nil && r.lastID == "" {
			ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
			var info rdb.StreamInfo
			if info, err = a.client.StreamInfo(ctx, r.stream); err == nil {
				r.lastID, r.pos = info.LastID, info.Added
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
			if r.recheck { // a read that finds nothing new is followed by a check within a second too
				block = min(block, checkInterval)
			}
			entries, err = reader.Read(r.ctx, r.stream, r.lastID, a.opts.ReadCount, block)
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			failures++
			r.checkDue = true
			r.rearm = true
			if !errors.Is(err, errCheckFailed) {
				a.stats.readErrors.Add(1)
			}
			if failures == 1 {
				failedSince = time.Now()
				r.failingSince.Store(failedSince.UnixNano())
				log.Warn("redisstreams: stream read failed, retrying until Redis answers", "err", err, "last_id", r.lastID)
			}
			if !rdb.Sleep(r.ctx, rdb.Backoff(failures, minBackoff, maxBackoff)) {
				return
			}
			continue
		}
		if failures > 0 {
			r.failingSince.Store(0)
			log.Info("redisstreams: stream read recovered", "failed_for", time.Since(failedSince).Round(time.Millisecond),
				"failures", failures, "last_id", r.lastID)
			failures = 0
		}
		if len(entries) == 0 {
			continue
		}
		if r.recheck && len(entries) < int(a.opts.ReadCount) {
			r.checkDue = true // caught up: count now what was jumped over since the last check
		}
		r.lastID = entries[len(entries)-1].ID
		if r.pos >= 0 {
			r.pos += int64(len(entries))
		}
		r.sinceCheck = append(r.sinceCheck, span{first: entries[0].ID, n: int64(len(entries))})
		r.setGauge(func(g *StreamStats) { g.LastID = r.lastID })
		entries = r.dedupe(entries)
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

// dedupe drops (in place) the entries that repeat one already read: a write that Redis applied but whose reply
// was lost is sent again by its server, with the same sequence number. Entries without a sequence (Node servers,
// emitters) always pass. After Redis lost its data set, the first entry of each writer tells how many of its
// entries vanished unread.
func (r *streamReader) dedupe(entries []rdb.Entry) []rdb.Entry {
	a := r.a
	kept := entries[:0]
	now := time.Now()
	for _, e := range entries {
		if e.Skipped { // this server's own (Adapter.ownEntry): read, never delivered here
			a.stats.received.Add(1)
			continue
		}
		writer, n, ok := wire.ParseSeq(e.Fields[wire.SeqField])
		if !ok {
			kept = append(kept, e)
			continue
		}
		s := r.writers[writer]
		if s == nil {
			s = &seqOf{}
			r.writers[writer] = s
		}
		s.seen = now
		if n <= s.last {
			a.stats.received.Add(1)
			a.stats.duplicates.Add(1)
			continue
		}
		if !s.armed {
			if base := max(s.last, s.floor); s.last > 0 && n > base+1 {
				r.gaps += int64(n - base - 1) // the next check tells whether they vanished with Redis's data set
			}
		} else {
			if base := max(s.last, s.floor); n > base+1 && s.last > 0 {
				r.lose(int64(n-base-1), "entries vanished with Redis's data set (restart or failover) before this server read them")
			}
			if s.until == "" || compareIDs(e.ID, s.until) > 0 {
				s.armed, s.until = false, ""
				r.armed--
			}
		}
		s.last = n
		kept = append(kept, e)
	}
	clear(entries[len(kept):])
	if len(r.writers) > 1000 {
		r.prune(now)
	}
	return kept
}

// prune forgets writers not heard from for long: a server that stopped, or restarted under a new writer name.
func (r *streamReader) prune(now time.Time) {
	idle := max(10*time.Minute, 2*r.a.opts.MaxOutage)
	for w, s := range r.writers {
		if now.Sub(s.seen) > idle {
			if s.armed {
				r.armed--
			}
			delete(r.writers, w)
		}
	}
}

// check compares the reader's position with the stream in Redis and counts the entries that vanished before this
// server read them:
//   - trimmed (MAXLEN) or deleted while the reader was behind: when the first entry of the stream is past the
//     reader's position, every entry added before it that the reader has not read is gone, and entries-added
//     says how many (Redis 7);
//   - trimmed or deleted (XDEL) entries that a read jumped over: counted when the reader has caught up, or, while
//     it is behind, by jumpedOver;
//   - lost with Redis's data set (a restart without persistence, a failover to a replica that was behind): the
//     epoch key is gone or changed, or the stream's last ID or entries-added went backwards. The reader then
//     starts over in the new data set, and counts, for each server that numbers its writes, the gap before its
//     first entry read there. Entries of Node servers and emitters lost this way cannot be counted.
//
// It also refreshes the lag gauges. A check that fails (Redis unavailable) is tried again before the next read,
// and returns an error wrapping errCheckFailed when Redis did not answer it.
func (r *streamReader) check() error {
	a := r.a
	r.lastCheck = time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, a.opts.RequestsTimeout)
	defer cancel()
	info, err := a.client.StreamInfo(ctx, r.stream)
	if err != nil {
		r.checkDue = true
		if rdb.Unavailable(err) {
			r.rearm = true // also when the check was made while the reader is held up (and not reading)
			return fmt.Errorf("%w: %w", errCheckFailed, err)
		}
		return nil
	}
	newData, sameEpoch := false, false
	if epoch, err := a.client.Epoch(ctx, r.epochKey, r.candidate); err == nil {
		newData = r.epoch != "" && epoch != r.epoch
		sameEpoch = r.epoch != "" && epoch == r.epoch
		r.epoch = epoch
		if epoch == r.candidate {
			// This reader marked the data set: should it mark the next one too, the mark must differ.
			r.candidate = randomID()
		}
	} else if rdb.Unavailable(err) {
		// Whether Redis lost its data set cannot be told now: the batches read since the last check stay on the
		// books (a new data set is measured with them), and the check is made again before the next read.
		r.checkDue = true
		r.rearm = true
		return fmt.Errorf("%w: %w", errCheckFailed, err)
	}
	if r.lastID != "" && compareIDs(info.LastID, r.lastID) < 0 && !(sameEpoch && info.Added >= 0 && info.Added == r.pos) {
		// The last ID went backwards (unless this reader already kept its place in a data set cut short by a
		// failover, where no entry was added since).
		newData = true
	}
	if info.Added >= 0 && r.pos >= 0 && info.Added < r.pos {
		newData = true // fewer entries ever added than this reader has read
	}
	if r.rearm {
		// Redis failed to answer this reader. Its master may have died, and a replica taken over that had not
		// received every entry acknowledged: the reader may resume inside the data set the replica had, without
		// anything in the stream telling. So every writer's gap up to the stream's last entry now is counted lost.
		r.rearm = false
		for _, s := range r.writers {
			if !s.armed {
				s.armed = true
				r.armed++
			}
			if s.until == "" || compareIDs(info.LastID, s.until) > 0 {
				s.until = info.LastID
			}
		}
	}
	if newData {
		r.newDataSet(info, sameEpoch)
		if r.gaps > 0 {
			r.lose(r.gaps, "entries vanished with Redis's data set (restart or failover) before this server read them")
		}
	}
	r.gaps = 0
	r.checkDue = false
	r.sinceCheck = r.sinceCheck[:0]

	if info.Added >= 0 && r.pos >= 0 && r.lastID != "" {
		var gone int64
		r.recheck = false
		switch {
		case info.LastID == r.lastID:
			gone = info.Added - r.pos // caught up: every entry added up to here was read, or is gone
		case info.Length > 0 && compareIDs(r.lastID, info.FirstID) < 0:
			gone = info.Added - info.Length - r.pos // behind, and the entries up to the first one left are gone
			r.recheck = true
		case info.Added > r.pos && compareIDs(r.lastID, info.LastID) < 0:
			gone = r.jumpedOver(ctx, info)
			r.recheck = true
		}
		if gone > 0 {
			// Only when entries were trimmed: a reader behind the first entry of a new data set (after a restart)
			// has lost nothing to trimming, and raised floors would hide the writers' gaps from the data set's
			// loss (each go-redis receiver of TestFaultRedisDownPastMaxOutage missed 3-5 entries uncounted, ~1 run
			// in 10).
			if info.Length > 0 && compareIDs(r.lastID, info.FirstID) < 0 {
				r.raiseFloors(ctx)
			}
			r.pos += gone
			if r.armed > 0 {
				// The gaps of the writers still armed would count these trimmed entries again.
				for _, s := range r.writers {
					s.armed, s.until = false, ""
				}
				r.armed = 0
			}
			r.lose(gone, "stream entries were trimmed before this server read them; their messages were lost "+
				"(raise Options.MaxLen, or look for what held this server up)")
		}
	}
	r.updateLag(ctx, info)
	return nil
}

// jumpedOver counts, for a reader inside the stream (neither behind its first entry nor caught up), the entries
// it never read although they were added before its last ID: entries trimmed (or deleted) while it was behind, that
// its next XREAD jumped over (XREAD returns the oldest entries left after the ID it is given). Such a reader is
// never behind the first entry at a check, nor caught up while traffic goes on, so without this count a reader that
// trails the trimming under sustained load would report those losses only once the traffic stops.
//
// With A = entries ever added (info.Added), L = entries in the stream after the reader's last ID, and the reader's
// position r.pos (entries up to its last ID it read or counted), the entries it jumped over are A - L - r.pos. L is
// the stream's length minus the entries up to the last ID, counted with one bounded XRANGE from the head (where a
// reader that jumps over trimmed entries is), or with one from the last ID to the end. When both exceed the bound,
// only the part that is certain is counted (L is at most Length - maxJumpScan - 1), and the rest when a later check
// can tell (at the latest the one made as soon as the reader has caught up). The XRANGEs follow XINFO STREAM:
// entries trimmed between them are unread entries gone too, and entries added since are left out by the ID bound,
// so nothing is counted that this reader could still read.
func (r *streamReader) jumpedOver(ctx context.Context, info rdb.StreamInfo) int64 {
	fromHead := func() (int64, bool) {
		head, err := r.a.client.XRange(ctx, r.stream, "-", r.lastID, maxJumpScan+1)
		return info.Added - (info.Length - int64(len(head))) - r.pos, err == nil && len(head) <= maxJumpScan
	}
	fromTail := func() (int64, bool) {
		tail, ok := r.entriesAfter(ctx, info, maxJumpScan+1)
		return info.Added - tail - r.pos, ok
	}
	// The end nearer the reader first (by the IDs' milliseconds): a reader slightly behind under steady traffic is
	// near the tail, one that trails the trimming near the head.
	first, second := fromHead, fromTail
	last, _ := idMillis(info.LastID)
	at, _ := idMillis(r.lastID)
	if head, _ := idMillis(info.FirstID); last-at < at-head {
		first, second = fromTail, fromHead
	}
	if n, ok := first(); ok {
		return n
	}
	if n, ok := second(); ok {
		return n
	}
	return info.Added - (info.Length - maxJumpScan - 1) - r.pos
}

// maxJumpScan bounds the entries jumpedOver reads (one or two XRANGEs a check, only while the reader is behind).
const maxJumpScan = 100

// errCheckFailed: Redis did not answer a reader's check; the reader waits before reading on.
var errCheckFailed = errors.New("redisstreams: stream check failed")

// newDataSet starts over after Redis lost the stream's data set. kept: the epoch key survived, so the new data set
// is the old one cut short (a replica that had not received every entry took over from its master) followed by
// what was written since: the reader keeps its place, and counts each writer's gap before its next entry.
func (r *streamReader) newDataSet(info rdb.StreamInfo, kept bool) {
	old := r.lastID
	what := "Redis lost the stream's data (restart without persistence, or failover to a replica that was behind)"
	switch {
	case kept:
		r.keepPlace(info)
		what = "Redis lost the newest entries of the stream (failover to a replica that was behind)"
	case compareIDs(info.LastID, r.lastID) < 0:
		// Nothing of the new data set has been read (its IDs are all below the last one read): read all of it.
		r.lastID, r.pos = "0-0", 0
	default:
		// The batches read since the last check that belong to the new data set.
		r.pos = 0
		for _, s := range r.sinceCheck {
			if compareIDs(s.first, info.FirstID) >= 0 {
				r.pos += s.n
			}
		}
		if info.Added < 0 {
			r.pos = -1
		}
	}
	for _, s := range r.writers {
		if !s.armed {
			s.armed = true
			r.armed++
		}
		s.until = ""
	}
	if !kept {
		r.resolveGaps(info)
	}
	if r.a.onNewDataSet != nil {
		r.a.onNewDataSet(r.stream)
	}
	r.a.log.Error("redisstreams: "+what+"; entries this server had not read are lost, counted for Go servers only",
		"stream", r.stream, "last_read", old, "stream_last_id", info.LastID, "stream_entries", info.Length)
}

// keepPlace sets the reader's count of entries read in a data set cut short by a failover: those up to its last
// ID. The entries after it were written since the failover (their IDs are newer than any entry written before).
func (r *streamReader) keepPlace(info rdb.StreamInfo) {
	if info.Added < 0 {
		r.pos = -1
		return
	}
	if compareIDs(info.LastID, r.lastID) <= 0 {
		r.pos = info.Added
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.a.opts.RequestsTimeout)
	defer cancel()
	after, ok := r.entriesAfter(ctx, info, maxGapScan)
	if !ok {
		r.pos = -1 // unknown: no entries-added accounting in this data set
		return
	}
	r.pos = info.Added - after
}

// entriesAfter counts the stream's entries after the reader's last ID, up to info.LastID (the entries added since
// XINFO STREAM are not in info.Added either), with one XRANGE; ok is false when there are limit or more, or when
// Redis did not answer.
func (r *streamReader) entriesAfter(ctx context.Context, info rdb.StreamInfo, limit int64) (n int64, ok bool) {
	after, err := r.a.client.XRange(ctx, r.stream, "("+r.lastID, info.LastID, limit)
	return int64(len(after)), err == nil && int64(len(after)) < limit
}

// resolveGaps counts at once, when the new data set is still whole (nothing trimmed), the entries each armed
// writer lost with the old one: its first entry in the new data set tells. The reader reads these entries later
// as usual. Writers without an entry there yet are resolved by their first entry read.
func (r *streamReader) resolveGaps(info rdb.StreamInfo) {
	if r.armed == 0 || info.Length == 0 || info.Added != info.Length {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.a.opts.RequestsTimeout)
	defer cancel()
	entries, err := r.a.client.XRange(ctx, r.stream, "-", "+", min(info.Length, maxGapScan))
	if err != nil {
		return
	}
	var lost int64
	for _, e := range entries {
		writer, n, ok := wire.ParseSeq(e.Fields[wire.SeqField])
		if s := r.writers[writer]; ok && s != nil && s.armed && n > s.last {
			s.armed = false
			r.armed--
			if base := max(s.last, s.floor); n > base+1 {
				lost += int64(n - base - 1)
				s.floor = n - 1 // counted: not again when this entry is read
			}
			if r.armed == 0 {
				break
			}
		}
	}
	if lost > 0 {
		r.lose(lost, "entries vanished with Redis's data set (restart or failover) before this server read them")
	}
}

// raiseFloors notes, for the writers of the first entries left in the stream, that their entries before these
// were read or counted as trimmed: should Redis then lose its data set, only the entries after them are counted
// again as vanished with it.
func (r *streamReader) raiseFloors(ctx context.Context) {
	entries, err := r.a.client.XRange(ctx, r.stream, "-", "+", 100)
	if err != nil {
		return
	}
	first := map[string]bool{}
	for _, e := range entries {
		writer, n, ok := wire.ParseSeq(e.Fields[wire.SeqField])
		if !ok || first[writer] {
			continue
		}
		first[writer] = true
		if s := r.writers[writer]; s != nil && n-1 > s.floor {
			s.floor = n - 1
		}
	}
}

// maxGapScan bounds the entries resolveGaps and keepPlace read.
const maxGapScan = 10000

// lose counts n lost entries and logs them (a line per check at most, rate-limited).
func (r *streamReader) lose(n int64, why string) {
	r.a.stats.lost.Add(uint64(n))
	if ok, suppressed := r.lossLog.Allow(); ok {
		r.a.log.Error("redisstreams: "+why, "stream", r.stream, "lost", n, "lost_total", r.a.stats.lost.Load(),
			"last_read", r.lastID, "reports_unlogged", suppressed)
	}
}

// updateLag refreshes the lag gauges from info (and the age of the oldest unread entry).
func (r *streamReader) updateLag(ctx context.Context, info rdb.StreamInfo) {
	var entries int64
	next := ""
	switch {
	case r.lastID == "" || info.LastID == r.lastID || compareIDs(info.LastID, r.lastID) < 0:
	case info.Length > 0 && compareIDs(r.lastID, info.FirstID) < 0:
		entries, next = info.Length, info.FirstID
	default:
		if info.Added >= 0 && r.pos >= 0 {
			entries = max(info.Added-r.pos, 0)
		}
		if e, err := r.a.client.XRange(ctx, r.stream, "("+r.lastID, "+", 1); err == nil && len(e) == 1 {
			next = e[0].ID
			if entries == 0 {
				entries = 1
			}
		}
	}
	var seconds float64
	if ms, ok := idMillis(next); ok {
		seconds = max(float64(time.Now().UnixMilli()-ms)/1000, 0)
	}
	r.setGauge(func(g *StreamStats) { g.LagEntries, g.LagSeconds = entries, seconds })
}

func (r *streamReader) setGauge(f func(*StreamStats)) {
	r.gaugeMu.Lock()
	f(&r.gauge)
	r.gaugeMu.Unlock()
}

func (r *streamReader) stats() StreamStats {
	r.gaugeMu.Lock()
	defer r.gaugeMu.Unlock()
	return r.gauge
}

// idMillis returns the milliseconds part of an entry ID.
func idMillis(id string) (int64, bool) {
	if id == "" {
		return 0, false
	}
	ms, _ := splitID(id)
	return int64(ms), ms > 0
}
