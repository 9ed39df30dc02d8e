package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// stream is a model of one Redis stream for the ledger's tests: entries with time-ordered IDs, entries-added,
// exact trimming, and the epoch key, across data-set losses (a restart loses everything; a failover goes back to
// an earlier snapshot, epoch key included).
type stream struct {
	ms      uint64 // the clock: IDs are ms-n
	seq     uint64 // the n of the last ID in this millisecond
	entries []rdb.Entry
	added   int64
	last    string // last-generated-id
	epoch   string
	seqs    map[string]uint64 // per writer, the last number written (kept across data-set losses: writers do)
	writes  map[string]uint64 // per writer, how many numbered entries it wrote, each once
	plain   int64             // entries written without a number (a Node server's)
}

func newStream() *stream {
	return &stream{ms: 1_000, last: "0-0", seqs: map[string]uint64{}, writes: map[string]uint64{}}
}

// tick advances the clock a millisecond.
func (s *stream) tick() { s.ms++; s.seq = 0 }

// write appends n numbered entries of writer w ("" writes Node-style entries without a number).
func (s *stream) write(w string, n int) {
	for range n {
		fields := map[string]string{"uid": "u", "nsp": "/", "type": "3"}
		if w != "" {
			s.seqs[w]++
			s.writes[w]++
			fields[wire.SeqField] = wire.FormatSeq(w, s.seqs[w])
		} else {
			s.plain++
		}
		s.add(fields)
	}
}

// repeat writes again writer w's last entry, with its number (a write retried after its reply was lost).
func (s *stream) repeat(w string) {
	s.add(map[string]string{"uid": "u", "nsp": "/", "type": "3", wire.SeqField: wire.FormatSeq(w, s.seqs[w])})
}

// drop makes writer w skip a number (a write its publisher dropped after sending it, which never reached Redis).
func (s *stream) drop(w string) { s.seqs[w]++; s.writes[w]++ }

func (s *stream) add(fields map[string]string) {
	last, _ := wire.ParseStreamID(s.last)
	id := wire.StreamID{Ms: s.ms, Seq: s.seq}
	if id.Compare(last) <= 0 {
		id = wire.StreamID{Ms: last.Ms, Seq: last.Seq + 1}
	}
	s.seq = id.Seq + 1
	s.last = id.String()
	s.added++
	s.entries = append(s.entries, rdb.Entry{ID: s.last, Fields: fields})
}

// trim keeps the newest maxLen entries.
func (s *stream) trim(maxLen int) {
	if len(s.entries) > maxLen {
		s.entries = append([]rdb.Entry(nil), s.entries[len(s.entries)-maxLen:]...)
	}
}

// restart loses the data set (a restart without persistence): empty, entries-added 0, no epoch key.
func (s *stream) restart() {
	s.entries, s.added, s.last, s.epoch = nil, 0, "0-0", ""
	s.tick()
}

type snapshot struct {
	entries []rdb.Entry
	added   int64
	last    string
	epoch   string
}

func (s *stream) snapshot() snapshot {
	return snapshot{append([]rdb.Entry(nil), s.entries...), s.added, s.last, s.epoch}
}

// failover goes back to a snapshot (a replica that was behind took over): the epoch key is kept.
func (s *stream) failover(p snapshot) {
	s.entries, s.added, s.last, s.epoch = p.entries, p.added, p.last, p.epoch
	s.tick()
}

func (s *stream) info() rdb.StreamInfo {
	i := rdb.StreamInfo{LastID: s.last, FirstID: "0-0", Length: int64(len(s.entries)), Added: s.added}
	if len(s.entries) > 0 {
		i.FirstID = s.entries[0].ID
	}
	return i
}

// observe is what a check reads: XINFO STREAM, then SET NX GET of the epoch key.
func (s *stream) observe(candidate string) Observation {
	if s.epoch == "" {
		s.epoch = candidate
	}
	return Observation{Info: s.info(), Epoch: s.epoch, EpochKnown: true}
}

// XRange implements RangeReader.
func (s *stream) XRange(_ context.Context, _, start, end string, count int64) ([]rdb.Entry, error) {
	var out []rdb.Entry
	for _, e := range s.entries {
		if count > 0 && int64(len(out)) >= count {
			break
		}
		if !inRange(e.ID, start, true) || !inRange(e.ID, end, false) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func inRange(id, bound string, lower bool) bool {
	if bound == "-" || bound == "+" {
		return true
	}
	exclusive := strings.HasPrefix(bound, "(")
	c := wire.CompareIDs(id, strings.TrimPrefix(bound, "("))
	switch {
	case lower && exclusive:
		return c > 0
	case lower:
		return c >= 0
	case exclusive:
		return c < 0
	}
	return c <= 0
}

// xread is XREAD COUNT count from after.
func (s *stream) xread(after string, count int) []rdb.Entry {
	var out []rdb.Entry
	for _, e := range s.entries {
		if len(out) == count {
			break
		}
		if wire.CompareIDs(e.ID, after) > 0 {
			out = append(out, rdb.Entry{ID: e.ID, Fields: e.Fields})
		}
	}
	return out
}

// reader is a model of the adapter's stream reader around a Ledger: what it delivered and counted lost.
type reader struct {
	s         *stream
	books     *Ledger
	candidate int
	got       map[string]map[uint64]int // per writer, deliveries of each number
	plainGot  int64
	lost      int64
	dups      int
	log       []string
	checkDue  bool // a read or check failed: the next read waits for a check, as the adapter's reader does
}

// fail is a read that failed: Redis did not answer the reader.
func (r *reader) fail() {
	r.books.Failed()
	r.checkDue = true
}

func newReader(s *stream) *reader {
	return &reader{s: s, books: New("s", s.info(), time.Hour), got: map[string]map[uint64]int{}}
}

func (r *reader) read(count int) int {
	if r.checkDue {
		r.check()
	}
	batch := r.s.xread(r.books.LastID(), count)
	kept, res := r.books.Read(batch, time.Unix(0, 0))
	r.lost += res.Lost
	if res.CheckNow {
		r.check() // the adapter's reader checks before its next XREAD, within a round trip
	}
	if len(batch) > 0 {
		r.log = append(r.log, fmt.Sprintf("read %d from %s to %s lost %d (%s..%s)", len(batch), batch[0].ID, batch[len(batch)-1].ID, res.Lost, batch[0].Fields[wire.SeqField], batch[len(batch)-1].Fields[wire.SeqField]))
	}
	r.dups += res.Duplicates
	for _, e := range kept {
		w, n, ok := wire.ParseSeq(e.Fields[wire.SeqField])
		if !ok {
			r.plainGot++
			continue
		}
		if r.got[w] == nil {
			r.got[w] = map[uint64]int{}
		}
		r.got[w][n]++
	}
	return len(batch)
}

func (r *reader) check() CheckResult {
	r.candidate++
	r.checkDue = false
	res := r.books.Check(context.Background(), r.s.observe(fmt.Sprint("mark", r.candidate)), r.s)
	r.lost += res.LostDataSet + res.LostTrimmed
	r.log = append(r.log, fmt.Sprintf("check: %+v -> pos %d last %s", res, r.books.Pos(), r.books.LastID()))
	return res
}

// drain reads until caught up, then checks: what a reader does once traffic stops.
func (r *reader) drain() {
	for r.read(100) > 0 {
	}
	r.check()
	for r.read(100) > 0 {
	}
	r.check()
}

// missing is what the numbered writers wrote that the reader never delivered, and the deliveries of a number more
// than once.
func (r *reader) missing() (missing int64, twice int) {
	for w, n := range r.s.writes {
		got := r.got[w]
		for i := uint64(1); i <= n; i++ {
			switch got[i] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
	}
	return missing, twice
}

// missingRanges lists the numbers each writer wrote that the reader did not deliver, as ranges.
func (r *reader) missingRanges() string {
	out := ""
	for _, w := range []string{"a", "b", "c"} {
		n := r.s.writes[w]
		got := r.got[w]
		start := uint64(0)
		for i := uint64(1); i <= n+1; i++ {
			miss := i <= n && got[i] == 0
			if miss && start == 0 {
				start = i
			}
			if !miss && start != 0 {
				out += fmt.Sprintf("%s:%d-%d(%d) ", w, start, i-1, i-start)
				start = 0
			}
		}
	}
	return out
}
