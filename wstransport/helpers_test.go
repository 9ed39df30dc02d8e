package wstransport

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/siotest"
)

// testServer is a Socket.IO server with this package's transport, on a real loopback port.
type testServer struct {
	io    *socket.Server
	tr    *Transport
	url   string // http://127.0.0.1:port
	conns chan *socket.Socket

	mu      sync.Mutex
	reasons map[string]chan disconnect // by socket id
}

type disconnect struct {
	reason string
	desc   any
}

// startServer starts a server whose options configure may change (after Install), with the transport built from
// o (set *Transport fields with tune). Cleanup closes the server.
func startServer(t testing.TB, o Options, configure func(*socket.ServerOptions), tune func(*Transport)) *testServer {
	t.Helper()
	opts := socket.DefaultServerOptions()
	tr := Install(opts, o)
	if tune != nil {
		tune(tr)
	}
	if configure != nil {
		configure(opts)
	}
	s := &testServer{tr: tr, conns: make(chan *socket.Socket, 1024), reasons: map[string]chan disconnect{}}
	s.io = socket.NewServer(nil, opts)
	s.io.On("connection", func(args ...any) {
		so := args[0].(*socket.Socket)
		ch := s.reasonsOf(string(so.Id()))
		_ = so.On("disconnect", func(args ...any) {
			d := disconnect{}
			if len(args) > 0 {
				d.reason, _ = args[0].(string)
			}
			if len(args) > 1 {
				d.desc = args[1]
			}
			select {
			case ch <- d: // the first one: a socket can see "disconnect" twice (the client's, then the server's close)
			default:
			}
		})
		s.conns <- so
	})
	s.url = siotest.Serve(t, s.io, func(context.Context) error { return nil })
	return s
}

func (s *testServer) reasonsOf(id string) chan disconnect {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.reasons[id]
	if !ok {
		ch = make(chan disconnect, 1)
		s.reasons[id] = ch
	}
	return ch
}

// socket waits for the next server-side socket.
func (s *testServer) socket(t testing.TB) *socket.Socket {
	t.Helper()
	select {
	case so := <-s.conns:
		return so
	case <-time.After(10 * time.Second):
		t.Fatal("no connection on the server within 10s")
	}
	return nil
}

// disconnected waits for the server-side disconnect of the socket with this id.
func (s *testServer) disconnected(t testing.TB, id socket.SocketId) disconnect {
	t.Helper()
	select {
	case d := <-s.reasonsOf(string(id)):
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("socket %s not disconnected within 10s", id)
	}
	return disconnect{}
}

func (s *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(s.url, "http") + "/socket.io/?EIO=4&transport=websocket" + query
}

// rawClient is an Engine.IO v4 / Socket.IO client over a gorilla/websocket connection, driven by the test.
type rawClient struct {
	*websocket.Conn
	sid string // Engine.IO session
	id  string // Socket.IO socket, once joined
}

// dialRaw opens a websocket connection, reads the Engine.IO OPEN packet, and joins the main namespace unless
// join is false.
func dialRaw(t testing.TB, s *testServer, d *websocket.Dialer, join bool) *rawClient {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{}
	}
	conn, _, err := d.Dial(s.wsURL(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{Conn: conn}
	c.sid = openSid(t, c.readText(t))
	if join {
		c.join(t)
	}
	return c
}

// join joins the main namespace, and records the Socket.IO id the server answers with.
func (c *rawClient) join(t testing.TB) {
	t.Helper()
	c.writeText(t, "40")
	c.id = connectID(t, c.readText(t))
}

// connectID returns the socket id of a Socket.IO CONNECT answer (40{"sid":...}).
func connectID(t testing.TB, msg string) string {
	t.Helper()
	var ok struct {
		Sid string `json:"sid"`
	}
	if !strings.HasPrefix(msg, "40") || json.Unmarshal([]byte(msg[2:]), &ok) != nil || ok.Sid == "" {
		t.Fatalf("CONNECT answer: %q", msg)
	}
	return ok.Sid
}

// socketOf waits for the server-side socket of the client whose Socket.IO id is id (the sockets of other clients
// stay for their own callers: the order in which the server sees connections is not the order of the dials).
func (s *testServer) socketOf(t testing.TB, id string) *socket.Socket {
	t.Helper()
	so, err := siotest.ServerSocket(s.conns, id, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return so
}

// openSid returns the session id of an Engine.IO OPEN packet.
func openSid(t testing.TB, open string) string {
	t.Helper()
	var hs struct {
		Sid string `json:"sid"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &hs) != nil || hs.Sid == "" {
		t.Fatalf("OPEN packet: %q", open)
	}
	return hs.Sid
}

func (c *rawClient) readText(t testing.TB) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("read: message type %d, want text", mt)
	}
	return string(b)
}

// expectClose reads the server's close frame, which must carry code.
func (c *rawClient) expectClose(t testing.TB, code int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ReadMessage()
	if ce, ok := errors.AsType[*websocket.CloseError](err); !ok || ce.Code != code {
		t.Fatalf("read %v, want the server's close frame with code %d", err, code)
	}
}

func (c *rawClient) writeText(t testing.TB, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// frameConn is a websocket client that reads frames itself, to see what a frame looks like on the wire (RSV1).
type frameConn struct {
	net.Conn
	br       *bufio.Reader
	deflated bool // the server accepted permessage-deflate
}

// dialFrames upgrades a plain TCP connection to the server's websocket endpoint, offering extensions (may be "").
func dialFrames(t testing.TB, s *testServer, extensions string) *frameConn {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &frameConn{Conn: nc, br: br, deflated: strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")}
}

type frame struct {
	fin, rsv1 bool
	op        byte
	payload   []byte // as sent (still compressed when rsv1)
}

// text returns a text message's content, inflated when it was compressed.
func (f frame) text(t testing.TB) string {
	t.Helper()
	if !f.rsv1 {
		return string(f.payload)
	}
	b, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(f.payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return string(b)
}

func (c *frameConn) readFrame(t testing.TB) frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatal("a server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(c.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(c.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return frame{fin: h[0]&0x80 != 0, rsv1: h[0]&0x40 != 0, op: h[0] & 0x0f, payload: p}
}

// writeFrame writes one masked client frame.
func (c *frameConn) writeFrame(t testing.TB, b0 byte, payload []byte) {
	t.Helper()
	buf := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		buf = append(buf, 0x80|byte(n))
	case n <= 0xffff:
		buf = binary.BigEndian.AppendUint16(append(buf, 0x80|126), uint16(n))
	default:
		buf = binary.BigEndian.AppendUint64(append(buf, 0x80|127), uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	buf = append(buf, mask[:]...)
	for i, b := range payload {
		buf = append(buf, b^mask[i%4])
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}

func httpPost(t testing.TB, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// ownGoroutines returns the stacks of the live goroutines running this package's code (tests excluded).
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "redisstreams/wstransport.(*conn)") {
			out = append(out, g)
		}
	}
	return out
}

var waitFor = siotest.WaitFor

// transportOf returns the engine transport of a server-side socket.
func transportOf(so *socket.Socket) *conn {
	c, _ := so.Conn().Transport().(*conn)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprint
