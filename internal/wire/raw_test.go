package wire

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestScanBroadcastMatchesDecoder(t *testing.T) {
	tr, fa := true, false
	timeout := int64(3000)
	cases := []*Message{
		{Type: Broadcast, UID: "u", Nsp: "/", Opts: &Options{}, Packet: &Packet{Type: 2, Nsp: "/", Data: []any{"ev"}}},
		{Type: Broadcast, UID: "u", Nsp: "/chat", Opts: &Options{Rooms: []string{"r1", `q"uo\te`, "é"}, Except: []string{"x"},
			Flags: Flags{Volatile: true, Compress: &fa, Timeout: &timeout, ExpectSingleResponse: true}},
			Packet: &Packet{Type: 2, Data: []any{"ev", map[string]any{"t": int64(1), "s": "a\"b\\c\u2028", "n": []any{1.5, nil, true}}}}},
		{Type: Broadcast, UID: "u", Nsp: "/", Opts: &Options{Flags: Flags{Compress: &tr}}, Packet: &Packet{Type: 2, Data: []any{"é€", "<&>"}}},
	}
	for i, m := range cases {
		fields, err := m.StreamFields(false)
		if err != nil {
			t.Fatal(err)
		}
		data := fields[7]
		rb, ok := ScanBroadcast(m.Nsp, data)
		if !ok {
			t.Fatalf("case %d: not accepted: %s", i, data)
		}
		want, err := DecodeStreamEntry("1-1", map[string]string{"uid": "u", "nsp": m.Nsp, "type": "3", "data": data})
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeJSON([]byte(rb.Data))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want.Packet.Data) {
			t.Errorf("case %d: data %#v, decoder %#v", i, got, want.Packet.Data)
		}
		norm := func(o Options) Options {
			if len(o.Rooms) == 0 {
				o.Rooms = nil
			}
			if len(o.Except) == 0 {
				o.Except = nil
			}
			return o
		}
		if !reflect.DeepEqual(norm(rb.Opts), norm(*want.Opts)) {
			t.Errorf("case %d: opts %+v, decoder %+v", i, rb.Opts, *want.Opts)
		}
	}
}

// Node's own layout (JSON.stringify of {packet, opts}), with whitespace the scanner must also accept.
func TestScanBroadcastNodeLayout(t *testing.T) {
	data := `{ "packet" : {"type":2,"data":["hello",{"a":[1,2,{"b":"}]"}]}],"nsp":"/"} , "opts":{"rooms":["r"],"except":[],"flags":{}}}`
	rb, ok := ScanBroadcast("/", data)
	if !ok {
		t.Fatal("not accepted")
	}
	if rb.Data != `["hello",{"a":[1,2,{"b":"}]"}]}]` || !reflect.DeepEqual(rb.Opts.Rooms, []string{"r"}) {
		t.Fatalf("got %+v", rb)
	}
}

// Everything outside the plain case is refused, so that the full decoder (and its validation) handles it.
func TestScanBroadcastRefuses(t *testing.T) {
	opts := `"opts":{"rooms":[],"except":[],"flags":{}}`
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	cases := map[string]string{
		"not JSON":          "gqZwYWNrZXSC",
		"broken JSON":       `{"packet":{"type":2,"data":["ev"]},` + opts,
		"trailing garbage":  `{"packet":{"type":2,"data":["ev"]},` + opts + `}x`,
		"invalid UTF-8":     `{"packet":{"type":2,"data":["ev","` + "\xff" + `"]},` + opts + `}`,
		"binary event":      `{"packet":{"type":5,"data":["ev"]},` + opts + `}`,
		"connect packet":    `{"packet":{"type":0,"data":["ev"]},` + opts + `}`,
		"type as string":    `{"packet":{"type":"2","data":["ev"]},` + opts + `}`,
		"no type":           `{"packet":{"data":["ev"]},` + opts + `}`,
		"no data":           `{"packet":{"type":2},` + opts + `}`,
		"no packet":         `{` + opts + `}`,
		"data not an array": `{"packet":{"type":2,"data":{"0":"ev"}},` + opts + `}`,
		"empty data":        `{"packet":{"type":2,"data":[]},` + opts + `}`,
		"event not string":  `{"packet":{"type":2,"data":[1,"ev"]},` + opts + `}`,
		"reserved event":    `{"packet":{"type":2,"data":["disconnect"]},` + opts + `}`,
		"other namespace":   `{"packet":{"type":2,"data":["ev"],"nsp":"/admin"},` + opts + `}`,
		"packet id":         `{"packet":{"type":2,"data":["ev"],"id":3},` + opts + `}`,
		"with ack":          `{"packet":{"type":2,"data":["ev"]},` + opts + `,"requestId":"abc"}`,
		"rooms not strings": `{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":[1],"except":[],"flags":{}}}`,
		"odd flag":          `{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":[],"except":[],"flags":{"volatile":1}}}`,
		"too deep":          `{"packet":{"type":2,"data":["ev",` + deep + `]},` + opts + `}`,
		"packet not object": `{"packet":[2,["ev"]],` + opts + `}`,
	}
	for name, data := range cases {
		if rb, ok := ScanBroadcast("/", data); ok {
			t.Errorf("%s: accepted %+v", name, rb)
		}
	}
}

func FuzzScanBroadcast(f *testing.F) {
	f.Add(`{"packet":{"type":2,"data":["ev",{"a":"\"]"}],"nsp":"/"},"opts":{"rooms":["a\"b"],"except":[],"flags":{"volatile":true}}}`)
	f.Fuzz(func(t *testing.T, data string) {
		rb, ok := ScanBroadcast("/", data)
		if !ok {
			return
		}
		v, err := DecodeJSON([]byte(rb.Data))
		if err != nil {
			t.Fatalf("accepted data that does not decode: %v", err)
		}
		args, _ := v.([]any)
		if len(args) == 0 {
			t.Fatal("accepted empty data")
		}
		if name, ok := args[0].(string); !ok || reservedEvents[name] {
			t.Fatalf("accepted event name %#v", args[0])
		}
	})
}

// appendJSON must write exactly what encoding/json (HTML escaping off) writes, errors included.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	type point struct{ X, Y int }
	values := []any{nil, true, false, "", "a\"b\\c\n\t\x01\x7f<>&\u2028\u2029é€\xff", 0, -12, int64(1 << 62), int32(-5),
		uint64(1 << 63), uint32(7), 0.0, 1.5, -0.000001, 1e-7, 1e20, 1e21, 123456789.125, 1e300, float32(3.14), float32(1e-7),
		[]any{}, []any(nil), []string{"x", "y"}, []string(nil), map[string]any{}, map[string]any(nil),
		map[string]any{"b": 1, "a": []any{map[string]any{"z": nil, "y": "é"}}, "": 2.5},
		point{1, 2}, []int{1, 2}, map[string]int{"k": 1}, []byte{1, 2}, int8(3), uint(9), json.Number("12.50"),
		math.NaN(), math.Inf(1), []any{1, math.Inf(-1)},
	}
	for _, v := range values {
		want, wantErr := EncodeJSON(v)
		got, err := appendJSON(nil, v, 0, nil)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%#v: error %v, encoding/json %v", v, err, wantErr)
			continue
		}
		if err == nil && string(got) != string(want) {
			t.Errorf("%#v: got %s, encoding/json %s", v, got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add(`{"a":[1,2.5,"x\u2028",null,true,{"b":1e300}]}`)
	f.Fuzz(func(t *testing.T, text string) {
		var v any
		if json.Unmarshal([]byte(text), &v) != nil {
			return
		}
		want, wantErr := EncodeJSON(v)
		got, err := appendJSON(nil, v, 0, nil)
		if wantErr != nil || err != nil {
			if errors.Is(err, ErrTooDeep) {
				return
			}
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("error %v, encoding/json %v", err, wantErr)
			}
			return
		}
		if string(got) != string(want) {
			t.Fatalf("got %s, encoding/json %s", got, want)
		}
	})
}
