package wire

import (
	"cmp"
	"strconv"
	"strings"
	"time"
)

// StreamID is a Redis stream entry ID, "<ms>-<seq>": the milliseconds of the entry's time, and its sequence within
// that millisecond. Every place that reads, orders or writes entry IDs uses this type, so that their syntax is
// known in one place.
type StreamID struct {
	Ms, Seq uint64
}

// ParseStreamID parses a complete entry ID, both parts present and in decimal digits only (what Redis returns for
// an entry; not the range syntax "-", "+", "(" or an ID without its sequence). ok is false otherwise.
func ParseStreamID(s string) (id StreamID, ok bool) {
	ms, seq, found := strings.Cut(s, "-")
	if !found || !allDigits(ms) || !allDigits(seq) {
		return StreamID{}, false
	}
	var err1, err2 error
	id.Ms, err1 = strconv.ParseUint(ms, 10, 64)
	id.Seq, err2 = strconv.ParseUint(seq, 10, 64)
	return id, err1 == nil && err2 == nil
}

// IsStreamID reports whether s is a complete entry ID (see ParseStreamID): such a string can be written into JSON
// text as is.
func IsStreamID(s string) bool {
	_, ok := ParseStreamID(s)
	return ok
}

// String returns the ID as Redis writes it.
func (id StreamID) String() string {
	b := strconv.AppendUint(make([]byte, 0, 41), id.Ms, 10)
	b = append(b, '-')
	return string(strconv.AppendUint(b, id.Seq, 10))
}

// Compare orders IDs as Redis does: by milliseconds, then by sequence.
func (id StreamID) Compare(other StreamID) int {
	if c := cmp.Compare(id.Ms, other.Ms); c != 0 {
		return c
	}
	return cmp.Compare(id.Seq, other.Seq)
}

// Time is the entry's time, from its milliseconds.
func (id StreamID) Time() time.Time { return time.UnixMilli(int64(id.Ms)) }

// CompareIDs orders two entry IDs given as text (Redis's order). An ID that does not parse orders as "0-0", the
// ID before every entry (Redis's "0-0" and "" both mean "from the start").
func CompareIDs(a, b string) int {
	x, _ := ParseStreamID(a)
	y, _ := ParseStreamID(b)
	return x.Compare(y)
}

// IDMillis returns the milliseconds part of an entry ID given as text; ok is false when it does not parse or is 0
// (no entry: "0-0").
func IDMillis(s string) (ms int64, ok bool) {
	id, ok := ParseStreamID(s)
	return int64(id.Ms), ok && id.Ms > 0
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
