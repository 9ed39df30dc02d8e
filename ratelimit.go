package redisstreams

import (
	"context"
	"log/slog"

	"github.com/socketio-go/redisstreams/internal/ratelimit"
)

// rateLimited lets one log line of a kind through per ratelimit.Every (see ratelimit.Limiter).
type rateLimited = ratelimit.Limiter

// logLimited logs through r: at most one line per ratelimit.Every, with the count of the lines held back.
func (a *Adapter) logLimited(r *rateLimited, level slog.Level, msg string, args ...any) {
	if ok, suppressed := r.Allow(); ok {
		a.log.Log(context.Background(), level, msg, append(args, "unlogged_before", suppressed)...)
	}
}
