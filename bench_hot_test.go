package redisstreams

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// rawClients are bare Engine.IO v4 websocket clients (no Socket.IO client library, whose cost would dominate):
// each one connects to the main namespace and counts the EVENT packets it receives.
type rawClients struct {
	conns    []*websocket.Conn
	received atomic.Int64
	poke     chan struct{}
}

func dialRawClients(b *testing.B, url string, count int) *rawClients {
	b.Helper()
	rc := &rawClients{poke: make(chan struct{}, 1)}
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/socket.io/?EIO=4&transport=websocket"
	for range count {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), "0{") {
			b.Fatalf("engine open: %q %v", msg, err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
			b.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), "40") {
			b.Fatalf("connect: %q %v", msg, err)
		}
		_ = c.SetReadDeadline(time.Time{})
		rc.conns = append(rc.conns, c)
		go func() {
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				switch {
				case len(msg) == 1 && msg[0] == '2':
					_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
				case strings.HasPrefix(string(msg), "42"):
					rc.received.Add(1)
					select {
					case rc.poke <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return rc
}

// waitAtLeast waits until at least n events were received in total.
func (rc *rawClients) waitAtLeast(b *testing.B, n int64) {
	deadline := time.After(60 * time.Second)
	for rc.received.Load() < n {
		select {
		case <-rc.poke:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			b.Fatalf("received %d of %d events", rc.received.Load(), n)
		}
	}
}

// benchEntry is a BROADCAST written by another server, shaped like issue 9's load: {t, s, pad: 150×"x"}.
func benchEntry(b *testing.B) map[string]string {
	m := &wire.Message{Type: wire.Broadcast, UID: "someoneelse", Nsp: "/", Opts: &wire.Options{},
		Packet: &wire.Packet{Type: 2, Nsp: "/", Data: []any{"ev", map[string]any{"t": 1795610928405, "s": 12345, "pad": strings.Repeat("x", 150)}}}}
	f, err := m.StreamFields(false)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for i := 0; i < len(f); i += 2 {
		out[f[i]] = f[i+1]
	}
	return out
}

// BenchmarkDeliver measures the receiving side of a broadcast: one stream entry from another server, dispatched
// as the reader does, and written to 1 or 1,000 real websocket clients. An operation ends when every client has
// the event (at most a window of broadcasts is in flight, so the figure is throughput, not latency).
func BenchmarkDeliver(b *testing.B) {
	for _, sockets := range []int{1, 1000} {
		b.Run(fmt.Sprintf("sockets=%d", sockets), func(b *testing.B) {
			n := benchNode(b, familyGoRedis, false, nil)
			srv := httptest.NewServer(n.Nsp().Server().ServeHandler(nil))
			b.Cleanup(srv.Close)
			clients := dialRawClients(b, srv.URL, sockets)
			for n.Nsp().Sockets().Len() < sockets {
				time.Sleep(time.Millisecond)
			}
			fields := benchEntry(b)
			window := int64(max(4, 4096/sockets))
			a := n.parent
			b.ReportAllocs()
			b.ResetTimer()
			for i := range int64(b.N) {
				e := rdb.Entry{ID: strconv.FormatInt(i+1, 10) + "-0", Fields: fields}
				a.dispatchEntry(n.stream, &e, nil)
				if i >= window {
					clients.waitAtLeast(b, (i-window)*int64(sockets))
				}
			}
			clients.waitAtLeast(b, int64(b.N)*int64(sockets))
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sockets), "ns/socket-send")
			if st := a.Stats(); st.Invalid != 0 {
				b.Fatalf("%d invalid entries", st.Invalid)
			}
		})
	}
}

// BenchmarkLocalBroadcast measures an io.Emit on the publishing server with no local client: the stream write is
// queued, local delivery finds no socket.
func BenchmarkLocalBroadcastNoSockets(b *testing.B) {
	n := benchNode(b, familyGoRedis, false, nil)
	payload := map[string]any{"t": 1795610928405, "s": 12345, "pad": strings.Repeat("x", 150)}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		n.Nsp().Emit("ev", payload)
	}
	if _, err := n.parent.pub.do(b.Context(), rdb.Op{Channel: "bench-barrier", Payload: []byte("x")}); err != nil {
		b.Fatal(err)
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkXRead measures one XREAD COUNT 100 round trip on the standalone Redis, reply parsing included, for
// both client families.
func BenchmarkXRead(b *testing.B) {
	for _, run := range []struct {
		family string
		own    bool
	}{{familyGoRedis, false}, {familyRueidis, false}, {familyGoRedis, true}, {familyRueidis, true}} {
		name := run.family
		if run.own {
			name += "/own" // the reader's own entries: skipped unconverted
		}
		family := run.family
		b.Run(name, func(b *testing.B) {
			n := benchNode(b, family, false, nil)
			rc := redis.NewClient(&redis.Options{Addr: standalone.Addr()})
			defer rc.Close()
			stream := n.stream + "-xread"
			fields := benchEntry(b)
			pipe := rc.Pipeline()
			for range 100 {
				pipe.XAdd(b.Context(), &redis.XAddArgs{Stream: stream, Values: []string{"uid", fields["uid"], "nsp", "/", "type", "3", "data", fields["data"]}})
			}
			if _, err := pipe.Exec(b.Context()); err != nil {
				b.Fatal(err)
			}
			var skip rdb.SkipFunc
			if run.own {
				skip = func(uid, nsp string) bool { return uid == fields["uid"] && nsp == "/" }
			}
			r, err := n.parent.client.NewReader(skip)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				entries, err := r.Read(ctx, stream, "0-0", 100, 0)
				if err != nil || len(entries) != 100 {
					b.Fatalf("read %d entries: %v", len(entries), err)
				}
			}
		})
	}
}
