package redisstreams

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// A go-redis server and a rueidis server in one cluster: broadcasts both ways, fetchSockets, serverSideEmit with
// acknowledgements, and a session persisted by one and restored by the other.
func TestMixedClientFamilies(t *testing.T) {
	for _, pair := range [][2]string{
		{"standalone", "rueidis-standalone"},
		{"cluster", "rueidis-cluster"},
		{"cluster-sharded", "rueidis-cluster-sharded"},
	} {
		cfgs := configsNamed(pair[0], pair[1])
		t.Run(pair[0], func(t *testing.T) {
			requireRedis(t)
			// node 0: go-redis, node 1: rueidis
			nodes := startCluster(t, cfgs[0], clusterOpts{nodes: 2, recovery: true, mixed: cfgs})
			c0 := nodes[0].connect(t, clientOpts{}, "test")
			c1 := nodes[1].connect(t, clientOpts{}, "test")

			for i, n := range nodes {
				if got := n.nsp(t, "/").ServerCount(); got != 2 {
					t.Fatalf("node %d: server count %d", i, got)
				}
			}
			nodes[0].io.Emit("test", "from go-redis", []byte{1, 2})
			nodes[1].io.Emit("test", "from rueidis")
			for _, c := range []*testClient{c0, c1} {
				// Two servers' writes to the stream have no order between them.
				got := []string{c.expect(t, "test")[0].(string), c.expect(t, "test")[0].(string)}
				slices.Sort(got)
				if got[0] != "from go-redis" || got[1] != "from rueidis" {
					t.Fatalf("client %s: %v", c.Id(), got)
				}
			}
			nodes[1].io.To(socket.Room(c0.Id())).Emit("test", "to c0 only")
			if args := c0.expect(t, "test"); args[0] != "to c0 only" {
				t.Fatalf("got %v", args)
			}

			want := []string{c0.Id(), c1.Id()}
			slices.Sort(want)
			for i, n := range nodes {
				var got []string
				for _, s := range fetch(t, n.io) {
					got = append(got, string(s.Id()))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("node %d fetched %v, want %v", i, got, want)
				}
			}

			serverSideEvents(nodes, "hello", func(i int) any { return []any{"go-redis", "rueidis"}[i] })
			for i, n := range nodes {
				r := serverSideEmitWithAck(n.io, "hello")
				if r.err != nil || len(r.args) != 1 || r.args[0] != []string{"rueidis", "go-redis"}[i] {
					t.Fatalf("node %d: serverSideEmitWithAck: %v %v", i, r.args, r.err)
				}
			}

			// Persisted through go-redis, restored through rueidis, with the packet missed meanwhile.
			oldID := c0.server.Id()
			c0.server.Join("room1")
			nodes[1].io.To("room1").Emit("test", "init")
			offset := offsetOf(t, c0.expect(t, "test"))
			pid := drop(t, cfgs[0], nodes[0], c0)
			nodes[0].io.To("room1").Emit("test", "missed")
			c2 := reconnect(t, nodes[1], pid, offset, "test")
			if !c2.server.Recovered() || c2.server.Id() != oldID {
				t.Fatalf("recovered=%v id %s, want %s", c2.server.Recovered(), c2.server.Id(), oldID)
			}
			if args := c2.expect(t, "test"); args[0] != "missed" {
				t.Fatalf("got %v", args)
			}
		})
	}
}

// The readers and the subscriber of a rueidis adapter survive a Redis restart, as TestRedisRestart checks for
// go-redis.
func TestRueidisRedisRestart(t *testing.T) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	var adapters []*Adapter
	for range 2 {
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true, ForceSingleClient: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		a, err := NewRueidis(rc, Options{StreamName: prefix, ChannelPrefix: prefix, BlockTime: 200 * time.Millisecond,
			RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, a)
	}
	nodes := startClusterWithAdapters(t, adapters)
	c := nodes[1].connect(t, clientOpts{}, "test")
	nodes[0].io.Emit("test", "before")
	c.expect(t, "test")

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "read errors while Redis is down", func() bool { return nodes[1].adapter.Stats().ReadErrors > 0 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resubscribed", func() bool { return nodes[0].nsp(t, "/").ServerCount() == 2 })
	deadline := time.Now().Add(15 * time.Second)
	for {
		nodes[0].io.Emit("test", "after")
		select {
		case e := <-c.events:
			if e.name != "test" || e.args[0] != "after" {
				t.Fatalf("got %v", e)
			}
			if sockets := fetch(t, nodes[0].io); len(sockets) != 1 || string(sockets[0].Id()) != c.Id() {
				t.Fatalf("fetchSockets after restart: %d sockets", len(sockets))
			}
			return
		case <-time.After(500 * time.Millisecond):
			// An emit made while the write connection was still reconnecting fails (and is counted); try again.
			if time.Now().After(deadline) {
				t.Fatalf("no broadcast after restart; stats %+v", nodes[0].adapter.Stats())
			}
		}
	}
}

// Close is prompt with a 5s BlockTime, stops every goroutine of the adapter and of its rueidis connections'
// users, and leaves the caller's client open.
func TestRueidisCloseStopsEverything(t *testing.T) {
	for _, cfg := range configsNamed("rueidis-standalone", "rueidis-cluster-sharded") {
		t.Run(cfg.name, func(t *testing.T) {
			requireRedis(t)
			addrs := []string{standalone.Addr()}
			if cfg.cluster {
				addrs = cluster.Addrs()
			}
			rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true, ForceSingleClient: !cfg.cluster})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			opts := cfg.opts
			opts.StreamName, opts.ChannelPrefix, opts.BlockTime = "t"+randomID(), "t"+randomID(), 5*time.Second
			a, err := NewRueidis(rc, opts)
			if err != nil {
				t.Fatal(err)
			}
			nodes := startClusterWithAdapters(t, []*Adapter{a}, clusterOpts{namespaces: []string{"/other"}})
			nodes[0].io.Emit("x")
			time.Sleep(200 * time.Millisecond) // the readers are now in XREAD BLOCK 5000
			if ours := rueidisAdapterGoroutines(); ours == 0 {
				t.Fatal("no adapter goroutines while running: the leak check below would prove nothing")
			}
			start := time.Now()
			if err := a.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Close took %v with a 5s BlockTime", d)
			}
			t.Logf("Close took %v", time.Since(start))
			waitFor(t, "adapter goroutines to end", func() bool { return rueidisAdapterGoroutines() == 0 })
			if err := rc.Do(context.Background(), rc.B().Ping().Build()).Error(); err != nil {
				t.Fatalf("caller's client closed: %v", err)
			}
		})
	}
}

// rueidisAdapterGoroutines counts live goroutines running the adapter's code or its rdb layer (tests excluded).
func rueidisAdapterGoroutines() int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if (strings.Contains(g, "socketio-go/redisstreams.") || strings.Contains(g, "socketio-go/redisstreams/internal/rdb.")) &&
			!strings.Contains(g, "_test.go") && !strings.Contains(g, "testing.tRunner") {
			n++
		}
	}
	return n
}
