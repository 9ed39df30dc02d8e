// Package redistest starts real redis-server processes (standalone servers
// and small Redis Cluster deployments) for integration tests.
//
// Servers listen on free loopback ports (never 6379), run with persistence
// disabled in a private temporary directory, and are killed when closed.
// A server can also accept TLS ([ServerOptions.TLS], certificates from
// [NewTLSFiles]), run with ACL users (ServerOptions.Config "user ..." lines),
// or run as a Sentinel (ExtraArgs "--sentinel").
//
// Every process is placed in its own process group and, on Linux, receives
// SIGKILL if the test binary dies, so crashed tests do not leak servers.
//
// When redis-server or redis-cli cannot be found on PATH, the *T helpers skip
// the test, unless [Strict] reports true (CI=true or REQUIRE_REDIS=1), in
// which case they fail it. The non-T constructors return an error wrapping
// [ErrNotInstalled] so that TestMain can make the same decision.
package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Names of the binaries looked up on PATH.
const (
	serverBinary = "redis-server"
	cliBinary    = "redis-cli"
)

// ErrNotInstalled is wrapped by errors reporting that redis-server or
// redis-cli is not available on PATH.
var ErrNotInstalled = errors.New("redistest: redis not installed")

// installHint tells a developer how to get the binaries.
const installHint = "install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`; " +
	"macOS: `brew install redis`) so that redis-server and redis-cli are on PATH"

// Strict reports whether missing Redis binaries must fail tests instead of
// skipping them. It is true when the environment variable CI is "true" (or
// "1") or REQUIRE_REDIS is "1" (or "true").
func Strict() bool {
	return envTrue("CI") || envTrue("REQUIRE_REDIS")
}

func envTrue(name string) bool {
	v := strings.TrimSpace(os.Getenv(name))
	return v == "1" || strings.EqualFold(v, "true")
}

// Missing returns nil when both redis-server and redis-cli are found on PATH,
// and otherwise an error wrapping [ErrNotInstalled] that explains how to
// install them.
func Missing() error {
	return missing(exec.LookPath)
}

func missing(lookPath func(string) (string, error)) error {
	var absent []string
	for _, name := range []string{serverBinary, cliBinary} {
		if _, err := lookPath(name); err != nil {
			absent = append(absent, name)
		}
	}
	if len(absent) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s not found on PATH; %s",
		ErrNotInstalled, strings.Join(absent, " and "), installHint)
}

// Require skips t when the Redis binaries are missing, or fails it when
// [Strict] is true.
func Require(t testing.TB) {
	t.Helper()
	require(t, Missing(), Strict())
}

func require(t testing.TB, missingErr error, strict bool) {
	t.Helper()
	if missingErr == nil {
		return
	}
	if strict {
		t.Fatalf("%v (required because CI=true or REQUIRE_REDIS=1)", missingErr)
		return
	}
	t.Skipf("skipping: %v", missingErr)
}

// StartShared starts, for a test binary's TestMain, one standalone server and one cluster that its tests share.
// stop stops both; it is safe to call when err is not nil (it stops what was started).
func StartShared() (standalone *Server, cluster *Cluster, stop func(), err error) {
	stop = func() {
		if cluster != nil {
			_ = cluster.Close()
		}
		if standalone != nil {
			_ = standalone.Close()
		}
	}
	if err = Missing(); err != nil {
		return nil, nil, stop, err
	}
	if standalone, err = StartServer(ServerOptions{}); err != nil {
		return nil, nil, stop, err
	}
	if cluster, err = StartCluster(ClusterOptions{}); err != nil {
		return standalone, nil, stop, err
	}
	return standalone, cluster, stop, nil
}
