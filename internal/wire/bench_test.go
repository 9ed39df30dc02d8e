package wire

import (
	"strings"
	"testing"
)

func BenchmarkStreamFieldsJSON(b *testing.B) {
	m := &Message{Type: Broadcast, UID: "7fff6d130d126350", Nsp: "/", Opts: &Options{Rooms: []string{"room1"}, Except: []string{"sid"}},
		Packet: &Packet{Type: 2, Data: []any{"chat", map[string]any{"user": "someone", "text": strings.Repeat("x", 100), "n": 7}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.StreamFields(false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStreamEntryJSON(b *testing.B) {
	m := &Message{Type: Broadcast, UID: "7fff6d130d126350", Nsp: "/", Opts: &Options{Rooms: []string{"room1"}},
		Packet: &Packet{Type: 2, Data: []any{"chat", map[string]any{"user": "someone", "text": strings.Repeat("x", 100), "n": 7}}}}
	f, _ := m.StreamFields(false)
	fields := map[string]string{f[0]: f[1], f[2]: f[3], f[4]: f[5], f[6]: f[7]}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStreamEntry("1-1", fields); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanBroadcast(b *testing.B) {
	m := &Message{Type: Broadcast, UID: "7fff6d130d126350", Nsp: "/", Opts: &Options{Rooms: []string{"room1"}},
		Packet: &Packet{Type: 2, Data: []any{"chat", map[string]any{"user": "someone", "text": strings.Repeat("x", 100), "n": 7}}}}
	f, _ := m.StreamFields(false)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ScanBroadcast("/", f[7]); !ok {
			b.Fatal("not accepted")
		}
	}
}
