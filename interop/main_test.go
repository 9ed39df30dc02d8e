// Package interop checks that Go servers (this module's adapter) and Node servers (socket.io 4.8 with
// @socket.io/redis-streams-adapter 0.3.1) form one cluster over the same Redis, with clients of both languages
// on servers of both languages. The Node side lives in ./node (npm ci there; scripts/test does it).
package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// shared is the standalone Redis and the cluster that the package's tests share.
var shared redistest.Shared

func TestMain(m *testing.M) {
	if os.Getenv(goServerProcessEnv) != "" {
		os.Exit(m.Run()) // a Go server process (TestGoServerProcess): Redis is the parent's
	}
	os.Exit(shared.Main(m, redistest.MainOptions{
		// Without Node there is nothing to run against; do not pay for a cluster then.
		Start: func() bool { return nodeMissing() == nil },
	}))
}

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
	shared.Require(t)
}
