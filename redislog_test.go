package redisstreams

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// go-redis's process-wide log goes to the oldest open Adapter's Logger, rate-limited, and nowhere once it closed.
func TestRedisLogForwarding(t *testing.T) {
	first, second := &recordHandler{}, &recordHandler{}
	removeFirst := installRedisLogger(slog.New(first))
	removeSecond := installRedisLogger(slog.New(second))
	defer removeSecond()
	for range 5 {
		forwardLogger{}.Printf(context.Background(), "redis: dial %s: connection refused", "127.0.0.1:1")
	}
	if first.count() != 1 || second.count() != 0 {
		t.Fatalf("first got %d lines, second %d; want 1 (rate-limited) and 0", first.count(), second.count())
	}
	if msg := first.msgs[0]; !strings.Contains(msg, "go-redis: redis: dial 127.0.0.1:1: connection refused") {
		t.Errorf("forwarded %q", msg)
	}
	removeFirst()
	forwardLogger{}.Printf(context.Background(), "redis: again")
	if first.count() != 1 || second.count() != 1 {
		t.Errorf("after the first closed: first %d, second %d lines", first.count(), second.count())
	}
}
