package wire

import (
	"slices"
	"testing"
)

func TestStreamNamesCoverEveryIndex(t *testing.T) {
	if got := StreamNames("s", 1); !slices.Equal(got, []string{"s"}) {
		t.Errorf("count 1: %v", got)
	}
	got := StreamNames("s", 5)
	want := []string{"s-0", "s-1", "s-2", "s-3", "s-4", "s--1", "s--2", "s--3", "s--4"}
	if !slices.Equal(got, want) {
		t.Fatalf("count 5: %v", got)
	}
	// Every namespace maps to one of them, negative hashes included.
	for _, nsp := range []string{"/", "/custom", "/namespace-1", "/namespace-2", "/zzzzzzzzzz", "/😀"} {
		if s := StreamName("s", 5, nsp); !slices.Contains(got, s) {
			t.Errorf("%s -> %s, not listed", nsp, s)
		}
	}
}

func TestChannelName(t *testing.T) {
	if got := ChannelName("p", "/a", ""); got != "p#/a#" {
		t.Errorf("public: %q", got)
	}
	if got := ChannelName("p", "/a", "0123456789abcdef"); got != "p#/a#0123456789abcdef#" {
		t.Errorf("private: %q", got)
	}
}

func TestOrderedStreamFields(t *testing.T) {
	data := Object{{Key: "b", Value: 1}, {Key: "a", Value: Object{{Key: "z", Value: []any{"x"}}, {Key: "y", Value: Object{}}}}}
	f, err := OrderedStreamFields(Broadcast, "u", "/", data, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"uid", "u", "nsp", "/", "type", "3", "data", `{"b":1,"a":{"z":["x"],"y":{}}}`}; !slices.Equal(f, want) {
		t.Errorf("JSON: %q", f)
	}
	bin := Object{{Key: "packet", Value: []any{"e", []byte{1}}}}
	f, err = OrderedStreamFields(ServerSideEmit, "u", "/", bin, false)
	if err != nil {
		t.Fatal(err)
	}
	if f[7] != "gaZwYWNrZXSSoWXEAQE=" { // {packet:["e",<bin 01>]}
		t.Errorf("msgpack: %q", f[7])
	}
	// The decoder reads it back; plaintext and types that never carry binary stay JSON.
	if m, err := DecodeStreamEntry("1-0", map[string]string{"uid": "u", "nsp": "/", "type": "9", "data": f[7]}); err != nil || len(m.Args) != 2 {
		t.Errorf("decode: %v %v", m, err)
	}
	for _, tc := range []struct {
		t     MessageType
		plain bool
	}{{ServerSideEmit, true}, {SocketsJoin, false}} {
		f, err := OrderedStreamFields(tc.t, "u", "/", bin, tc.plain)
		if err != nil || f[7] != `{"packet":["e","AQ=="]}` {
			t.Errorf("%v plain=%v: %q %v", tc.t, tc.plain, f, err)
		}
	}
}
