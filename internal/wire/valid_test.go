package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// validReference is what validJSON replaces.
func validReference(s string, maxDepth int) bool {
	return utf8.ValidString(s) && json.Valid([]byte(s)) && depthWithin(s, maxDepth)
}

var validSeeds = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e5`, `1E+5`, `1e-`, `.5`, `+1`, `-01`, `1.5e3x`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `NaN`, `[1,]`, `[,1]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":}`,
	`[1 2]`, `[[[]]]`, `[[[[]]]]`, `{"a":[{"b":[1]}]}`, " \t\n\r[1]\n ", `[1]x`, `"\u00e9\ud800"`, `"\u00g0"`,
	`"\x"`, `"a\"b"`, `"a\\"`, `"a\\\"`, "\"\x01\"", "\"\x7f\"", "\"é\"", "\"\xff\"", "\"\xed\xa0\x80\"",
	"\"\xef\xbf\xbd\"", "[\"a\"]\xff", `{"packet":{"type":2,"data":["ev",{"t":1,"s":2,"pad":"xx"}],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`,
	`[1.0e+10,-2.5E-3,0.0]`, `"\/\b\f\n\r\t"`, `{"":""}`, `[{}]`, `}`, `]`, `[}`, `{]`, `"`, `"abc`, `[`, `{`, `{"a"`,
}

func TestValidJSONMatchesReference(t *testing.T) {
	for _, s := range validSeeds {
		for _, d := range []int{0, 1, 2, 3, MaxDepth} {
			if got, want := validJSON(s, d), validReference(s, d); got != want {
				t.Errorf("validJSON(%q, %d) = %v, want %v", s, d, got, want)
			}
		}
	}
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	if validJSON(deep, MaxDepth) || !validJSON(deep, MaxDepth+1) {
		t.Error("depth limit")
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range validSeeds {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, d int) {
		d = d & 7
		if got, want := validJSON(s, d), validReference(s, d); got != want {
			t.Errorf("validJSON(%q, %d) = %v, want %v", s, d, got, want)
		}
	})
}

// depthWithin reports whether the JSON text s nests at most max arrays/objects deep.
func depthWithin(s string, max int) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			if depth++; depth > max {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}
