package rdb

import (
	"bytes"
	"unsafe"
)

// parseXRead parses the raw RESP2 or RESP3 reply of an XREAD into entries, in order, over every stream it holds.
// Entries whose first two fields are uid and nsp with values that skip matches are returned as Skipped, without
// their fields (as toEntries). ok is false for anything but a well-formed reply (an error reply, say): the caller
// then reads again through go-redis.
func parseXRead(raw []byte, skip SkipFunc) (entries []Entry, ok bool) {
	p := respParser{b: raw}
	kind, n, ok := p.header()
	if !ok {
		return nil, false
	}
	switch kind {
	case '_':
		return nil, p.done()
	case '*', '%':
		if n < 0 {
			return nil, p.done()
		}
	default:
		return nil, false
	}
	for range n {
		if kind == '*' { // RESP2: [stream, entries]
			if k, m, ok := p.header(); !ok || k != '*' || m != 2 {
				return nil, false
			}
		}
		if _, ok := p.bulk(); !ok { // the stream's name
			return nil, false
		}
		k, count, ok := p.header()
		if !ok || k != '*' {
			return nil, false
		}
		if entries == nil && count > 0 {
			entries = make([]Entry, 0, count)
		}
		for range max(count, 0) {
			e, ok := p.entry(skip)
			if !ok {
				return nil, false
			}
			entries = append(entries, e)
		}
	}
	return entries, p.done()
}

type respParser struct {
	b []byte
	i int
}

func (p *respParser) done() bool { return p.i == len(p.b) }

// header reads a type byte and the integer that follows it up to CRLF (-1 for a null array, map or string; 0 for '_').
func (p *respParser) header() (kind byte, n int, ok bool) {
	if p.i >= len(p.b) {
		return 0, 0, false
	}
	kind = p.b[p.i]
	end := bytes.Index(p.b[p.i:], crlf)
	if end < 0 {
		return 0, 0, false
	}
	line := p.b[p.i+1 : p.i+end]
	p.i += end + 2
	if kind == '_' {
		return kind, 0, len(line) == 0
	}
	v, ok := atoi(line)
	return kind, v, ok
}

// atoi parses a RESP length: digits, or -1.
func atoi(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

var crlf = []byte("\r\n")

// bulk reads a bulk string; it aliases the reply.
func (p *respParser) bulk() ([]byte, bool) {
	kind, n, ok := p.header()
	if !ok || kind != '$' || n < 0 || p.i+n+2 > len(p.b) || p.b[p.i+n] != '\r' || p.b[p.i+n+1] != '\n' {
		return nil, false
	}
	s := p.b[p.i : p.i+n]
	p.i += n + 2
	return s, true
}

// entry reads [id, [field, value, ...]] (the fields may be a RESP3 map, or null).
func (p *respParser) entry(skip SkipFunc) (Entry, bool) {
	if k, n, ok := p.header(); !ok || k != '*' || n != 2 {
		return Entry{}, false
	}
	id, ok := p.bulk()
	if !ok {
		return Entry{}, false
	}
	e := Entry{ID: string(id)}
	kind, n, ok := p.header()
	if !ok {
		return Entry{}, false
	}
	switch {
	case kind == '*' && n < 0, kind == '_':
		n = 0
	case kind == '*' && n%2 == 0:
		n /= 2
	case kind == '%' && n >= 0:
	default:
		return Entry{}, false
	}
	start := p.i
	if skip != nil && n >= 2 {
		f1, ok1 := p.bulk()
		v1, ok2 := p.bulk()
		f2, ok3 := p.bulk()
		v2, ok4 := p.bulk()
		if !(ok1 && ok2 && ok3 && ok4) {
			return Entry{}, false
		}
		// The values are passed aliasing the reply, which nothing writes to any more.
		if string(f1) == "uid" && string(f2) == "nsp" && skip(unsafe.String(unsafe.SliceData(v1), len(v1)), unsafe.String(unsafe.SliceData(v2), len(v2))) {
			for range 2 * (n - 2) {
				if _, ok := p.bulk(); !ok {
					return Entry{}, false
				}
			}
			e.Skipped = true
			return e, true
		}
		p.i = start
	}
	e.Fields = make(map[string]string, n)
	for range n {
		f, ok1 := p.bulk()
		v, ok2 := p.bulk()
		if !ok1 || !ok2 {
			return Entry{}, false
		}
		e.Fields[string(f)] = string(v)
	}
	return e, true
}
