//go:build unix

package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerStartStopRestart(t *testing.T) {
	s := StartServerT(t, ServerOptions{})
	if s.Port() == reservedPort || s.Port() == 0 {
		t.Fatalf("unexpected port %d", s.Port())
	}
	if want := fmt.Sprintf("127.0.0.1:%d", s.Port()); s.Addr() != want {
		t.Fatalf("Addr() = %q, want %q", s.Addr(), want)
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer rdb.Close()

	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1", "dir": s.Dir()} {
		got, err := rdb.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", param, err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}

	pid := s.Pid()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if s.Pid() != 0 {
		t.Fatalf("Pid() after Stop = %d, want 0", s.Pid())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server is stopped")
	}

	port := s.Port()
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.Port() != port {
		t.Fatalf("port changed across Restart: %d -> %d", port, s.Port())
	}
	if s.Pid() == 0 || s.Pid() == pid {
		t.Fatalf("Pid() after Restart = %d (old %d)", s.Pid(), pid)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := rdb.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Restart: err = %v, want redis.Nil (persistence is off)", err)
	}
	// Restart of a running server also works.
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart of running server: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

func TestServerOptions(t *testing.T) {
	s := StartServerT(t, ServerOptions{
		ExtraArgs: []string{"--rename-command", "FLUSHALL", ""},
		Config:    "maxmemory 10mb\nmaxmemory-policy allkeys-lru",
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer rdb.Close()

	if err := rdb.FlushAll(ctx).Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("FLUSHALL: err = %v, want unknown command", err)
	}
	got, err := rdb.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	if got["maxmemory"] != "10485760" || got["maxmemory-policy"] != "allkeys-lru" {
		t.Errorf("CONFIG GET maxmemory* = %v", got)
	}
}

func TestServerCloseIdempotent(t *testing.T) {
	Require(t)
	s, err := StartServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Close (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Fatalf("dir %s not removed: %v", s.Dir(), err)
	}
	if err := s.Restart(); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestServerBadConfigReportsLog(t *testing.T) {
	Require(t)
	s, err := StartServer(ServerOptions{Config: "no-such-directive yes"})
	if err == nil {
		s.Close()
		t.Fatal("StartServer with a bad config succeeded")
	}
	t.Logf("expected error: %v", err)
	if !strings.Contains(err.Error(), "no-such-directive") {
		t.Errorf("error does not include redis-server output: %v", err)
	}
}

func TestServersInParallel(t *testing.T) {
	Require(t)
	const n = 6
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ports = map[int]bool{}
	)
	for range n {
		wg.Go(func() {
			s := StartServerT(t, ServerOptions{})
			mu.Lock()
			defer mu.Unlock()
			if ports[s.Port()] {
				t.Errorf("port %d handed out twice", s.Port())
			}
			ports[s.Port()] = true
		})
	}
	wg.Wait()
}

func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartClusterT(t, ClusterOptions{})
	t.Logf("3-master cluster ready in %v", time.Since(start))
	if len(c.Addrs()) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v, Nodes() has %d", c.Addrs(), len(c.Nodes()))
	}

	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()

	const keys = 300
	for i := range keys {
		if err := rdb.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	for i := range keys {
		got, err := rdb.Get(ctx, fmt.Sprintf("key:%d", i)).Int()
		if err != nil || got != i {
			t.Fatalf("GET key:%d = %d, %v", i, got, err)
		}
	}
	// Every master must hold some keys, i.e. they really span slots.
	var total int64
	for _, n := range c.Nodes() {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		size, err := nc.DBSize(ctx).Result()
		nc.Close()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.Addr(), err)
		}
		if size == 0 {
			t.Errorf("node %s holds no keys", n.Addr())
		}
		total += size
	}
	if total != keys {
		t.Errorf("nodes hold %d keys in total, want %d", total, keys)
	}

	// A restarted node keeps its slots and the cluster heals.
	node := c.Nodes()[1]
	if err := node.Restart(); err != nil {
		t.Fatalf("Restart node: %v", err)
	}
	if err := c.WaitHealthy(0); err != nil {
		t.Fatalf("after node restart: %v", err)
	}
}

func TestClusterReplicasFailover(t *testing.T) {
	start := time.Now()
	c := StartClusterT(t, ClusterOptions{Replicas: 1, NodeTimeout: time.Second})
	t.Logf("3 masters + 3 replicas ready in %v", time.Since(start))
	if len(c.Nodes()) != 6 {
		t.Fatalf("Nodes() has %d, want 6", len(c.Nodes()))
	}
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	sh, err := c.ShardOf("k")
	if err != nil {
		t.Fatal(err)
	}
	if sh.Master == nil || len(sh.Replicas) != 1 {
		t.Fatalf("ShardOf(k) = %+v, want a master and 1 replica", sh)
	}

	// Graceful: the replica takes over, the old master replicates it, nothing is lost.
	start = time.Now()
	if err := c.Failover(sh.Replicas[0], 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("CLUSTER FAILOVER done in %v", time.Since(start))
	after, err := c.ShardOf("k")
	if err != nil {
		t.Fatal(err)
	}
	if after.Master != sh.Replicas[0] || len(after.Replicas) != 1 || after.Replicas[0] != sh.Master {
		t.Fatalf("after failover: master %s replicas %v, want the roles swapped", after.Master.Addr(), after.Replicas)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k after failover = %q, %v", v, err)
	}

	// Hard: the master is killed, its replica is promoted after the node timeout.
	start = time.Now()
	master, replica := after.Master, after.Replicas[0]
	if err := master.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitPromoted(replica, 0, master); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica promoted %v after its master was killed", time.Since(start))
	// A new client: go-redis's own keeps dialing the dead master until it reloads the slot map (every 60 s, or
	// after a MOVED).
	fresh := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{replica.Addr()}})
	defer fresh.Close()
	if v, err := fresh.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k after the master was killed = %q, %v", v, err)
	}
	// Restarted empty, the old master rejoins as a replica of the new one.
	if err := master.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(0); err != nil {
		t.Fatal(err)
	}
	if sh, err := c.ShardOf("k"); err != nil || sh.Master != replica || len(sh.Replicas) != 1 || sh.Replicas[0] != master {
		t.Fatalf("after the restart: %+v, %v", sh, err)
	}
}

func TestClusterTooSmall(t *testing.T) {
	Require(t)
	if _, err := StartCluster(ClusterOptions{Masters: 2}); err == nil {
		t.Fatal("StartCluster with 2 masters succeeded")
	}
}

func TestStrict(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"false", "0", false},
		{"true", "", true},
		{"", "1", true},
		{"1", "", true},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("REQUIRE_REDIS", tc.require)
		if got := Strict(); got != tc.want {
			t.Errorf("CI=%q REQUIRE_REDIS=%q: Strict() = %v, want %v", tc.ci, tc.require, got, tc.want)
		}
	}
}

func TestMissing(t *testing.T) {
	lookNone := func(string) (string, error) { return "", errors.New("not found") }
	lookOnlyServer := func(name string) (string, error) {
		if name == serverBinary {
			return "/usr/bin/" + name, nil
		}
		return "", errors.New("not found")
	}
	lookAll := func(name string) (string, error) { return "/usr/bin/" + name, nil }

	if err := missing(lookAll); err != nil {
		t.Errorf("missing(all present) = %v", err)
	}
	err := missing(lookNone)
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Errorf("missing(none) = %v", err)
	}
	err = missing(lookOnlyServer)
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), ": redis-cli not found on PATH") {
		t.Errorf("missing(only server) = %v", err)
	}
}

// TestMissingOnEmptyPath runs the real lookup against an empty PATH.
func TestMissingOnEmptyPath(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if err := Missing(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Missing() = %v, want ErrNotInstalled", err)
	}
	if _, err := StartServer(ServerOptions{}); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("StartServer() error = %v, want ErrNotInstalled", err)
	}
	if _, err := StartCluster(ClusterOptions{}); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("StartCluster() error = %v, want ErrNotInstalled", err)
	}
	t.Setenv("CI", "true")
	tb := &recordingTB{TB: t}
	Require(tb)
	if !tb.failed || tb.skipped {
		t.Fatalf("Require under CI=true: failed=%v skipped=%v, want a failure", tb.failed, tb.skipped)
	}
}

// recordingTB records Skipf/Fatalf instead of stopping the test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}

func TestRequire(t *testing.T) {
	notInstalled := fmt.Errorf("%w: redis-server not found", ErrNotInstalled)
	for _, tc := range []struct {
		name            string
		err             error
		strict          bool
		skipped, failed bool
	}{
		{"present", nil, false, false, false},
		{"present strict", nil, true, false, false},
		{"missing lenient", notInstalled, false, true, false},
		{"missing strict", notInstalled, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &recordingTB{TB: t}
			require(tb, tc.err, tc.strict)
			if tb.skipped != tc.skipped || tb.failed != tc.failed {
				t.Errorf("skipped=%v failed=%v (%q), want skipped=%v failed=%v",
					tb.skipped, tb.failed, tb.msg, tc.skipped, tc.failed)
			}
		})
	}
}

func TestRestartDetectsForeignPortOwner(t *testing.T) {
	a := StartServerT(t, ServerOptions{})
	b := StartServerT(t, ServerOptions{StartTimeout: 2 * time.Second})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b.port = a.Port() // simulate another process grabbing b's port
	err := b.Restart()
	if err == nil || !errors.Is(err, errPortInUse) {
		t.Fatalf("Restart on a taken port: err = %v, want errPortInUse", err)
	}
	if b.Pid() != 0 {
		t.Fatalf("failed Restart left a process running (pid %d)", b.Pid())
	}
}

// TestNoLeakOnCrash checks that servers die with a crashed test binary: it
// re-runs itself in a child process that starts a server and SIGKILLs itself.
func TestNoLeakOnCrash(t *testing.T) {
	if os.Getenv("REDISTEST_CRASH_CHILD") == "1" {
		s, err := StartServer(ServerOptions{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Printf("pid=%d dir=%s\n", s.Pid(), s.Dir())
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux-only")
	}
	Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoLeakOnCrash$", "-test.v")
	cmd.Env = append(os.Environ(), "REDISTEST_CRASH_CHILD=1")
	out, _ := cmd.Output() // the child is expected to die from SIGKILL
	var (
		pid int
		dir string
	)
	for line := range strings.Lines(string(out)) {
		if _, err := fmt.Sscanf(line, "pid=%d dir=%s", &pid, &dir); err == nil {
			break
		}
	}
	if pid == 0 {
		t.Fatalf("child did not report a server pid; output:\n%s", out)
	}
	if strings.Contains(dir, "redistest-") {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server pid %d outlived its crashed parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func TestServerTLS(t *testing.T) {
	files, err := NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := StartServerT(t, ServerOptions{TLS: files})
	if s.TLSAddr() == "" || s.TLSAddr() == s.Addr() {
		t.Fatalf("TLSAddr %q, plain %q", s.TLSAddr(), s.Addr())
	}
	cfg, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", s.TLSAddr(), cfg)
	if err != nil {
		t.Fatalf("TLS handshake with the generated CA: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "+PONG\r\n" {
		t.Fatalf("PING over TLS: %q %v", buf, err)
	}
	// Without the authority, the certificate is refused.
	if c, err := tls.Dial("tcp", s.TLSAddr(), &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Fatal("TLS handshake succeeded without trusting the generated CA")
	}
	if s.Restart() != nil || s.TLSAddr() == "" {
		t.Fatal("restart")
	}
}

// TestSharedRequire: tests that need the shared servers pass when they run, skip when they do not, and fail
// instead under CI.
func TestSharedRequire(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("REQUIRE_REDIS", "")
	var running Shared
	tb := &recordingTB{TB: t}
	running.Require(tb)
	if tb.failed || tb.skipped {
		t.Fatalf("Require with the servers running: failed=%v skipped=%v", tb.failed, tb.skipped)
	}
	down := Shared{Err: errNotStarted}
	tb = &recordingTB{TB: t}
	down.Require(tb)
	if tb.failed || !tb.skipped || !strings.Contains(tb.msg, errNotStarted.Error()) {
		t.Fatalf("Require without the servers: failed=%v skipped=%v msg=%q, want a skip that says why", tb.failed, tb.skipped, tb.msg)
	}
	t.Setenv("CI", "true")
	tb = &recordingTB{TB: t}
	down.Require(tb)
	if !tb.failed || tb.skipped {
		t.Fatalf("Require without the servers under CI=true: failed=%v skipped=%v, want a failure", tb.failed, tb.skipped)
	}
}
