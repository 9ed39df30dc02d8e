package wire

import (
	"strconv"
	"sync"
	"unicode/utf8"
)

// jsonPool holds the buffers broadcastJSON encodes into.
var jsonPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// broadcastJSON writes a BROADCAST's data field without going through maps or reflection (appendJSON for the
// packet's arguments). It produces what data() followed by EncodeJSON would, keys in another order.
func (m *Message) broadcastJSON() (string, error) {
	bp := jsonPool.Get().(*[]byte)
	defer jsonPool.Put(bp)
	buf := append((*bp)[:0], `{"packet":{"type":`...)
	buf = strconv.AppendInt(buf, int64(m.Packet.Type), 10)
	buf = append(buf, `,"data":`...)
	argsStart := len(buf)
	generic := false
	if len(m.Packet.Data) == 0 {
		buf = append(buf, "[]"...)
	} else {
		var err error
		if buf, err = appendJSON(buf, m.Packet.Data, 0, &generic); err != nil {
			*bp = buf
			return "", err
		}
	}
	argsEnd := len(buf)
	if m.Packet.Nsp != "" {
		buf = append(buf, `,"nsp":`...)
		buf = appendJSONString(buf, m.Packet.Nsp)
	}
	if m.Packet.ID != nil {
		buf = append(buf, `,"id":`...)
		buf = strconv.AppendUint(buf, *m.Packet.ID, 10)
	}
	buf = append(buf, `},"opts":{"rooms":`...)
	buf = appendJSONStrings(buf, m.Opts.Rooms)
	buf = append(buf, `,"except":`...)
	buf = appendJSONStrings(buf, m.Opts.Except)
	buf = append(buf, `,"flags":{`...)
	sep := ""
	f := &m.Opts.Flags
	if f.Volatile {
		buf = append(buf, `"volatile":true`...)
		sep = ","
	}
	if f.Compress != nil {
		buf = append(buf, sep+`"compress":`...)
		buf = strconv.AppendBool(buf, *f.Compress)
		sep = ","
	}
	if f.Timeout != nil {
		buf = append(buf, sep+`"timeout":`...)
		buf = strconv.AppendInt(buf, *f.Timeout, 10)
		sep = ","
	}
	if f.ExpectSingleResponse {
		buf = append(buf, sep+`"expectSingleResponse":true`...)
	}
	buf = append(buf, "}}"...)
	if m.RequestID != "" {
		buf = append(buf, `,"requestId":`...)
		buf = appendJSONString(buf, m.RequestID)
	}
	buf = append(buf, '}')
	*bp = buf
	out := string(buf)
	m.plainArgs = ""
	if !generic {
		m.plainArgs = out[argsStart:argsEnd]
	}
	return out, nil
}

func appendJSONStrings(buf []byte, list []string) []byte {
	buf = append(buf, '[')
	for i, s := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, s)
	}
	return append(buf, ']')
}

// appendJSONString appends s as a JSON string, escaped like encoding/json with HTML escaping off.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\')
				buf = append(buf, c)
			case '\n':
				buf = append(buf, `\n`...)
			case '\r':
				buf = append(buf, `\r`...)
			case '\t':
				buf = append(buf, `\t`...)
			case '\b':
				buf = append(buf, `\b`...)
			case '\f':
				buf = append(buf, `\f`...)
			default:
				buf = append(buf, `\u00`...)
				buf = append(buf, hex[c>>4])
				buf = append(buf, hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	buf = append(buf, '"')
	return buf
}
