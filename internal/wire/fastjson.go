package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"unicode/utf8"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// broadcastJSON writes a BROADCAST's data field without going through maps: the envelope by hand, the packet's
// arguments with encoding/json. It produces what data() followed by EncodeJSON would, keys in another order.
func (m *Message) broadcastJSON() (string, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	buf.WriteString(`{"packet":{"type":`)
	buf.WriteString(strconv.Itoa(m.Packet.Type))
	buf.WriteString(`,"data":`)
	if len(m.Packet.Data) == 0 {
		buf.WriteString("[]")
	} else {
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m.Packet.Data); err != nil {
			return "", err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	if m.Packet.Nsp != "" {
		buf.WriteString(`,"nsp":`)
		writeJSONString(buf, m.Packet.Nsp)
	}
	if m.Packet.ID != nil {
		buf.WriteString(`,"id":`)
		buf.WriteString(strconv.FormatUint(*m.Packet.ID, 10))
	}
	buf.WriteString(`},"opts":{"rooms":`)
	writeJSONStrings(buf, m.Opts.Rooms)
	buf.WriteString(`,"except":`)
	writeJSONStrings(buf, m.Opts.Except)
	buf.WriteString(`,"flags":{`)
	sep := ""
	f := &m.Opts.Flags
	if f.Volatile {
		buf.WriteString(`"volatile":true`)
		sep = ","
	}
	if f.Compress != nil {
		buf.WriteString(sep + `"compress":` + strconv.FormatBool(*f.Compress))
		sep = ","
	}
	if f.Timeout != nil {
		buf.WriteString(sep + `"timeout":` + strconv.FormatInt(*f.Timeout, 10))
		sep = ","
	}
	if f.ExpectSingleResponse {
		buf.WriteString(sep + `"expectSingleResponse":true`)
	}
	buf.WriteString("}}")
	if m.RequestID != "" {
		buf.WriteString(`,"requestId":`)
		writeJSONString(buf, m.RequestID)
	}
	buf.WriteByte('}')
	return buf.String(), nil
}

func writeJSONStrings(buf *bytes.Buffer, list []string) {
	buf.WriteByte('[')
	for i, s := range list {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(buf, s)
	}
	buf.WriteByte(']')
}

// writeJSONString escapes like encoding/json with HTML escaping off.
func writeJSONString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[c>>4])
				buf.WriteByte(hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
