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
