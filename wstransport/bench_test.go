package wstransport

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Micro-benchmarks of frame building and of the write path, with allocations:
//
//	go test -run X -bench . -benchmem ./wstransport

// event is the benchmark's broadcast: the bench harness's {t, s, pad} event as Socket.IO encodes it.
var event = `2["ev",{"t":1790000000000000,"s":12345,"pad":"` + strings.Repeat("x", 150) + `"}]`

func BenchmarkFrame(b *testing.B) {
	payload := []byte("4" + event)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newFrame(opText, payload)
		}
	})
	b.Run("shared", func(b *testing.B) { // every socket-send after a broadcast's first
		var c frameCache
		key := types.NewStringBuffer(payload)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.get(key)
		}
	})
	b.Run("deflate-2KB", func(b *testing.B) {
		big := []byte(strings.Repeat("4"+event, 10))
		b.ReportAllocs()
		for b.Loop() {
			_ = newDeflatedFrame(opText, big)
		}
	})
}

// BenchmarkWritePath measures one socket-send of a broadcast through the Socket.IO server (Client.WriteToEngine,
// as the adapter and the in-memory adapter call it, or WriteBroadcast) to a real loopback websocket whose client
// reads and discards (one message at a time, see readAll), with the engine's websocket transport and with this
// package's. The write syscall is
// included. cpu-ns/op is the CPU time of the whole process (the client's reads included) per send: the engine's
// transport writes from its own goroutine, so its ns/op alone leaves that out.
func BenchmarkWritePath(b *testing.B) {
	for _, tc := range []struct {
		name    string
		install bool
		direct  bool // WriteBroadcast, as this module's adapter does
	}{{"engine", false, false}, {"wstransport", true, false}, {"wstransport-WriteBroadcast", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			opts := socket.DefaultServerOptions()
			if tc.install {
				Install(opts, Options{})
			}
			io := socket.NewServer(nil, opts)
			conns := make(chan *socket.Socket, 1)
			io.On("connection", func(args ...any) { conns <- args[0].(*socket.Socket) })
			hs := httptest.NewServer(io.ServeHandler(nil))
			defer hs.Close()
			defer io.Close(nil)
			c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			_, _, _ = c.ReadMessage()
			_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
			var so *socket.Socket
			select {
			case so = <-conns:
			case <-time.After(10 * time.Second):
				b.Fatal("no connection")
			}
			received := readAll(c)
			encoded := []types.BufferInterface{types.NewStringBufferString(event)}
			wo := &socket.WriteOptions{}
			wo.PreEncoded = true
			if tc.install { // what the in-memory adapter and this module's adapter pass to this transport
				wo.WsPreEncodedFrame = types.NewStringBufferString("4" + event)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if !tc.direct || !WriteBroadcast(so.Conn(), wo.WsPreEncodedFrame, true) {
					so.Client().WriteToEngine(encoded, wo)
				}
				<-received
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// readAll reads c's messages until it fails, and signals each on the channel it returns: the benchmarks wait for
// every message to be received before sending the next one, as a socket of a fan-out gets one message per
// broadcast (and so that a sender cannot run ahead of its client, which the slow-client limit would end).
func readAll(c *websocket.Conn) chan struct{} {
	received := make(chan struct{}, 1)
	go func() {
		for {
			if _, _, err := c.NextReader(); err != nil {
				close(received)
				return
			}
			received <- struct{}{}
		}
	}()
	return received
}
