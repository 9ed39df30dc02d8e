//go:build benchnows

package main

import (
	"errors"
	"log/slog"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// installWS fails: this build is against a checkout of the library without the wstransport package (-lib with an
// older commit), so the -ws systems cannot run.
func installWS(*socket.ServerOptions, *slog.Logger) error {
	return errors.New("serve: built against a library without wstransport (-lib); the -ws systems need a newer checkout")
}
