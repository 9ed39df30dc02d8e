package wstransport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	engineerrors "github.com/zishang520/socket.io/servers/engine/v3/errors"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/siotest"
)

// Every test runs against real clients over real loopback connections.

// writeModes are the two ways a connection writes: without waiting from the sender's goroutine (Linux, TCP), and
// through a writer goroutine (TLS, other systems).
var writeModes = []struct {
	name string
	tune func(*Transport)
}{
	{"inline", nil},
	{"writer-goroutine", func(t *Transport) { t.noRaw = true }},
}

// The Go Socket.IO client (websocket only): events with every kind of argument, binary attachments both ways,
// acknowledgements both ways, and a broadcast's frame built once for all sockets.
func TestGoClientEventsBinaryAcks(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, Options{}, nil, mode.tune)
			fromClient := make(chan []any, 4)
			s.io.On("connection", func(args ...any) {
				so := args[0].(*socket.Socket)
				_ = so.On("up", func(args ...any) {
					ack := args[len(args)-1].(socket.Ack)
					fromClient <- args[:len(args)-1]
					ack([]any{"ok", []byte{9, 8}}, nil)
				})
			})
			type recv struct {
				events chan []any
				sock   *client.Socket
			}
			var clients []recv
			for range 3 {
				r := recv{events: make(chan []any, 16)}
				c, err := siotest.Dial(s.url, nil, 3*time.Second, 3, func(c *client.Socket) {
					_ = c.On(types.EventName("ev"), func(args ...any) { r.events <- args })
					_ = c.On(types.EventName("ask"), func(args ...any) {
						ack := args[len(args)-1].(socket.Ack)
						ack([]any{"answer", []byte{7}}, nil)
					})
				})
				must(t, err)
				t.Cleanup(func() { c.Disconnect() })
				r.sock = c
				clients = append(clients, r)
			}
			socks := []*socket.Socket{s.socket(t), s.socket(t), s.socket(t)}
			for _, so := range socks {
				if transportOf(so) == nil {
					t.Fatalf("socket %s is on %T, not this package's transport", so.Id(), so.Conn().Transport())
				}
			}

			// A text broadcast: one frame for the three sockets.
			built := s.tr.Stats().SharedFrames
			s.io.Emit("ev", "text", 1.5, map[string]any{"k": []any{"v", true}})
			for _, c := range clients {
				args := <-waitChan(t, c.events)
				if len(args) != 3 || args[0] != "text" || siotest.Number(args[1]) != 1.5 {
					t.Fatalf("text broadcast: got %#v", args)
				}
			}
			if got := s.tr.Stats().SharedFrames - built; got != 1 {
				t.Errorf("a broadcast to 3 sockets built %d shared frames, want 1", got)
			}

			// A binary broadcast: the placeholder packet and the attachment, as two messages (one text, one binary).
			s.io.Emit("ev", "bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{4, 5}})
			for _, c := range clients {
				args := <-waitChan(t, c.events)
				if len(args) != 3 || !bytes.Equal(siotest.Bytes(args[1]), []byte{1, 2, 3}) {
					t.Fatalf("binary broadcast: got %#v", args)
				}
				if m, ok := args[2].(map[string]any); !ok || !bytes.Equal(siotest.Bytes(m["nested"]), []byte{4, 5}) {
					t.Fatalf("nested attachment: got %#v", args[2])
				}
			}

			// Client to server with an attachment, and the server's binary ack.
			acked := make(chan []any, 1)
			clients[0].sock.Emit("up", "x", []byte{6, 6}, socket.Ack(func(args []any, err error) { acked <- args }))
			if args := <-waitChan(t, fromClient); len(args) != 2 || !bytes.Equal(siotest.Bytes(args[1]), []byte{6, 6}) {
				t.Fatalf("server got %#v", args)
			}
			if args := <-waitChan(t, acked); len(args) != 2 || args[0] != "ok" || !bytes.Equal(siotest.Bytes(args[1]), []byte{9, 8}) {
				t.Fatalf("client ack got %#v", args)
			}

			// Server to client with an ack carrying binary.
			answered := make(chan []any, 1)
			socks[0].Timeout(5 * time.Second).EmitWithAck("ask")(func(args []any, err error) {
				if err != nil {
					t.Error(err)
				}
				answered <- args
			})
			if args := <-waitChan(t, answered); len(args) != 2 || args[0] != "answer" || !bytes.Equal(siotest.Bytes(args[1]), []byte{7}) {
				t.Fatalf("server ack got %#v", args)
			}
			if st := s.tr.Stats(); st.Backlogs != 0 || st.SlowClients != 0 {
				t.Errorf("stats %+v: clients that keep up had a backlog", st)
			}
		})
	}
}

// waitChan returns ch, failing the test if nothing arrives on it within 10s.
func waitChan[T any](t testing.TB, ch chan T) chan T {
	t.Helper()
	select {
	case v := <-ch:
		out := make(chan T, 1)
		out <- v
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10s")
	}
	return nil
}

// Upgrade from long-polling: the probe (2probe/3probe) and the UPGRADE packet over this transport, by hand and with
// the Go client's default transports.
func TestUpgradeFromPolling(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	httpc := &http.Client{Timeout: 10 * time.Second}
	get := func(sid string) string {
		t.Helper()
		resp, err := httpc.Get(s.url + "/socket.io/?EIO=4&transport=polling" + sid)
		must(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		return string(b)
	}
	open := get("")
	if !strings.Contains(open, `"upgrades":["websocket"]`) {
		t.Fatalf("polling OPEN: %q", open)
	}
	sid := openSid(t, open)
	resp, err := httpc.Post(s.url+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader("40"))
	must(t, err)
	resp.Body.Close()
	if msg := get("&sid=" + sid); !strings.HasPrefix(msg, "40") {
		t.Fatalf("CONNECT answer over polling: %q", msg)
	}
	so := s.socket(t)

	ws, _, err := websocket.DefaultDialer.Dial(s.wsURL("&sid="+sid), nil)
	must(t, err)
	defer ws.Close()
	c := &rawClient{Conn: ws, sid: sid}
	c.writeText(t, "2probe")
	if msg := c.readText(t); msg != "3probe" {
		t.Fatalf("probe answer: %q", msg)
	}
	upgraded := make(chan struct{})
	_ = so.Conn().Once("upgrade", func(...any) { close(upgraded) })
	c.writeText(t, "5")
	<-waitChan(t, chanOf(upgraded))
	if transportOf(so) == nil {
		t.Fatalf("after the upgrade the socket is on %T", so.Conn().Transport())
	}
	must(t, so.Emit("after", "upgrade"))
	if msg := c.readText(t); msg != `42["after","upgrade"]` {
		t.Fatalf("message after the upgrade: %q", msg)
	}
	c.writeText(t, `42["from","client"]`)

	// The Go client with polling then websocket.
	got := make(chan []any, 1)
	gc, err := siotest.DialPolling(s.url, nil, 3*time.Second, 3, func(c *client.Socket) {
		_ = c.On(types.EventName("ev"), func(args ...any) { got <- args })
	})
	must(t, err)
	defer gc.Disconnect()
	so2, err := siotest.ServerSocket(s.conns, gc.Id(), 10*time.Second)
	must(t, err)
	waitFor(t, "the Go client's upgrade to websocket", func() bool { return transportOf(so2) != nil })
	must(t, so2.Emit("ev", "over websocket"))
	if args := <-waitChan(t, got); len(args) != 1 || args[0] != "over websocket" {
		t.Fatalf("got %#v", args)
	}
}

func chanOf(c chan struct{}) chan struct{} {
	out := make(chan struct{}, 1)
	go func() { <-c; out <- struct{}{} }()
	return out
}

// Engine.IO heartbeats are packets on this transport: the server's pings arrive, the client's pongs keep the
// socket open, and a client that stops answering is disconnected with "ping timeout".
func TestHeartbeatAndPingTimeout(t *testing.T) {
	s := startServer(t, Options{}, func(o *socket.ServerOptions) {
		o.SetPingInterval(20 * time.Millisecond)
		o.SetPingTimeout(300 * time.Millisecond)
	}, nil)
	c := dialRaw(t, s, nil, true)
	so := s.socket(t)
	for range 5 {
		if msg := c.readText(t); msg != "2" {
			t.Fatalf("want an Engine.IO ping, got %q", msg)
		}
		c.writeText(t, "3")
	}
	if !so.Connected() {
		t.Fatal("a client that answers pings was disconnected")
	}
	// Keep reading (so that nothing is held back by TCP) without answering.
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	if d := s.disconnected(t, so.Id()); d.reason != "ping timeout" {
		t.Fatalf("disconnect reason %q, want ping timeout", d.reason)
	}
}

// A client's close frame is answered with the same code, after what was queued, and the server sees
// "transport close".
func TestClientCloseFrame(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	c := dialRaw(t, s, nil, true)
	so := s.socket(t)
	must(t, c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"), time.Now().Add(5*time.Second)))
	c.expectClose(t, websocket.CloseGoingAway)
	if d := s.disconnected(t, so.Id()); d.reason != "transport close" {
		t.Fatalf("disconnect reason %q, want transport close", d.reason)
	}
}

// A server-side disconnect writes everything queued, the Socket.IO DISCONNECT packet, then a close frame (1000).
func TestServerCloseFlushesThenCloseFrame(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, Options{}, nil, mode.tune)
			c := dialRaw(t, s, nil, true)
			so := s.socket(t)
			const n = 500
			for i := range n {
				must(t, so.Emit("m", i, strings.Repeat("p", 1000)))
			}
			so.Disconnect(true)
			for i := range n {
				if msg := c.readText(t); !strings.HasPrefix(msg, `42["m",`+strconv.Itoa(i)+`,`) {
					t.Fatalf("message %d: %.40q", i, msg)
				}
			}
			if msg := c.readText(t); msg != "41" {
				t.Fatalf("want the DISCONNECT packet, got %q", msg)
			}
			c.expectClose(t, websocket.CloseNormalClosure)
			if d := s.disconnected(t, so.Id()); d.reason != "server namespace disconnect" {
				t.Fatalf("disconnect reason %q", d.reason)
			}
		})
	}
}

// Websocket ping control frames sent by the client while the server writes a stream of messages are answered with
// their payload, and the stream stays intact: the pongs go through the connection's queue, never in the middle of
// a data frame.
func TestPingControlFramesDuringWrites(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, Options{}, nil, mode.tune)
			c := dialRaw(t, s, nil, true)
			so := s.socket(t)
			const pings, msgs = 200, 3000
			var mu sync.Mutex
			var pongs []string
			c.SetPongHandler(func(data string) error {
				mu.Lock()
				pongs = append(pongs, data)
				mu.Unlock()
				return nil
			})
			go func() {
				for i := range pings {
					if c.WriteControl(websocket.PingMessage, []byte("p"+strconv.Itoa(i)), time.Now().Add(5*time.Second)) != nil {
						return
					}
				}
			}()
			go func() {
				for i := range msgs {
					_ = so.Emit("m", i, strings.Repeat("q", 300))
				}
			}()
			for i := range msgs {
				if msg := c.readText(t); !strings.HasPrefix(msg, `42["m",`+strconv.Itoa(i)+`,`) {
					t.Fatalf("message %d: %.40q", i, msg)
				}
			}
			// The pongs come with the messages (the handler runs inside ReadMessage): read until all are in.
			must(t, so.Emit("end"))
			for {
				mu.Lock()
				n := len(pongs)
				mu.Unlock()
				if n == pings {
					break
				}
				if msg := c.readText(t); msg != `42["end"]` {
					t.Fatalf("unexpected %q", msg)
				}
				must(t, so.Emit("end"))
			}
			for i, p := range pongs {
				if p != "p"+strconv.Itoa(i) {
					t.Fatalf("pong %d carries %q", i, p)
				}
			}
		})
	}
}

// Per-message deflate, when the client offers it and the server enables it: messages at or above the threshold
// are compressed (RSV1), smaller ones and Compress(false) ones are not, a broadcast is compressed once for all its
// sockets, a client that did not offer it gets plain frames, and compressed client messages are read.
func TestPerMessageDeflate(t *testing.T) {
	s := startServer(t, Options{}, func(o *socket.ServerOptions) {
		o.SetPerMessageDeflate(&types.PerMessageDeflate{Threshold: 1024})
	}, nil)
	join := func(fc *frameConn) string {
		t.Helper()
		if f := fc.readFrame(t); f.op != opText || !strings.HasPrefix(string(f.payload), "0{") {
			t.Fatalf("OPEN frame %+v", f)
		}
		fc.writeFrame(t, 0x80|opText, []byte("40"))
		return connectID(t, fc.readFrame(t).text(t))
	}
	var deflaters []*frameConn
	var sockets []*socket.Socket
	for range 3 {
		fc := dialFrames(t, s, "permessage-deflate; client_max_window_bits")
		if !fc.deflated {
			t.Fatal("the server did not accept permessage-deflate")
		}
		deflaters = append(deflaters, fc)
		sockets = append(sockets, s.socketOf(t, join(fc)))
	}
	plain := dialFrames(t, s, "")
	join(plain)

	big := strings.Repeat("compressible ", 200)
	want := `42["big","` + big + `"]`
	expect := func(fc *frameConn, rsv1 bool, text string) {
		t.Helper()
		f := fc.readFrame(t)
		if f.rsv1 != rsv1 || !f.fin || f.op != opText || f.text(t) != text {
			t.Fatalf("frame rsv1=%v fin=%v op=%d %.40q, want rsv1=%v %.40q", f.rsv1, f.fin, f.op, f.text(t), rsv1, text)
		}
		if rsv1 && len(f.payload) >= len(text)/2 {
			t.Fatalf("compressed frame of %d bytes for %d bytes of text", len(f.payload), len(text))
		}
	}
	must(t, sockets[0].Emit("big", big))
	expect(deflaters[0], true, want)
	must(t, sockets[0].Emit("small", "x"))
	expect(deflaters[0], false, `42["small","x"]`)
	must(t, sockets[0].Compress(false).Emit("big", big))
	expect(deflaters[0], false, want)

	before := s.tr.Stats()
	s.io.Emit("big", big)
	for _, fc := range deflaters {
		expect(fc, true, want)
	}
	expect(plain, false, want)
	after := s.tr.Stats()
	if after.SharedFrames-before.SharedFrames != 1 || after.Deflated-before.Deflated != 1 {
		t.Errorf("a broadcast to 4 sockets built %d frames and %d compressed ones, want 1 and 1",
			after.SharedFrames-before.SharedFrames, after.Deflated-before.Deflated)
	}

	// A compressed message from a client (gorilla compresses when the server accepted the extension).
	got, listening := make(chan string, 1), make(chan struct{}, 1)
	s.io.On("connection", func(args ...any) {
		_ = args[0].(*socket.Socket).On("echo", func(args ...any) { got <- args[0].(string) })
		listening <- struct{}{}
	})
	gc := dialRaw(t, s, &websocket.Dialer{EnableCompression: true}, true)
	<-waitChan(t, listening) // a packet sent before the server's handler listens for it would be lost
	gc.EnableWriteCompression(true)
	gc.writeText(t, `42["echo","`+big+`"]`)
	if msg := <-waitChan(t, got); msg != big {
		t.Fatalf("server read %.40q", msg)
	}
}

// maxHttpBufferSize applies to websocket messages: a larger one closes the connection with 1009, and the server
// sees a transport error.
func TestMaxHttpBufferSize(t *testing.T) {
	s := startServer(t, Options{}, func(o *socket.ServerOptions) { o.SetMaxHttpBufferSize(1000) }, nil)
	got, listening := make(chan string, 1), make(chan struct{}, 1)
	s.io.On("connection", func(args ...any) {
		_ = args[0].(*socket.Socket).On("m", func(args ...any) { got <- args[0].(string) })
		listening <- struct{}{}
	})
	c := dialRaw(t, s, nil, true)
	so := s.socket(t)
	<-waitChan(t, listening)
	small := strings.Repeat("s", 900)
	c.writeText(t, `42["m","`+small+`"]`)
	if msg := <-waitChan(t, got); msg != small {
		t.Fatal("the message under the limit was not read")
	}
	c.writeText(t, `42["m","`+strings.Repeat("b", 2000)+`"]`)
	c.expectClose(t, websocket.CloseMessageTooBig)
	d := s.disconnected(t, so.Id())
	if err, ok := d.desc.(error); d.reason != "transport error" || !ok || !errors.Is(err, engineerrors.ErrTransportFailure) {
		t.Fatalf("disconnect %q %v, want a transport error", d.reason, d.desc)
	}
}

// A protocol error from the client (a reserved bit set) ends the connection with "transport error", whose
// description is an error.
func TestReadErrorsSurfaceAsErrors(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	fc := dialFrames(t, s, "")
	fc.readFrame(t) // OPEN
	fc.writeFrame(t, 0x80|opText, []byte("40"))
	fc.readFrame(t) // CONNECT
	so := s.socket(t)
	fc.writeFrame(t, 0x80|0x20|opText, []byte("42[\"x\"]")) // RSV2
	d := s.disconnected(t, so.Id())
	if err, ok := d.desc.(error); d.reason != "transport error" || !ok || !errors.Is(err, engineerrors.ErrTransportFailure) {
		t.Fatalf("disconnect %q %#v, want a transport error", d.reason, d.desc)
	}
}

// A client that stops reading is disconnected once MaxQueuedBytes are waiting for it, with ErrSlowClient, and
// counted; a client that reads gets every message meanwhile.
func TestSlowReaderDisconnected(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, Options{MaxQueuedBytes: 256 << 10}, nil, mode.tune)
			slow := dialRaw(t, s, smallReadBuffer(), true)
			slowSock := s.socketOf(t, slow.id)
			fast := dialRaw(t, s, nil, true)

			var received atomic.Int64
			readDone := make(chan error, 1)
			go func() {
				for {
					_ = fast.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, msg, err := fast.ReadMessage()
					if err != nil {
						readDone <- err
						return
					}
					if bytes.HasPrefix(msg, []byte(`42["m",`)) {
						i, _, _ := bytes.Cut(msg[len(`42["m",`):], []byte(","))
						if n, _ := strconv.Atoi(string(i)); int64(n) != received.Load() {
							readDone <- fmt.Errorf("fast client: message %d after %d", n, received.Load())
							return
						}
						received.Add(1)
					}
					if string(msg) == `42["end"]` {
						readDone <- nil
						return
					}
				}
			}()
			pad := strings.Repeat("z", 4096)
			gone := s.reasonsOf(string(slowSock.Id()))
			var d disconnect
			sent := 0
		emit:
			for ; sent < 100_000; sent++ {
				s.io.Emit("m", sent, pad)
				select {
				case d = <-gone:
					break emit
				default:
				}
				// The reading client is never more than 16 messages behind: it is not the slow one.
				if sent%16 == 15 {
					waitFor(t, "the reading client to keep up", func() bool { return received.Load() > int64(sent-16) })
				}
			}
			if d.reason == "" {
				select {
				case d = <-gone:
				case <-time.After(10 * time.Second):
					t.Fatalf("the client that does not read is still connected after %d messages of 4 KB", sent)
				}
			}
			err, _ := d.desc.(error)
			if d.reason != "transport error" || !errors.Is(err, ErrSlowClient) {
				t.Fatalf("slow client disconnected with %q %v, want a transport error wrapping ErrSlowClient", d.reason, d.desc)
			}
			if st := s.tr.Stats(); st.SlowClients != 1 {
				t.Fatalf("SlowClients = %d, want 1", st.SlowClients)
			}
			s.io.Emit("end")
			if err := <-waitChan(t, readDone); err != nil {
				t.Fatal(err)
			}
			if got := received.Load(); got < int64(sent) {
				t.Fatalf("the reading client got %d of %d messages", got, sent)
			}
		})
	}
}

// smallReadBuffer is a dialer whose connections have a small kernel receive buffer (64 KB, set before the
// connection is made, so that TCP sizes its window for it), so that a client that stops reading fills it soon.
func smallReadBuffer() *websocket.Dialer {
	d := &net.Dialer{Control: setReceiveBuffer(64 << 10)}
	return &websocket.Dialer{NetDial: d.Dial}
}

// A client that pauses reading makes a backlog: the transport stops being writable, the engine holds the packets
// meanwhile, and once the client reads again everything arrives in order, every send callback ("drain") runs, and
// the transport is writable again ("ready" flushed the engine's buffer).
func TestBacklogDrainAndReady(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, Options{MaxQueuedBytes: 256 << 20}, nil, mode.tune)
			c := dialRaw(t, s, smallReadBuffer(), false)
			eng := s.io.Engine()
			_ = eng
			var so *socket.Socket
			c.writeText(t, "40")
			so = s.socket(t)
			if msg := c.readText(t); !strings.HasPrefix(msg, "40") {
				t.Fatalf("CONNECT answer %q", msg)
			}
			tr := transportOf(so)
			const n = 3000
			var callbacks sync.WaitGroup
			callbacks.Add(n)
			pad := strings.Repeat("y", 8192)
			sawBacklog := false
			for i := range n {
				so.Conn().Send(strings.NewReader(fmt.Sprintf("%d %s", i, pad)), nil, func(transports.Transport) { callbacks.Done() })
				if !tr.Writable() {
					sawBacklog = true
				}
			}
			if !sawBacklog {
				t.Fatalf("24 MB to a client that does not read never made the transport unwritable")
			}
			for i := range n {
				msg := c.readText(t)
				if !strings.HasPrefix(msg, "4"+strconv.Itoa(i)+" ") { // MESSAGE
					t.Fatalf("message %d: %.20q", i, msg)
				}
			}
			done := make(chan struct{})
			go func() { callbacks.Wait(); close(done) }()
			<-waitChan(t, done)
			waitFor(t, "the transport to be writable again", tr.Writable)
		})
	}
}

// Volatile packets are dropped while the transport is not writable (a backlog), and delivered when it is.
func TestVolatileDroppedWhenNotWritable(t *testing.T) {
	s := startServer(t, Options{MaxQueuedBytes: 256 << 20}, nil, func(t *Transport) { t.noPull = true })
	c := dialRaw(t, s, smallReadBuffer(), true)
	so := s.socket(t)
	tr := transportOf(so)
	must(t, so.Volatile().Emit("v", "while writable"))
	if msg := c.readText(t); msg != `42["v","while writable"]` {
		t.Fatalf("volatile packet on an idle connection: %q", msg)
	}
	pad := strings.Repeat("w", 8192)
	sent := 0
	for ; tr.Writable(); sent++ {
		if sent == 10_000 {
			t.Fatal("80 MB to a client that does not read never made the transport unwritable")
		}
		must(t, so.Emit("m", sent, pad))
	}
	must(t, so.Volatile().Emit("v", "dropped"))
	must(t, so.Emit("end"))
	for {
		msg := c.readText(t)
		if strings.HasPrefix(msg, `42["v"`) {
			t.Fatalf("volatile packet delivered while the transport was not writable: %q", msg)
		}
		if msg == `42["end"]` {
			break
		}
	}
}

// When the clients keep up, sending starts no goroutine: the only goroutines of this package are the readers.
func TestNoGoroutinePerSend(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	var clients []*rawClient
	for range 3 {
		clients = append(clients, dialRaw(t, s, nil, true))
		s.socket(t)
	}
	for i := range 100 {
		s.io.Emit("m", i)
	}
	for _, c := range clients {
		for i := range 100 {
			if msg := c.readText(t); msg != `42["m",`+strconv.Itoa(i)+`]` {
				t.Fatalf("got %q", msg)
			}
		}
	}
	if st := s.tr.Stats(); st.Backlogs != 0 {
		t.Fatalf("Backlogs = %d: a goroutine took over writes to clients that keep up", st.Backlogs)
	}
	for _, g := range ownGoroutines() {
		if !strings.Contains(g, "(*conn).read(") {
			t.Errorf("goroutine other than a reader:\n%s", g)
		}
	}
}
