// Package interop checks that Go servers (this module's adapter) and Node servers (socket.io 4.8 with
// @socket.io/redis-streams-adapter 0.3.1) form one cluster over the same Redis, with clients of both languages
// on servers of both languages. The Node side lives in ./node (npm ci there; scripts/test does it).
package interop

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// Shared Redis processes, started once for the package by TestMain.
var (
	standalone *redistest.Server
	cluster    *redistest.Cluster
	redisErr   error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		redis.SetLogger(quietLogger{}) // reconnect chatter after each Close
	}
	stop := func() {}
	// Without Node there is nothing to run against; do not pay for a cluster then.
	if nodeMissing() == nil {
		standalone, cluster, stop, redisErr = redistest.StartShared()
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// nodeDir holds the Node scripts and their node_modules.
var nodeDir = "node"

// nodeMissing reports why the Node side cannot run, or nil.
func nodeMissing() error {
	if _, err := exec.LookPath("node"); err != nil {
		return err
	}
	for _, p := range []string{"socket.io", "socket.io-client", "redis", "@socket.io/redis-streams-adapter"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
			return errMissingModules{p}
		}
	}
	return nil
}

type errMissingModules struct{ pkg string }

func (e errMissingModules) Error() string {
	return "node package " + e.pkg + " is not installed; run `npm ci` in interop/node (scripts/test does)"
}

// requireInterop skips (or, under CI, fails) a test when Node or Redis is not available.
func requireInterop(t testing.TB) {
	t.Helper()
	if err := nodeMissing(); err != nil {
		if redistest.Strict() {
			t.Fatalf("node unavailable: %v", err)
		}
		t.Skipf("node unavailable: %v", err)
	}
	if redisErr != nil {
		if redistest.Strict() {
			t.Fatalf("redis unavailable: %v", redisErr)
		}
		t.Skipf("redis unavailable: %v", redisErr)
	}
}
