package wire

import (
	"strconv"
	"strings"
	"time"
)

// The Node adapter's defaults (0.3.1), shared by the adapter, the emitter and the CLI.
const (
	DefaultStreamName       = "socket.io"
	DefaultStreamCount      = 1
	DefaultChannelPrefix    = "socket.io"
	DefaultMaxLen           = 10000
	DefaultSessionKeyPrefix = "sio:session:"
	// DefaultRequestsTimeout is Node's fixed request timeout (DEFAULT_TIMEOUT).
	DefaultRequestsTimeout = 5 * time.Second
	// Streams-only layout (0.2.x).
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
)

// EmitterUID is the uid of the entries of @socket.io/redis-streams-emitter (and of this project's emitter). It is
// not a server: it is never counted as one, and nothing is ever sent to it.
const EmitterUID = "emitter"

// ChannelName returns a namespace's public PUB/SUB channel "<prefix>#<nsp>#" when uid is empty, else a server's
// private one "<prefix>#<nsp>#<uid>#".
func ChannelName(prefix, nsp, uid string) string {
	var sb strings.Builder
	sb.Grow(len(prefix) + len(nsp) + len(uid) + 3)
	sb.WriteString(prefix)
	sb.WriteByte('#')
	sb.WriteString(nsp)
	sb.WriteByte('#')
	if uid != "" {
		sb.WriteString(uid)
		sb.WriteByte('#')
	}
	return sb.String()
}

// StreamNames returns every stream a namespace can be written to with this layout: the base name when count is
// 1, else "<base>-<i>" for i in (-count, count), negative indexes included (Node's hash gives them).
func StreamNames(base string, count int) []string {
	if count <= 1 {
		return []string{base}
	}
	out := make([]string, 0, 2*count-1)
	for i := 0; i < count; i++ {
		out = append(out, base+"-"+strconv.Itoa(i))
	}
	for i := 1; i < count; i++ {
		out = append(out, base+"-"+strconv.Itoa(-i))
	}
	return out
}
