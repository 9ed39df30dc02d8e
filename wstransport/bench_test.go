package wstransport

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
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
// as the adapter and the in-memory adapter call it) to a real loopback websocket whose client reads and discards,
// with the engine's websocket transport and with this package's. The write syscall is included.
func BenchmarkWritePath(b *testing.B) {
	for _, tc := range []struct {
		name    string
		install bool
	}{{"engine", false}, {"wstransport", true}} {
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
			go func() {
				for {
					if _, _, err := c.NextReader(); err != nil {
						return
					}
				}
			}()
			encoded := []types.BufferInterface{types.NewStringBufferString(event)}
			wo := &socket.WriteOptions{}
			wo.PreEncoded = true
			if tc.install { // what the in-memory adapter and this module's adapter pass to this transport
				wo.WsPreEncodedFrame = types.NewStringBufferString("4" + event)
			}
			b.ReportAllocs()
			for b.Loop() {
				so.Client().WriteToEngine(encoded, wo)
			}
		})
	}
}

// BenchmarkSend measures this transport's own part of a socket-send of a broadcast (its shared frame, the queue,
// the non-blocking writev), without the Socket.IO and engine layers above it.
func BenchmarkSend(b *testing.B) {
	s := startServer(b, Options{}, nil, nil)
	c := dialRaw(b, s, nil, true)
	so := s.socket(b)
	go func() {
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
	tr := transportOf(so)
	packets := []*packet.Packet{{Type: packet.MESSAGE, Data: strings.NewReader(event),
		Options: &packet.Options{WsPreEncodedFrame: types.NewStringBufferString("4" + event)}}}
	b.ReportAllocs()
	for b.Loop() {
		tr.Send(packets)
	}
}
