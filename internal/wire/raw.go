package wire

import (
	"encoding/json"
	"strconv"
)

// RawBroadcast is a BROADCAST stream entry whose packet arguments can go to clients as they are: the JSON text of
// packet.data is kept, never decoded into Go values.
type RawBroadcast struct {
	// Data is the JSON text of packet.data: an array whose first element is a string event name.
	Data string
	Opts Options
}

// ScanBroadcast reads the data field of a BROADCAST stream entry of namespace nsp without decoding the packet's
// arguments. It accepts only the plain case, which it checks completely: JSON (not msgpack), valid UTF-8, nesting
// within MaxDepth, no requestId (no acks), a packet of type EVENT (2) with no id, nsp absent or equal to nsp, and
// data an array whose first element is a string that is not a reserved event name. ok is false for anything else;
// the caller then decodes the entry in full (DecodeStreamEntry), which reports what is invalid.
func ScanBroadcast(nsp, data string) (rb RawBroadcast, ok bool) {
	if len(data) == 0 || data[0] != '{' || !validJSON(data, MaxDepth) {
		return rb, false
	}
	s := scanner{s: data}
	var sawPacket bool
	ok = s.object(func(key string) bool {
		switch key {
		case "packet":
			sawPacket = true
			return s.packet(nsp, &rb)
		case "opts":
			return s.options(&rb.Opts)
		case "requestId":
			return false
		}
		s.skip()
		return true
	})
	if !ok || !sawPacket || rb.Data == "" {
		return RawBroadcast{}, false
	}
	return rb, true
}

// scanner walks JSON text that validJSON has accepted.
type scanner struct {
	s string
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.s) {
		switch s.s[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.s) {
		return s.s[s.i]
	}
	return 0
}

// object calls field for every key of the object at the cursor, with the cursor on the key's value; field must
// consume the value, or return false to stop.
func (s *scanner) object(field func(key string) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		s.i++ // ':'
		if !field(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// str reads the string at the cursor.
func (s *scanner) str() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	start := s.i
	escaped := false
	for s.i++; s.i < len(s.s); s.i++ {
		switch s.s[s.i] {
		case '\\':
			escaped = true
			s.i++
		case '"':
			s.i++
			if !escaped {
				return s.s[start+1 : s.i-1], true
			}
			var out string
			if err := json.Unmarshal([]byte(s.s[start:s.i]), &out); err != nil {
				return "", false
			}
			return out, true
		}
	}
	return "", false
}

// skipStr moves the cursor past the string at the cursor.
func (s *scanner) skipStr() {
	for s.i++; s.i < len(s.s); s.i++ {
		switch s.s[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return
		}
	}
}

// skip moves the cursor past the value at the cursor and returns the value's text.
func (s *scanner) skip() string {
	s.ws()
	start := s.i
	if s.i >= len(s.s) {
		return ""
	}
	switch s.s[s.i] {
	case '"':
		s.skipStr()
	case '{', '[':
		depth := 0
		for ; s.i < len(s.s); s.i++ {
			switch s.s[s.i] {
			case '"':
				s.skipStr()
				s.i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					s.i++
					return s.s[start:s.i]
				}
			}
		}
	default: // number, true, false, null
		for s.i < len(s.s) {
			switch s.s[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.s[start:s.i]
			}
			s.i++
		}
	}
	return s.s[start:s.i]
}

func (s *scanner) packet(nsp string, rb *RawBroadcast) bool {
	var typed bool
	return s.object(func(key string) bool {
		switch key {
		case "type":
			typed = s.skip() == "2"
			return typed
		case "data":
			if s.peek() != '[' {
				return false
			}
			rb.Data = s.skip()
			inner := scanner{s: rb.Data, i: 1}
			name, ok := inner.str()
			return ok && !reservedEvents[name]
		case "nsp":
			got, ok := s.str()
			return ok && got == nsp
		case "id":
			return s.skip() == "null"
		}
		s.skip()
		return true
	}) && typed
}

func (s *scanner) options(o *Options) bool {
	if s.peek() == 'n' {
		return s.skip() == "null"
	}
	return s.object(func(key string) bool {
		switch key {
		case "rooms":
			return s.strings(&o.Rooms)
		case "except":
			return s.strings(&o.Except)
		case "flags":
			return s.flags(&o.Flags)
		}
		s.skip()
		return true
	})
}

func (s *scanner) strings(out *[]string) bool {
	*out = (*out)[:0]
	switch s.peek() {
	case 'n':
		return s.skip() == "null"
	case '[':
	default:
		return false
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		v, ok := s.str()
		if !ok {
			return false
		}
		*out = append(*out, v)
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *scanner) flags(f *Flags) bool {
	if s.peek() == 'n' {
		return s.skip() == "null"
	}
	return s.object(func(key string) bool {
		switch key {
		case "volatile":
			v, ok := s.boolean()
			f.Volatile = v
			return ok
		case "compress":
			v, ok := s.boolean()
			if ok {
				f.Compress = &v
			}
			return ok
		case "expectSingleResponse":
			v, ok := s.boolean()
			f.ExpectSingleResponse = v
			return ok
		case "timeout":
			n, err := strconv.ParseInt(s.skip(), 10, 64)
			if err != nil {
				return false
			}
			f.Timeout = &n
			return true
		}
		s.skip()
		return true
	})
}

func (s *scanner) boolean() (bool, bool) {
	switch s.skip() {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}
