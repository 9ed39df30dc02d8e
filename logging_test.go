package redisstreams

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/redistest"
)

// goRedisLog records go-redis's process-wide log lines.
type goRedisLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *goRedisLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
	l.mu.Unlock()
}

func (l *goRedisLog) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// New changes no process-wide state (issue 19 item 1): a go-redis logger the program set before still gets
// go-redis's lines afterwards (here the dial failures of the adapter's own connections while Redis is down).
// Routing them to a slog.Logger is the program's choice: redis.SetLogger(goredisbackend.Logger(l)).
func TestNewKeepsTheProgramsGoRedisLogger(t *testing.T) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	mine := &goRedisLog{}
	redis.SetLogger(mine)
	defer redistest.QuietGoRedis() // the test binary's own choice again

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer rc.Close()
	a, err := New(t.Context(), goredisbackend.New(rc), Options{StreamName: "t" + randomID(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWithAdapters(t, []*Adapter{a})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Restart(); err != nil {
			t.Error(err)
		}
	}()
	nodes[0].io.Emit("x") // a write that must dial
	waitFor(t, "go-redis's dial failures in the program's logger", func() bool { return mine.count("failed to dial") > 0 })
}
