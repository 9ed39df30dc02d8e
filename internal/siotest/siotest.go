// Package siotest opens real Socket.IO clients (github.com/zishang520/socket.io/clients/socket/v3, v3.0.6) in
// tests, around a race in that client.
package siotest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// NewClient returns a websocket client for url that is not connected yet and never reconnects by itself, so that
// listeners can be registered before Connect. auth may be nil.
func NewClient(url string, auth map[string]any) (*client.Socket, error) {
	return newClient(url, auth, false)
}

// newClient is NewClient, starting with long-polling (then upgrading to websocket) when polling is set.
func newClient(url string, auth map[string]any, polling bool) (*client.Socket, error) {
	opts := client.DefaultOptions()
	if polling {
		opts.SetTransports(types.NewSet(client.Polling, client.WebSocket))
	} else {
		opts.SetTransports(types.NewSet(client.WebSocket))
	}
	opts.SetForceNew(true)
	opts.SetReconnection(false)
	opts.SetAutoConnect(false)
	if auth != nil {
		opts.SetAuth(auth)
	}
	return client.Connect(url, opts)
}

// Connect opens the socket's manager, waits for it (at most wait), then connects the socket. Socket.Connect on a
// manager that is still opening can send CONNECT twice (once from the manager's "open" event, once because the
// manager is open by the time it checks), and the server answers a second CONNECT by closing the connection.
// On failure the socket is disconnected.
func Connect(s *client.Socket, wait time.Duration) error {
	opened := make(chan error, 1)
	s.Io().Open(func(err error) { opened <- err })
	select {
	case err := <-opened:
		if err != nil {
			s.Disconnect()
			return fmt.Errorf("siotest: engine open: %w", err)
		}
	case <-time.After(wait):
		s.Disconnect()
		return fmt.Errorf("siotest: engine open: no answer within %v", wait)
	}
	s.Connect()
	return nil
}

// Dial makes a client for url (see NewClient), lets setup register its listeners, connects it, and waits for the
// server's CONNECT. A handshake that stalls (an upstream client bug, seen about once in 300 connections under
// -race) is retried with a fresh client, at most attempts times; the failed clients are disconnected. The
// listeners of setup must not block: events that come before CONNECT (a recovered session's missed packets) and
// a failed client's "disconnect" are emitted while Dial waits.
func Dial(url string, auth map[string]any, wait time.Duration, attempts int, setup func(*client.Socket)) (*client.Socket, error) {
	return dial(url, auth, false, wait, attempts, setup)
}

// DialPolling is Dial with a client that connects over long-polling first, then upgrades to websocket.
func DialPolling(url string, auth map[string]any, wait time.Duration, attempts int, setup func(*client.Socket)) (*client.Socket, error) {
	return dial(url, auth, true, wait, attempts, setup)
}

func dial(url string, auth map[string]any, polling bool, wait time.Duration, attempts int, setup func(*client.Socket)) (*client.Socket, error) {
	var last error
	for range max(attempts, 1) {
		s, err := newClient(url, auth, polling)
		if err != nil {
			return nil, err
		}
		connected := make(chan struct{}, 1)
		_ = s.On(types.EventName("connect"), func(...any) {
			select {
			case connected <- struct{}{}:
			default:
			}
		})
		if setup != nil {
			setup(s)
		}
		if last = Connect(s, wait); last != nil {
			continue
		}
		select {
		case <-connected:
			return s, nil
		case <-time.After(wait):
			s.Disconnect()
			last = fmt.Errorf("siotest: no CONNECT within %v", wait)
		}
	}
	return nil, fmt.Errorf("siotest: %d attempts to connect to %s: %w", max(attempts, 1), url, last)
}

// WithQuery returns url with these query parameters appended (not escaped: test values).
func WithQuery(url string, query map[string]string) string {
	sep := "?"
	for k, v := range query {
		url += sep + k + "=" + v
		sep = "&"
	}
	return url
}

// ServerSocket waits, at most wait, for the server-side socket with this id on conns, the channel a test server's
// "connection" handler sends its sockets to. The sockets of other clients are put back for their own callers.
func ServerSocket(conns chan *socket.Socket, id string, wait time.Duration) (*socket.Socket, error) {
	deadline := time.After(wait)
	for {
		select {
		case ss := <-conns:
			if string(ss.Id()) == id {
				return ss, nil
			}
			conns <- ss // another client's; put it back
			time.Sleep(time.Millisecond)
		case <-deadline:
			return nil, fmt.Errorf("siotest: the server never saw client %s within %v", id, wait)
		}
	}
}

// Bytes returns the bytes of a binary value as the Go client and server decode it ([]byte or *types.BytesBuffer),
// or nil when v is not binary.
func Bytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case *types.BytesBuffer:
		return x.Bytes()
	}
	return nil
}

// Number returns a number as the Go client and server decode it (float64, int64, int or uint64) as a float64, or
// -1 when v is not one.
func Number(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return -1
}

// Serve serves io over HTTP on a loopback port and returns the server's URL. When the test ends it closes io
// (waiting at most 10s for it), the HTTP server, then the adapter through closeAdapter (with a 10s context);
// a close that does not finish or fails is a test error.
func Serve(t testing.TB, io *socket.Server, closeAdapter func(context.Context) error) string {
	hs := httptest.NewServer(io.ServeHandler(nil))
	t.Cleanup(func() {
		done := make(chan struct{})
		io.Close(func(error) { close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("server %s: close did not finish within 10s", hs.URL)
		}
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := closeAdapter(ctx); err != nil {
			t.Errorf("server %s: adapter close: %v", hs.URL, err)
		}
	})
	return hs.URL
}

// WaitFor polls cond until it holds, or fails the test after 10s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
