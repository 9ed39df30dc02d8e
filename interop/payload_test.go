package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// unicodeChunk mixes 1-, 2-, 3- and 4-byte UTF-8 (astral plane: surrogate pairs in JS), JSON escapes, U+2028/9
// (valid in JSON, not in JS source) and NUL.
const unicodeChunk = "aZ09 ü é ß Ω Ж ع ह € ✓ 日本語 한국어 😀 🎉 𝄞 \u2028\u2029 \"quoted\" back\\slash \n\t\r \x00 \x7f </script> "

// bigString returns a string of about n bytes made of unicodeChunk.
func bigString(n int) string {
	s := strings.Repeat(unicodeChunk, n/len(unicodeChunk)+1)
	for len(s) > n || !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func bigBinary(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8) // every byte value, not periodic on 256
	}
	return b
}

func digest(v any) string {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return "<" + show(v)[:min(len(show(v)), 60)] + ">"
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func blen(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return len(x)
	}
	return -1
}

// expectLarge checks a large event by length and hash, never printing the values.
func expectLarge(t *testing.T, c *client, ev string, want []any) {
	t.Helper()
	e := c.next(t, ev)
	if len(e.args) != len(want) {
		t.Errorf("client %s: %d args, want %d", c, len(e.args), len(want))
		return
	}
	for i, w := range want {
		g := e.args[i]
		switch w.(type) {
		case string, []byte:
			if digest(g) != digest(w) {
				t.Errorf("client %s: arg %d is %T of %d bytes (sha256 %s), want %T of %d bytes (sha256 %s)",
					c, i, g, blen(g), digest(g), w, blen(w), digest(w))
			}
		default:
			if !equal(g, w) {
				t.Errorf("client %s: arg %d = %s, want %s", c, i, show(g), show(canon(w)))
			}
		}
	}
}

type roomOf struct {
	room    string
	members []*client
}

// largeRoom puts one client of each language on a server of each language (memberIdx) in a fresh room: large
// payloads go to them only, which keeps the cases fast under -race.
func (tp *topo) largeRoom(t *testing.T) roomOf {
	r := roomOf{room: uniq("large"), members: tp.pick(memberIdx...)}
	tp.joinLocally(t, r.members, r.room)
	return r
}

// testLargeString: a ~1 MB unicode string (plain-text broadcast, JSON in the stream) reaches every client intact.
func testLargeString(t *testing.T, tp *topo, o server) {
	ev := uniq("large-str")
	s := bigString(1 << 20)
	args := []any{s, map[string]any{"len": len(s), "tail": unicodeChunk}}
	cs := tp.largeRoom(t)
	start := time.Now()
	o.emit(t, target{to: []string{cs.room}}, ev, args...)
	for _, c := range cs.members {
		expectLarge(t, c, ev, args)
	}
	t.Logf("%d-byte string to %d clients in %v", len(s), len(cs.members), time.Since(start).Round(time.Millisecond))
}

// testLargeBinary: a ~1 MB binary (msgpack in the stream) with a large unicode string beside it.
func testLargeBinary(t *testing.T, tp *topo, o server) {
	ev := uniq("large-bin")
	b := bigBinary(1 << 20)
	s := bigString(256 << 10)
	args := []any{b, s, map[string]any{"nested": bigBinary(1000), "u": unicodeChunk}}
	cs := tp.largeRoom(t)
	start := time.Now()
	o.emit(t, target{to: []string{cs.room}}, ev, args...)
	for _, c := range cs.members {
		expectLarge(t, c, ev, args)
	}
	t.Logf("%d-byte binary to %d clients in %v", len(b), len(cs.members), time.Since(start).Round(time.Millisecond))
}

// numbers mixes integers, floats (integral ones too) and nulls, nested in maps and arrays.
func numbers() map[string]any {
	return map[string]any{
		"int": 3, "neg": -42, "zero": 0, "int64": int64(1<<53 - 1), "negBig": int64(-(1 << 40)), "uint8": uint8(255),
		"uint32": uint32(math.MaxUint32), "float": 2.5, "whole": 3.0, "tiny": 0.1, "third": 1.0 / 3, "huge": 1e300,
		"small": -1e-300, "f32": float32(0.5), "nil": nil,
		"list": []any{1, 1.5, nil, -0.25, []any{nil, 0, map[string]any{"n": nil, "i": 7, "f": 7.25}}},
		"deep": map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": nil, "d": 1e-7, "e": 123456789}}}},
	}
}

// testNumberFidelity: integers stay integers (exact), floats keep every bit (no float32 round trip), nulls stay
// nulls (present keys, array slots), on the JSON path and the msgpack path, from both languages.
func testNumberFidelity(t *testing.T, tp *topo, o server) {
	for _, withBinary := range []bool{false, true} {
		ev := uniq("numbers")
		args := []any{numbers(), []any{nil, 1, 2.5, nil}, nil, 0, -1.5}
		if withBinary {
			args = append(args, []byte{1})
		}
		o.emit(t, target{}, ev, args...)
		for _, c := range tp.root() {
			c.expect(t, ev, args...)
		}
	}
	// The same values as a fetched socket's data and as serverSideEmit arguments (what Go applications see).
	room := uniq("numbers-room")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, room)
	for _, c := range members {
		c.server.socketSetData(t, "/", c.id, numbers())
	}
	got, err := o.fetch(t, target{to: []string{room}})
	if err != "" || len(got) != len(members) {
		t.Fatalf("fetchSockets: %d sockets, %q", len(got), err)
	}
	for _, d := range got {
		if !equal(d.data, numbers()) {
			t.Errorf("%s fetched data of %s: %s", o.name(), d.id, show(d.data))
		}
	}
	for _, withBinary := range []bool{false, true} {
		ev := uniq("numbers-sse")
		args := []any{numbers(), nil, 1.5}
		if withBinary {
			args = append(args, []byte{2})
		}
		for _, s := range tp.servers {
			s.sseReply(t, "/", ev, nil, false)
		}
		// What a Go application sees: integral numbers as an integer type, others float64, nulls nil.
		raw := make(chan []any, 1)
		g1 := tp.server("G1").(*goServer)
		if o.lang() == "node" {
			_ = g1.io.Of("/", nil).On(ev, func(a ...any) { raw <- a })
		}
		o.sse(t, "/", ev, args...)
		for _, s := range tp.others(o) {
			if got, ok := s.nextSSE(t, "/", ev); !ok || !equal(got, args) {
				t.Errorf("%s received %s", s.name(), show(got))
			}
		}
		if o.lang() == "node" {
			select {
			case a := <-raw:
				checkGoTypes(t, fmt.Sprintf("G1 serverSideEmit args (binary %v)", withBinary), a[:len(args)], args)
			case <-time.After(eventWait):
				t.Error("G1: no raw serverSideEmit")
			}
		}
	}
	// Sockets of Node servers fetched by a Go server, raw.
	list, ferr := tp.server("G0").(*goServer).fetchRemote(t, target{to: []string{room}})
	if ferr != nil {
		t.Fatal(ferr)
	}
	for _, rs := range list {
		for _, c := range members {
			if string(rs.Id()) == c.id && c.server.lang() == "node" {
				checkGoTypes(t, "G0 fetched data of "+c.label, rs.Data(), numbers())
			}
		}
	}
}

// checkGoTypes checks the Go types a Go server hands its application for values that came from Node: integral
// numbers as int64 or uint64 (JS has no integer type; Node sends them as msgpack integers or JSON without a
// fraction), other numbers as float64, null as nil (map keys and array slots kept).
func checkGoTypes(t *testing.T, what string, got, want any) {
	t.Helper()
	var walk func(path string, g, w any)
	walk = func(path string, g, w any) {
		switch wv := canon(w).(type) {
		case nil:
			if g != nil {
				t.Errorf("%s: %s is %T %v, want nil", what, path, g, g)
			}
		case float64:
			switch g.(type) {
			case int64, uint64:
				if wv != math.Trunc(wv) || math.Abs(wv) > 1<<63 {
					t.Errorf("%s: %s is %T %v, want float64 %v", what, path, g, g, wv)
				}
			case float64:
				if wv == math.Trunc(wv) && math.Abs(wv) < 1<<53 {
					t.Errorf("%s: %s is float64 %v, want an integer type", what, path, g)
				}
			default:
				t.Errorf("%s: %s is %T %v, want a number", what, path, g, g)
			}
			if !equal(g, wv) {
				t.Errorf("%s: %s = %v, want %v", what, path, g, wv)
			}
		case map[string]any:
			gm, ok := g.(map[string]any)
			if !ok || len(gm) != len(wv) {
				t.Errorf("%s: %s is %T %s, want %s", what, path, g, show(canon(g)), show(wv))
				return
			}
			for k, e := range wv {
				if _, ok := gm[k]; !ok {
					t.Errorf("%s: %s.%s missing", what, path, k)
					continue
				}
				walk(path+"."+k, gm[k], e)
			}
		case []any:
			gl, ok := g.([]any)
			if !ok || len(gl) != len(wv) {
				t.Errorf("%s: %s is %T %s, want %s", what, path, g, show(canon(g)), show(wv))
				return
			}
			for i, e := range wv {
				walk(fmt.Sprintf("%s[%d]", path, i), gl[i], e)
			}
		default:
			if !equal(g, wv) {
				t.Errorf("%s: %s = %s, want %s", what, path, show(canon(g)), show(wv))
			}
		}
	}
	walk("$", got, want)
}

// testWireForm looks at what G0 and N0 write to Redis for the same operations: the stream entry of a broadcast,
// and the PUB/SUB payloads of fetchSockets and of a broadcast with acks, both with a 1500 ms timeout. flags.timeout
// is in milliseconds; absent optional keys are omitted, never null; rooms and except are arrays; a Go message has
// the shape Node's has.
func testWireForm(t *testing.T, tp *topo, o server) {
	g, n := tp.server("G0").(*goServer), tp.server("N0").(*nodeServer)
	ctx := t.Context()
	rc := tp.cfg.newRedis(t)

	var (
		mu  sync.Mutex
		pub []map[string]any
	)
	ps := rc.PSubscribe(ctx, tp.prefix+"#*")
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range ps.Channel() {
			v, _, err := msgp.ReadIntfBytes([]byte(m.Payload))
			mm, _ := v.(map[string]any)
			if err != nil || mm == nil {
				t.Errorf("PUB/SUB payload on %s is not a msgpack map: %v", m.Channel, err)
				continue
			}
			mu.Lock()
			pub = append(pub, mm)
			mu.Unlock()
		}
	}()

	stream := wire.StreamName(tp.prefix, max(tp.cfg.streamCount, 1), "/")
	last := "0"
	if l, err := rc.XRevRangeN(ctx, stream, "+", "-", 1).Result(); err == nil && len(l) == 1 {
		last = l[0].ID
	}

	room, ex := uniq("wire-room"), uniq("wire-except")
	evs := map[string]string{} // event -> origin
	for _, s := range []server{g, n} {
		e1, e2 := uniq("wire-"+s.name()), uniq("wire-all-"+s.name())
		s.emit(t, target{to: []string{room}}, e1, "x", 1, map[string]any{"f": 2.5})
		s.emit(t, target{except: []string{ex}}, e2, "y")
		evs[e1], evs[e2] = s.name(), s.name()
	}
	// fetchSockets with a timeout
	done := make(chan error, 1)
	g.op(target{to: []string{room}}).Timeout(1500 * time.Millisecond).FetchSockets()(func(_ []*socket.RemoteSocket, err error) {
		done <- err
	})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("G0 fetchSockets: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("G0 fetchSockets never returned")
	}
	var nf struct{ Err string }
	n.ctl(t, "fetch", map[string]any{"nsp": "/", "to": []string{room}, "except": []string{}, "timeout": 1500}, &nf)
	// broadcasts with acks (nobody in the room: they end at once)
	ackEv := uniq("wire-ack")
	for _, s := range []server{g, n} {
		if r := s.emitAck(t, target{to: []string{room}}, 1500*time.Millisecond, ackEv); r.err != "" {
			t.Errorf("%s broadcast with acks: %s", s.name(), r.err)
		}
	}

	// Stream entries
	entries, err := rc.XRange(ctx, stream, "("+last, "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{} // uid -> server name
	byKind := map[string]map[string]any{}
	for _, e := range entries {
		raw, _ := e.Values["data"].(string)
		if !strings.HasPrefix(raw, "{") {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal([]byte(raw), &data); err != nil {
			t.Errorf("entry %s: data %q: %v", e.ID, raw, err)
			continue
		}
		pkt, _ := data["packet"].(map[string]any)
		list, _ := pkt["data"].([]any)
		if len(list) == 0 {
			continue
		}
		name, _ := list[0].(string)
		origin, ok := evs[name]
		if !ok {
			continue
		}
		uids[e.Values["uid"].(string)] = origin
		kind := "room"
		if strings.HasPrefix(name, "wire-all-") {
			kind = "except"
		}
		byKind[kind+" "+origin] = data
		if e.Values["type"] != "3" || e.Values["nsp"] != "/" {
			t.Errorf("%s: stream entry %v", origin, e.Values)
		}
		checkNoNull(t, origin+" stream "+kind, data)
		if _, ok := data["requestId"]; ok {
			t.Errorf("%s: broadcast entry has a requestId: %s", origin, raw)
		}
		if _, ok := pkt["id"]; ok {
			t.Errorf("%s: broadcast packet has an id: %s", origin, raw)
		}
		opts, _ := data["opts"].(map[string]any)
		for _, k := range []string{"rooms", "except"} {
			if _, ok := opts[k].([]any); !ok {
				t.Errorf("%s: opts.%s is %s, want an array: %s", origin, k, show(opts[k]), raw)
			}
		}
	}
	if len(byKind) != 4 {
		t.Fatalf("found %d of the 4 broadcast entries (%v)", len(byKind), uids)
	}
	for _, kind := range []string{"room", "except"} {
		gs, ns := shape(byKind[kind+" G0"]), shape(byKind[kind+" N0"])
		if gs != ns {
			t.Errorf("stream entry (%s broadcast): Go %s, Node %s", kind, gs, ns)
		}
		t.Logf("stream entry (%s broadcast): %s", kind, gs)
	}

	// PUB/SUB requests
	found := map[string]map[string]any{}
	waitFor(t, "the PUB/SUB requests", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range pub {
			data, _ := m["data"].(map[string]any)
			opts, _ := data["opts"].(map[string]any)
			rs, _ := opts["rooms"].([]any)
			if len(rs) != 1 || rs[0] != room {
				continue
			}
			origin := uids[m["uid"].(string)]
			typ, _ := toInt64(m["type"])
			found[fmt.Sprintf("%d %s", typ, origin)] = m
		}
		return len(found) >= 4
	})
	for _, kind := range []string{"7", "3"} { // FETCH_SOCKETS, BROADCAST (with acks)
		for _, origin := range []string{"G0", "N0"} {
			m := found[kind+" "+origin]
			if m == nil {
				t.Errorf("no type %s request from %s (got %v)", kind, origin, keys(found))
				continue
			}
			what := fmt.Sprintf("%s PUB/SUB type %s", origin, kind)
			checkNoNull(t, what, m)
			data, _ := m["data"].(map[string]any)
			opts, _ := data["opts"].(map[string]any)
			flags, _ := opts["flags"].(map[string]any)
			if ms, ok := toInt64(flags["timeout"]); !ok || ms != 1500 {
				t.Errorf("%s: flags.timeout = %#v, want 1500 (ms)", what, flags["timeout"])
			}
			if id, _ := data["requestId"].(string); id == "" {
				t.Errorf("%s: requestId %#v", what, data["requestId"])
			}
			t.Logf("%s: %s", what, shape(m))
			if origin == "G0" {
				if gs, ns := shape(m), shape(found[kind+" N0"]); found[kind+" N0"] != nil && gs != ns {
					t.Errorf("PUB/SUB type %s: Go %s, Node %s", kind, gs, ns)
				}
			}
		}
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// toInt64 accepts the integer types msgp decodes to, and integral float64s (JSON).
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		return int64(x), true
	case float64:
		return int64(x), x == math.Trunc(x)
	}
	return 0, false
}

// checkNoNull reports every null (or msgp nil) in a message: absent optional keys must be omitted.
func checkNoNull(t *testing.T, what string, v any) {
	t.Helper()
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			t.Errorf("%s: %s is null", what, path)
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("$", v)
}

// shape renders a decoded message's structure: keys, kinds, array lengths; not the values (ids, uids differ),
// except for the message and packet types.
func shape(v any) string {
	switch x := v.(type) {
	case map[string]any:
		ks := make([]string, 0, len(x))
		for k := range x {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		parts := make([]string, len(ks))
		for i, k := range ks {
			s := shape(x[k])
			if k == "type" {
				s = fmt.Sprint(x[k])
			}
			parts[i] = k + ":" + s
		}
		return "{" + strings.Join(parts, " ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = shape(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case nil:
		return "null"
	case string:
		return "str"
	case bool:
		return "bool"
	case []byte:
		return "bin"
	case int64, uint64, float64, int, float32:
		return "num"
	}
	return fmt.Sprintf("%T", v)
}
