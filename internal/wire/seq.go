package wire

import (
	"strconv"
	"strings"
)

// SeqField is the stream field in which a Go server numbers its own entries, per stream, so that readers can drop
// the repeat of an entry written twice (a write retried after its reply was lost). Its value is
// "<writer>:<n>": writer is random per process (a restarted server starts a new sequence under a new name), n counts
// from 1. Node peers and the emitter do not write it, and Node's reader ignores fields it does not know.
const SeqField = "seq"

// FormatSeq returns the value of SeqField.
func FormatSeq(writer string, n uint64) string {
	return string(AppendSeq(make([]byte, 0, len(writer)+21), writer, n))
}

// AppendSeq appends the value of SeqField to b.
func AppendSeq(b []byte, writer string, n uint64) []byte {
	b = append(b, writer...)
	b = append(b, ':')
	return strconv.AppendUint(b, n, 10)
}

// ParseSeq splits a SeqField value; ok is false when it is malformed (then the entry is not deduplicated).
func ParseSeq(v string) (writer string, n uint64, ok bool) {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(v[i+1:], 10, 64)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return v[:i], n, true
}
