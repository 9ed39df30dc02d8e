//go:build !benchnows

package main

import (
	"log/slog"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/wstransport"
)

// installWS makes the server use this module's websocket transport.
func installWS(opts *socket.ServerOptions, log *slog.Logger) error {
	wstransport.Install(opts, wstransport.Options{Logger: log})
	return nil
}
