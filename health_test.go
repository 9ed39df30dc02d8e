package redisstreams

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// Wrong credentials fail New at once, with Redis's error; an unreachable Redis does not (the adapter reconnects on
// its own) but Ping says so until it answers.
func TestStartupCheckAndPing(t *testing.T) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{Config: "user app on >secret ~* &* +@all\n"})

	bad := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "wrong"})
	t.Cleanup(func() { _ = bad.Close() })
	if _, err := New(t.Context(), goredisbackend.New(bad), Options{RequestsTimeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("New with a wrong password: %v, want WRONGPASS", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	down := redis.NewClient(&redis.Options{Addr: closed, MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	a, err := New(t.Context(), goredisbackend.New(down), Options{RequestsTimeout: time.Second})
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	if err := a.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with Redis down: %v, want ErrUnavailable", err)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Error(err)
	}
	if err := a.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}

	// A working cluster answers Ping; a paused Redis fails it (within the caller's deadline); it recovers after.
	prefix := "t" + randomID()
	good, _, err := config{}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix, ChannelPrefix: prefix,
		BlockTime: 200 * time.Millisecond, RequestsTimeout: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWithAdapters(t, []*Adapter{good})
	if err := nodes[0].adapter.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pid := srv.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err = nodes[0].adapter.Ping(ctx)
	cancel()
	if err == nil {
		t.Error("Ping succeeded while Redis was paused")
	}
	resume()
	waitFor(t, "Ping after Redis resumed", func() bool { return nodes[0].adapter.Ping(t.Context()) == nil })
}
