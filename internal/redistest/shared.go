package redistest

import (
	"context"
	"errors"
	"flag"
	"log"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Shared is the standalone server and the 3-master cluster that the tests of one test binary share, started once
// by [Shared.Main] from the package's TestMain.
type Shared struct {
	Standalone *Server
	Cluster    *Cluster
	// Err tells why they are not running (not started, or failed to start); nil when they are.
	Err error
}

// errNotStarted is Shared.Err when the package's MainOptions.Start chose not to start the servers.
var errNotStarted = errors.New("redistest: shared redis servers not started")

// MainOptions are a package's own steps around [Shared.Main].
type MainOptions struct {
	// Start, when set, is asked whether to start the servers at all; when it returns false the tests run without
	// them (and Require skips or fails the tests that need them).
	Start func() bool
	// Started, when set, is called with the outcome of the start (nil, or why the servers are not running) before
	// the tests run.
	Started func(err error)
}

// Main is the body of a TestMain: it parses the flags, quiets go-redis (see [QuietGoRedis]), starts the shared
// servers, runs the tests, stops the servers and returns the exit code for os.Exit.
func (s *Shared) Main(m *testing.M, o MainOptions) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	QuietGoRedis()
	stop := func() {}
	if o.Start == nil || o.Start() {
		s.Standalone, s.Cluster, stop, s.Err = StartShared()
	} else {
		s.Err = errNotStarted
	}
	if o.Started != nil {
		o.Started(s.Err)
	}
	code := m.Run()
	stop()
	return code
}

// Require skips t when the shared servers are not running, or fails it when [Strict] is true.
func (s *Shared) Require(t testing.TB) {
	t.Helper()
	if s.Err == nil {
		return
	}
	if Strict() {
		t.Fatalf("redis unavailable: %v", s.Err)
		return
	}
	t.Skipf("redis unavailable: %v", s.Err)
}

// QuietGoRedis silences go-redis's global logger unless the tests run with -v (flags parsed): its reconnect
// chatter after every Close, or while a test has Redis stopped, is noise in a test's output.
func QuietGoRedis() {
	if !testing.Verbose() {
		redis.SetLogger(quietLogger{})
	}
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// Lazy is a standalone redis-server started on first use, for runnable examples (which cannot skip): Addr starts
// it (and ends the program if it cannot), Close stops it from TestMain.
type Lazy struct {
	once sync.Once
	srv  *Server
}

// Addr returns the server's address, starting it the first time.
func (l *Lazy) Addr() string {
	l.once.Do(func() {
		var err error
		if l.srv, err = StartServer(ServerOptions{}); err != nil {
			log.Fatal(err)
		}
	})
	return l.srv.Addr()
}

// Close stops the server if it was started.
func (l *Lazy) Close() {
	if l.srv != nil {
		_ = l.srv.Close()
	}
}
