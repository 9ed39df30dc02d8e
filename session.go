package redisstreams

import (
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// PersistSession implements socket.Adapter. (Connection state recovery lands in its own change.)
func (n *nspAdapter) PersistSession(*socket.SessionToPersist) {}

// RestoreSession implements socket.Adapter.
func (n *nspAdapter) RestoreSession(socket.PrivateSessionId, string) (*socket.Session, error) {
	return nil, nil
}
