package wire

import "unicode/utf8"

// validJSON reports whether s is one JSON value (RFC 8259, as json.Valid checks it), valid UTF-8, nesting at most
// maxDepth arrays/objects deep: utf8.ValidString, json.Valid and a depth count in one pass, without json.Valid's
// per-byte state function calls. validReference in the tests is the definition it is fuzzed against.
func validJSON(s string, maxDepth int) bool {
	v := validator{s: s, max: maxDepth}
	v.ws()
	if !v.value() {
		return false
	}
	v.ws()
	return v.i == len(s)
}

type validator struct {
	s          string
	i          int
	depth, max int
}

func (v *validator) ws() {
	for v.i < len(v.s) {
		switch v.s[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *validator) value() bool {
	if v.i >= len(v.s) {
		return false
	}
	switch c := v.s[v.i]; {
	case c == '"':
		return v.str()
	case c == '{':
		return v.object()
	case c == '[':
		return v.array()
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

func (v *validator) literal(word string) bool {
	if len(v.s)-v.i < len(word) || v.s[v.i:v.i+len(word)] != word {
		return false
	}
	v.i += len(word)
	return true
}

// str checks the string at the cursor (on its opening quote): escapes, no control characters, valid UTF-8.
func (v *validator) str() bool {
	s := v.s
	i := v.i + 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			v.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(s) {
				return false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) {
					return false
				}
				for j := i + 2; j < i+6; j++ {
					if !isHex(s[j]) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at the cursor; what follows is the caller's.
func (v *validator) number() bool {
	s, i := v.s, v.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return false
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	v.i = i
	return true
}

func (v *validator) object() bool {
	if v.depth++; v.depth > v.max {
		return false
	}
	v.i++
	v.ws()
	if v.i < len(v.s) && v.s[v.i] == '}' {
		v.i++
		v.depth--
		return true
	}
	for {
		if v.i >= len(v.s) || v.s[v.i] != '"' || !v.str() {
			return false
		}
		v.ws()
		if v.i >= len(v.s) || v.s[v.i] != ':' {
			return false
		}
		v.i++
		v.ws()
		if !v.value() {
			return false
		}
		v.ws()
		if v.i >= len(v.s) {
			return false
		}
		switch v.s[v.i] {
		case ',':
			v.i++
			v.ws()
		case '}':
			v.i++
			v.depth--
			return true
		default:
			return false
		}
	}
}

func (v *validator) array() bool {
	if v.depth++; v.depth > v.max {
		return false
	}
	v.i++
	v.ws()
	if v.i < len(v.s) && v.s[v.i] == ']' {
		v.i++
		v.depth--
		return true
	}
	for {
		if !v.value() {
			return false
		}
		v.ws()
		if v.i >= len(v.s) {
			return false
		}
		switch v.s[v.i] {
		case ',':
			v.i++
			v.ws()
		case ']':
			v.i++
			v.depth--
			return true
		default:
			return false
		}
	}
}
