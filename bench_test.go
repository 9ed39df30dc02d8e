package redisstreams

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// benchNode starts one server with its adapter, on a client of the family (familyGoRedis or familyRueidis), on
// the shared standalone Redis.
func benchNode(b *testing.B, family string, recovery bool, adapt func(*Options)) *nspAdapter {
	b.Helper()
	requireRedis(b)
	prefix := "b" + randomID()
	opts := Options{StreamName: prefix, ChannelPrefix: prefix, SessionKeyPrefix: prefix + ":s:", MaxLen: 100_000}
	if adapt != nil {
		adapt(&opts)
	}
	var a *Adapter
	var err error
	switch family {
	case familyGoRedis:
		rc := redis.NewClient(&redis.Options{Addr: standalone.Addr(), PoolSize: 64})
		b.Cleanup(func() { _ = rc.Close() })
		a, err = New(b.Context(), goredisbackend.New(rc), opts)
	case familyRueidis:
		rc, rerr := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{standalone.Addr()}, DisableCache: true, ForceSingleClient: true})
		if rerr != nil {
			b.Fatal(rerr)
		}
		b.Cleanup(rc.Close)
		a, err = New(b.Context(), rueidisbackend.New(rc), opts)
	default:
		b.Fatalf("unknown client family %q", family)
	}
	if err != nil {
		b.Fatal(err)
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(a)
	if recovery {
		so.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery())
	}
	io := socket.NewServer(nil, so)
	b.Cleanup(func() {
		io.Close(nil)
		_ = a.Close(context.Background())
	})
	return io.Of("/", nil).Adapter().(*nspAdapter)
}

func redisOutputBytes(b *testing.B, rc *redis.Client) int64 {
	info, err := rc.Info(b.Context(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no total_net_output_bytes")
	return 0
}

// BenchmarkRestore restores a session that missed 1,000 of the 10,000 entries written after its offset.
// redis-bytes/op is what Redis sent for one restore (all connections, from INFO).
func BenchmarkRestore(b *testing.B) {
	n := benchNode(b, familyGoRedis, true, nil)
	rc := redis.NewClient(&redis.Options{Addr: standalone.Addr()})
	defer rc.Close()
	ctx := b.Context()
	first, err := rc.XAdd(ctx, &redis.XAddArgs{Stream: n.stream, Values: []string{"uid", "x", "nsp", "/", "type", "3",
		"data", `{"packet":{"type":2,"data":["init"]},"opts":{"rooms":[],"except":[],"flags":{}}}`}}).Result()
	if err != nil {
		b.Fatal(err)
	}
	pipe := rc.Pipeline()
	for i := range 10_000 {
		room := "other"
		if i%10 == 0 {
			room = "mine"
		}
		m := &wire.Message{Type: wire.Broadcast, UID: "x", Nsp: "/", Opts: &wire.Options{Rooms: []string{room}},
			Packet: &wire.Packet{Type: 2, Data: []any{"chat", map[string]any{"user": "someone", "text": strings.Repeat("x", 100), "n": i}}}}
		fields, err := m.StreamFields(false)
		if err != nil {
			b.Fatal(err)
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: n.stream, Values: fields})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	session := &socket.SessionToPersist{Sid: "sid1", Pid: "pid1", Rooms: types.NewSet[socket.Room]("sid1", "mine")}
	var bytes int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		n.PersistSession(session)
		before := redisOutputBytes(b, rc)
		b.StartTimer()
		s, err := n.RestoreSession("pid1", first)
		b.StopTimer()
		bytes += redisOutputBytes(b, rc) - before
		if err != nil || s == nil || len(s.MissedPackets) != 1000 {
			b.Fatalf("restore: %v, %d packets", err, len(s.MissedPackets))
		}
		n.DelAll("sid1") // drop the pending record a real socket would have used
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "redis-bytes/op")
}

// BenchmarkBroadcast measures cluster broadcasts from many goroutines at once: "offset" waits for each XADD (what
// connection state recovery needs), "queued" returns at once and the total includes draining the queue.
func BenchmarkBroadcast(b *testing.B) {
	for _, mode := range []string{"offset", "queued"} {
		for _, g := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/emitters=%d", mode, g), func(b *testing.B) {
				n := benchNode(b, familyGoRedis, mode == "offset", nil)
				opts := &socket.BroadcastOptions{Rooms: types.NewSet[socket.Room]("nobody"), Except: types.NewSet[socket.Room]()}
				payload := map[string]any{"user": "someone", "text": strings.Repeat("x", 100)}
				b.SetParallelism(max(1, g/runtimeProcs()))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n.Broadcast(&parser.Packet{Type: parser.EVENT, Data: []any{"chat", payload}}, opts)
					}
				})
				// Barrier: a waited write after every queued one.
				if _, err := n.parent.pub.do(b.Context(), rdb.Op{Channel: "bench-barrier", Payload: []byte("x")}); err != nil {
					b.Fatal(err)
				}
				st := n.parent.Stats()
				if st.PublishErrors != 0 {
					b.Fatalf("%d publish errors", st.PublishErrors)
				}
			})
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkPublish compares the client families on the publish path (standalone Redis), with exactly 1, 64 or
// 512 goroutines emitting at once: "offset" waits for each XADD (connection state recovery), "queued" returns at
// once and the total includes draining the queue. ops/s counts broadcasts.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{"offset", "queued"} {
		for _, family := range []string{familyGoRedis, familyRueidis} {
			for _, g := range []int{1, 64, 512} {
				b.Run(fmt.Sprintf("%s/%s/emitters=%d", mode, family, g), func(b *testing.B) {
					n := benchNode(b, family, mode == "offset", nil)
					opts := &socket.BroadcastOptions{Rooms: types.NewSet[socket.Room]("nobody"), Except: types.NewSet[socket.Room]()}
					payload := map[string]any{"user": "someone", "text": strings.Repeat("x", 100)}
					b.ReportAllocs()
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					cpu0 := processCPU()
					for range g {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								n.Broadcast(&parser.Packet{Type: parser.EVENT, Data: []any{"chat", payload}}, opts)
							}
						})
					}
					wg.Wait()
					// Barrier: a waited write after every queued one.
					if _, err := n.parent.pub.do(b.Context(), rdb.Op{Channel: "bench-barrier", Payload: []byte("x")}); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if cpu := processCPU() - cpu0; cpu > 0 {
						b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
					if st := n.parent.Stats(); st.PublishErrors != 0 {
						b.Fatalf("%d publish errors", st.PublishErrors)
					}
				})
			}
		}
	}
}
