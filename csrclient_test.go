package redisstreams

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// csrClient is a raw Socket.IO websocket client (EIO 4, namespace "/") that does what socket.io-client does for
// connection state recovery, and no more: it sends {pid, offset} in its CONNECT when it has them, takes the pid from
// the server's CONNECT and the offset from the last string argument of every event. It never closes its
// connection by itself (a DISCONNECT from the server is only recorded), and it is light enough for hundreds of
// clients under -race.
type csrClient struct {
	conn *websocket.Conn
	sid  string
	pid  string

	mu      sync.Mutex
	events  []csrEvent
	offset  string // the last one received ("" before the first)
	kicked  bool   // the server sent DISCONNECT
	err     error
	changed chan struct{} // capacity 1: an event arrived
	done    chan struct{} // the read loop ended
}

type csrEvent struct {
	name   string
	n      int64 // the first argument, when it is a number
	offset string
}

// dialCSR connects to the server at url with auth (nil: none) and extra query parameters ("a=b&c=d"), and returns
// once the server's CONNECT arrived; the events sent before it (a recovered session's missed packets) are recorded
// first.
func dialCSR(url string, auth map[string]any, query string) (*csrClient, error) {
	u := "ws" + strings.TrimPrefix(url, "http") + "/socket.io/?EIO=4&transport=websocket"
	if query != "" {
		u += "&" + query
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	c := &csrClient{conn: conn, changed: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(err error) (*csrClient, error) {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		return fail(fmt.Errorf("engine.io open: %q %v", open, err))
	}
	connect := "40"
	if auth != nil {
		b, _ := json.Marshal(auth)
		connect += string(b)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(connect)); err != nil {
		return fail(err)
	}
	for c.sid == "" {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("socket.io connect: %w", err))
		}
		if err := c.handle(string(msg)); err != nil {
			return fail(err)
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.loop()
	return c, nil
}

// dialCSRT is dialCSR that fails the test on error and closes the client when it ends.
func dialCSRT(t testing.TB, url string, auth map[string]any, query string) *csrClient {
	t.Helper()
	c, err := dialCSR(url, auth, query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cut)
	return c
}

// resumeCSR reconnects to the server at url as x would (with its pid and last offset), and fails the test unless x's
// session was recovered (the same socket id).
func resumeCSR(t testing.TB, url string, x *csrClient) *csrClient {
	t.Helper()
	c := dialCSRT(t, url, x.state(), "")
	if c.sid != x.sid {
		t.Fatalf("client %s came back as %s: not recovered", x.sid, c.sid)
	}
	return c
}

// handle processes one engine.io message.
func (c *csrClient) handle(msg string) error {
	switch {
	case msg == "2":
		return c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
	case strings.HasPrefix(msg, "40{"):
		var hs struct{ Sid, Pid string }
		if err := json.Unmarshal([]byte(msg[2:]), &hs); err != nil {
			return fmt.Errorf("CONNECT %q: %w", msg, err)
		}
		c.sid, c.pid = hs.Sid, hs.Pid
		if c.pid == "" {
			return fmt.Errorf("CONNECT without pid: %q (recovery off?)", msg)
		}
	case strings.HasPrefix(msg, "42["):
		var args []any
		if err := json.Unmarshal([]byte(msg[2:]), &args); err != nil || len(args) == 0 {
			return fmt.Errorf("EVENT %q: %v", msg, err)
		}
		e := csrEvent{n: -1}
		e.name, _ = args[0].(string)
		if len(args) > 1 {
			if f, ok := args[1].(float64); ok {
				e.n = int64(f)
			}
		}
		if o, ok := args[len(args)-1].(string); ok && len(args) > 1 {
			e.offset = o
		}
		c.mu.Lock()
		c.events = append(c.events, e)
		if e.offset != "" {
			c.offset = e.offset
		}
		c.mu.Unlock()
		select {
		case c.changed <- struct{}{}:
		default:
		}
	case strings.HasPrefix(msg, "41"):
		c.mu.Lock()
		c.kicked = true
		c.mu.Unlock()
	case strings.HasPrefix(msg, "44"):
		return fmt.Errorf("CONNECT_ERROR %q", msg)
	}
	return nil
}

func (c *csrClient) loop() {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return // cut, or closed by the server
		}
		if err := c.handle(string(msg)); err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}
}

// cut closes the connection at once, as a network failure would, and waits for the read loop.
func (c *csrClient) cut() {
	_ = c.conn.Close()
	<-c.done
}

// state returns the recovery state socket.io-client would send on its next connection.
func (c *csrClient) state() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offset == "" {
		return map[string]any{"pid": c.pid}
	}
	return map[string]any{"pid": c.pid, "offset": c.offset}
}

// numbers returns the numbers of the events named name received so far, in order.
func (c *csrClient) numbers(name string) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, e := range c.events {
		if e.name == name {
			out = append(out, e.n)
		}
	}
	return out
}

// waitNumbers waits until the client has received at least n events named name, and returns their numbers.
func (c *csrClient) waitNumbers(t testing.TB, name string, n int) []int64 {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if got := c.numbers(name); len(got) >= n {
			return got
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("client %s: %d %q events after 15s, want %d: %v", c.sid, len(c.numbers(name)), name, n, c.numbers(name))
		}
	}
}

func (c *csrClient) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// blackhole is a TCP proxy to a server whose connections can be cut off silently: from then on nothing passes in
// either direction and nothing is closed, as when a network path dies. The server notices only at its ping
// timeout; the client, when it is told to, comes back on a new connection.
type blackhole struct {
	ln     net.Listener
	target string
	cutOff atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// newBlackhole proxies to the server at url (http://host:port) and returns the proxy's URL.
func newBlackhole(t testing.TB, url string) (*blackhole, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: strings.TrimPrefix(url, "http://")}
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b, "http://" + ln.Addr().String()
}

func (b *blackhole) accept() {
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		b.wg.Go(func() { b.pipe(out, in) })
		b.wg.Go(func() { b.pipe(in, out) })
	}
}

// pipe copies from src to dst until src fails; once cut, what it reads is dropped.
func (b *blackhole) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.cutOff.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut makes every connection, present and future, silent.
func (b *blackhole) cut() { b.cutOff.Store(true) }

func (b *blackhole) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
