package goredisbackend

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
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// Logger writes go-redis's lines at Warn, one per interval: a flood of dial failures is one line.
func TestLoggerIsRateLimited(t *testing.T) {
	h := &recordHandler{}
	l := Logger(slog.New(h))
	for range 5 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 5, "connection refused")
	}
	if len(h.msgs) != 1 {
		t.Fatalf("%d lines, want 1: %q", len(h.msgs), h.msgs)
	}
	if want := "WARN go-redis: redis: connection pool: failed to dial after 5 attempts: connection refused"; !strings.HasPrefix(h.msgs[0], want) {
		t.Errorf("logged %q, want %q", h.msgs[0], want)
	}
}
