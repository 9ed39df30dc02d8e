package redisstreams

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Malformed stream entries and PUB/SUB payloads, and broadcasts that are not events, are skipped and counted; the
// client stays connected, and the entries after them still arrive.
func TestMalformedInputIsSkipped(t *testing.T) {
	cfg := configs[0]
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2})
	c := nodes[1].connect(t, clientOpts{}, "test")
	rc := cfg.newClient(t)
	ctx := t.Context()
	n := nodes[0].nsp(t, "/")
	msgpackDeep := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x91", 5000) + "\xc0"))
	bad := []map[string]any{
		{"uid": "x", "type": "3", "data": "{}"}, // no nsp
		{"uid": "x", "nsp": "/", "type": "abc", "data": "{}"},
		{"uid": "x", "nsp": "/", "type": "3", "data": "{not json"},
		{"uid": "x", "nsp": "/", "type": "3", "data": "%%%"},
		{"uid": "x", "nsp": "/", "type": "3", "data": msgpackDeep},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":"str"},"opts":{}}`},
		{"uid": "x", "nsp": "/", "type": "4", "data": `{"opts":{"rooms":"abc"},"rooms":[1]}`},
		{"uid": "x", "nsp": "/", "type": "77", "data": `{}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": "{" + strings.Repeat("x", 4<<20)},
		// Well-formed broadcasts that must not reach clients: they would close official clients ("parse error")
		// or show them forged connection events.
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":77,"data":["x"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":1,"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":4,"data":["x"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["disconnect"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":[42],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{"uid": "x", "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["x"],"nsp":"/admin"},"opts":{"rooms":[],"except":[],"flags":{}}}`},
	}
	for _, fields := range bad {
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: n.stream, Values: fields}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, payload := range []string{"", "\xc1", "\x93\x01\x02", "\x84\xa4type\xa1x\xa4data\x80\xa3uid\xa1x\xa3nsp\xa1/",
		"\x84\xa4type\x07\xa4data\x80\xa3uid\xa1x\xa3nsp\xa1/"} {
		if err := rc.Publish(ctx, n.publicChannel, payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	nodes[0].io.Emit("test", "after")
	if args := c.expect(t, "test"); args[0] != "after" {
		t.Fatalf("got %v", args)
	}
	// The PUB/SUB garbage went to both nodes; the stream garbage was read by node 1 (node 0 reads it too).
	want := uint64(len(bad) + 5)
	waitFor(t, "invalid counter", func() bool { return nodes[1].adapter.Stats().Invalid >= want })
	if got := nodes[1].adapter.Stats().Invalid; got != want {
		t.Fatalf("invalid = %d, want %d", got, want)
	}
}

// The readers and the subscriber survive a Redis restart, with either client family: after it, broadcasts and
// requests work again without any action from the application.
func TestRedisRestart(t *testing.T) {
	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) { testRedisRestart(t, config{family: family}) })
	}
}

func testRedisRestart(t *testing.T, cfg config) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	var adapters []*Adapter
	for range 2 {
		a, _, err := cfg.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix, ChannelPrefix: prefix,
			BlockTime: 200 * time.Millisecond, RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
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
	// Both servers resubscribe on their own; emits made once the cluster is whole again arrive.
	waitFor(t, "resubscribed", func() bool { return nodes[0].nsp(t, "/").ServerCount() == 2 })
	deadline := time.Now().Add(15 * time.Second)
	for {
		nodes[0].io.Emit("test", "after")
		select {
		case e := <-c.events:
			if e.name == "test" && e.args[0] == "before" {
				// A write whose reply was lost with the connection is retried, so an XADD that Redis had applied
				// just before the crash can be applied again: delivery is at least once across a crash.
				t.Logf("duplicate of a write retried across the restart: %v", e.args)
				continue
			}
			if e.name != "test" || e.args[0] != "after" {
				t.Fatalf("got %v", e)
			}
			// The only client is on node 1: finding it from node 0 needs the request path to work again.
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

// Close is prompt even with a long BlockTime, idempotent, stops every goroutine of the adapter and of its Redis
// layer, and leaves the caller's client open.
func TestCloseStopsEverything(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "cluster", "rueidis-standalone", "rueidis-cluster-sharded") {
		t.Run(cfg.name, func(t *testing.T) {
			requireRedis(t)
			addrs := []string{standalone.Addr()}
			if cfg.cluster {
				addrs = cluster.Addrs()
			}
			opts := cfg.opts
			opts.StreamName, opts.ChannelPrefix, opts.BlockTime = "t"+randomID(), "t"+randomID(), time.Hour
			a, ping, err := cfg.newAdapterOn(t, addrs, opts)
			if err != nil {
				t.Fatal(err)
			}
			nodes := startClusterWithAdapters(t, []*Adapter{a}, clusterOpts{namespaces: []string{"/other"}})
			nodes[0].io.Emit("x")
			if ours := adapterGoroutines(); ours == 0 {
				t.Fatal("no adapter goroutines while running: the leak check below would prove nothing")
			}
			// With a one-hour BlockTime, a Close that waited for the blocked XREAD would end with the deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(t.Context()); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			waitFor(t, "adapter goroutines to end", func() bool { return adapterGoroutines() == 0 })
			if err := ping(context.Background()); err != nil {
				t.Fatalf("caller's client closed: %v", err)
			}
		})
	}
}

// adapterGoroutines counts live goroutines running the adapter's code or its Redis layer (tests excluded).
func adapterGoroutines() int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Contains(g, "socketio-go/redisstreams.") || strings.Contains(g, "socketio-go/redisstreams/internal/rdb.")
		if ours && !strings.Contains(g, "_test.go") && !strings.Contains(g, "testing.tRunner") {
			n++
		}
	}
	return n
}

func TestOptionsValidation(t *testing.T) {
	requireRedis(t)
	rc := configs[0].newClient(t)
	bad := []struct {
		opts  Options
		field string
	}{
		{Options{StreamCount: -1}, "StreamCount"},
		{Options{ChannelPrefix: "a*"}, "ChannelPrefix"},
		{Options{ReadCount: -5}, "ReadCount"},
		{Options{BlockTime: -time.Second}, "BlockTime"},
		{Options{BlockTime: time.Microsecond}, "BlockTime"},
		{Options{RequestsTimeout: -1}, "RequestsTimeout"},
		{Options{MaxBatch: -1}, "MaxBatch"},
	}
	for _, b := range bad {
		if _, err := New(t.Context(), goredisbackend.New(rc), b.opts); err == nil || !strings.Contains(err.Error(), "Options."+b.field) {
			t.Errorf("%+v: err = %v, want one naming %s", b.opts, err, b.field)
		}
	}
	a, err := New(t.Context(), goredisbackend.New(rc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(t.Context())
	o := a.opts
	if o.StreamName != "socket.io" || o.StreamCount != 1 || o.ChannelPrefix != "socket.io" || o.MaxLen != 10000 ||
		o.ReadCount != 100 || o.BlockTime != 5*time.Second || o.SessionKeyPrefix != "sio:session:" ||
		o.RequestsTimeout != 5*time.Second || o.UseShardedPubSub || o.OnlyPlaintext {
		t.Fatalf("defaults %+v", o)
	}
	if _, err := New(t.Context(), goredisbackend.New(redis.NewRing(&redis.RingOptions{})), Options{}); err == nil {
		t.Fatal("a Ring client was accepted")
	}
}

// With StreamCount > 1, a namespace is written to the stream Node picks for it, negative indexes included.
func TestStreamCountUsesNodeStreamNames(t *testing.T) {
	cfg := configs[2]
	nodes := startCluster(t, cfg, clusterOpts{namespaces: []string{"/namespace-1", "/namespace-2"}})
	for _, nsp := range []string{"/namespace-1", "/namespace-2"} {
		n := nodes[0].nsp(t, nsp)
		if want := wire.StreamName(n.opts().StreamName, 5, nsp); n.stream != want || !strings.Contains(n.stream, "--") {
			t.Fatalf("%s written to %s, want %s (negative index)", nsp, n.stream, want)
		}
		c := nodes[1].connect(t, clientOpts{nsp: nsp}, "test")
		nodes[0].io.Of(nsp, nil).Emit("test", nsp)
		if args := c.expect(t, "test"); args[0] != nsp {
			t.Fatalf("got %v", args)
		}
	}
}

// An application ack callback that blocks does not hold up the adapter's other requests.
func TestSlowAckCallbackDoesNotStallRequests(t *testing.T) {
	cfg := configs[0]
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) { o.RequestsTimeout = time.Minute }})
	c := nodes[1].connect(t, clientOpts{})
	// The client answers late, so that the broadcast completes on the adapter's response path (an answer that
	// arrives before Emit returns completes it inside Emit, on the caller's goroutine).
	_ = c.On("test", func(args ...any) {
		if ack, ok := args[len(args)-1].(socket.Ack); ok {
			time.AfterFunc(200*time.Millisecond, func() { ack([]any{1}, nil) })
		}
	})
	release := make(chan struct{})
	defer close(release)
	called := make(chan struct{})
	go nodes[0].io.Timeout(5 * time.Second).EmitWithAck("test")(func([]any, error) {
		close(called)
		<-release // the application is slow
	})
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("ack callback never called")
	}
	// A stalled fetchSockets would end with RequestsTimeout (a minute) and ErrTimeout; the wait is half of it.
	var sockets []*socket.RemoteSocket
	var err error
	done := make(chan struct{})
	go nodes[0].io.FetchSockets()(func(s []*socket.RemoteSocket, e error) { sockets, err = s, e; close(done) })
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("fetchSockets stalled while an ack callback was blocked")
	}
	if err != nil || len(sockets) != 1 {
		t.Fatalf("fetched %d sockets, %v", len(sockets), err)
	}
}

// A server that falls behind by more than MaxLen entries loses them to trimming: it says so, with the number
// lost (log and Stats.Lost), while it is still behind, instead of losing them silently as Node does. Here node 1's
// delivery is held while 2,000 entries go into a stream trimmed to about 100, and every server reads one entry per
// XREAD.
func TestTrimmedBeforeReadIsReported(t *testing.T) {
	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) {
			adapters := standaloneAdapters(t, family, 2, Options{MaxLen: 10, ReadCount: 1, BlockTime: 200 * time.Millisecond})
			gate := make(chan struct{})
			adapters[1].beforeDispatch = func() { <-gate } // node 1's local delivery is stuck until the gate opens
			nodes := startClusterWithAdapters(t, adapters)
			c := nodes[1].connect(t, clientOpts{}, "test")
			rc := configs[0].newClient(t)
			for i := range 2000 {
				nodes[0].io.Emit("test", i)
			}
			stream := nodes[0].nsp(t, "/").stream
			waitFor(t, "trimming", func() bool {
				n, _ := rc.XLen(t.Context(), stream).Result()
				return nodes[0].adapter.Stats().Published >= 2000 && n < 1000
			})
			// Reported while node 1 is still held up, not once it catches up; and the lag shows.
			waitFor(t, "loss reported while behind", func() bool { return nodes[1].adapter.Stats().Lost > 0 })
			if st := nodes[1].adapter.Stats(); len(st.Streams) != 1 || st.Streams[0].LagEntries <= 0 || st.Streams[0].LagSeconds <= 0 {
				t.Errorf("lag gauges while behind: %+v", st.Streams)
			}
			close(gate)
			var received int
			// Every entry was either delivered to node 1's client or counted as lost, once caught up.
			waitFor(t, "caught up", func() bool {
				for len(c.events) > 0 {
					<-c.events
					received++
				}
				return int(nodes[1].adapter.Stats().Lost)+received == 2000
			})
		})
	}
}

// TestDataSetLostUnnoticedByReadsIsCounted: a Redis client that reconnects by itself (or a data set replaced under
// a reader whose connection never broke) lets the reader read the new data set before any check notices it. The
// gap that a writer's numbering shows then is what vanished with the old data set, and must be counted when the
// check finds the new data set. Here the loss is made by hand: a transaction deletes the stream and its epoch key
// and adds the writer's entry 5 while entries 3 and 4 were never read.
func TestDataSetLostUnnoticedByReadsIsCounted(t *testing.T) {
	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) {
			adapters := standaloneAdapters(t, family, 2, Options{BlockTime: 200 * time.Millisecond})
			nodes := startClusterWithAdapters(t, adapters)
			c := nodes[1].connect(t, clientOpts{}, "test")
			rc := configs[0].newClient(t)
			ctx := t.Context()
			stream, entry := handmadeWriter(t, nodes, c, rc)
			var last string
			for n := 1; n <= 2; n++ {
				id, err := rc.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: entry(n)}).Result()
				if err != nil {
					t.Fatal(err)
				}
				last = id
				c.expect(t, "test")
			}
			before := nodes[1].adapter.Stats()
			// Entries 3 and 4 vanish with the data set; 5 is the first of the new one. Its ID is in a later
			// millisecond than entry 2's, as in any real data set loss (a restart or a failover takes longer than
			// that): a new stream made within the same millisecond would reuse entry 2's ID (see docs/delivery.md).
			ms, _, _ := strings.Cut(last, "-")
			next, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, stream, epochKey(stream))
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-0", max(next+1, time.Now().UnixMilli())), Values: entry(5)})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			c.expect(t, "test")
			waitFor(t, "the vanished entries counted", func() bool { return nodes[1].adapter.Stats().Lost > before.Lost })
			after := nodes[1].adapter.Stats()
			if lost := after.Lost - before.Lost; lost != 2 {
				t.Errorf("Lost went up by %d, want 2 (entries 3 and 4 of the hand-made writer)", lost)
			}
			if after.Duplicates != before.Duplicates {
				t.Errorf("Duplicates went from %d to %d", before.Duplicates, after.Duplicates)
			}
		})
	}
}

// handmadeWriter makes node 0 emit one broadcast, which c (on node 1) receives, and returns node 0's stream and a
// maker of entries like it from another Go writer, "handmade", numbered n: tests add them by hand to shape the
// stream as they need.
func handmadeWriter(t *testing.T, nodes []*node, c *testClient, rc redis.UniversalClient) (string, func(n int) map[string]any) {
	t.Helper()
	stream := nodes[0].nsp(t, "/").stream
	nodes[0].io.Emit("test", "model")
	c.expect(t, "test")
	msgs, err := rc.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("model entry: %v %v", msgs, err)
	}
	return stream, func(n int) map[string]any {
		v := maps.Clone(msgs[0].Values)
		v[wire.SeqField] = wire.FormatSeq("handmade", uint64(n))
		return v
	}
}

// standaloneAdapters returns n adapters of family on the shared standalone Redis, with opts and their own stream
// and channel names.
func standaloneAdapters(t *testing.T, family string, n int, opts Options) []*Adapter {
	t.Helper()
	requireRedis(t)
	prefix := "t" + randomID()
	opts.StreamName, opts.ChannelPrefix, opts.Logger = prefix, prefix, testLogger(t)
	var adapters []*Adapter
	for range n {
		a, _, err := config{family: family}.newAdapterOn(t, []string{standalone.Addr()}, opts)
		if err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, a)
	}
	return adapters
}

// TestTrimmedWhileReadingIsCounted: a reader that keeps reading while MAXLEN trims the entries just ahead of it
// jumps over them (XREAD returns the oldest entries left after its last ID). It is never behind the stream's first
// entry at a check, nor caught up while traffic goes on, yet every entry it jumped over must be counted lost:
// each one is received or counted, exactly.
func TestTrimmedWhileReadingIsCounted(t *testing.T) {
	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) {
			adapters := standaloneAdapters(t, family, 2, Options{MaxLen: 50, ReadCount: 10, BlockTime: 200 * time.Millisecond})
			nodes := startClusterWithAdapters(t, adapters)
			c := dialCounter(t, nodes[1].url, "seq")
			const total = 20000
			for n := range total {
				nodes[0].io.Emit("seq", n)
			}
			receiver := nodes[1].adapter
			deadline := time.Now().Add(30 * time.Second)
			for {
				unique, _ := c.counts(total)
				if int64(unique)+int64(receiver.Stats().Lost) >= total {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d received, %d counted lost: %d lost silently; stats %+v", unique, total,
						receiver.Stats().Lost, total-int64(unique)-int64(receiver.Stats().Lost), receiver.Stats())
				}
				time.Sleep(20 * time.Millisecond)
			}
			unique, dups := c.counts(total)
			st := receiver.Stats()
			t.Logf("received %d of %d, counted lost %d", unique, total, st.Lost)
			if dups != 0 {
				t.Errorf("%d delivered twice", dups)
			}
			if st.Lost == 0 {
				t.Errorf("nothing trimmed before it was read: the test did not test anything")
			}
			if missing := total - int64(unique); missing != int64(st.Lost) {
				t.Errorf("%d missing, %d counted lost", missing, st.Lost)
			}
		})
	}
}

// TestJumpedOverEntriesCountedWhileBehind: entries trimmed just ahead of a reader are jumped over by its next XREAD,
// which leaves it inside the stream, not behind its first entry. Their loss must be counted at the next check
// while the reader is still behind, not only once it has caught up (under sustained load it may never). Here a
// transaction adds a hand-made writer's entries 1 to n and trims the stream to start at 3, while the reader waits
// after the model entry; its local delivery is held, so it reads 6 batches (one being delivered, 4 queued, one in
// hand) and stops with the rest unread. The reader then counts entries 1 and 2 from the head of the stream (near
// it), or from the tail (near the end). In the middle (more than 100 entries from both ends) it can count only what
// is certain, here nothing, and counts them as soon as it has caught up. Never more than 2.
func TestJumpedOverEntriesCountedWhileBehind(t *testing.T) {
	for _, tc := range []struct {
		name             string
		readCount, total int
		whileHeld        bool // counted while the reader is held up
	}{
		{"near the head", 1, 20, true},
		{"near the end", 30, 200, true},
		{"in the middle", 50, 500, false},
	} {
		for _, family := range []string{familyGoRedis, familyRueidis} {
			t.Run(tc.name+"/"+family, func(t *testing.T) {
				// A long XREAD BLOCK: what is counted once caught up must not wait for it.
				adapters := standaloneAdapters(t, family, 2, Options{ReadCount: int64(tc.readCount), BlockTime: time.Minute})
				var held atomic.Bool
				gate := make(chan struct{})
				adapters[1].beforeDispatch = func() {
					if held.Load() {
						<-gate
					}
				}
				nodes := startClusterWithAdapters(t, adapters)
				c := nodes[1].connect(t, clientOpts{}, "test")
				rc := configs[0].newClient(t)
				ctx := t.Context()
				stream, entry := handmadeWriter(t, nodes, c, rc)
				held.Store(true)
				released := false
				release := func() {
					if !released {
						released = true
						close(gate)
					}
				}
				defer release()
				receiver := nodes[1].adapter
				before := receiver.Stats()
				ids := make([]string, 0, tc.total)
				if _, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for n := 1; n <= tc.total; n++ {
						id := fmt.Sprintf("%d-%d", time.Now().UnixMilli()+1000, n)
						ids = append(ids, id)
						p.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: id, Values: entry(n)})
					}
					p.XTrimMinID(ctx, stream, ids[2]) // entries 1 and 2 (and the model) are gone before the reader gets there
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				lost := func() uint64 { return receiver.Stats().Lost - before.Lost }
				if tc.whileHeld {
					waitFor(t, "the jumped-over entries counted while the reader is held up", func() bool { return lost() > 0 })
				} else { // a check has run since: it found entries unread
					waitFor(t, "a check while the reader is held up", func() bool {
						st := receiver.Stats()
						return len(st.Streams) == 1 && st.Streams[0].LagEntries > 0
					})
				}
				st := receiver.Stats()
				if n := lost(); tc.whileHeld && n != 2 || n > 2 {
					t.Errorf("while held up, Lost went up by %d, want 2 at most (entries 1 and 2 of the hand-made writer)", n)
				}
				if len(st.Streams) != 1 || st.Streams[0].LastID == ids[len(ids)-1] {
					t.Fatalf("the reader was not held up inside the stream: %+v", st.Streams)
				}
				release()
				for range tc.total - 2 {
					c.expect(t, "test")
				}
				waitFor(t, "caught up, entries 1 and 2 counted", func() bool {
					s := receiver.Stats()
					return len(s.Streams) == 1 && s.Streams[0].LastID == ids[len(ids)-1] && s.Streams[0].LagEntries == 0 && lost() >= 2
				})
				if st := receiver.Stats(); st.Lost-before.Lost != 2 || st.Duplicates != before.Duplicates {
					t.Errorf("after catching up: Lost +%d (want 2), Duplicates %d -> %d", st.Lost-before.Lost, before.Duplicates, st.Duplicates)
				}
			})
		}
	}
}
