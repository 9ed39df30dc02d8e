package wire

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// Native fuzz tests, seeded with the Node samples (testdata/node-*.jsonl). Run one with e.g.
//
//	go test -run X -fuzz FuzzDecodePubSub -fuzztime 30s ./internal/wire/
//
// Properties: decoding never panics; what decodes re-encodes (both transports) without panicking; and what Go
// encodes, Go decodes back to the same message.

func FuzzDecodeStreamEntry(f *testing.F) {
	for _, s := range streamSamples(f) {
		f.Add(s.ID, s.Fields["uid"], s.Fields["nsp"], s.Fields["type"], s.Fields["data"])
	}
	f.Add("1-0", "u", "/", "3", "")
	f.Add("1-0", "u", "/", "2", "")
	f.Add("1-0", "u", "/", "03", `{"packet":{"type":2,"data":["a"]},"opts":{}}`)
	f.Add("1-0", "u", "/", "3", `{"packet":{"type":2,"data":["a",1e999,-0.0,123456789012345678901234567890]},"opts":null}`)
	f.Fuzz(func(t *testing.T, id, uid, nsp, typ, data string) {
		fields := map[string]string{"uid": uid, "nsp": nsp, "type": typ}
		if data != "" {
			fields["data"] = data
		}
		m, err := DecodeStreamEntry(id, fields)
		if err != nil {
			return
		}
		checkReencode(t, m)
	})
}

func FuzzDecodePubSub(f *testing.F) {
	for _, s := range pubsubSamples(f) {
		f.Add(s.Payload)
	}
	f.Add([]byte{0x83, 0xa4, 't', 'y', 'p', 'e', 0x02, 0xa3, 'u', 'i', 'd', 0xa1, 'u', 0xa3, 'n', 's', 'p', 0xa1, '/'})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodePubSub(payload)
		if err != nil {
			return
		}
		checkReencode(t, m)
	})
}

// checkReencode: a decoded message, encoded again by Go for either transport, decodes to the same message.
func checkReencode(t *testing.T, m *Message) {
	t.Helper()
	if payload, err := m.PubSubPayload(); err == nil {
		back, err := DecodePubSub(payload)
		if err != nil {
			t.Fatalf("Go cannot decode its own PUB/SUB payload of %v: %v\npayload %x", m.Type, err, payload)
		}
		requireSameMessage(t, m, back)
	}
	for _, plain := range []bool{false, true} {
		list, err := m.StreamFields(plain)
		if err != nil {
			continue
		}
		fields := map[string]string{}
		for i := 0; i+1 < len(list); i += 2 {
			fields[list[i]] = list[i+1]
		}
		back, err := DecodeStreamEntry(m.Offset, fields)
		if err != nil {
			t.Fatalf("Go cannot decode its own stream entry of %v (onlyPlaintext %v): %v\nfields %q", m.Type, plain, err, fields)
		}
		if plain {
			continue // binary becomes base64 text, by design
		}
		want := m
		if strings.HasPrefix(fields["data"], "{") {
			// What JSON cannot carry as is: encoding/json writes each invalid UTF-8 byte of a string as U+FFFD
			// (Node never produces such strings: its msgpack decoder already replaced them), an integer above
			// MaxInt64 reads back as a float64 and an integral float64 as an int64 (the same JS number).
			want = asJSONWould(t, m)
		}
		requireSameMessage(t, want, back)
	}
}

// asJSONWould returns m as it reads back from JSON: every string (and map key) of its data made valid UTF-8 the
// way encoding/json does it (each invalid byte becomes U+FFFD), integers above MaxInt64 float64, integral floats
// that fit int64 (written without exponent) int64.
func asJSONWould(t *testing.T, m *Message) *Message {
	t.Helper()
	d, err := m.data()
	if err != nil {
		t.Fatal(err)
	}
	fixed := jsonish(normalize(d))
	out := &Message{Type: m.Type, UID: m.UID, Nsp: m.Nsp, Offset: m.Offset}
	if err := out.setData(fixed); err != nil {
		t.Fatalf("%v", err)
	}
	out.RequestID = jsonish(m.RequestID).(string)
	return out
}

func jsonish(v any) any {
	switch x := v.(type) {
	case uint64:
		return float64(x)
	case float64:
		if x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63 {
			return int64(x)
		}
		return x
	case string:
		if utf8.ValidString(x) {
			return x
		}
		var sb strings.Builder
		for i := 0; i < len(x); {
			r, n := utf8.DecodeRuneInString(x[i:])
			if r == utf8.RuneError && n == 1 {
				sb.WriteString("\uFFFD")
			} else {
				sb.WriteString(x[i : i+n])
			}
			i += n
		}
		return sb.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonish(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[jsonish(k).(string)] = jsonish(e)
		}
		return out
	}
	return v
}
