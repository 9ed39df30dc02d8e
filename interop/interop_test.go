package interop

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var configs = []struct {
	config
	cases []string // nil: every case but the ones marked onlyWith
}{
	{config: config{name: "standalone"}},
	{config: config{name: "cluster", cluster: true}, cases: []string{
		"server_count", "broadcast_all", "broadcast_binary", "broadcast_date", "broadcast_room", "broadcast_except",
		"sockets_join", "sockets_leave", "disconnect_sockets", "fetch_sockets", "remote_socket", "server_side_emit",
		"server_side_emit_ack", "broadcast_ack", "broadcast_ack_no_client", "broadcast_ack_timeout",
		"large_string", "large_binary", "number_fidelity", "wire_form"}},
	{config: config{name: "cluster-streamcount5", cluster: true, streamCount: 5,
		namespaces: []string{"/custom", "/namespace-1", "/namespace-2"}}, cases: []string{
		"server_count", "broadcast_all", "namespaces"}},
	{config: config{name: "cluster-sharded", cluster: true, sharded: true}, cases: []string{
		"server_count", "broadcast_all", "broadcast_binary", "fetch_sockets", "remote_socket", "server_side_emit",
		"server_side_emit_ack", "broadcast_ack"}},
	// The Go servers on this module's websocket transport, with per-message deflate (Node clients offer it), the
	// clients of both languages upgrading to it from long-polling: every case a client's connection takes part in.
	{config: config{name: "standalone-wstransport", wsTransport: true, polling: true, deflate: true}, cases: []string{
		"server_count", "broadcast_all", "broadcast_binary", "broadcast_room", "broadcast_except", "sockets_join",
		"disconnect_sockets", "remote_socket", "broadcast_ack", "broadcast_ack_no_client", "large_string",
		"large_binary", "number_fidelity", "date_rendering", "nonfinite_binary"}},
}

type interopCase struct {
	name     string
	run      func(t *testing.T, tp *topo, o server)
	parallel bool // waits for a timeout: run at the end, alongside the others
	onlyWith bool // only where a config lists it
	origins  []string
	emitter  bool // also run from the Go emitter (origin "E"), when origins is nil
}

var cases = []interopCase{
	{name: "server_count", run: testServerCount},
	{name: "broadcast_all", run: testBroadcastAll, emitter: true},
	{name: "broadcast_binary", run: testBroadcastBinary, emitter: true},
	{name: "broadcast_room", run: testBroadcastRoom, emitter: true},
	{name: "broadcast_except", run: testBroadcastExcept, emitter: true},
	{name: "sockets_join", run: testSocketsJoin, emitter: true},
	{name: "sockets_leave", run: testSocketsLeave, emitter: true},
	{name: "disconnect_sockets", run: testDisconnectSockets, emitter: true},
	{name: "fetch_sockets", run: testFetchSockets},
	{name: "remote_socket", run: testRemoteSocket},
	{name: "server_side_emit", run: testServerSideEmit, emitter: true},
	{name: "server_side_emit_ack", run: testServerSideEmitAck},
	{name: "server_side_emit_ack_timeout", run: testServerSideEmitAckTimeout, parallel: true},
	{name: "broadcast_ack", run: testBroadcastAck},
	{name: "broadcast_ack_no_client", run: testBroadcastAckNoClient},
	{name: "broadcast_ack_timeout", run: testBroadcastAckTimeout, parallel: true},
	{name: "namespaces", run: testNamespaces, onlyWith: true, emitter: true},
	{name: "large_string", run: testLargeString},
	{name: "large_binary", run: testLargeBinary, emitter: true},
	{name: "number_fidelity", run: testNumberFidelity},
	{name: "wire_form", run: testWireForm, origins: []string{"G0"}},

	// Fixed interop bugs, kept as cases: Dates from Node reach Go-server clients in JS toJSON form; a Go socket's
	// handshake reaches Node with lower-case header names; NaN/±Inf from Node become null instead of a packet the
	// Go server cannot encode.
	{name: "date_rendering", run: testBroadcastDate, origins: []string{"N0"}},
	{name: "handshake_header_case", run: testHandshakeHeaderCase, origins: []string{"N0"}},
	{name: "nonfinite_binary", run: testBroadcastNonFinite, origins: []string{"N0"}},
}

// TestInterop runs every case from a Go origin (G0) and from a Node origin (N0) in a mixed cluster; every other
// server and every client (both languages) takes part.
func TestInterop(t *testing.T) {
	requireInterop(t)
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			tp := startTopo(t, cfg.config)
			for _, tc := range cases {
				if cfg.cases != nil && !slices.Contains(cfg.cases, tc.name) || cfg.cases == nil && tc.onlyWith {
					continue
				}
				origins := tc.origins
				if origins == nil {
					origins = []string{"G0", "N0"}
					if tc.emitter {
						origins = append(origins, "E")
					}
				}
				t.Run(tc.name, func(t *testing.T) {
					if tc.parallel {
						t.Parallel()
					}
					for _, o := range origins {
						t.Run("from_"+o, func(t *testing.T) {
							if tc.parallel {
								t.Parallel()
							}
							tc.run(t, tp, tp.server(o))
						})
					}
				})
			}
		})
	}
}

func testServerCount(t *testing.T, tp *topo, _ server) {
	for _, nsp := range append([]string{"/"}, tp.cfg.namespaces...) {
		for _, s := range tp.servers {
			if n := s.count(t, nsp); n != 4 {
				t.Errorf("%s counts %d servers on %s, want 4", s.name(), n, nsp)
			}
		}
	}
}

func testBroadcastAll(t *testing.T, tp *topo, o server) {
	ev := uniq("all")
	args := []any{1, "2", map[string]any{"a": []any{true, nil}, "n": -7.5}, "ü€😀", []any{}, map[string]any{}}
	o.emit(t, target{}, ev, args...)
	for _, c := range tp.root() {
		c.expect(t, ev, args...)
	}
}

func testBroadcastBinary(t *testing.T, tp *topo, o server) {
	ev := uniq("bin")
	args := []any{
		"bin",
		[]byte{1, 2, 3},
		map[string]any{"nested": []byte{4}, "list": []any{[]byte{5}, []byte{6, 7}}, "s": "x"},
		[]byte{0, 255},
		42,
	}
	o.emit(t, target{}, ev, args...)
	for _, c := range tp.root() {
		c.expect(t, ev, args...)
	}
}

// A Date inside a binary broadcast travels as msgpack ext -1; every client should get JS's toJSON() form, as Node's
// own clients do.
func testBroadcastDate(t *testing.T, tp *topo, o server) {
	ev := uniq("date")
	d1 := time.Date(2024, 1, 2, 3, 4, 5, 120e6, time.UTC)
	d2 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	o.emit(t, target{}, ev, d1, []byte{1}, map[string]any{"at": d2})
	want := []any{"2024-01-02T03:04:05.120Z", []byte{1}, map[string]any{"at": "2024-01-02T03:04:05.000Z"}}
	for _, c := range tp.root() {
		c.expect(t, ev, want...)
	}
}

// members are a mix: one client per server, both languages of client and server.
var memberIdx = []int{0, 3, 5, 6} // go@G0, node@N0, node@G1, go@N1

func (tp *topo) joinLocally(t *testing.T, cs []*client, room string) {
	for _, c := range cs {
		c.server.socketJoin(t, "/", c.id, room)
	}
}

func isMember(c *client, members []*client) bool { return slices.Contains(members, c) }

func testBroadcastRoom(t *testing.T, tp *topo, o server) {
	room, ev := uniq("room"), uniq("ev")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, room)
	o.emit(t, target{to: []string{room}}, ev, "room")
	m := tp.marker(t, o, "/")
	for _, c := range tp.root() {
		if isMember(c, members) {
			c.expect(t, ev, "room")
		} else {
			c.expectNot(t, ev, m)
		}
	}
}

func testBroadcastExcept(t *testing.T, tp *topo, o server) {
	room, ev := uniq("room"), uniq("ev")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, room)
	o.emit(t, target{except: []string{room}}, ev, "except")
	m := tp.marker(t, o, "/")
	for _, c := range tp.root() {
		if isMember(c, members) {
			c.expectNot(t, ev, m)
		} else {
			c.expect(t, ev, "except")
		}
	}
}

// barrier makes every root client join a fresh room from o and waits until all servers applied it: the
// operations o sent before went through the same stream, so they were applied too.
func (tp *topo) barrier(t *testing.T, o server) {
	t.Helper()
	done := uniq("barrier")
	o.join(t, target{}, done)
	for _, c := range tp.root() {
		waitFor(t, c.label+" to join "+done, func() bool {
			d, ok := roomsOf(t, c, "/")
			return ok && hasRoom(d, done)
		})
	}
}

// remoteOf returns a root client on another server than o, of the given language.
func (tp *topo) remoteOf(o server, lang string) *client {
	for _, c := range tp.root() {
		if c.server != o && c.server.lang() != o.lang() && c.lang == lang {
			return c
		}
	}
	panic("none")
}

func testSocketsJoin(t *testing.T, tp *topo, o server) {
	a, b, single := uniq("a"), uniq("b"), uniq("single")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, a)
	one := tp.remoteOf(o, "node")
	o.join(t, target{to: []string{a}}, b)
	o.join(t, target{to: []string{one.id}}, single)
	tp.barrier(t, o)
	for _, c := range tp.root() {
		d, _ := roomsOf(t, c, "/")
		if hasRoom(d, b) != isMember(c, members) || hasRoom(d, single) != (c == one) {
			t.Errorf("%s rooms %v (member %v, single %v)", c, d.rooms, isMember(c, members), c == one)
		}
	}
}

func testSocketsLeave(t *testing.T, tp *topo, o server) {
	l1, l2 := uniq("l1"), uniq("l2")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, tp.root(), l1)
	tp.joinLocally(t, members, l2)
	var one *client // a member on a server of the other language
	for _, c := range members {
		if c.server.lang() != o.lang() && one == nil {
			one = c
		}
	}
	o.leave(t, target{to: []string{l2}}, l1)
	o.leave(t, target{to: []string{one.id}}, l2)
	tp.barrier(t, o)
	for _, c := range tp.root() {
		d, _ := roomsOf(t, c, "/")
		if hasRoom(d, l1) != !isMember(c, members) || hasRoom(d, l2) != (isMember(c, members) && c != one) {
			t.Errorf("%s rooms %v (member %v, single %v)", c, d.rooms, isMember(c, members), c == one)
		}
	}
}

func testDisconnectSockets(t *testing.T, tp *topo, o server) {
	keep, closeRoom := uniq("keep"), uniq("close")
	// keep: go@G0, go@N0, node@G1, node@N1; close: the others. Each has both client languages on both server
	// languages.
	var fresh []*client
	for i, s := range tp.servers {
		goRoom, nodeRoom := keep, closeRoom
		if i >= 2 {
			goRoom, nodeRoom = closeRoom, keep
		}
		fresh = append(fresh,
			tp.connectWith(t, "go", s, "/", map[string]string{"rooms": goRoom}),
			tp.connectWith(t, "node", s, "/", map[string]string{"rooms": nodeRoom}))
	}
	o.disconnect(t, target{to: []string{keep}}, false)
	o.disconnect(t, target{to: []string{closeRoom}}, true)
	for _, c := range fresh {
		checkServerDisconnect(t, c, c.next(t, "disconnect"))
	}
	for _, c := range fresh {
		waitFor(t, c.label+" gone from its server", func() bool { _, ok := roomsOf(t, c, "/"); return !ok })
	}
	m := tp.marker(t, o, "/")
	for _, c := range tp.root() {
		c.expectNot(t, "disconnect", m)
	}
}

func testFetchSockets(t *testing.T, tp *topo, o server) {
	room := uniq("fetch")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, room)
	want := map[string]*client{}
	for i, c := range members {
		c.server.socketSetData(t, "/", c.id, map[string]any{"user": i, "label": c.label, "bin": []byte{byte(i)}})
		want[c.id] = c
	}
	got, err := o.fetch(t, target{to: []string{room}})
	if err != "" {
		t.Fatalf("fetchSockets: %s", err)
	}
	if len(got) != len(members) {
		t.Fatalf("fetched %d sockets, want %d", len(got), len(members))
	}
	for _, d := range got {
		c := want[d.id]
		if c == nil {
			t.Fatalf("fetched unknown socket %s", d.id)
		}
		delete(want, d.id)
		i := slices.Index(members, c)
		if !equal(d.data, map[string]any{"user": i, "label": c.label, "bin": []byte{byte(i)}}) {
			t.Errorf("%s data %s", c, show(d.data))
		}
		own, ok := roomsOf(t, c, "/")
		if !ok {
			t.Fatalf("%s gone", c)
		}
		if !slices.Equal(d.rooms, own.rooms) || !hasRoom(d, room) || !hasRoom(d, c.id) {
			t.Errorf("%s rooms %v, its server says %v", c, d.rooms, own.rooms)
		}
		checkHandshake(t, o, c, d.handshake, own.handshake)
	}

	// except, on the same request path
	got, err = o.fetch(t, target{to: []string{room}, except: []string{members[1].id}})
	if err != "" || len(got) != len(members)-1 {
		t.Errorf("fetchSockets with except: %d sockets, %q", len(got), err)
	}
	for _, d := range got {
		if d.id == members[1].id {
			t.Errorf("except %s ignored", members[1])
		}
	}
}

// checkServerDisconnect checks the reason a client gives for a server-side disconnection.
func checkServerDisconnect(t *testing.T, c *client, e event) {
	t.Helper()
	reason, _ := e.args[0].(string)
	switch {
	case reason == "io server disconnect":
	case reason == "transport close" && c.lang == "go" && c.server.lang() == "node":
		// A Node server writes DISCONNECT, then closes the websocket once it is flushed (Node clients always
		// report "io server disconnect"); the Go client library (clients/socket v3.0.6) sometimes handles the
		// close before the packet it received first. Not an adapter matter.
		t.Logf("%s: %q (Go client library race on a Node server)", c, reason)
	default:
		t.Errorf("%s disconnected with %s, want io server disconnect", c, show(e.args))
	}
}

var handshakeKeys = []string{"address", "auth", "headers", "issued", "query", "secure", "time", "url", "xdomain"}

// checkHandshake compares a fetched handshake with the one the socket's own server holds.
func checkHandshake(t *testing.T, o server, c *client, got, own map[string]any) {
	t.Helper()
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, handshakeKeys) {
		t.Errorf("%s: handshake keys %v, want %v", c, keys, handshakeKeys)
	}
	for _, k := range []string{"time", "address", "url", "issued", "xdomain", "secure"} {
		if !equal(got[k], own[k]) {
			t.Errorf("%s: handshake %s = %s, its server says %s", c, k, show(got[k]), show(own[k]))
		}
	}
	if s, _ := got["time"].(string); s == "" {
		t.Errorf("%s: handshake time %s", c, show(got["time"]))
	}
	if n, _ := got["issued"].(float64); n < 1e12 {
		t.Errorf("%s: handshake issued %s is not a ms timestamp", c, show(got["issued"]))
	}
	if u, _ := got["url"].(string); !strings.Contains(u, "EIO=4") {
		t.Errorf("%s: handshake url %s", c, show(got["url"]))
	}
	q, _ := got["query"].(map[string]any)
	if firstString(q["k"]) != "v" || firstString(q["EIO"]) != "4" {
		t.Errorf("%s: handshake query %s", c, show(got["query"]))
	}
	if a, _ := got["auth"].(map[string]any); a["token"] != "t-"+c.label {
		t.Errorf("%s: handshake auth %s", c, show(got["auth"]))
	}
	h, _ := got["headers"].(map[string]any)
	if len(h) == 0 {
		t.Errorf("%s: handshake headers %s", c, show(got["headers"]))
	}
	for k, v := range h {
		switch x := v.(type) {
		case string:
		case []any:
			for _, e := range x {
				if _, ok := e.(string); !ok {
					t.Errorf("%s: header %s = %s", c, k, show(v))
				}
			}
		default:
			t.Errorf("%s: header %s = %s", c, k, show(v))
		}
	}
	if testing.Verbose() {
		t.Logf("%s fetched by %s: %s", c, o.name(), show(got))
	}
}

func testRemoteSocket(t *testing.T, tp *topo, o server) {
	// fresh clients, since they get disconnected: one per language, on the two servers that are not o's
	var other, same server
	for _, s := range tp.others(o) {
		if s.lang() == o.lang() {
			same = s
		} else if other == nil {
			other = s
		}
	}
	for _, c := range []*client{tp.connect(t, "go", other, "/"), tp.connect(t, "node", same, "/"),
		tp.connect(t, "node", other, "/")} {
		t.Run(c.label, func(t *testing.T) {
			ev, ack, room := uniq("remote"), uniq("remote-ack"), uniq("remote-room")
			o.remoteEmit(t, "/", c.id, ev, "hi", []byte{1, 2})
			c.expect(t, ev, "hi", []byte{1, 2})

			answer := map[string]any{"from": c.label, "bin": []byte{7}}
			c.answer(t, ack, answer, true)
			r := o.remoteEmitAck(t, "/", c.id, 5*time.Second, ack, "q")
			if r.err != "" || !equal(r.responses, []any{answer}) {
				t.Errorf("remote emitWithAck: %s, err %q", show(r.responses), r.err)
			}

			o.remoteJoin(t, "/", c.id, room)
			waitFor(t, "remote join", func() bool { d, _ := roomsOf(t, c, "/"); return hasRoom(d, room) })
			o.remoteLeave(t, "/", c.id, room)
			waitFor(t, "remote leave", func() bool { d, _ := roomsOf(t, c, "/"); return !hasRoom(d, room) })

			o.remoteDisconnect(t, "/", c.id, true)
			checkServerDisconnect(t, c, c.next(t, "disconnect"))
		})
	}
}

func testServerSideEmit(t *testing.T, tp *topo, o server) {
	ev := uniq("sse")
	for _, s := range tp.servers {
		s.sseReply(t, "/", ev, nil, false) // registers Go handlers before anything is sent
	}
	args := []any{"world", 1, map[string]any{"x": []byte{2}}, []any{[]byte{3}, "4"}}
	o.sse(t, "/", ev, args...)
	others := tp.others(o)
	for _, s := range others {
		got, ok := s.nextSSE(t, "/", ev)
		if !ok {
			t.Fatalf("%s never received the serverSideEmit", s.name())
		}
		if !equal(got, args) {
			t.Errorf("%s received %s, want %s", s.name(), show(got), show(canon(args)))
		}
	}
	if o.lang() == "emitter" {
		return // receives nothing
	}
	// The sender is not a receiver of its own event: the next one it sees is another server's.
	others[0].sse(t, "/", ev, "marker")
	got, ok := o.nextSSE(t, "/", ev)
	if !ok || !equal(got, []any{"marker"}) {
		t.Errorf("%s received %s (%v) first, want the marker", o.name(), show(got), ok)
	}
}

func sseAnswer(s server, i int) any {
	if s.lang() == "go" {
		return "from-" + s.name()
	}
	return map[string]any{"from": s.name(), "bin": []byte{byte(i)}}
}

func testServerSideEmitAck(t *testing.T, tp *topo, o server) {
	ev := uniq("sse-ack")
	var want []any
	for i, s := range tp.others(o) {
		s.sseReply(t, "/", ev, sseAnswer(s, i), true)
		want = append(want, sseAnswer(s, i))
	}
	r := o.sseAck(t, "/", ev, "q", 7, []byte{8})
	if r.err != "" || !sameMultiset(r.responses, want) {
		t.Errorf("serverSideEmit ack: %s, err %q; want %s", show(r.responses), r.err, show(canon(want)))
	}
	for _, s := range tp.others(o) {
		if got, ok := s.nextSSE(t, "/", ev); !ok || !equal(got, []any{"q", 7, []byte{8}}) {
			t.Errorf("%s received %s", s.name(), show(got))
		}
	}
}

func testServerSideEmitAckTimeout(t *testing.T, tp *topo, o server) {
	ev := uniq("sse-timeout")
	var want []any
	others := tp.others(o)
	for i, s := range others {
		if i == len(others)-1 {
			s.sseReply(t, "/", ev, nil, false)
			continue
		}
		s.sseReply(t, "/", ev, sseAnswer(s, i), true)
		want = append(want, sseAnswer(s, i))
	}
	start := time.Now()
	r := o.sseAck(t, "/", ev)
	t.Logf("timed out after %v: %q", time.Since(start).Round(time.Millisecond), r.err)
	if !strings.Contains(r.err, "timeout reached: only 2 responses received out of 3") || !sameMultiset(r.responses, want) {
		t.Errorf("serverSideEmit ack: %s, err %q; want %s and a timeout", show(r.responses), r.err, show(canon(want)))
	}
}

// clientAnswer is what each root client acknowledges with: binary from some, plain values from others.
func clientAnswer(c *client, i int) any {
	if i%2 == 0 {
		return "ack-" + c.label
	}
	return map[string]any{"from": c.label, "bin": []byte{byte(i)}}
}

func testBroadcastAck(t *testing.T, tp *topo, o server) {
	room, ev := uniq("ack-room"), uniq("ack")
	tp.joinLocally(t, tp.root(), room)
	var want []any
	for i, c := range tp.root() {
		c.answer(t, ev, clientAnswer(c, i), true)
		want = append(want, clientAnswer(c, i))
	}
	start := time.Now()
	r := o.emitAck(t, target{to: []string{room}}, 8*time.Second, ev, "q", []byte{9})
	if r.err != "" || !sameMultiset(r.responses, want) {
		t.Fatalf("broadcast with acks: %s, err %q; want %s", show(r.responses), r.err, show(canon(want)))
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("broadcast with acks took %v: it waited for the timeout", d)
	}
	for _, c := range tp.root() {
		e := c.next(t, ev)
		if !e.withAck || !equal(e.args, []any{"q", []byte{9}}) {
			t.Errorf("%s got %s (ack %v)", c, show(e.args), e.withAck)
		}
	}
}

func testBroadcastAckNoClient(t *testing.T, tp *topo, o server) {
	start := time.Now()
	r := o.emitAck(t, target{to: []string{uniq("nobody")}}, 4*time.Second, uniq("ack"), "q")
	if r.err != "" || len(r.responses) != 0 {
		t.Errorf("broadcast with acks to nobody: %s, err %q", show(r.responses), r.err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: it waited for the timeout", d)
	}
}

func testBroadcastAckTimeout(t *testing.T, tp *topo, o server) {
	room, ev := uniq("ack-room"), uniq("ack")
	tp.joinLocally(t, tp.root(), room)
	var want []any
	silent := tp.root()[6] // go@N1
	if o.name() == "N0" {
		silent = tp.root()[5] // node@G1
	}
	for i, c := range tp.root() {
		if c == silent {
			c.answer(t, ev, nil, false)
			continue
		}
		c.answer(t, ev, clientAnswer(c, i), true)
		want = append(want, clientAnswer(c, i))
	}
	r := o.emitAck(t, target{to: []string{room}}, 1500*time.Millisecond, ev, "q")
	if r.err == "" || !sameMultiset(r.responses, want) {
		t.Errorf("broadcast with acks, %s silent: %s, err %q; want %s and a timeout", silent, show(r.responses), r.err, show(canon(want)))
	}
	t.Logf("error: %q", r.err)
}

// testNamespaces: with StreamCount 5, Node writes /namespace-1 and /namespace-2 to "<name>--2" and "<name>--1",
// streams Node itself never reads (wire-protocol.md W1); the Go servers read them, so Node's broadcasts there
// reach every Go server's clients. Node servers only get the namespaces whose stream index is not negative.
func testNamespaces(t *testing.T, tp *topo, o server) {
	for _, nsp := range append([]string{"/"}, tp.cfg.namespaces...) {
		t.Run(strings.TrimPrefix(nsp, "/"), func(t *testing.T) {
			ev := uniq("nsp")
			o.emit(t, target{nsp: nsp}, ev, nsp, []byte{1})
			for _, c := range tp.clients[nsp] {
				switch {
				case c.server == o || c.server.lang() == "go" || tp.nodeReads(nsp):
					c.expect(t, ev, nsp, []byte{1})
				default:
					t.Logf("%s: not checked (Node does not read this namespace's stream)", c)
				}
			}
			// A join from o reaches a Go server on every namespace.
			room := uniq("nsp-room")
			var target1 *client
			for _, c := range tp.clients[nsp] {
				if c.server.lang() == "go" && c.server != o {
					target1 = c
					break
				}
			}
			o.join(t, target{nsp: nsp, to: []string{target1.id}}, room)
			waitFor(t, fmt.Sprintf("%s to join %s on %s", target1, room, nsp), func() bool {
				d, _ := target1.server.local(t, nsp, target1.id)
				return hasRoom(d, room)
			})
		})
	}
}

// testHandshakeHeaderCase: what Node application code reads is an IncomingHttpHeaders, with lower-case names.
func testHandshakeHeaderCase(t *testing.T, tp *topo, o server) {
	room := uniq("hdr")
	members := tp.pick(memberIdx...)
	tp.joinLocally(t, members, room)
	got, err := o.fetch(t, target{to: []string{room}})
	if err != "" {
		t.Fatal(err)
	}
	for _, d := range got {
		h, _ := d.handshake["headers"].(map[string]any)
		for k := range h {
			if k != strings.ToLower(k) {
				t.Errorf("%s sees header %q of %s, not lower case", o.name(), k, d.id)
			}
		}
	}
}

// testBroadcastNonFinite: NaN and ±Infinity, which JSON.stringify turns into null. Inside a binary broadcast
// they travel as msgpack float64.
func testBroadcastNonFinite(t *testing.T, tp *topo, o server) {
	// Fresh clients in a room of their own: a client that got the malformed packet may stay unusable.
	room, ev := uniq("nonfinite-room"), uniq("nonfinite")
	var cs []*client
	for _, s := range tp.servers {
		for _, lang := range []string{"go", "node"} {
			c := tp.connectWith(t, lang, s, "/", map[string]string{"rooms": room})
			defer c.close()
			cs = append(cs, c)
		}
	}
	o.emit(t, target{to: []string{room}}, ev, math.NaN(), math.Inf(1), []byte{1}, map[string]any{"x": math.Inf(-1)})
	m := uniq("marker")
	o.emit(t, target{to: []string{room}}, m)
	want := []any{nil, nil, []byte{1}, map[string]any{"x": nil}}
	for _, c := range cs {
		e, ok := c.nextWithin(3*time.Second, ev, m, malformedEvent)
		switch {
		case !ok:
			t.Errorf("client %s: received nothing more (not even the marker sent after)", c)
		case e.name == ev:
			if !equal(e.args, want) {
				t.Errorf("client %s: %s", c, show(e.args))
			}
		case e.name == m:
			t.Errorf("client %s: no %s event (the marker came first)", c, ev)
		default:
			t.Errorf("client %s: received an event packet without data (and threw RangeError)", c)
		}
	}
}
