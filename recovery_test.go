package redisstreams

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Connection state recovery (Node's suite R1-R4, wire-protocol.md 2.3, and the gaps Node leaves), on standalone
// and cluster, with both client families.
func TestRecovery(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "cluster", "rueidis-standalone", "rueidis-cluster", "standalone-streamsonly", "standalone-wstransport") {
		t.Run(cfg.name, func(t *testing.T) {
			requireRedis(t)
			for _, tc := range recoveryCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, cfg) })
			}
		})
	}
}

var recoveryCases = []struct {
	name string
	run  func(*testing.T, config)
}{
	{"R1_restore_session", testRestoreSession},
	{"R2_missed_packets", testRestoreMissedPackets},
	{"R3_unknown_session", testRestoreUnknownSession},
	{"R4_invalid_offset", testRestoreInvalidOffset},
	{"same_offset_everywhere", testSameOffsetEverywhere},
	{"restore_on_other_server", testRestoreOnOtherServer},
	{"volatile_and_ack_not_replayed", testVolatileAndAckNotReplayed},
	{"session_expires", testSessionExpires},
	{"trimmed_offset", testTrimmedOffset},
	{"continuous_emits_during_reconnects", testContinuousEmitsDuringReconnects},
}

// offsetOf returns the stream offset a recovery-enabled server appends to an event.
func offsetOf(t testing.TB, args []any) string {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("event without arguments")
	}
	s, ok := args[len(args)-1].(string)
	if !ok || !wire.IsStreamID(s) {
		t.Fatalf("last argument %#v is not an offset", args[len(args)-1])
	}
	return s
}

// drop cuts a client's connection the way a network failure would, and returns its private session id once the
// server has noticed (and persisted the session).
func drop(t *testing.T, cfg config, n *node, c *testClient) string {
	t.Helper()
	sid := c.server.Id()
	c.Io().Engine().Close()
	waitFor(t, "the server to notice the drop", func() bool { return !c.server.Connected() })
	rc := cfg.newClient(t)
	prefix := n.adapter.opts.SessionKeyPrefix
	var pid string
	waitFor(t, "persisted session", func() bool {
		pid = findSession(t, rc, prefix, sid)
		return pid != ""
	})
	return pid
}

func findSession(t testing.TB, rc redis.UniversalClient, prefix string, sid socket.SocketId) string {
	for _, k := range sessionKeys(t, rc, prefix) {
		raw, err := rc.Get(t.Context(), k).Result()
		if err != nil {
			continue
		}
		if s, err := wire.DecodeSession(raw); err == nil && s.Sid == string(sid) {
			return strings.TrimPrefix(k, prefix)
		}
	}
	return ""
}

// sessionKeys returns the keys that start with prefix, on every master.
func sessionKeys(t testing.TB, rc redis.UniversalClient, prefix string) []string {
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	switch c := rc.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(t.Context(), scan)
	case *redis.Client:
		_ = scan(t.Context(), c)
	}
	return keys
}

// reconnect opens a new client with the previous session's pid and offset, as socket.io-client does.
func reconnect(t *testing.T, n *node, pid, offset string, events ...string) *testClient {
	t.Helper()
	return n.connect(t, clientOpts{auth: map[string]any{"pid": pid, "offset": offset}}, events...)
}

func recoveryCluster(t *testing.T, cfg config, co clusterOpts) []*node {
	co.recovery = true
	return startCluster(t, cfg, co)
}

func testRestoreSession(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 1})
	c := nodes[0].connect(t, clientOpts{}, "init")
	c.server.Join("room1")
	c.server.SetData(map[string]any{"user": 42})
	oldID := c.server.Id()
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	c2 := reconnect(t, nodes[0], pid, offset)
	if !c2.server.Recovered() || c2.server.Id() != oldID || c2.Id() != string(oldID) {
		t.Fatalf("recovered=%v id %s, want %s", c2.server.Recovered(), c2.server.Id(), oldID)
	}
	if !rooms(c2.server)["room1"] {
		t.Fatalf("rooms not restored: %s", fmtRooms(c2.server))
	}
	if d, ok := c2.server.Data().(map[string]any); !ok || toFloat(d["user"]) != 42 {
		t.Fatalf("data %#v", c2.server.Data())
	}
}

func testRestoreMissedPackets(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 2, namespaces: []string{"/foo"}})
	c := nodes[0].connect(t, clientOpts{}, "init", "test")
	server := c.server
	server.Join("room1")
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)

	_ = server.Emit("test", 1) // to the disconnected socket: stored, replayed
	nodes[1].io.Emit("test", 2)
	nodes[1].io.To("room1").Emit("test", 3)
	nodes[0].io.To("room2").Emit("test", 4)
	nodes[1].io.Except("room1").Emit("test", 5)
	nodes[0].io.Of("/foo", nil).Emit("test", 6)

	c2 := reconnect(t, nodes[0], pid, offset, "test")
	if !c2.server.Recovered() {
		t.Fatal("not recovered")
	}
	offsets := map[string]bool{offset: true}
	for want := 1; want <= 3; want++ {
		args := c2.expect(t, "test")
		if toFloat(args[0]) != float64(want) {
			t.Fatalf("got %v, want %d", args, want)
		}
		offsets[offsetOf(t, args)] = true
	}
	if len(offsets) != 4 {
		t.Fatalf("offsets %v: want 4 distinct", offsets)
	}
	nodes[1].io.Emit("test", "marker")
	if args := c2.expect(t, "test"); args[0] != "marker" {
		t.Fatalf("extra packet %v", args)
	}
}

func testRestoreUnknownSession(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 1})
	c := nodes[0].connect(t, clientOpts{}, "init")
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	c2 := reconnect(t, nodes[0], "abc", offset)
	if c2.server.Recovered() {
		t.Fatal("recovered an unknown session")
	}
}

func testRestoreInvalidOffset(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 1})
	c := nodes[0].connect(t, clientOpts{}, "init")
	nodes[0].io.Emit("init")
	offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	for _, bad := range []string{"abc", "1-", "-1", "1-1-1", "", "99999999999999999999-0"} {
		c2 := reconnect(t, nodes[0], pid, bad)
		if c2.server.Recovered() {
			t.Fatalf("recovered with offset %q", bad)
		}
	}
	// A malformed offset does not consume the session: the right offset still works.
}

// The emitting server and every receiving server append the same offset.
func testSameOffsetEverywhere(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{})
	var clients []*testClient
	for _, n := range nodes {
		clients = append(clients, n.connect(t, clientOpts{}, "test"))
	}
	nodes[1].io.Emit("test", "x")
	var offsets []string
	for _, c := range clients {
		offsets = append(offsets, offsetOf(t, c.expect(t, "test")))
	}
	if offsets[0] != offsets[1] || offsets[1] != offsets[2] {
		t.Fatalf("offsets differ: %v", offsets)
	}
	// socket.emit to one socket carries an offset too (it goes through the stream).
	_ = clients[2].server.Emit("test", "private")
	if args := clients[2].expect(t, "test"); args[0] != "private" || offsetOf(t, args) == offsets[0] {
		t.Fatalf("private emit %v", args)
	}
}

func testRestoreOnOtherServer(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{})
	c := nodes[0].connect(t, clientOpts{}, "init", "test")
	oldID := c.server.Id()
	c.server.Join("room1")
	nodes[2].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	nodes[2].io.To("room1").Emit("test", "missed")
	c2 := reconnect(t, nodes[1], pid, offset, "test")
	if !c2.server.Recovered() || c2.server.Id() != oldID {
		t.Fatalf("recovered=%v id=%s", c2.server.Recovered(), c2.server.Id())
	}
	if args := c2.expect(t, "test"); args[0] != "missed" {
		t.Fatalf("got %v", args)
	}
	// Rooms are restored on the new server: room broadcasts reach it there.
	nodes[0].io.To("room1").Emit("test", "after")
	if args := c2.expect(t, "test"); args[0] != "after" {
		t.Fatalf("got %v", args)
	}
}

func testVolatileAndAckNotReplayed(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 2})
	c := nodes[0].connect(t, clientOpts{}, "init", "test")
	server := c.server
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	nodes[1].io.Volatile().Emit("test", "volatile")
	_ = server.Timeout(time.Second).Emit("test", "with-ack", func([]any, error) {})
	nodes[1].io.Emit("test", "normal")
	c2 := reconnect(t, nodes[0], pid, offset, "test")
	if args := c2.expect(t, "test"); args[0] != "normal" {
		t.Fatalf("replayed %v", args)
	}
}

func testSessionExpires(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 1, recoveryDuration: 500 * time.Millisecond})
	c := nodes[0].connect(t, clientOpts{}, "init")
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	rc := cfg.newClient(t)
	key := nodes[0].adapter.opts.SessionKeyPrefix + pid
	if ttl := rc.PTTL(t.Context(), key).Val(); ttl <= 0 || ttl > 500*time.Millisecond {
		t.Fatalf("session TTL %v, want (0, 500ms]", ttl)
	}
	waitFor(t, "session expiry", func() bool { return rc.Exists(t.Context(), key).Val() == 0 })
	if c2 := reconnect(t, nodes[0], pid, offset); c2.server.Recovered() {
		t.Fatal("recovered an expired session")
	}
}

// An offset trimmed out of the stream gives a fresh session, and leaves the session key alone (Node deletes it).
func testTrimmedOffset(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 1})
	c := nodes[0].connect(t, clientOpts{}, "init")
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	rc := cfg.newClient(t)
	n := nodes[0].nsp(t, "/")
	nodes[0].io.Emit("later")
	if err := rc.XTrimMaxLen(t.Context(), n.stream, 1).Err(); err != nil {
		t.Fatal(err)
	}
	if c2 := reconnect(t, nodes[0], pid, offset); c2.server.Recovered() {
		t.Fatal("recovered from a trimmed offset")
	}
	if rc.Exists(t.Context(), nodes[0].adapter.opts.SessionKeyPrefix+pid).Val() != 1 {
		t.Fatal("session consumed by a failed restore")
	}
}

// A client that keeps dropping and reconnecting, to its server or another one, while another server broadcasts
// without pause, receives every broadcast exactly once and in order. This covers the window Node leaves open
// between the restore's scan and the socket being reachable.
func testContinuousEmitsDuringReconnects(t *testing.T, cfg config) {
	nodes := recoveryCluster(t, cfg, clusterOpts{})
	c := nodes[0].connect(t, clientOpts{}, "seq")
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); !stop.Load(); i++ {
			nodes[2].io.Emit("seq", i)
			sent.Store(i)
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let the reconnects interleave with the emits
			}
		}
	}()
	var got []int64
	var lastOffset string
	recv := func(c *testClient, until func() bool) {
		for !until() {
			e, ok := c.next(10 * time.Second)
			if !ok {
				t.Fatalf("stalled after %d events", len(got))
			}
			if e.name != "seq" {
				continue
			}
			got = append(got, int64(toFloat(e.args[0])))
			lastOffset = offsetOf(t, e.args)
		}
	}
	recv(c, func() bool { return len(got) >= 20 })
	for round := 0; round < 6; round++ {
		target := nodes[round%2] // back to its server, then to another one
		pid := drop(t, cfg, nodes[(round+1)%2], c)
		c = reconnect(t, target, pid, lastOffset, "seq")
		if !c.server.Recovered() {
			t.Fatalf("round %d: not recovered", round)
		}
		n := len(got)
		recv(c, func() bool { return len(got) >= n+20 })
	}
	stop.Store(true)
	<-done
	last := sent.Load()
	recv(c, func() bool { return got[len(got)-1] >= last })
	first := got[0]
	for i, v := range got {
		if v != first+int64(i) {
			t.Fatalf("sequence broken at index %d: ...%v... (sent %d)", i, got[max(0, i-3):min(len(got), i+3)], last)
		}
	}
	if !slices.IsSorted(got) {
		t.Fatal("out of order")
	}
	t.Logf("%d broadcasts received in order across 6 reconnects", len(got))
}

// 1,000 missed packets among 10,000 stream entries: the right set, in stream order, each with its own offset.
func TestRecoveryLargeGap(t *testing.T) {
	for _, cfg := range configs[:2] {
		t.Run(cfg.name, func(t *testing.T) {
			nodes := recoveryCluster(t, cfg, clusterOpts{adapter: func(o *Options) { o.MaxLen = 50_000 }})
			c := nodes[0].connect(t, clientOpts{}, "init", "hit")
			c.server.Join("mine")
			nodes[0].io.Emit("init")
			offset := offsetOf(t, c.expect(t, "init"))
			pid := drop(t, cfg, nodes[0], c)

			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 1250 {
						n := nodes[1+(g%2)].io
						switch seq := g*1250 + i; {
						case seq%10 == 0:
							n.To("mine").Emit("hit", seq)
						case seq%2 == 0:
							n.To("other").Emit("miss", seq)
						default:
							n.Except("mine").Emit("miss", seq)
						}
					}
				})
			}
			wg.Wait()
			c2 := reconnect(t, nodes[0], pid, offset, "hit")
			seen := map[int]bool{}
			var last string
			for range 1000 {
				args := c2.expect(t, "hit")
				o := offsetOf(t, args)
				if last != "" && wire.CompareIDs(o, last) <= 0 {
					t.Fatalf("offset %s after %s", o, last)
				}
				last = o
				seen[int(toFloat(args[0]))] = true
			}
			if len(seen) != 1000 {
				t.Fatalf("%d distinct packets, want 1000", len(seen))
			}
			nodes[1].io.Emit("hit", "marker")
			if args := c2.expect(t, "hit"); args[0] != "marker" {
				t.Fatalf("extra packet %v", args)
			}
		})
	}
}

// On a Redis Cluster the session key and the stream live on different masters (hash tags make it certain).
func TestRecoveryClusterKeysOnDifferentNodes(t *testing.T) {
	cfg := configs[1]
	rc := cfg.newClient(t).(*redis.ClusterClient)
	slots, err := rc.ClusterSlots(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	masterOf := func(key string) string {
		slot := int(rc.ClusterKeySlot(t.Context(), key).Val())
		for _, s := range slots {
			if slot >= s.Start && slot <= s.End {
				return s.Nodes[0].Addr
			}
		}
		t.Fatalf("no node for slot %d", slot)
		return ""
	}
	streamTag, sessionTag := "s0", ""
	for i := 1; sessionTag == ""; i++ {
		if tag := fmt.Sprintf("s%d", i); masterOf("{"+tag+"}") != masterOf("{"+streamTag+"}") {
			sessionTag = tag
		}
	}
	prefix := randomID()
	nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) {
		o.StreamName = "{" + streamTag + "}" + prefix
		o.SessionKeyPrefix = "{" + sessionTag + "}" + prefix + ":"
	}})
	c := nodes[0].connect(t, clientOpts{}, "init", "test")
	nodes[0].io.Emit("init")
	offset := offsetOf(t, c.expect(t, "init"))
	pid := drop(t, cfg, nodes[0], c)
	n := nodes[0].nsp(t, "/")
	if masterOf(n.stream) == masterOf(n.opts().SessionKeyPrefix+pid) {
		t.Fatal("stream and session on the same master")
	}
	nodes[1].io.Emit("test", "missed")
	c2 := reconnect(t, nodes[1], pid, offset, "test")
	if !c2.server.Recovered() {
		t.Fatal("not recovered")
	}
	if args := c2.expect(t, "test"); args[0] != "missed" {
		t.Fatalf("got %v", args)
	}
}

func TestRoomFilterNeverMissesAMatch(t *testing.T) {
	f := newRoomFilter([]string{"sid1", "mine"})
	must := []string{
		`{"packet":{"type":2,"data":["x"]},"opts":{"rooms":[],"except":[],"flags":{}}}`,
		`{"packet":{"type":2,"data":["x",{"rooms":["a"]}]},"opts":{"rooms":[],"except":[],"flags":{}}}`,
		`{"opts":{"except":[],"flags":{},"rooms":["other","mine"]},"packet":{"data":["x"],"type":2}}`,
		`{"opts":{"rooms":["sid1"]}}`,
		`gqZwYWNrZXSCpHR5cGUC`, // msgpack: always decoded
	}
	for _, d := range must {
		if !f.mayMatch(d) {
			t.Errorf("filtered out %s", d)
		}
	}
	if f.mayMatch(`{"packet":{"type":2,"data":["x"]},"opts":{"rooms":["other"],"except":[],"flags":{}}}`) {
		t.Error("kept a broadcast to another room")
	}
	if g := newRoomFilter([]string{"line\u2028sep"}); !g.mayMatch(`{"opts":{"rooms":["zzz"]}}`) {
		t.Error("filter active for a room name that encoders escape differently")
	}
}
