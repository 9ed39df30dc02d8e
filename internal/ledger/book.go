package ledger

import (
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// book is what a reader knows of the writers that number their entries (wire.SeqField: Go servers). It does no
// I/O. With it a reader drops the repeats of retried writes, and, after Redis lost its data set, counts for each
// writer the entries that vanished before the reader read them: the gap before the writer's next entry.
type book struct {
	writers map[string]*writer
	armed   int // writers whose next entry tells how many of theirs vanished
	// Entries missing from writers' numbering, seen since the last check while they were not armed. A check that
	// finds a new data set counts them lost (entries of the new data set may be read before it is noticed); any
	// other check forgets them (trimmed entries are counted by position, dropped writes by their publisher).
	gaps int64
}

// writer is what a reader knows of one writer's sequence.
type writer struct {
	last  uint64 // the highest sequence number read
	floor uint64 // the entries up to here were read or counted lost
	seen  time.Time
	armed bool // Redis may have lost entries of this writer since its last one: the gap before its next is lost
	// While armed: the entry ID up to which every gap in its sequence is lost (the stream's last ID when Redis
	// answered again after a failure); "" when its next entry alone tells.
	until string
}

func newBook() book { return book{writers: map[string]*writer{}} }

// entry books one entry read. It returns dup for the repeat of an entry already read, and the gap before it in
// its writer's numbering: for an armed writer (armed true) its entries that vanished; for another, entries trimmed
// before the reader got to them (or writes its publisher dropped), which are counted by position, not here.
func (b *book) entry(e *rdb.Entry, now time.Time) (dup bool, gap int64, armed bool) {
	name, n, ok := wire.ParseSeq(e.Fields[wire.SeqField])
	if !ok {
		return false, 0, false // not numbered (Node servers, emitters)
	}
	w := b.writers[name]
	if w == nil {
		w = &writer{}
		b.writers[name] = w
	}
	w.seen = now
	if n <= w.last {
		return true, 0, false
	}
	if base := max(w.last, w.floor); w.last > 0 && n > base+1 {
		gap = int64(n - base - 1)
	}
	armed = w.armed
	if !armed {
		b.gaps += gap
	} else if w.until == "" || wire.CompareIDs(e.ID, w.until) > 0 {
		b.disarm(w)
	}
	w.last = n
	return false, gap, armed
}

func (b *book) disarm(w *writer) {
	if w.armed {
		w.armed, w.until = false, ""
		b.armed--
	}
}

// armAll arms every writer: until is the entry ID up to which their gaps are lost ("" for the next entry alone);
// an armed writer keeps the later of its until and this one.
func (b *book) armAll(until string) {
	for _, w := range b.writers {
		if !w.armed {
			w.armed = true
			b.armed++
		}
		switch {
		case until == "":
			w.until = ""
		case w.until == "" || wire.CompareIDs(until, w.until) > 0:
			w.until = until
		}
	}
}

// takeGaps returns the gaps seen since the last check and forgets them.
func (b *book) takeGaps() int64 {
	g := b.gaps
	b.gaps = 0
	return g
}

// resolve counts at once the gaps of armed writers from the first entries of a data set that is still whole: each
// armed writer's first entry there tells how many of its entries vanished. The entries are read later as usual:
// the floor keeps the gap from being counted again.
func (b *book) resolve(first []rdb.Entry) (lost int64) {
	for i := range first {
		if b.armed == 0 {
			break
		}
		name, n, ok := wire.ParseSeq(first[i].Fields[wire.SeqField])
		w := b.writers[name]
		if !ok || w == nil || !w.armed || n <= w.last {
			continue
		}
		if base := max(w.last, w.floor); n > base+1 {
			lost += int64(n - base - 1)
			w.floor = n - 1
		}
		b.disarm(w)
	}
	return lost
}

// raiseFloors notes, for the writers of the first entries left in the stream, that their entries before these were
// read or counted as trimmed: should Redis then lose its data set, only the entries after them are counted again.
func (b *book) raiseFloors(first []rdb.Entry) {
	done := map[string]bool{}
	for i := range first {
		name, n, ok := wire.ParseSeq(first[i].Fields[wire.SeqField])
		if !ok || done[name] {
			continue
		}
		done[name] = true
		// Not for armed writers: their gap before their next entry is what Redis lost with its data set (net of
		// the trimmed entries counted, see credit).
		if w := b.writers[name]; w != nil && !w.armed && n-1 > w.floor {
			w.floor = n - 1
		}
	}
}

// prune forgets writers not heard from for idle: a server that stopped, or restarted under a new name.
func (b *book) prune(now time.Time, idle time.Duration) {
	for name, w := range b.writers {
		if now.Sub(w.seen) > idle {
			b.disarm(w)
			delete(b.writers, name)
		}
	}
}
