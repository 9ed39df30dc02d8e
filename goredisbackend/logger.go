package goredisbackend

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/socketio-go/redisstreams/internal/lograte"
)

// Logger returns a go-redis logger that writes go-redis's own log lines (reconnect chatter during an outage, once
// per failed dial) to log, at Warn level, at most one line every 10 seconds with the count of those held back.
//
// go-redis has one logger per process, stderr by default. Nothing in this module installs one: a program that wants
// go-redis's lines in its structured log says so itself, before creating its clients:
//
//	redis.SetLogger(goredisbackend.Logger(logger))
func Logger(log *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return &logger{log: log}
}

type logger struct {
	log     *slog.Logger
	limiter lograte.Limiter
}

func (l *logger) Printf(ctx context.Context, format string, args ...any) {
	if ok, suppressed := l.limiter.Allow(); ok {
		l.log.WarnContext(ctx, "go-redis: "+strings.TrimSpace(fmt.Sprintf(format, args...)), "unlogged_before", suppressed)
	}
}
