package redisstreams

import (
	"context"
	"log/slog"

	"github.com/socketio-go/redisstreams/internal/lograte"
)

// rateLimited keeps a kind of log line that can repeat per message to one line per lograte.Every.
type rateLimited = lograte.Limiter

// logLimited logs through r: at most one line per lograte.Every, with the count of the lines held back.
func (a *Adapter) logLimited(r *rateLimited, level slog.Level, msg string, args ...any) {
	if ok, suppressed := r.Allow(); ok {
		a.log.Log(context.Background(), level, msg, append(args, "unlogged_before", suppressed)...)
	}
}
