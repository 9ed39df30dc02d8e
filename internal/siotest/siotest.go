// Package siotest opens real Socket.IO clients (github.com/zishang520/socket.io/clients/socket/v3, v3.0.6) in
// tests, around a race in that client.
package siotest

import (
	"fmt"
	"time"

	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// NewClient returns a websocket client for url that is not connected yet and never reconnects by itself, so that
// listeners can be registered before Connect. auth may be nil.
func NewClient(url string, auth map[string]any) (*client.Socket, error) {
	opts := client.DefaultOptions()
	opts.SetTransports(types.NewSet(client.WebSocket))
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
// -race) is retried with a fresh client, at most attempts times; the failed clients are disconnected.
func Dial(url string, auth map[string]any, wait time.Duration, attempts int, setup func(*client.Socket)) (*client.Socket, error) {
	var last error
	for range max(attempts, 1) {
		s, err := NewClient(url, auth)
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
