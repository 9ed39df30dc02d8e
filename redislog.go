package redisstreams

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through one process-wide logger (redis.SetLogger), by default to stderr: reconnect chatter during an
// outage would bypass Options.Logger, once per failed dial. New installs, once per process, a logger that forwards
// these lines to the Logger of the oldest open Adapter that has one (rate-limited), or discards them when there is
// none. An application that wants its own go-redis logger calls redis.SetLogger after New.
var redisLog struct {
	once    sync.Once
	mu      sync.Mutex
	loggers []*redisLogTarget
}

type redisLogTarget struct {
	log     *slog.Logger
	limiter rateLimited
}

// installRedisLogger routes go-redis's log lines to log while the returned function has not been called.
func installRedisLogger(log *slog.Logger) (remove func()) {
	redisLog.once.Do(func() { redis.SetLogger(forwardLogger{}) })
	if log == discardLogger {
		return func() {}
	}
	t := &redisLogTarget{log: log}
	redisLog.mu.Lock()
	redisLog.loggers = append(redisLog.loggers, t)
	redisLog.mu.Unlock()
	return func() {
		redisLog.mu.Lock()
		defer redisLog.mu.Unlock()
		for i, x := range redisLog.loggers {
			if x == t {
				redisLog.loggers = append(redisLog.loggers[:i:i], redisLog.loggers[i+1:]...)
				return
			}
		}
	}
}

type forwardLogger struct{}

func (forwardLogger) Printf(_ context.Context, format string, args ...any) {
	redisLog.mu.Lock()
	var t *redisLogTarget
	if len(redisLog.loggers) > 0 {
		t = redisLog.loggers[0]
	}
	redisLog.mu.Unlock()
	if t == nil {
		return
	}
	if ok, suppressed := t.limiter.Allow(); ok {
		t.log.Warn("redisstreams: go-redis: "+strings.TrimSpace(fmt.Sprintf(format, args...)), "unlogged_before", suppressed)
	}
}
