package rdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// Redis processes shared by the package's tests, started on first use.
var (
	shared struct {
		mu         sync.Mutex
		standalone *redistest.Server
		cluster    *redistest.Cluster
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.standalone != nil {
		_ = shared.standalone.Close()
	}
	if shared.cluster != nil {
		_ = shared.cluster.Close()
	}
	os.Exit(code)
}

// addrs returns the addresses of the shared standalone server or cluster, starting it if needed.
func addrs(t testing.TB, cluster bool) []string {
	t.Helper()
	redistest.Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var err error
	if cluster {
		if shared.cluster == nil {
			if shared.cluster, err = redistest.StartCluster(redistest.ClusterOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return shared.cluster.Addrs()
	}
	if shared.standalone == nil {
		if shared.standalone, err = redistest.StartServer(redistest.ServerOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return []string{shared.standalone.Addr()}
}

func newRueidisClient(t testing.TB, addrs []string, cluster bool) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true, ForceSingleClient: !cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newGoRedisClient(t testing.TB, addrs []string, cluster bool) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if cluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addrs[0]})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type setup struct {
	name             string
	cluster, sharded bool
}

var setups = []setup{{"standalone", false, false}, {"cluster", true, false}, {"cluster-sharded", true, true}}

func newRueidis(t testing.TB, s setup) rdb.Client {
	t.Helper()
	r, err := openRueidis(newRueidisClient(t, addrs(t, s.cluster), s.cluster), s.sharded)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func key(t testing.TB, what string) string {
	return fmt.Sprintf("rt:%s:%s:%d", t.Name(), what, time.Now().UnixNano())
}

// Close interrupts a blocking read, and the read never holds up the client's other commands.
func TestRueidisReaderCloseIsPrompt(t *testing.T) {
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) {
			r := newRueidis(t, s)
			stream := key(t, "stream")
			rd, err := r.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				entries []rdb.Entry
				err     error
			}
			done := make(chan result, 1)
			go func() {
				e, err := rd.Read(context.Background(), stream, "0-0", 10, time.Hour)
				done <- result{e, err}
			}()
			waitBlockedXRead(t, addrs(t, s.cluster), s.cluster) // the XREAD BLOCK is now waiting in Redis
			if _, err := r.LastID(t.Context(), stream); err != nil {
				t.Fatalf("command during the blocking read: %v", err)
			}
			select {
			case res := <-done:
				t.Fatalf("the blocking read ended before Close: %v, %v", res.entries, res.err)
			default: // LastID did not wait for it
			}
			if err := rd.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case res := <-done:
				if !errors.Is(res.err, rdb.ErrClosed) {
					t.Fatalf("read after Close: %v, %v", res.entries, res.err)
				}
			case <-time.After(30 * time.Second): // the read blocks for an hour: only Close ends it sooner
				t.Fatal("Read still blocked after Close")
			}
			if _, err := rd.Read(context.Background(), stream, "0-0", 10, time.Second); !errors.Is(err, rdb.ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		})
	}
}

// A caller's deadline and cancellation end a blocking read too, and entries written meanwhile are returned.
func TestRueidisReaderReads(t *testing.T) {
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) {
			r := newRueidis(t, s)
			stream := key(t, "stream")
			rd, _ := r.NewReader(nil)
			defer rd.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			start := time.Now()
			_, err := rd.Read(ctx, stream, "0-0", 10, 5*time.Second)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
				t.Fatalf("deadline: %v after %v", err, time.Since(start))
			}
			if e, err := rd.Read(t.Context(), stream, "0-0", 10, 50*time.Millisecond); err != nil || len(e) != 0 {
				t.Fatalf("empty read: %v %v", e, err)
			}
			go func() {
				time.Sleep(100 * time.Millisecond)
				r.Batch(context.Background(), []*rdb.Op{{Stream: stream, Fields: []string{"a", "1", "b", ""}}})
			}()
			e, err := rd.Read(t.Context(), stream, "0-0", 10, 5*time.Second)
			if err != nil || len(e) != 1 || e[0].Fields["a"] != "1" || e[0].Fields["b"] != "" || len(e[0].Fields) != 2 {
				t.Fatalf("read: %+v %v", e, err)
			}
		})
	}
}

// Batch fills every operation's ID or error in order, across cluster slots, mixing XADD and PUBLISH.
func TestRueidisBatch(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			r := newRueidis(t, s)
			ctx := t.Context()
			bad := key(t, "string")
			if err := r.Set(ctx, bad, "x", time.Minute); err != nil {
				t.Fatal(err)
			}
			var batch []*rdb.Op
			var streams []string
			for i := range 20 {
				streams = append(streams, fmt.Sprintf("{%d}%s", i, key(t, "s")))
				batch = append(batch, &rdb.Op{Stream: streams[i], MaxLen: 100, Fields: []string{"n", fmt.Sprint(i)}},
					&rdb.Op{Channel: key(t, "ch"), Payload: []byte{0, 1, 2}})
			}
			batch = append(batch, &rdb.Op{Stream: bad, Fields: []string{"n", "bad"}}, &rdb.Op{Stream: streams[0], Fields: []string{"n", "last"}})
			r.Batch(ctx, batch)
			for i, op := range batch {
				switch {
				case op.Stream == bad:
					if op.Err == nil || !strings.Contains(op.Err.Error(), "WRONGTYPE") || op.ID != "" {
						t.Fatalf("op %d: %q %v", i, op.ID, op.Err)
					}
				case op.Stream != "":
					if op.Err != nil || op.ID == "" {
						t.Fatalf("op %d: %q %v", i, op.ID, op.Err)
					}
					got, err := r.XRange(ctx, op.Stream, op.ID, op.ID, 0)
					if err != nil || len(got) != 1 || got[0].Fields["n"] != op.Fields[1] {
						t.Fatalf("op %d: %+v %v", i, got, err)
					}
				default:
					if op.Err != nil {
						t.Fatalf("op %d: %v", i, op.Err)
					}
				}
			}
			if last, err := r.LastID(ctx, streams[0]); err != nil || last != batch[len(batch)-1].ID {
				t.Fatalf("last id %q %v", last, err)
			}
			all, err := r.XRange(ctx, streams[0], "-", "+", 1)
			if err != nil || len(all) != 1 || all[0].ID != batch[0].ID {
				t.Fatalf("xrange count 1: %+v %v", all, err)
			}
			if last, err := r.LastID(ctx, key(t, "missing")); err != nil || last != "0-0" {
				t.Fatalf("missing stream: %q %v", last, err)
			}
			one := []*rdb.Op{{Stream: bad, Fields: []string{"a", "b"}}}
			r.Batch(ctx, one)
			if one[0].Err == nil {
				t.Fatal("single op: no error")
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			two := []*rdb.Op{{Stream: streams[1], Fields: []string{"a", "b"}}, {Channel: "x", Payload: []byte("y")}}
			r.Batch(cctx, two)
			if !errors.Is(two[0].Err, context.Canceled) || !errors.Is(two[1].Err, context.Canceled) {
				t.Fatalf("cancelled: %v, %v", two[0].Err, two[1].Err)
			}
		})
	}
}

func TestRueidisGetDel(t *testing.T) {
	check := func(t *testing.T, r rdb.Client) {
		ctx := t.Context()
		k := key(t, "k")
		if err := r.Set(ctx, k, "v\x00w", 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := r.GetDel(ctx, k); v != "v\x00w" || !ok || err != nil {
			t.Fatalf("getdel: %q %v %v", v, ok, err)
		}
		if v, ok, err := r.GetDel(ctx, k); v != "" || ok || err != nil {
			t.Fatalf("getdel again: %q %v %v", v, ok, err)
		}
		if err := r.Set(ctx, k, "v", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if _, ok, err := r.GetDel(ctx, k); ok || err != nil {
			t.Fatalf("expired key: %v %v", ok, err)
		}
	}
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) { check(t, newRueidis(t, s)) })
	}
	t.Run("without-GETDEL", func(t *testing.T) {
		srv := redistest.StartServerT(t, redistest.ServerOptions{ExtraArgs: []string{"--rename-command", "GETDEL", ""}})
		rc := newRueidisClient(t, []string{srv.Addr()}, false)
		r, _ := openRueidis(rc, false)
		if _, err := rc.Do(t.Context(), rc.B().Getdel().Key("x").Build()).ToString(); err == nil ||
			!strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			t.Fatalf("GETDEL still available: %v", err)
		}
		check(t, r)
	})
}

// Subscribe returns once Redis confirmed (PUBSUB NUMSUB, summed over every node, already counts it), messages
// reach the handler, and Unsubscribe stops them.
func TestRueidisSubscriber(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			r := newRueidis(t, s)
			ctx := t.Context()
			got := make(chan string, 100)
			chans := []string{key(t, "a"), key(t, "b"), key(t, "c")}
			var subs []rdb.Subscriber
			// Several subscribers: in a cluster their connections land on different nodes.
			for range 6 {
				sub := r.NewSubscriber(func(channel string, payload []byte) { got <- channel + "=" + string(payload) })
				subs = append(subs, sub)
				if err := sub.Subscribe(ctx, chans[:2]...); err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctx, chans[2]); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range chans {
				if n, err := r.NumSub(ctx, c); err != nil || n != 6 {
					t.Fatalf("numsub %s = %d, %v", c, n, err)
				}
			}
			if err := r.Publish(ctx, chans[1], []byte("hello")); err != nil {
				t.Fatal(err)
			}
			for range 6 {
				select {
				case m := <-got:
					if m != chans[1]+"=hello" {
						t.Fatalf("got %q", m)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("message not delivered")
				}
			}
			for _, sub := range subs[:3] {
				if err := sub.Unsubscribe(ctx, chans[1]); err != nil {
					t.Fatal(err)
				}
			}
			waitNumSub(t, r, chans[1], 3)
			for _, sub := range subs {
				if err := sub.Close(); err != nil {
					t.Fatal(err)
				}
				if err := sub.Subscribe(ctx, "late"); !errors.Is(err, rdb.ErrClosed) {
					t.Fatalf("subscribe after close: %v", err)
				}
			}
			waitNumSub(t, r, chans[0], 0)
		})
	}
}

func waitNumSub(t *testing.T, r rdb.Client, channel string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := r.NumSub(t.Context(), channel)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("numsub %s = %d (%v), want %d", channel, n, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// After a Redis restart the subscriber reconnects and resubscribes by itself.
func TestRueidisResubscribesAfterRestart(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharded=%v", sharded), func(t *testing.T) {
			srv := redistest.StartServerT(t, redistest.ServerOptions{})
			r, _ := openRueidis(newRueidisClient(t, []string{srv.Addr()}, false), sharded)
			got := make(chan string, 100)
			sub := r.NewSubscriber(func(channel string, payload []byte) { got <- string(payload) })
			defer sub.Close()
			if err := sub.Subscribe(t.Context(), "ch1", "ch2"); err != nil {
				t.Fatal(err)
			}
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			waitNumSub(t, r, "ch1", 1)
			waitNumSub(t, r, "ch2", 1)
			// The pipelined connection was broken by the restart: the write is sent again on a new one.
			if err := r.Publish(t.Context(), "ch2", []byte("after")); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if m != "after" {
					t.Fatalf("got %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no message after restart")
			}
		})
	}
}

// A subscriber whose handler is slow keeps its connection healthy, and Close does not wait for the queue.
func TestRueidisSlowHandler(t *testing.T) {
	r := newRueidis(t, setups[0])
	ch := key(t, "ch")
	release := make(chan struct{})
	var n sync.WaitGroup
	n.Add(1)
	var once sync.Once
	sub := r.NewSubscriber(func(string, []byte) {
		once.Do(n.Done)
		<-release
	})
	if err := sub.Subscribe(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := r.Publish(t.Context(), ch, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	n.Wait()
	other := key(t, "other")
	if err := sub.Subscribe(t.Context(), other); err != nil {
		t.Fatalf("subscribe while the handler is stuck: %v", err)
	}
	close(release)
	start := time.Now()
	if err := sub.Close(); err != nil || time.Since(start) > time.Second {
		t.Fatalf("close: %v after %v", err, time.Since(start))
	}
}

// The rueidis and go-redis implementations agree on what they return.
func TestRueidisMatchesGoRedis(t *testing.T) {
	for _, s := range setups[:2] {
		t.Run(s.name, func(t *testing.T) {
			a := addrs(t, s.cluster)
			r, _ := openRueidis(newRueidisClient(t, a, s.cluster), false)
			g, err := openGoRedis(newGoRedisClient(t, a, s.cluster), false)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			stream := key(t, "s")
			ops := []*rdb.Op{{Stream: stream, Fields: []string{"uid", "u", "nsp", "/", "type", "3", "data", "\x00\xff"}},
				{Stream: stream, Fields: []string{"uid", "v"}}}
			g.Batch(ctx, ops)
			for _, c := range []rdb.Client{r, g} {
				last, err := c.LastID(ctx, stream)
				if err != nil || last != ops[1].ID {
					t.Fatalf("%T last %q %v", c, last, err)
				}
				es, err := c.XRange(ctx, stream, "("+ops[0].ID, "+", 10)
				if err != nil || len(es) != 1 || es[0].ID != ops[1].ID || es[0].Fields["uid"] != "v" {
					t.Fatalf("%T xrange %+v %v", c, es, err)
				}
				es, err = c.XRange(ctx, stream, "-", "+", 0)
				if err != nil || len(es) != 2 || es[0].Fields["data"] != "\x00\xff" || len(es[0].Fields) != 4 {
					t.Fatalf("%T xrange all %+v %v", c, es, err)
				}
			}
			sub := g.NewSubscriber(func(string, []byte) {})
			defer sub.Close()
			ch := key(t, "ch")
			if err := sub.Subscribe(ctx, ch); err != nil {
				t.Fatal(err)
			}
			if n, err := r.NumSub(ctx, ch); n != 1 || err != nil {
				t.Fatalf("rueidis numsub of a go-redis subscriber: %d %v", n, err)
			}
		})
	}
}

// The first writes after a Redis restart, which rueidis sends on the pipelined connection Redis dropped, are sent
// again on a new connection instead of failing.
func TestRueidisWritesAfterRestart(t *testing.T) {
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	r, _ := openRueidis(newRueidisClient(t, []string{srv.Addr()}, false), false)
	ctx := t.Context()
	batch := func() []*rdb.Op {
		return []*rdb.Op{{Stream: "s", Fields: []string{"a", "1"}}, {Channel: "c", Payload: []byte("x")}}
	}
	for round := range 3 {
		b := batch()
		r.Batch(ctx, b)
		for _, op := range b {
			if op.Err != nil {
				t.Fatalf("round %d: %v", round, op.Err)
			}
		}
		if err := r.Set(ctx, "k", "v", time.Minute); err != nil {
			t.Fatalf("round %d: set: %v", round, err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := r.GetDel(ctx, "k"); ok || err != nil { // the restart lost the key
		t.Fatalf("getdel after restart: %v %v", ok, err)
	}
}

// A write whose connection breaks before Redis reads it is sent again on a new connection (as go-redis does),
// instead of failing: rueidis itself retries read-only commands only.
func TestRueidisRetriesWritesOnBrokenConnection(t *testing.T) {
	p := startBreakingProxy(t, addrs(t, false)[0])
	r, _ := openRueidis(newRueidisClient(t, []string{p.addr}, false), false)
	ctx := t.Context()
	stream := key(t, "s")
	for round := range 3 {
		p.breakOpenConns()
		b := []*rdb.Op{{Stream: stream, Fields: []string{"n", fmt.Sprint(round)}}, {Channel: "c", Payload: []byte("x")}}
		r.Batch(ctx, b)
		for _, op := range b {
			if op.Err != nil {
				t.Fatalf("round %d: %v", round, op.Err)
			}
		}
		p.breakOpenConns()
		if err := r.Set(ctx, key(t, "k"), "v", time.Minute); err != nil {
			t.Fatalf("round %d: set: %v", round, err)
		}
	}
	if got, err := r.XRange(ctx, stream, "-", "+", 0); err != nil || len(got) != 3 {
		t.Fatalf("%d entries, %v; want 3 (one per round, none lost)", len(got), err)
	}
	if p.broken.Load() == 0 {
		t.Fatal("no connection was broken: the test proved nothing")
	}
	t.Logf("%d connections broken under a write", p.broken.Load())
}

// breakingProxy forwards TCP connections to Redis; breakOpenConns makes every connection open at the time close
// on its next request, without forwarding it.
type breakingProxy struct {
	addr   string
	gen    atomic.Int64 // connections older than this generation break on their next request
	broken atomic.Int64
}

func startBreakingProxy(t *testing.T, target string) *breakingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	p := &breakingProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			gen := p.gen.Load()
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if p.gen.Load() > gen {
						p.broken.Add(1)
						return // drop the request and the connection
					}
					if _, err := u.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *breakingProxy) breakOpenConns() { p.gen.Add(1) }

// waitBlockedXRead waits until a client of the server (any node of the cluster) is blocked in XREAD.
func waitBlockedXRead(t *testing.T, addrs []string, cluster bool) {
	t.Helper()
	c := newGoRedisClient(t, addrs, cluster)
	blocked := func(ctx context.Context, node *redis.Client) bool {
		list, err := node.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(list) {
			if strings.Contains(line, " cmd=xread") && strings.Contains(line, " flags=b") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		found := false
		if cc, ok := c.(*redis.ClusterClient); ok {
			var mu sync.Mutex
			_ = cc.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
				if blocked(ctx, node) {
					mu.Lock()
					found = true
					mu.Unlock()
				}
				return nil
			})
		} else {
			found = blocked(t.Context(), c.(*redis.Client))
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no client blocked in XREAD")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openRueidis(c rueidis.Client, sharded bool) (rdb.Client, error) {
	return rueidisbackend.New(c).Open(sharded)
}

func openGoRedis(c redis.UniversalClient, sharded bool) (rdb.Client, error) {
	return goredisbackend.New(c).Open(sharded)
}
