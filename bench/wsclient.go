package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// A minimal Engine.IO v4 / Socket.IO v5 client over a raw WebSocket: it joins the main namespace, answers pings,
// and hands every event's "s" and "t" fields to a sink. It parses nothing else, to keep the harness's CPU low.

// sink receives the events of one or more clients. It must be safe for concurrent use.
type sink interface {
	event(s, t int64, now int64)
}

type wsClient struct {
	conn *websocket.Conn
	done chan struct{}
	err  error // set before done is closed
}

// dialClient connects to the Socket.IO server at base ("http://127.0.0.1:port") and waits for the namespace
// CONNECT answer.
func dialClient(ctx context.Context, base string, out sink) (*wsClient, error) {
	return dialClientBuf(ctx, base, out, 64<<10)
}

// dialClientBuf is dialClient with a read buffer of that size.
func dialClientBuf(ctx context.Context, base string, out sink, readBuffer int) (*wsClient, error) {
	url := "ws" + base[len("http"):] + "/socket.io/?EIO=4&transport=websocket"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: readBuffer, WriteBufferSize: 256}
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	fail := func(err error) (*wsClient, error) {
		_ = conn.Close()
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetReadDeadline(deadline)
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		return fail(fmt.Errorf("engine.io open: %q %v", open, err))
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return fail(err)
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("socket.io connect: %w", err))
		}
		if bytes.HasPrefix(msg, []byte("40")) {
			break
		}
		if bytes.HasPrefix(msg, []byte("44")) {
			return fail(fmt.Errorf("socket.io connect refused: %s", msg))
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &wsClient{conn: conn, done: make(chan struct{})}
	go c.read(out)
	return c, nil
}

func (c *wsClient) read(out sink) {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		now := time.Now().UnixMicro()
		switch {
		case len(msg) == 1 && msg[0] == '2': // engine.io ping
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				c.err = err
				return
			}
		case bytes.HasPrefix(msg, []byte(`42["ev",`)):
			s, okS := numField(msg, `"s":`)
			t, okT := numField(msg, `"t":`)
			if okS && okT {
				out.event(s, t, now)
			}
		}
	}
}

// close closes the connection and waits for the reader.
func (c *wsClient) close() {
	_ = c.conn.Close()
	<-c.done
}

// numField returns the number that follows key in msg (an integer, possibly written as a float).
func numField(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	j := 0
	for j < len(rest) && (rest[j] >= '0' && rest[j] <= '9' || rest[j] == '-' || rest[j] == '.' || rest[j] == 'e' || rest[j] == 'E' || rest[j] == '+') {
		j++
	}
	if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil {
		return 0, false
	}
	return int64(f), true
}

// dialMany opens n clients with a few dials in flight at a time. On error every opened client is closed.
func dialMany(ctx context.Context, base string, n int, out sink) ([]*wsClient, error) {
	return dialManyBuf(ctx, base, n, out, 64<<10)
}

// dialManyBuf is dialMany with clients whose read buffer has that size.
func dialManyBuf(ctx context.Context, base string, n int, out sink, readBuffer int) ([]*wsClient, error) {
	return dialAll(n, 32, func() (*wsClient, error) { return dialClientBuf(ctx, base, out, readBuffer) }, closeAll)
}

// dialAll makes n clients with dial, parallel at a time. On error every client made is given to closeAll.
func dialAll[C any](n, parallel int, dial func() (C, error), closeAll func([]C)) ([]C, error) {
	clients := make([]C, n)
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			clients[i], errs[i] = dial()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func closeAll(clients []*wsClient) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
}

// recorder is the sink of one ladder step's receiver: distinct and duplicated sequence numbers in
// [base, base+size), and latencies of events stamped at or after warmT.
type recorder struct {
	mu       sync.Mutex
	base     int64
	seen     []uint8
	distinct int64
	dups     int64
	stray    int64 // outside the step's range (late events of an earlier step)
	warmT    int64
	lat      []int32 // µs
}

func (r *recorder) reset(base int64, size int, warmT int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base, r.warmT = base, warmT
	if cap(r.seen) >= size {
		r.seen = r.seen[:size]
		clear(r.seen)
	} else {
		r.seen = make([]uint8, size)
	}
	r.distinct, r.dups, r.stray = 0, 0, 0
	r.lat = r.lat[:0]
}

func (r *recorder) event(s, t, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := s - r.base
	if i < 0 || i >= int64(len(r.seen)) {
		r.stray++
		return
	}
	if r.seen[i] != 0 {
		r.dups++
		return
	}
	r.seen[i] = 1
	r.distinct++
	if t >= r.warmT {
		r.lat = append(r.lat, int32(min(now-t, 1<<31-1)))
	}
}

func (r *recorder) snapshot() (distinct, dups, stray int64, lat []int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.distinct, r.dups, r.stray, append([]int32(nil), r.lat...)
}

func (r *recorder) distinctCount() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.distinct
}

// counter is the sink of the fan-out clients: it only counts.
type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) event(_, _, _ int64) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *counter) load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
