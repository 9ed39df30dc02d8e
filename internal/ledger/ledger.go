// Package ledger keeps the books of one stream reader: where it stands in its stream, and what each writer that
// numbers its entries has written. From them it drops the repeats of retried writes and counts, exactly where it
// can and never more than happened, the entries that vanished before the reader read them: trimmed (MAXLEN) or
// deleted while the reader was behind, or lost with Redis's data set (a restart without persistence, a failover to
// a replica that was behind).
//
// A Ledger does no I/O. Its check takes what Redis said of the stream (XINFO STREAM and the epoch key, see
// Observation) and asks the few bounded questions it may need through a RangeReader (XRANGE), so that the
// arithmetic can be tested against a model of a stream.
package ledger

import (
	"context"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// RangeReader reads entries of the stream (XRANGE, Redis range syntax). The Ledger's checks read at most a few
// hundred entries, except right after a data-set loss (MaxScan).
type RangeReader interface {
	XRange(ctx context.Context, stream, start, end string, count int64) ([]rdb.Entry, error)
}

const (
	// MaxJumpScan bounds the entries a check reads to count what a reader inside the stream jumped over.
	MaxJumpScan = 100
	// MaxScan bounds the entries read once after a data-set loss, to find the reader's place in the new data set
	// and each writer's first entry there.
	MaxScan = 10000
	// floorScan is how many of the first entries are read to raise the writers' floors.
	floorScan = 100
)

// Ledger is the books of one stream reader. It is not safe for concurrent use: the reader's goroutine owns it.
type Ledger struct {
	stream string
	lastID string // the last entry read; the next XREAD starts after it ("" until known)
	// Entries added to the stream up to lastID in this data set that were read or counted lost; -1 when Redis does
	// not say how many entries were ever added (before 7.0): trimming is then not counted.
	pos   int64
	epoch string // the epoch key's value at the last check; "" before the first
	read  int64  // entries read since the last check
	// At the last check: the entries ever added to the stream (-1 unknown), and the reader's position then. The
	// entries between are the ones it had not read yet.
	checkedAdded, checkedPos int64
	book                     book
	// Redis failed to answer the reader: at the next check, every writer's gap up to the stream's last entry then
	// is counted lost (a replica that had not received every entry may have taken over).
	rearm bool
	// The last check found the reader behind: what it jumps over after that check is counted by the next one,
	// which the reader makes as soon as a read finds it caught up (see Recheck).
	recheck bool
	// Entries counted both ways: see balance.
	bal balance

	forgetAfter time.Duration
}

// New returns the books of a reader that starts after the stream's last entry as info describes it (info.LastID
// "" when unknown: see Start). Once the reader has heard from more than 1,000 writers, those not heard from for
// forgetAfter are forgotten (at least 10 minutes).
func New(stream string, info rdb.StreamInfo, forgetAfter time.Duration) *Ledger {
	l := &Ledger{stream: stream, book: newBook(), forgetAfter: max(forgetAfter, 10*time.Minute), checkedAdded: -1}
	l.Start(info)
	return l
}

// Start sets the reader's place: after info's last entry.
func (l *Ledger) Start(info rdb.StreamInfo) {
	l.lastID, l.pos = info.LastID, info.Added
	if l.lastID == "" {
		l.pos = -1
	}
}

// LastID is the last entry read, where the next read starts; "" until known.
func (l *Ledger) LastID() string { return l.lastID }

// Pos is the reader's position: entries added up to LastID in this data set that were read or counted lost; -1
// when unknown.
func (l *Ledger) Pos() int64 { return l.pos }

// Recheck tells that the last check found the reader behind: a read that finds it caught up should be followed
// by a check at once, and reads should not block long meanwhile.
func (l *Ledger) Recheck() bool { return l.recheck }

// Failed records that Redis did not answer the reader (a read or a check failed).
func (l *Ledger) Failed() { l.rearm = true }

// ReadResult is what one batch of entries tells.
type ReadResult struct {
	Duplicates int   // repeats of entries already read (dropped)
	Skipped    int   // entries the client did not convert (rdb.Entry.Skipped): read, never delivered
	Lost       int64 // entries that vanished with Redis's data set, shown by writers' gaps
	// CheckNow asks for a check before the next read: a gap just counted may hold entries the read jumped over
	// (trimmed), which the next check counts by position too, and only the next check can tell them apart from
	// what later reads jump over.
	CheckNow bool
}

// Read books one batch of entries read, in order, and returns those to deliver (in place: entries is reused).
func (l *Ledger) Read(entries []rdb.Entry, now time.Time) (deliver []rdb.Entry, res ReadResult) {
	if len(entries) == 0 {
		return entries, res
	}
	l.lastID = entries[len(entries)-1].ID
	if l.pos >= 0 {
		l.pos += int64(len(entries))
	}
	l.read += int64(len(entries))
	kept := entries[:0]
	for i := range entries {
		e := &entries[i]
		if e.Skipped {
			res.Skipped++
			continue
		}
		dup, gap, armed := l.book.entry(e, now)
		switch {
		case gap == 0:
		case armed:
			res.Lost += l.bal.byGap(gap)
			res.CheckNow = res.CheckNow || l.pos >= 0
		case l.book.armed > 0:
			l.bal.others(gap)
			res.CheckNow = res.CheckNow || l.pos >= 0
		}
		if dup {
			res.Duplicates++
			continue
		}
		kept = append(kept, *e)
	}
	clear(entries[len(kept):])
	if len(l.book.writers) > 1000 {
		l.book.prune(now, l.forgetAfter)
	}
	return kept, res
}

// Observation is what Redis said of the stream at a check.
type Observation struct {
	Info rdb.StreamInfo
	// Epoch is the epoch key's value (set to a new mark when it was missing), and EpochKnown false when it could
	// not be read (then only the stream's counters can tell a new data set).
	Epoch      string
	EpochKnown bool
}

// CheckResult is what a check found.
type CheckResult struct {
	NewData     bool   // Redis lost the stream's data set since the last check
	Kept        bool   // ... but kept the epoch key: a replica that was behind took over, the reader kept its place
	LastRead    string // with NewData: the last entry the reader had read before
	LostDataSet int64  // entries that vanished with Redis's data set before the reader read them (writers' gaps)
	LostTrimmed int64  // entries trimmed or deleted before the reader read them
	Behind      bool   // the reader is behind the stream's end (lag gauges)
}

// Check compares the reader's place with the stream as obs describes it, counts what vanished before the reader
// read it, and sets the reader's place when Redis lost the data set. rr answers the bounded XRANGEs it needs; a
// failed XRANGE only makes the count smaller (never larger) until a later check can tell.
//
// Each lost entry is counted once: by position (trimmed: every writer's, Node servers' and emitters' included), or
// by the gap it left in its writer's numbering (lost with a data set: Go servers' only). After a data-set loss a
// writer's gap may also hold entries of the new data set trimmed before the reader got to them, which the position
// counts too: each is counted once (see balance).
func (l *Ledger) Check(ctx context.Context, obs Observation, rr RangeReader) CheckResult {
	info := obs.Info
	p := l.place()
	if l.rearm && l.lastID != "" && info.Length > 0 && wire.CompareIDs(l.lastID, info.FirstID) >= 0 &&
		wire.CompareIDs(l.lastID, info.LastID) <= 0 {
		// After a failure: is the last entry read still there? A replica that took over without it has lost it,
		// and the entries after it that the reader read are not in the new data set either.
		found, err := rr.XRange(ctx, l.stream, l.lastID, l.lastID, 1)
		p.lastGone = err == nil && len(found) == 0
	}
	a := assess(p, obs)
	if obs.EpochKnown {
		l.epoch = obs.Epoch
	}
	var res CheckResult
	if l.rearm {
		// Redis failed to answer this reader. Its master may have died and a replica taken over that had not
		// received every entry acknowledged: the reader may resume inside the data set the replica had, with
		// nothing in the stream telling. So every writer's gap up to the stream's last entry now is counted lost.
		l.rearm = false
		l.book.armAll(info.LastID)
	}
	gaps := l.book.takeGaps()
	if !a.newData {
		// Entries trimmed before the reader got to them, shown by the gaps of writers that were not armed: theirs,
		// not an armed writer's (otherwise forgotten: trimmed entries are counted by position, dropped writes by
		// their publisher).
		l.bal.others(gaps)
	}
	if a.newData {
		res.NewData, res.Kept, res.LastRead = true, a.kept, l.lastID
		if !a.kept && l.checkedAdded >= 0 && l.checkedPos >= 0 {
			// The entries the last check saw that the reader had not read are gone with the old data set (at
			// least: those it read since may be among them). Counted by position, so that writers the reader
			// never heard from are counted too; the gaps of those it did hear from are set against it.
			res.LostDataSet = l.bal.byPosition(max(l.checkedAdded-l.checkedPos-l.read, 0))
		}
		l.newPlace(ctx, info, a, rr)
		l.book.armAll("")
	}
	l.read = 0

	gone, behind := l.trimmed(ctx, info, rr)
	if gone > 0 {
		if behind {
			if first, err := rr.XRange(ctx, l.stream, "-", "+", floorScan); err == nil {
				l.book.raiseFloors(first)
			}
		}
		l.pos += gone
		res.LostTrimmed = l.bal.byPosition(gone)
	}
	if a.newData {
		// The gaps seen since the last check: entries of the old data set the reader never read (and of the new
		// one, trimmed before it got to them).
		res.LostDataSet += l.bal.byGap(gaps)
		if !a.kept && l.book.armed > 0 && info.Length > 0 && info.Added == info.Length {
			if first, err := rr.XRange(ctx, l.stream, "-", "+", min(info.Length, MaxScan)); err == nil {
				res.LostDataSet += l.bal.byGap(l.book.resolve(first))
			}
		}
	}
	l.bal.settled(l.book.armed > 0)
	l.checkedAdded, l.checkedPos = info.Added, l.pos
	res.Behind = info.LastID != l.lastID
	return res
}

// place is the reader's books as the assessment reads them.
type place struct {
	lastID string
	pos    int64
	epoch  string
	// The entry lastID is gone although it is neither trimmed (it is not before the first entry) nor past the
	// stream's end: Redis lost it with its data set (or it was deleted with XDEL).
	lastGone bool
}

func (l *Ledger) place() place { return place{lastID: l.lastID, pos: l.pos, epoch: l.epoch} }

// assessment is what a check's inputs alone tell.
type assessment struct {
	newData bool // Redis lost the data set the reader was reading
	kept    bool // the epoch key survived: the new data set is the old one cut short, then what was written since
	// The new data set holds nothing after the reader's last entry's ID: it has read none of it, and reads all of
	// it from the start.
	restart bool
}

// assess tells from a check's inputs whether Redis lost the stream's data set: the epoch key is gone or changed,
// or the stream's last ID or entries-added went backwards. It does no I/O.
func assess(p place, obs Observation) assessment {
	info := obs.Info
	var a assessment
	sameEpoch := false
	if obs.EpochKnown && p.epoch != "" {
		a.newData = obs.Epoch != p.epoch
		sameEpoch = !a.newData
	}
	if p.lastID != "" && wire.CompareIDs(info.LastID, p.lastID) < 0 && !(sameEpoch && info.Added >= 0 && info.Added == p.pos) {
		// The last ID went backwards (unless the reader already kept its place in a data set cut short by a
		// failover, where no entry was added since).
		a.newData = true
	}
	if info.Added >= 0 && p.pos >= 0 && info.Added < p.pos {
		a.newData = true // fewer entries ever added than the reader has read
	}
	if p.lastGone {
		a.newData = true
	}
	if a.newData {
		a.kept = sameEpoch
		a.restart = !a.kept && wire.CompareIDs(info.LastID, p.lastID) < 0
	}
	return a
}

// newPlace sets the reader's place in the data set Redis has now.
//   - kept (a failover to a replica that was behind, the epoch key kept): the reader keeps its place; its position
//     is the count of entries added up to its last ID there.
//   - restart (the new data set ends before the reader's last ID): the reader has read none of it, and reads all
//     of it from the start.
//   - otherwise the reader may have read into the new data set before a check noticed it (a Redis client that
//     reconnects by itself does not fail the read): it keeps its place when the new data set still holds its
//     last entry, and starts over from the beginning otherwise (nothing there is older than its last entry). Its
//     position is what it read since the last check, at most: the new data set's entries it jumped over, trimmed
//     before it got to them, are then counted as trimmed (position never counts an entry the reader read: some
//     entries read since the last check may be the old data set's, which only makes the count smaller).
func (l *Ledger) newPlace(ctx context.Context, info rdb.StreamInfo, a assessment, rr RangeReader) {
	switch {
	case info.Added < 0:
		if a.restart {
			l.lastID = "0-0"
		}
		l.pos = -1
	case a.kept:
		l.pos = l.position(ctx, info, rr)
	case a.restart:
		l.lastID, l.pos = "0-0", 0
	case info.Length == 0 || wire.CompareIDs(l.lastID, info.FirstID) < 0:
		l.lastID, l.pos = "0-0", min(l.read, info.Added-info.Length)
	default:
		l.pos = min(l.read, l.position(ctx, info, rr))
	}
}

// position is an upper bound of the reader's place in the data set info describes: the entries added up to its
// last ID, counted as the entries ever added minus those after it, exact when they are fewer than MaxScan. An
// upper bound makes trimming undercounted, never overcounted.
func (l *Ledger) position(ctx context.Context, info rdb.StreamInfo, rr RangeReader) int64 {
	if wire.CompareIDs(info.LastID, l.lastID) <= 0 {
		return info.Added
	}
	after, ok := l.entriesAfter(ctx, info, rr, MaxScan)
	if !ok {
		return max(info.Added-MaxScan, 0)
	}
	return info.Added - after
}

// entriesAfter counts the stream's entries after the reader's last ID, up to info.LastID (the entries added since
// XINFO STREAM are not in info.Added either), with one XRANGE; ok is false when there are limit or more, or when
// Redis did not answer. Entries trimmed after XINFO only make the count smaller.
func (l *Ledger) entriesAfter(ctx context.Context, info rdb.StreamInfo, rr RangeReader, limit int64) (n int64, ok bool) {
	after, err := rr.XRange(ctx, l.stream, "("+l.lastID, info.LastID, limit)
	return int64(len(after)), err == nil && int64(len(after)) < limit
}

// trimmed counts, from the reader's position, the entries trimmed or deleted before it read them:
//   - caught up: every entry added up to the stream's last one was read, or is gone;
//   - behind the stream's first entry (behind is true): every entry added before that one that the reader did
//     not read is gone;
//   - inside the stream, behind its end: the entries a read jumped over (jumpedOver).
//
// In the last two cases the reader keeps jumping over entries trimmed ahead of it: Recheck then asks for a check
// as soon as it has caught up.
func (l *Ledger) trimmed(ctx context.Context, info rdb.StreamInfo, rr RangeReader) (gone int64, behind bool) {
	if info.Added < 0 || l.pos < 0 || l.lastID == "" {
		return 0, false // no position: nothing is counted by position
	}
	l.recheck = false
	switch {
	case info.LastID == l.lastID:
		gone = info.Added - l.pos
	case info.Length > 0 && wire.CompareIDs(l.lastID, info.FirstID) < 0:
		gone, behind = info.Added-info.Length-l.pos, true
		l.recheck = true
	case info.Added > l.pos && wire.CompareIDs(l.lastID, info.LastID) < 0:
		gone = l.jumpedOver(ctx, info, rr)
		l.recheck = true
	}
	return max(gone, 0), behind
}

// jumpedOver counts, for a reader inside the stream (neither behind its first entry nor caught up), the entries it
// never read although they were added before its last ID: entries trimmed (or deleted) while it was behind, that
// its next XREAD jumped over (XREAD returns the oldest entries left after the ID it is given). Such a reader is
// never behind the first entry at a check, nor caught up while traffic goes on, so without this count a reader that
// trails the trimming under sustained load would report those losses only once the traffic stops.
//
// With A = entries ever added (info.Added), L = entries in the stream after the reader's last ID, and the reader's
// position P, the entries it jumped over are A - L - P. L is the stream's length minus the entries up to the last
// ID, counted with one bounded XRANGE from the head (where a reader that jumps over trimmed entries is), or with
// one from the last ID to the end. When both exceed the bound, only the part that is certain is counted (L is at
// most Length - MaxJumpScan - 1), and the rest when a later check can tell (at the latest the one made as soon as
// the reader has caught up). The XRANGEs follow XINFO STREAM: entries trimmed between them are unread entries gone
// too, and entries added since are left out by the ID bound, so nothing is counted that the reader could still
// read.
func (l *Ledger) jumpedOver(ctx context.Context, info rdb.StreamInfo, rr RangeReader) int64 {
	fromHead := func() (int64, bool) {
		head, err := rr.XRange(ctx, l.stream, "-", l.lastID, MaxJumpScan+1)
		return info.Added - (info.Length - int64(len(head))) - l.pos, err == nil && len(head) <= MaxJumpScan
	}
	fromTail := func() (int64, bool) {
		tail, ok := l.entriesAfter(ctx, info, rr, MaxJumpScan+1)
		return info.Added - tail - l.pos, ok
	}
	// The end nearer the reader first (by the IDs' milliseconds): a reader slightly behind under steady traffic is
	// near the tail, one that trails the trimming near the head.
	first, second := fromHead, fromTail
	last, _ := wire.IDMillis(info.LastID)
	at, _ := wire.IDMillis(l.lastID)
	if head, _ := wire.IDMillis(info.FirstID); last-at < at-head {
		first, second = fromTail, fromHead
	}
	if n, ok := first(); ok {
		return n
	}
	if n, ok := second(); ok {
		return n
	}
	return info.Added - (info.Length - MaxJumpScan - 1) - l.pos
}

// balance counts once the entries that both of a reader's ways of counting can see. After Redis lost its data set
// (or may have: the reader failed, and its writers are armed), an armed writer's gap holds its entries that
// vanished with the old data set and those of the new one trimmed before the reader got to them, and the reader's
// position counts the latter too, for every writer. Either may come first: a gap read before the check that counts
// the entries the read jumped over, or a count by position before the writer's next entry is read.
//
// credit is what positions counted that a later armed gap may hold (kept while writers are armed); the gaps of
// writers that are not armed show trimmed entries that are theirs, not an armed writer's, and leave the credit
// (unclaimed holds those seen before the count by position that holds them). debit is what gaps counted that the
// next count by position may hold (the reader checks before it reads on, see ReadResult.CheckNow, so that the count
// holds only entries before the gap's). Each count first cancels what the other way counted, so that the total is
// never more than what vanished; it is exact when every writer is numbered (Go servers) and has written again since.
type balance struct {
	credit, debit, unclaimed int64
}

// byGap returns what of an armed writer's gap is not already counted by position.
func (b *balance) byGap(gap int64) int64 {
	used := min(gap, b.credit)
	b.credit -= used
	b.debit += gap - used
	return gap - used
}

// others takes from the credit the trimmed entries shown by the gap of a writer that is not armed.
func (b *balance) others(gap int64) {
	used := min(gap, b.credit)
	b.credit -= used
	b.unclaimed += gap - used
}

// byPosition returns what of n entries counted by position is not already counted by a gap.
func (b *balance) byPosition(n int64) int64 {
	used := min(n, b.debit)
	b.debit -= used
	rest := n - used
	theirs := min(rest, b.unclaimed)
	b.unclaimed -= theirs
	b.credit += rest - theirs
	return rest
}

// settled ends what cannot be matched any more: the debit at the check after the gap (later counts by position
// hold entries read after the gap's: the reader checks before it reads on), the credit once no writer is armed.
// When that check could count only part of what the reader jumped over (far from both ends of a long stream),
// the rest, counted later, may be counted twice: counting too much is preferred to counting too little.
func (b *balance) settled(armed bool) {
	b.debit, b.unclaimed = 0, 0
	if !armed {
		b.credit = 0
	}
}
