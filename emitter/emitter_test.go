package emitter_test

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/internal/siotest"
)

// setups: both client families, standalone and cluster with StreamCount 5, and the streams-only layout.
var setups = []setup{
	{name: "go-redis-standalone"},
	{name: "go-redis-cluster-streamcount5", cluster: true, opts: emitter.Options{StreamCount: 5}},
	{name: "rueidis-cluster-streamcount5", rueidis: true, cluster: true, opts: emitter.Options{StreamCount: 5}},
	{name: "rueidis-standalone-sharded", rueidis: true, opts: emitter.Options{UseShardedPubSub: true}},
	{name: "go-redis-standalone-streamsonly", opts: emitter.Options{StreamsOnly: true}},
	{name: "rueidis-cluster-streamsonly", rueidis: true, cluster: true, opts: emitter.Options{StreamsOnly: true, StreamCount: 5}},
}

// negNsp hashes to a negative stream index with StreamCount 5 ("<name>--2"), which Node's emitter cannot reach.
const negNsp = "/namespace-1"

var offsetRE = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// TestEmitterDrivesGoServers runs every operation of the emitter against two Go servers with real clients, in
// every setup.
func TestEmitterDrivesGoServers(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) { testEmitter(t, s) })
	}
}

func testEmitter(t *testing.T, s setup) {
	opts := uniqueOptions(s.opts)
	servers := startServers(t, s, opts, 2, negNsp)
	em := s.newEmitter(t, opts)
	rc := s.goRedis(t)
	ctx := context.Background()

	c0 := servers[0].connect(t, "/", "ev", "sentinel")
	c1 := servers[1].connect(t, "/", "ev", "sentinel")
	c2 := servers[1].connect(t, negNsp, "ev")
	c1.server.Join("r1")
	clients := []*testClient{c0, c1}

	// The servers know each other, and never count the emitter.
	if opts.StreamsOnly {
		for _, srv := range servers {
			waitFor(t, "streams-only membership", func() bool { return srv.io.Of("/", nil).Adapter().ServerCount() == 2 })
		}
	}
	if n, err := em.ServerCountContext(ctx); err != nil || n != 2 {
		t.Fatalf("emitter ServerCountContext = %d, %v; want 2", n, err)
	}
	if n, err := em.ServerCount(); err != nil || n != 2 {
		t.Fatalf("emitter ServerCount = %d, %v; want 2", n, err)
	}

	// lastOffset is the newest entry of a namespace's stream: the offset every server must attach.
	lastOffset := func(t testing.TB, e *emitter.Emitter) string {
		msgs, err := rc.XRevRangeN(ctx, e.Stream(), "+", "-", 1).Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("XREVRANGE %s: %v %v", e.Stream(), msgs, err)
		}
		return msgs[0].ID
	}
	// expectEv checks that c receives name with want, followed by the recovery offset when offset is set.
	expectEv := func(t testing.TB, c *testClient, name string, want []any, offset string) {
		t.Helper()
		args := c.expect(t, name)
		if offset != "" {
			if len(args) == 0 || args[len(args)-1] != offset {
				t.Fatalf("client %s: %s %v: want the offset %s last", c.Id(), name, args, offset)
			}
			args = args[:len(args)-1]
		}
		if len(args) != len(want) {
			t.Fatalf("client %s: %s %#v, want %#v", c.Id(), name, args, want)
		}
		for i := range want {
			if !sameValue(args[i], want[i]) {
				t.Fatalf("client %s: %s arg %d = %#v, want %#v", c.Id(), name, i, args[i], want[i])
			}
		}
	}
	// sentinel proves that nothing else is queued for the clients of "/": streams are ordered.
	sentinel := func(t testing.TB) {
		t.Helper()
		id, err := em.Emit("sentinel")
		if err != nil {
			t.Fatal(err)
		}
		off := lastOffset(t, em)
		if id != off {
			t.Fatalf("Emit returned %q; its entry is %q", id, off)
		}
		for _, c := range clients {
			expectEv(t, c, "sentinel", nil, off)
		}
	}

	t.Run("broadcast with binary", func(t *testing.T) {
		off, err := em.Emit("ev", 1, "2", []byte{3, 4}, map[string]any{"nested": []byte{5}})
		if err != nil {
			t.Fatal(err)
		}
		if !offsetRE.MatchString(off) || off != lastOffset(t, em) {
			t.Fatalf("Emit returned %q, the stream's last entry is %q", off, lastOffset(t, em))
		}
		want := []any{1, "2", []byte{3, 4}, map[string]any{"nested": []byte{5}}}
		for _, c := range clients {
			expectEv(t, c, "ev", want, off)
		}
	})
	t.Run("namespace", func(t *testing.T) {
		e := em.Of(negNsp)
		if opts.StreamCount == 5 && e.Stream() != opts.StreamName+"--2" {
			t.Fatalf("%s goes to %s, want %s--2", negNsp, e.Stream(), opts.StreamName)
		}
		if _, err := e.Emit("ev", "nsp"); err != nil {
			t.Fatal(err)
		}
		expectEv(t, c2, "ev", []any{"nsp"}, lastOffset(t, e))
		sentinel(t) // nothing reached "/"
	})
	t.Run("room", func(t *testing.T) {
		if _, err := em.To("r1").Emit("ev", "room"); err != nil {
			t.Fatal(err)
		}
		expectEv(t, c1, "ev", []any{"room"}, lastOffset(t, em))
		sentinel(t)
	})
	t.Run("except", func(t *testing.T) {
		if _, err := em.Except("r1").Emit("ev", "except"); err != nil {
			t.Fatal(err)
		}
		expectEv(t, c0, "ev", []any{"except"}, lastOffset(t, em))
		sentinel(t)
	})
	t.Run("volatile and compress", func(t *testing.T) {
		if _, err := em.Volatile().Compress(false).Emit("ev", "volatile"); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			expectEv(t, c, "ev", []any{"volatile"}, "") // volatile: no offset
		}
		if _, err := em.Compress(true).Emit("ev", "compress"); err != nil {
			t.Fatal(err)
		}
		off := lastOffset(t, em)
		for _, c := range clients {
			expectEv(t, c, "ev", []any{"compress"}, off)
		}
	})
	t.Run("reserved event", func(t *testing.T) {
		if _, err := em.Emit("disconnect"); !errors.Is(err, emitter.ErrReservedEvent) {
			t.Fatalf("Emit(disconnect) = %v", err)
		}
	})
	t.Run("socketsJoin", func(t *testing.T) {
		if _, err := em.SocketsJoin("all"); err != nil { // all
			t.Fatal(err)
		}
		if _, err := em.In("r1").SocketsJoin("matching"); err != nil { // matching
			t.Fatal(err)
		}
		if _, err := em.In(c0.Id()).SocketsJoin("single"); err != nil { // single socket
			t.Fatal(err)
		}
		waitFor(t, "joins", func() bool {
			return c0.inRoom("all") && c1.inRoom("all") && c1.inRoom("matching") && c0.inRoom("single")
		})
		sentinel(t) // every join was applied before it, so the negative checks are final
		if c0.inRoom("matching") || c1.inRoom("single") || c2.inRoom("all") {
			t.Fatal("a join reached a socket it did not target")
		}
	})
	t.Run("socketsLeave", func(t *testing.T) {
		if _, err := em.SocketsLeave("all"); err != nil {
			t.Fatal(err)
		}
		if _, err := em.In("r1").SocketsLeave("matching"); err != nil {
			t.Fatal(err)
		}
		if _, err := em.In(c0.Id()).SocketsLeave("single"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "leaves", func() bool {
			return !c0.inRoom("all") && !c1.inRoom("all") && !c1.inRoom("matching") && !c0.inRoom("single")
		})
		if !c1.inRoom("r1") {
			t.Fatal("c1 left a room it was not asked to leave")
		}
	})
	t.Run("serverSideEmit", func(t *testing.T) {
		if _, err := em.ServerSideEmit("sse", "hello", 1, []byte{9}); err != nil {
			t.Fatal(err)
		}
		for i, srv := range servers {
			select {
			case args := <-srv.sse:
				if len(args) != 3 || args[0] != "hello" || !sameValue(args[1], 1) || !sameValue(args[2], []byte{9}) {
					t.Fatalf("server %d got %#v", i, args)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("server %d got no serverSideEmit", i)
			}
		}
	})
	t.Run("emitter never counted", func(t *testing.T) {
		for i, srv := range servers {
			if n := srv.io.Of("/", nil).Adapter().ServerCount(); n != 2 {
				t.Fatalf("server %d counts %d servers after the emitter wrote, want 2", i, n)
			}
		}
	})
	t.Run("disconnectSockets", func(t *testing.T) {
		if _, err := em.In("r1").DisconnectSockets(false); err != nil {
			t.Fatal(err)
		}
		c1.expect(t, "disconnect")
		if _, err := em.DisconnectSockets(true); err != nil {
			t.Fatal(err)
		}
		c0.expect(t, "disconnect")
		if _, err := em.Of(negNsp).DisconnectSockets(true); err != nil {
			t.Fatal(err)
		}
		c2.expect(t, "disconnect")
	})
}

// sameValue compares a value a client received with the one sent: numbers by value, binary by bytes, maps and
// slices element by element.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case int:
		return siotest.Number(got) == float64(w)
	case []byte:
		return reflect.DeepEqual(siotest.Bytes(got), w)
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if !sameValue(g[k], v) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// With StreamsOnly, ServerCount reads the newest entries first: a server heard from just now is counted however
// many entries came before (read oldest first, 100,000 entries in, it was not), and when the entries read cover
// less than HeartbeatInterval the count says it may be incomplete (it did not).
func TestStreamsOnlyServerCountUnderLoad(t *testing.T) {
	s := setups[0]
	opts := uniqueOptions(emitter.Options{StreamsOnly: true})
	em := s.newEmitter(t, opts)
	rc := s.goRedis(t)
	ctx := t.Context()
	hb := func(uid string) {
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: em.Stream(), Values: []any{"uid", uid, "nsp", "/", "type", "10"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hb("early") // a server heard from at the start of the window, then silent
	const filler = 120_000
	for i := 0; i < filler; i += 5000 {
		pipe := rc.Pipeline()
		for range 5000 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: em.Stream(), Values: []any{"uid", "emitter", "nsp", "/", "type", "3", "data", "{}"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hb("late") // a server heard from just now
	n, err := em.ServerCount()
	if !errors.Is(err, emitter.ErrIncompleteCount) {
		t.Fatalf("ServerCount = %d, %v; want ErrIncompleteCount (%d entries written just now)", n, err, filler)
	}
	if n != 1 {
		t.Fatalf("ServerCount = %d, want 1: the server heard from last", n)
	}
	// Once the heartbeat interval is covered, the count is complete.
	em2 := s.newEmitter(t, emitter.Options{StreamsOnly: true, StreamName: opts.StreamName, HeartbeatInterval: time.Millisecond})
	if n, err := em2.ServerCount(); err != nil || n != 1 {
		t.Fatalf("with a 1ms HeartbeatInterval: ServerCount = %d, %v; want 1, nil", n, err)
	}
}
