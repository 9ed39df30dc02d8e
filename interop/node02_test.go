package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"

	redisstreams "github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
)

// node02Dir holds node02/server.js and its node_modules: @socket.io/redis-streams-adapter 0.2.3, the streams-only
// layout with heartbeats.
const node02Dir = "node02"

func requireNode02(t *testing.T) {
	t.Helper()
	requireInterop(t)
	if _, err := os.Stat(filepath.Join(node02Dir, "node_modules", "@socket.io", "redis-streams-adapter", "package.json")); err != nil {
		msg := "node packages of interop/node02 are not installed; run `npm ci` there (scripts/test does)"
		if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// startNode02 starts node02/server.js and returns it once it listens. It is SIGKILLed at cleanup, or by kill.
func startNode02(t *testing.T, label string, env []string) (n *nodeServer, kill func()) {
	t.Helper()
	n = spawnNodeServer(t, node02Dir, label, append(env, "LABEL="+label))()
	kill = func() { // SIGKILL, and wait until it is gone
		_ = n.proc.cmd.Process.Kill()
		<-n.proc.done
	}
	return n, kill
}

type node02Result struct {
	IDs       []string `json:"ids"`
	Responses []any    `json:"responses"`
	Err       string   `json:"err"`
	Count     int      `json:"count"`
}

// A mixed fleet: Go servers in streams-only mode and Node servers with the 0.2.3 adapter on one stream. Every
// operation works from either side, and a Node server that is SIGKILLed stops being waited for after the
// heartbeat timeout, by Go and Node requesters alike.
func TestNode02MixedFleet(t *testing.T) {
	requireNode02(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	stream := "n02" + hex.EncodeToString(b[:])
	const interval, timeout = 500 * time.Millisecond, 2 * time.Second
	opts := redisstreams.Options{StreamsOnly: true, StreamName: stream, HeartbeatInterval: interval, HeartbeatTimeout: timeout,
		RequestsTimeout: 10 * time.Second, ReadCount: 1, BlockTime: time.Second}
	var gos []*goServer
	for _, label := range []string{"G0", "G1"} {
		rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
		t.Cleanup(func() { _ = rc.Close() })
		gos = append(gos, startGoServer(t, label, rc, opts, nil, false))
	}
	env := []string{"REDIS_URL=redis://" + shared.Standalone.Addr(), "STREAM_NAME=" + stream,
		"HEARTBEAT_INTERVAL=" + "500", "HEARTBEAT_TIMEOUT=" + "2000"}
	n0, _ := startNode02(t, "N0", env)
	n1, killN1 := startNode02(t, "N1", env)

	count := func(s any) int {
		switch x := s.(type) {
		case *goServer:
			return x.count(t, "/")
		case *nodeServer:
			var r node02Result
			x.ctl(t, "count", map[string]any{}, &r)
			return r.Count
		}
		return -1
	}
	waitCount := func(want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for _, s := range []any{gos[0], gos[1], n0, n1}[:want] {
			for count(s) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%v counts %d servers, want %d", s, count(s), want)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitCount(4)

	var clients []*client
	for _, u := range []string{gos[0].url(), gos[1].url(), n0.baseURL, n1.baseURL} {
		c := connectGo(t, "go@"+u, u, "/", nil, nil, false)
		c.answer(t, "ask", c.id, true)
		clients = append(clients, c)
	}
	ids := func(cs []*client) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.id)
		}
		sort.Strings(out)
		return out
	}

	// Broadcasts, both ways.
	gos[0].emit(t, target{}, "test", "from go")
	for _, c := range clients {
		c.expect(t, "test", "from go")
	}
	n0.ctl(t, "emit", map[string]any{"event": "test", "args": []any{"from node"}}, nil)
	for _, c := range clients {
		c.expect(t, "test", "from node")
	}

	// The Go emitter in streams-only mode: its broadcast reaches the clients of both languages' servers, and no
	// server counts it (Node 0.2.3 excludes uid "emitter" from its heartbeat count, as the Go adapter does).
	rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	em, err := emitter.New(goredisbackend.New(rc), emitter.Options{StreamsOnly: true, StreamName: stream, HeartbeatTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := em.Emit("test", "from emitter", i, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			c.expect(t, "test", "from emitter", i, []byte{byte(i)})
		}
	}
	if n, err := em.ServerCountContext(context.Background()); err != nil || n != 4 {
		t.Errorf("emitter ServerCount = %d, %v; want 4", n, err)
	}
	for _, s := range []any{gos[0], gos[1], n0, n1} {
		if n := count(s); n != 4 {
			t.Errorf("%v counts %d servers after the emitter wrote, want 4", s, n)
		}
	}

	// socketsJoin / socketsLeave, both ways. Operations from different servers are not ordered with each other
	// (Node's neither), so each server issues its room changes and then its broadcasts: the stream delivers them to
	// the others in that order. A broadcast to all is the marker for what must not arrive.
	gos[0].join(t, target{}, "r1")
	gos[0].emit(t, target{to: []string{"r1"}}, "test", "r1 from go")
	for _, c := range clients {
		c.expect(t, "test", "r1 from go")
	}
	n0.ctl(t, "leave", map[string]any{"rooms": []string{"r1"}}, nil)
	n0.ctl(t, "join", map[string]any{"in": clients[1].id, "rooms": []string{"r2"}}, nil)
	n0.ctl(t, "emit", map[string]any{"event": "test", "to": "r1", "args": []any{"r1 after leave"}}, nil)
	n0.ctl(t, "emit", map[string]any{"event": "test", "to": "r2", "args": []any{"r2 from node"}}, nil)
	n0.ctl(t, "emit", map[string]any{"event": "test", "args": []any{"marker"}}, nil)
	for i, c := range clients {
		if i == 1 {
			c.expect(t, "test", "r2 from node")
		}
		c.expect(t, "test", "marker")
	}

	// fetchSockets, both ways.
	got, errText := gos[0].fetch(t, target{})
	var gotIDs []string
	for _, d := range got {
		gotIDs = append(gotIDs, d.id)
	}
	sort.Strings(gotIDs)
	if errText != "" || !slices.Equal(gotIDs, ids(clients)) {
		t.Fatalf("G0 fetchSockets: %v, %q; want %v", gotIDs, errText, ids(clients))
	}
	var r node02Result
	n0.ctl(t, "fetch", map[string]any{}, &r)
	sort.Strings(r.IDs)
	if r.Err != "" || !slices.Equal(r.IDs, ids(clients)) {
		t.Fatalf("N0 fetchSockets: %v, %q; want %v", r.IDs, r.Err, ids(clients))
	}

	// serverSideEmit with ack, both ways.
	for _, g := range gos {
		g.sseReply(t, "/", "hello", g.label, true)
	}
	sse := gos[0].sseAck(t, "/", "hello")
	if sse.err != "" || !equal(sorted(sse.responses), []any{"G1", "N0", "N1"}) {
		t.Fatalf("G0 serverSideEmitWithAck: %v, %q", sse.responses, sse.err)
	}
	n0.ctl(t, "sse-ack", map[string]any{"event": "hello"}, &r)
	if r.Err != "" || !equal(sorted(r.Responses), []any{"G0", "G1", "N1"}) {
		t.Fatalf("N0 serverSideEmitWithAck: %v, %q", r.Responses, r.Err)
	}

	// Broadcast with acks, both ways.
	acks := gos[0].emitAck(t, target{}, 5*time.Second, "ask")
	if acks.err != "" || !equal(sorted(acks.responses), toAny(ids(clients))) {
		t.Fatalf("G0 emitWithAck: %v, %q", acks.responses, acks.err)
	}
	n0.ctl(t, "emit-ack", map[string]any{"event": "ask", "timeout": 5000}, &r)
	if r.Err != "" || !equal(sorted(r.Responses), toAny(ids(clients))) {
		t.Fatalf("N0 emitWithAck: %v, %q", r.Responses, r.Err)
	}

	// N1 dies: requests complete without it, well before the 10s request timeout.
	killN1()
	start := time.Now()
	got, errText = gos[0].fetch(t, target{})
	d := time.Since(start)
	if errText != "" || len(got) != 3 || d > timeout+2*time.Second {
		t.Fatalf("G0 fetchSockets after N1 died: %d sockets, %q, after %v", len(got), errText, d)
	}
	t.Logf("G0 fetchSockets completed %v after N1 was killed", d)
	start = time.Now()
	n0.ctl(t, "fetch", map[string]any{"timeout": 10000}, &r)
	if r.Err != "" || len(r.IDs) != 3 {
		t.Fatalf("N0 fetchSockets after N1 died: %v, %q", r.IDs, r.Err)
	}
	t.Logf("N0 fetchSockets completed %v later", time.Since(start))
	waitCount(3)

	// disconnectSockets, both ways: Node disconnects a Go server's client, Go disconnects a Node server's client.
	n0.ctl(t, "disconnect", map[string]any{"in": clients[1].id, "close": true}, nil)
	clients[1].next(t, "disconnect")
	gos[0].disconnect(t, target{to: []string{clients[2].id}}, true)
	clients[2].next(t, "disconnect")
}

func sorted(v []any) []any {
	out := slices.Clone(v)
	sort.Slice(out, func(i, j int) bool { return show(out[i]) < show(out[j]) })
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}
