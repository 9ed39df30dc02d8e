package wire

import (
	"errors"
	"testing"
)

func TestValidateBroadcastPacket(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Packet
		ok   bool
	}{
		{"event", &Packet{Type: 2, Data: []any{"chat", "hi"}}, true},
		{"binary event", &Packet{Type: 5, Data: []any{"file", []byte{1}}}, true},
		{"same namespace", &Packet{Type: 2, Nsp: "/chat", Data: []any{"x"}}, true},
		{"nil", nil, false},
		{"unknown type", &Packet{Type: 77, Data: []any{"x"}}, false},
		{"connect", &Packet{Type: 0, Data: []any{"x"}}, false},
		{"disconnect", &Packet{Type: 1}, false},
		{"ack", &Packet{Type: 3, Data: []any{"x"}}, false},
		{"connect error", &Packet{Type: 4, Data: []any{"x"}}, false},
		{"other namespace", &Packet{Type: 2, Nsp: "/admin", Data: []any{"x"}}, false},
		{"no data", &Packet{Type: 2}, false},
		{"number name", &Packet{Type: 2, Data: []any{1.0}}, false},
		{"object name", &Packet{Type: 2, Data: []any{map[string]any{}}}, false},
		{"reserved disconnect", &Packet{Type: 2, Data: []any{"disconnect"}}, false},
		{"reserved connect_error", &Packet{Type: 2, Data: []any{"connect_error"}}, false},
	} {
		err := ValidateBroadcastPacket(tc.p, "/chat")
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestSeq(t *testing.T) {
	v := FormatSeq("ab12", 42)
	if w, n, ok := ParseSeq(v); !ok || w != "ab12" || n != 42 {
		t.Errorf("ParseSeq(%q) = %q, %d, %v", v, w, n, ok)
	}
	for _, bad := range []string{"", "x", ":1", "w:", "w:0", "w:-1", "w:1x", "w:99999999999999999999999"} {
		if _, _, ok := ParseSeq(bad); ok {
			t.Errorf("ParseSeq(%q) accepted", bad)
		}
	}
}
