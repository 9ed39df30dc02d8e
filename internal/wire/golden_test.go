package wire

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// Golden samples: stream entries and PUB/SUB payloads written by the real Node package
// (@socket.io/redis-streams-adapter 0.3.1, socket.io 4.8.4), captured by interop/node/capture.js. Regenerate with
//
//	INTEROP_CAPTURE=1 go test ./interop -run TestCaptureGolden -v

type streamSample struct {
	Name   string            `json:"name"`
	Type   int               `json:"type"`
	Stream string            `json:"stream"`
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

type pubsubSample struct {
	Name    string `json:"name"`
	Type    int    `json:"type"`
	Channel string `json:"channel"`
	Payload []byte `json:"payload"` // base64 in the file
}

func loadJSONLines[T any](t testing.TB, name string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no samples", name)
	}
	return out
}

func streamSamples(t testing.TB) []streamSample {
	return loadJSONLines[streamSample](t, "node-stream.jsonl")
}
func pubsubSamples(t testing.TB) []pubsubSample {
	return loadJSONLines[pubsubSample](t, "node-pubsub.jsonl")
}

// fieldMap turns an XADD field list into the map a reader gets.
func fieldMap(t testing.TB, list []string) map[string]string {
	t.Helper()
	if len(list)%2 != 0 {
		t.Fatalf("odd field list %q", list)
	}
	m := map[string]string{}
	for i := 0; i < len(list); i += 2 {
		m[list[i]] = list[i+1]
	}
	return m
}

// rawData decodes a stream entry's data field to plain values, the way Node's decode() reads it.
func rawData(s string) (any, error) {
	if strings.HasPrefix(s, "{") {
		return DecodeJSON([]byte(s))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return DecodeMsgpack(b)
}

func TestGoldenStreamEntries(t *testing.T) {
	for _, s := range streamSamples(t) {
		t.Run(fmt.Sprintf("%s/%d", s.Name, s.Type), func(t *testing.T) {
			m, err := DecodeStreamEntry(s.ID, s.Fields)
			if err != nil {
				t.Fatalf("decode: %v\nfields %q", err, s.Fields)
			}
			if int(m.Type) != s.Type || m.UID != s.Fields["uid"] || m.Nsp != s.Fields["nsp"] || m.Offset != s.ID {
				t.Fatalf("decoded envelope %v %q %q %q", m.Type, m.UID, m.Nsp, m.Offset)
			}
			list, err := m.StreamFields(false)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if len(list) != 8 || list[0] != "uid" || list[2] != "nsp" || list[4] != "type" || list[6] != "data" {
				t.Fatalf("field order %q", list)
			}
			fields := fieldMap(t, list)
			if fields["type"] != s.Fields["type"] {
				t.Errorf("type field %q, Node wrote %q", fields["type"], s.Fields["type"])
			}
			// Same encoding choice as Node: JSON, or base64 msgpack when the data holds binary.
			if strings.HasPrefix(fields["data"], "{") != strings.HasPrefix(s.Fields["data"], "{") {
				t.Errorf("Go encodes data as %.20q…, Node as %.20q…", fields["data"], s.Fields["data"])
			}
			back, err := DecodeStreamEntry(s.ID, fields)
			if err != nil {
				t.Fatalf("decode re-encoded: %v\nfields %q", err, fields)
			}
			requireSameMessage(t, m, back)

			// Node reads exactly the same values from Go's data as from its own.
			want, err := rawData(s.Fields["data"])
			if err != nil {
				t.Fatal(err)
			}
			got, err := rawData(fields["data"])
			if err != nil {
				t.Fatal(err)
			}
			if diff := valueDiff("data", got, want, nodeJSONDropsUndefined(s.Fields["data"])); diff != "" {
				t.Errorf("Go's data differs from Node's: %s\n go  %s\nnode %s", diff, fields["data"], s.Fields["data"])
			}
		})
	}
}

func TestGoldenPubSubPayloads(t *testing.T) {
	for _, s := range pubsubSamples(t) {
		t.Run(fmt.Sprintf("%s/%d", s.Name, s.Type), func(t *testing.T) {
			m, err := DecodePubSub(s.Payload)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if int(m.Type) != s.Type || m.UID == "" || m.Nsp != "/" || m.Offset != "" {
				t.Fatalf("decoded envelope %v %q %q %q", m.Type, m.UID, m.Nsp, m.Offset)
			}
			// Requests go to the public channel, responses to the requester's private one.
			private := strings.Count(s.Channel, "#") == 3
			if isResponse := m.Type == FetchSocketsResponse || m.Type == ServerSideEmitResponse ||
				m.Type == BroadcastClientCount || m.Type == BroadcastAck; isResponse != private {
				t.Errorf("%v on channel %q", m.Type, s.Channel)
			}
			payload, err := m.PubSubPayload()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			back, err := DecodePubSub(payload)
			if err != nil {
				t.Fatalf("decode re-encoded: %v", err)
			}
			requireSameMessage(t, m, back)

			want, err := DecodeMsgpack(s.Payload)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMsgpack(payload)
			if err != nil {
				t.Fatal(err)
			}
			if diff := valueDiff("payload", got, want, false); diff != "" {
				t.Errorf("Go's payload differs from Node's: %s", diff)
			}
			if k := topKeys(t, payload); !slices.Equal(k, []string{"type", "data", "uid", "nsp"}) {
				t.Errorf("top-level keys %v, Node writes type, data, uid, nsp", k)
			}

			// The same message on the stream path survives too.
			list, err := m.StreamFields(false)
			if err != nil {
				t.Fatalf("stream encode: %v", err)
			}
			viaStream, err := DecodeStreamEntry("", fieldMap(t, list))
			if err != nil {
				t.Fatalf("stream decode: %v", err)
			}
			requireSameMessage(t, m, viaStream)
		})
	}
}

// The samples are what the Go side decodes them to, not only self-consistent.
func TestGoldenSamplesDecodeToNodeValues(t *testing.T) {
	byName := map[string][]*Message{}
	add := func(name string, m *Message, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		byName[name] = append(byName[name], m)
	}
	for _, s := range streamSamples(t) {
		m, err := DecodeStreamEntry(s.ID, s.Fields)
		add(s.Name, m, err)
	}
	for _, s := range pubsubSamples(t) {
		m, err := DecodePubSub(s.Payload)
		add(s.Name+"/pubsub", m, err)
	}
	get := func(name string, typ MessageType) *Message {
		t.Helper()
		for _, m := range byName[name] {
			if m.Type == typ {
				return m
			}
		}
		t.Fatalf("no %v sample named %s", typ, name)
		return nil
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}

	m := get("broadcast", Broadcast)
	check("broadcast data", m.Packet.Data, []any{"plain", int64(1), "2", map[string]any{"a": []any{true, nil}}, -1.5, "ü€😀\u2028<>&"})
	check("broadcast opts", *m.Opts, Options{Rooms: []string{}, Except: []string{}})
	check("broadcast packet", []any{m.Packet.Type, m.Packet.ID, m.Packet.Nsp, m.RequestID}, []any{2, (*uint64)(nil), "", ""})

	m = get("broadcast-binary", Broadcast)
	check("binary data", m.Packet.Data, []any{"bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{4}}})
	m = get("broadcast-binary-several", Broadcast)
	check("several buffers", m.Packet.Data, []any{"bins", []any{[]byte{5}, []byte{6, 7}}, []byte{8}, []byte{}})
	m = get("broadcast-rooms", Broadcast)
	check("rooms", *m.Opts, Options{Rooms: []string{"room1", "room2"}, Except: []string{"room3"}})
	m = get("broadcast-flags", Broadcast)
	f := false
	check("flags", m.Opts.Flags, Flags{Volatile: true, Compress: &f})
	m = get("broadcast-date", Broadcast)
	check("date (JSON)", m.Packet.Data, []any{"d", "2024-01-02T03:04:05.120Z"})
	m = get("broadcast-date-binary", Broadcast)
	check("date (msgpack)", m.Packet.Data, []any{"db", time.Date(2024, 1, 2, 3, 4, 5, 120e6, time.UTC), []byte{1}})
	m = get("broadcast-numbers", Broadcast)
	check("numbers (JSON)", m.Packet.Data, []any{"n", int64(0), int64(0), int64(255), int64(65536), int64(1 << 32),
		int64(1 << 53), int64(1152921504606847000), int64(-1 << 31), 0.1, 1e300})
	m = get("broadcast-numbers-binary", Broadcast)
	d := m.Packet.Data
	if len(d) != 8 || !math.IsNaN(d[6].(float64)) {
		t.Errorf("numbers (msgpack) = %#v", d)
	} else {
		d[6] = "NaN"
		check("numbers (msgpack)", d, []any{"nb", int64(255), int64(1 << 32), float64(1 << 60), int64(-1 << 31), 0.1, "NaN", []byte{1}})
	}
	m = get("socket-broadcast", Broadcast)
	check("socket.broadcast except", len(m.Opts.Except) == 1 && len(m.Opts.Rooms) == 0, true)
	m = get("socket-emit-ack", Broadcast)
	timeout := int64(1000)
	zero := uint64(0)
	check("socket.emit with ack: id", m.Packet.ID, &zero)
	check("socket.emit with ack: flags", m.Opts.Flags, Flags{Timeout: &timeout})

	m = get("sockets-join", SocketsJoin)
	check("join", []any{m.Opts.Rooms, m.Rooms}, []any{[]string{"room1"}, []string{"room4", "room5"}})
	m = get("sockets-leave", SocketsLeave)
	check("leave", m.Rooms, []string{"room4"})
	check("disconnect close", get("disconnect-sockets", DisconnectSockets).Close, true)
	check("disconnect no close", get("disconnect-sockets-no-close", DisconnectSockets).Close, false)

	m = get("fetch-sockets/pubsub", FetchSockets)
	check("fetch opts", []any{m.Opts.Rooms, m.RequestID != ""}, []any{[]string{"room1"}, true})
	timeout = 1234
	check("fetch timeout flag", get("fetch-sockets-timeout/pubsub", FetchSockets).Opts.Flags, Flags{Timeout: &timeout})
	m = get("fetch-sockets/pubsub", FetchSocketsResponse)
	if len(m.Sockets) != 1 {
		t.Fatalf("fetch response sockets %#v", m.Sockets)
	}
	sd := m.Sockets[0]
	check("socket data", sd.Data, map[string]any{"user": int64(42), "tags": []any{"x"}})
	check("socket rooms", slices.Sorted(slices.Values(sd.Rooms)), slices.Sorted(slices.Values([]string{sd.ID, "room1", "room5"})))
	keys := make([]string, 0, len(sd.Handshake))
	for k := range sd.Handshake {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	check("handshake keys", keys, []string{"address", "auth", "headers", "issued", "query", "secure", "time", "url", "xdomain"})
	check("handshake query", sd.Handshake["query"].(map[string]any)["k"], "v")
	check("handshake auth", sd.Handshake["auth"], map[string]any{"token": "B"})
	if _, ok := sd.Handshake["issued"].(int64); !ok {
		t.Errorf("issued is %T", sd.Handshake["issued"])
	}
	check("socket data (binary)", get("fetch-sockets-binary/pubsub", FetchSocketsResponse).Sockets[0].Data,
		map[string]any{"user": int64(42), "bin": []byte{9}})
	check("socket data (undefined)", get("fetch-sockets-timeout/pubsub", FetchSocketsResponse).Sockets[0].Data, nil)

	check("sse", get("server-side-emit/pubsub", ServerSideEmit).Args, []any{"sse", int64(1), map[string]any{"x": int64(2)}})
	check("sse binary", get("server-side-emit-binary/pubsub", ServerSideEmit).Args, []any{"sse", []byte{1, 2}, map[string]any{"b": []byte{3}}})
	m = get("server-side-emit-ack/pubsub", ServerSideEmit)
	check("sse ack", []any{m.Args, m.RequestID != ""}, []any{[]any{"sseack", int64(7)}, true})
	check("sse response", get("server-side-emit-ack/pubsub", ServerSideEmitResponse).Response, map[string]any{"got": int64(7)})
	check("sse response binary", get("server-side-emit-ack-binary/pubsub", ServerSideEmitResponse).Response, []byte{9})

	m = get("broadcast-ack/pubsub", Broadcast)
	timeout = 1000
	check("broadcast ack", []any{m.Packet.Data, m.Opts.Rooms, m.Opts.Flags, m.RequestID != ""},
		[]any{[]any{"ackme", int64(5)}, []string{"room1"}, Flags{Timeout: &timeout}, true})
	check("client count", get("broadcast-ack/pubsub", BroadcastClientCount).ClientCount, uint64(1))
	check("broadcast ack response", get("broadcast-ack/pubsub", BroadcastAck).Response, "pong")
	check("broadcast ack binary", get("broadcast-ack-binary/pubsub", Broadcast).Packet.Data, []any{"ackmeb", []byte{5}})
	check("broadcast ack response binary", get("broadcast-ack-binary/pubsub", BroadcastAck).Response, []byte{10})
	m = get("remote-socket-emit-ack/pubsub", Broadcast)
	check("remote socket ack flags", m.Opts.Flags, Flags{Timeout: &timeout, ExpectSingleResponse: true})
	check("remote socket ack response", get("remote-socket-emit-ack/pubsub", BroadcastAck).Response, map[string]any{"one": int64(1)})

	// Every type Node 0.3.1 sends, with and without binary where it may carry some.
	seen := map[string]bool{}
	for _, s := range streamSamples(t) {
		seen[fmt.Sprintf("%d/%v", s.Type, !strings.HasPrefix(s.Fields["data"], "{"))] = true
	}
	for _, typ := range []MessageType{Broadcast, FetchSocketsResponse, ServerSideEmit, ServerSideEmitResponse, BroadcastAck} {
		if !seen[fmt.Sprintf("%d/true", typ)] || !seen[fmt.Sprintf("%d/false", typ)] {
			t.Errorf("samples lack %v with or without binary", typ)
		}
	}
	for _, typ := range []MessageType{SocketsJoin, SocketsLeave, DisconnectSockets, FetchSockets, BroadcastClientCount} {
		if !seen[fmt.Sprintf("%d/false", typ)] {
			t.Errorf("samples lack %v", typ)
		}
	}
}

func requireSameMessage(t *testing.T, a, b *Message) {
	t.Helper()
	// Heartbeats and ADAPTER_CLOSE carry no data on the wire, so nothing decoded from it (a request ID) survives.
	if a.Type != b.Type || a.UID != b.UID || a.Nsp != b.Nsp || a.hasData() && a.RequestID != b.RequestID {
		t.Fatalf("envelope changed: %v %q %q %q -> %v %q %q %q", a.Type, a.UID, a.Nsp, a.RequestID, b.Type, b.UID, b.Nsp, b.RequestID)
	}
	da, err := a.data()
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.data()
	if err != nil {
		t.Fatal(err)
	}
	if diff := valueDiff("data", normalize(db), normalize(da), false); diff != "" {
		t.Fatalf("round trip changed the message: %s", diff)
	}
}

// normalize turns the dynamic data of a Message into decoded form (typed slices, ints of any width).
func normalize(v any) any {
	raw, err := AppendValue(nil, v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	out, err := DecodeMsgpack(raw)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return out
}

// nodeJSONDropsUndefined: JSON.stringify drops undefined properties, which msgpack and Go keep as null.
func nodeJSONDropsUndefined(data string) bool { return strings.HasPrefix(data, "{") }

// valueDiff describes the first difference between two decoded values ("" if none). NaN equals NaN. With
// nilIsAbsent, a null map entry on the got side matches an absent one.
func valueDiff(path string, got, want any, nilIsAbsent bool) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T, want an object", path, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s.%s: missing", path, k)
			}
			if d := valueDiff(path+"."+k, gv, wv, nilIsAbsent); d != "" {
				return d
			}
		}
		for k, gv := range g {
			if _, ok := w[k]; !ok && !(nilIsAbsent && gv == nil) {
				return fmt.Sprintf("%s.%s: extra key (%#v)", path, k, gv)
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: %#v, want %#v", path, got, want)
		}
		for i := range w {
			if d := valueDiff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], nilIsAbsent); d != "" {
				return d
			}
		}
		return ""
	case float64:
		if g, ok := got.(float64); ok && math.IsNaN(g) && math.IsNaN(w) {
			return ""
		}
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("%s: %#v (%T), want %#v (%T)", path, got, got, want, want)
	}
	return ""
}

// topKeys returns the keys of a msgpack map, in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	v, err := DecodeMsgpack(b)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	// DecodeMsgpack returns a Go map; read the header and keys again for their order.
	n := len(m)
	var keys []string
	rest := b[1:]
	if b[0]&0xf0 != 0x80 {
		t.Fatalf("not a fixmap: %#x", b[0])
	}
	for range n {
		var k, val any
		var err error
		if k, rest, err = ReadValue(rest); err != nil {
			t.Fatal(err)
		}
		if val, rest, err = ReadValue(rest); err != nil {
			t.Fatal(err)
		}
		_ = val
		keys = append(keys, k.(string))
	}
	return keys
}
