package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHashCodeMatchesNode(t *testing.T) {
	// Vectors computed with the Node package's own hashCode (wire-protocol.md 1.3).
	cases := []struct {
		nsp     string
		hash    int32
		stream5 string
		stream4 string
	}{
		{"/", 47, "socket.io-2", "socket.io-3"},
		{"/custom", 1708878944, "socket.io-4", "socket.io-0"},
		{"/foo", 1501751, "socket.io-1", "socket.io-3"},
		{"/chat", 46457863, "socket.io-3", "socket.io-3"},
		{"/admin", 1438238848, "socket.io-3", "socket.io-0"},
		{"/ä", 1685, "socket.io-0", "socket.io-1"},
		{"/😀", 1818066, "socket.io-1", "socket.io-2"},
		{"/namespace-1", -1732195152, "socket.io--2", "socket.io-0"},
		{"/namespace-2", -1732195151, "socket.io--1", "socket.io--3"},
		{"/zzzzzzzzzz", -138347089, "socket.io--4", "socket.io--1"},
	}
	for _, c := range cases {
		if got := HashCode(c.nsp); got != c.hash {
			t.Errorf("HashCode(%q) = %d, want %d", c.nsp, got, c.hash)
		}
		if got := StreamName("socket.io", 5, c.nsp); got != c.stream5 {
			t.Errorf("StreamName(5, %q) = %s, want %s", c.nsp, got, c.stream5)
		}
		if got := StreamName("socket.io", 4, c.nsp); got != c.stream4 {
			t.Errorf("StreamName(4, %q) = %s, want %s", c.nsp, got, c.stream4)
		}
	}
	if got := StreamName("socket.io", 1, "/anything"); got != "socket.io" {
		t.Errorf("StreamName(1) = %s", got)
	}
}

// Stream entries captured from Node 0.3.1 (wire-protocol.md 1.4).
func TestDecodeNodeStreamEntries(t *testing.T) {
	bin := "gqZwYWNrZXSCpHR5cGUCpGRhdGGTo2JpbsQDAQIDgaZuZXN0ZWTEAQSkb3B0c4Olcm9vbXOQpmV4Y2VwdJClZmxhZ3OA"
	m, err := DecodeStreamEntry("1-0", map[string]string{"uid": "u1", "nsp": "/", "type": "3", "data": bin})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{4}}}
	if !reflect.DeepEqual(m.Packet.Data, want) || m.Packet.Type != 2 {
		t.Fatalf("binary packet = %#v", m.Packet)
	}
	if m.Opts.Rooms == nil || len(m.Opts.Rooms) != 0 || m.Opts.Flags.Volatile {
		t.Fatalf("opts = %#v", m.Opts)
	}

	m, err = DecodeStreamEntry("2-0", map[string]string{"uid": "u1", "nsp": "/", "type": "3",
		"data": `{"packet":{"type":2,"data":["v"]},"opts":{"rooms":["room1","room2"],"except":["room3"],"flags":{"volatile":true,"compress":false}}}`})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Opts.Flags.Volatile || m.Opts.Flags.Compress == nil || *m.Opts.Flags.Compress ||
		!reflect.DeepEqual(m.Opts.Rooms, []string{"room1", "room2"}) || !reflect.DeepEqual(m.Opts.Except, []string{"room3"}) {
		t.Fatalf("opts = %#v", m.Opts)
	}

	m, err = DecodeStreamEntry("3-0", map[string]string{"uid": "u1", "nsp": "/", "type": "4",
		"data": `{"opts":{"rooms":["room1"],"except":[],"flags":{}},"rooms":["room4","room5"]}`})
	if err != nil || !reflect.DeepEqual(m.Rooms, []string{"room4", "room5"}) {
		t.Fatalf("join = %#v, %v", m, err)
	}
	m, err = DecodeStreamEntry("4-0", map[string]string{"uid": "u1", "nsp": "/", "type": "6",
		"data": `{"opts":{"rooms":["room5"],"except":[],"flags":{}},"close":true}`})
	if err != nil || !m.Close || m.Opts.Rooms[0] != "room5" {
		t.Fatalf("disconnect = %#v, %v", m, err)
	}
}

// A SERVER_SIDE_EMIT PUB/SUB frame captured from Node (wire-protocol.md 1.6).
func TestDecodeNodePubSubFrame(t *testing.T) {
	frame := "84a474797065" + "09" + "a464617461" + "81a67061636b6574" + "93a3737365" + "01" + "81a178" + "02" +
		"a3756964" + "b0" + hex.EncodeToString([]byte("7fff6d130d126350")) + "a36e7370" + "a12f"
	raw, err := hex.DecodeString(frame)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodePubSub(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != ServerSideEmit || m.UID != "7fff6d130d126350" || m.Nsp != "/" ||
		!reflect.DeepEqual(m.Args, []any{"sse", int64(1), map[string]any{"x": int64(2)}}) || m.RequestID != "" {
		t.Fatalf("decoded %#v", m)
	}
}

func TestStreamFieldsEncoding(t *testing.T) {
	m := &Message{Type: Broadcast, UID: "abc", Nsp: "/", Packet: &Packet{Type: 2, Data: []any{"plain", 1, "2"}},
		Opts: &Options{}}
	f, err := m.StreamFields(false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f[:6], " ") != "uid abc nsp / type 3" || f[6] != "data" {
		t.Fatalf("fields %q", f)
	}
	if !strings.HasPrefix(f[7], "{") || !strings.Contains(f[7], `"rooms":[]`) || !strings.Contains(f[7], `"except":[]`) ||
		strings.Contains(f[7], "null") || strings.Contains(f[7], "requestId") || strings.Contains(f[7], `"id"`) {
		t.Fatalf("json data %s", f[7])
	}

	// Binary: base64 msgpack that decodes back to the same bytes.
	m.Packet.Data = []any{"bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{4}}}
	f, err = m.StreamFields(false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(f[7], "{") {
		t.Fatalf("binary data encoded as JSON: %s", f[7])
	}
	if _, err := base64.StdEncoding.DecodeString(f[7]); err != nil {
		t.Fatal(err)
	}
	back, err := DecodeStreamEntry("1-1", map[string]string{"uid": f[1], "nsp": f[3], "type": f[5], "data": f[7]})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Packet.Data, []any{"bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{4}}}) {
		t.Fatalf("round trip %#v", back.Packet.Data)
	}

	// Types that cannot carry binary are always JSON.
	j := &Message{Type: SocketsJoin, UID: "abc", Nsp: "/", Rooms: []string{"r"}}
	f, _ = j.StreamFields(false)
	if f[7] != `{"opts":{"except":[],"flags":{},"rooms":[]},"rooms":["r"]}` {
		t.Fatalf("join data %s", f[7])
	}
}

func TestPubSubRoundTrip(t *testing.T) {
	timeout := int64(1500)
	tm := time.Date(2026, 11, 25, 12, 0, 0, 123_000_000, time.UTC)
	msgs := []*Message{
		{Type: Broadcast, UID: "u", Nsp: "/", RequestID: "r1", Packet: &Packet{Type: 2, Data: []any{"ack", []byte{9}, tm}},
			Opts: &Options{Rooms: []string{"a"}, Flags: Flags{Timeout: &timeout, ExpectSingleResponse: true}}},
		{Type: FetchSockets, UID: "u", Nsp: "/", RequestID: "r2", Opts: &Options{Except: []string{"x"}}},
		{Type: FetchSocketsResponse, UID: "u", Nsp: "/", RequestID: "r2", Sockets: []SocketDetails{
			{ID: "s1", Handshake: map[string]any{"url": "/x", "issued": int64(5)}, Rooms: []string{"s1", "r"}, Data: map[string]any{"user": int64(42)}}}},
		{Type: ServerSideEmit, UID: "u", Nsp: "/", RequestID: "r3", Args: []any{"ev", int64(1), 2.5}},
		{Type: ServerSideEmitResponse, UID: "u", Nsp: "/", RequestID: "r3", Response: []byte{1}},
		{Type: BroadcastClientCount, UID: "u", Nsp: "/", RequestID: "r1", ClientCount: 3},
		{Type: BroadcastAck, UID: "u", Nsp: "/", RequestID: "r1", Response: "pong"},
		{Type: Heartbeat, UID: "u", Nsp: "/"},
	}
	for _, m := range msgs {
		raw, err := m.PubSubPayload()
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		got, err := DecodePubSub(raw)
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		if m.Opts == nil && got.Opts != nil && m.Type != FetchSockets {
			got.Opts = nil
		}
		if m.Opts != nil && m.Opts.Rooms == nil {
			m.Opts.Rooms = []string{}
		}
		if m.Opts != nil && m.Opts.Except == nil {
			m.Opts.Except = []string{}
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%v: round trip\n got %#v\nwant %#v", m.Type, got, m)
		}
	}
}

func TestMalformedInputIsRejected(t *testing.T) {
	bad := []map[string]string{
		{"uid": "u", "nsp": "/"},
		{"uid": "u", "nsp": "/", "type": "abc", "data": "{}"},
		{"uid": "u", "nsp": "/", "type": "3"},
		{"uid": "u", "nsp": "/", "type": "3", "data": "{not json"},
		{"uid": "u", "nsp": "/", "type": "3", "data": "!!!notbase64"},
		{"uid": "u", "nsp": "/", "type": "3", "data": base64.StdEncoding.EncodeToString([]byte{0xc1})},
		{"uid": "u", "nsp": "/", "type": "3", "data": `{"packet":"x","opts":{}}`},
		{"uid": "u", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":"x"},"opts":{}}`},
		{"uid": "u", "nsp": "/", "type": "4", "data": `{"opts":{"rooms":"abc"},"rooms":[]}`},
		{"uid": "u", "nsp": "/", "type": "8", "data": `{"sockets":[]}`},
		{"uid": "u", "nsp": "/", "type": "11", "data": `{"requestId":"r","clientCount":-1}`},
		{"uid": "u", "nsp": "/", "type": "99", "data": `{}`},
		{"uid": "u", "nsp": "/", "type": "3", "data": "{" + strings.Repeat(`"a":[`, 200)},
	}
	for i, f := range bad {
		if _, err := DecodeStreamEntry("1-0", f); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: err = %v, want ErrInvalid", i, err)
		}
	}
	deep := bytes.Repeat([]byte{0x91}, 10000)
	if _, err := DecodePubSub(append(deep, 0xc0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("deep nesting: %v", err)
	}
	// An array header claiming 4G elements must not allocate them.
	if _, err := DecodePubSub([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge header: %v", err)
	}
}

func TestValueEncodingFollowsJS(t *testing.T) {
	type user struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	raw, err := AppendValue(nil, []any{user{"a", 3}, 2.0, 2.5, uint8(7), map[string]int{"k": 1}, []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeMsgpack(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{map[string]any{"name": "a", "age": int64(3)}, int64(2), 2.5, int64(7), map[string]any{"k": int64(1)},
		[]any{int64(1), int64(2)}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v", v)
	}
	if !HasBinary([]any{1, map[string]any{"x": [][]byte{{1}}}}) || HasBinary([]any{"x", 1}) ||
		!HasBinary(struct{ B []byte }{[]byte{1}}) {
		t.Fatal("HasBinary")
	}
}

// The hand-written BROADCAST envelope says what the generic encoder says.
func TestBroadcastJSONMatchesGenericEncoding(t *testing.T) {
	id := uint64(7)
	timeout := int64(1500)
	compress := false
	cases := []*Message{
		{Type: Broadcast, Packet: &Packet{Type: 2, Data: []any{"ev", 1, "two", map[string]any{"a": []any{true, nil}}}}, Opts: &Options{}},
		{Type: Broadcast, Packet: &Packet{Type: 2, Data: []any{"e\"v\\\n\u2028<&>", "\x01\xff"}, Nsp: "/x", ID: &id},
			Opts: &Options{Rooms: []string{"r\"1", "é"}, Except: []string{"s"}, Flags: Flags{Volatile: true, Compress: &compress,
				Timeout: &timeout, ExpectSingleResponse: true}}, RequestID: "abc"},
		{Type: Broadcast, Packet: &Packet{Type: 2}, Opts: &Options{}},
	}
	for i, m := range cases {
		fast, err := m.broadcastJSON()
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.data()
		if err != nil {
			t.Fatal(err)
		}
		slow, err := EncodeJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		a, errA := DecodeJSON([]byte(fast))
		b, errB := DecodeJSON(slow)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("case %d:\nfast %s\nslow %s", i, fast, slow)
		}
		if !strings.HasPrefix(fast, "{") {
			t.Errorf("case %d does not start with {", i)
		}
	}
}
