package redistest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	defaultStartTimeout = 15 * time.Second
	stopTimeout         = 10 * time.Second
	startAttempts       = 8
	// reservedPort is the default Redis port; a developer's own server may
	// be running there, so the harness never uses it.
	reservedPort = 6379
	// busPortOffset is the distance between a cluster node's client port and
	// its cluster bus port.
	busPortOffset = 10000
)

// errPortInUse reports that a freshly started server could not own its port;
// the caller may retry on another port.
var errPortInUse = errors.New("port already in use")

// ServerOptions configures a server started by [StartServer].
type ServerOptions struct {
	// ExtraArgs are appended to the redis-server command line after every
	// setting chosen by the harness, so they take precedence, e.g.
	// []string{"--rename-command", "FLUSHALL", ""}.
	ExtraArgs []string
	// Config holds extra redis.conf lines appended to the generated
	// configuration file after the harness defaults. The port (and cluster
	// settings) are passed on the command line and cannot be changed here.
	Config string
	// StartTimeout bounds the wait for the server to answer PING after each
	// start or restart. Zero means 15 seconds.
	StartTimeout time.Duration
	// TLS, if set, makes the server accept TLS connections as well, on a port
	// of their own ([Server.TLSAddr]); the plain port stays open (the harness
	// uses it to check readiness). See [NewTLSFiles] for a certificate.
	TLS *TLSFiles
}

// Server is one redis-server process listening on 127.0.0.1. Its methods are
// safe for concurrent use.
type Server struct {
	opts    ServerOptions
	dir     string
	port    int
	tlsPort int                // 0 without TLS
	cluster *clusterNodeConfig // nil for standalone servers

	mu     sync.Mutex
	proc   *process // nil while stopped
	closed bool
}

// clusterNodeConfig holds the settings of a server started as a cluster node.
type clusterNodeConfig struct {
	nodeTimeout time.Duration
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returns
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartServer starts a standalone redis-server on a free loopback port and
// waits until it answers PING. The caller must call [Server.Close]. If the
// binaries are missing the error wraps [ErrNotInstalled].
func StartServer(opts ServerOptions) (*Server, error) {
	return startServer(opts, nil)
}

// StartServerT is like [StartServer] but skips or fails t (see [Require]) when
// Redis is not installed, fails t on any other error, and closes the server
// when t finishes.
func StartServerT(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	Require(t)
	s, err := StartServer(opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return s
}

func startServer(opts ServerOptions, cluster *clusterNodeConfig) (*Server, error) {
	if err := Missing(); err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: create temp dir: %w", err)
	}
	s := &Server{opts: opts, dir: dir, cluster: cluster}
	if err := s.writeConfig(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		s.port, err = freePort(cluster != nil)
		if err == nil && opts.TLS != nil {
			s.tlsPort, err = freePort(false)
			if err == nil && s.tlsPort == s.port {
				err = fmt.Errorf("%w: TLS port %d is the plain port", errPortInUse, s.port)
			}
		}
		if err == nil {
			err = s.start()
		}
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("redistest: start redis-server: %w", err)
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port. It does not change across restarts.
func (s *Server) Port() int { return s.port }

// TLSAddr returns the address of the server's TLS port, "127.0.0.1:port", or
// "" when it was started without [ServerOptions.TLS].
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// Dir returns the server's private working directory.
func (s *Server) Dir() string { return s.dir }

// LogFile returns the path of the server's log file, useful when debugging a
// failing test.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "redis.log") }

// Pid returns the process id of the running server, or 0 when it is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Stop kills the server with SIGKILL (simulating a crash or outage) and waits
// for it to exit. Stopping a stopped server is a no-op. All data is lost,
// because persistence is disabled.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Restart stops the server if it is running and starts it again on the same
// port, waiting until it answers PING. The new process starts with an empty
// dataset; a cluster node keeps its identity and slots (nodes.conf).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("redistest: restart of closed server")
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = s.start(); !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("redistest: restart redis-server on port %d: %w", s.port, err)
	}
	return nil
}

// Close stops the server and removes its working directory. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stopLocked()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("redistest: remove %s: %w", s.dir, rmErr))
	}
	return err
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	return stopProcess(p)
}

func stopProcess(p *process) error {
	if !p.exited() {
		if err := killTree(p.cmd.Process); err != nil && !p.exited() {
			return fmt.Errorf("redistest: kill redis-server (pid %d): %w", p.cmd.Process.Pid, err)
		}
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("redistest: redis-server (pid %d) did not exit within %v", p.cmd.Process.Pid, stopTimeout)
	}
}

// writeConfig writes redis.conf with the harness defaults plus opts.Config.
func (s *Server) writeConfig() error {
	var b strings.Builder
	b.WriteString("# Generated by redistest.\n")
	b.WriteString("bind 127.0.0.1\n")
	b.WriteString("protected-mode no\n")
	b.WriteString("daemonize no\n")
	b.WriteString("save \"\"\n")
	b.WriteString("appendonly no\n")
	fmt.Fprintf(&b, "dir %s\n", strconv.Quote(s.dir))
	fmt.Fprintf(&b, "logfile %s\n", strconv.Quote(s.LogFile()))
	if t := s.opts.TLS; t != nil {
		fmt.Fprintf(&b, "tls-cert-file %s\n", strconv.Quote(t.CertFile))
		fmt.Fprintf(&b, "tls-key-file %s\n", strconv.Quote(t.KeyFile))
		fmt.Fprintf(&b, "tls-ca-cert-file %s\n", strconv.Quote(t.CAFile))
		b.WriteString("tls-auth-clients no\n")
	}
	if s.opts.Config != "" {
		b.WriteString(s.opts.Config)
		b.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(s.dir, "redis.conf"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("redistest: write redis.conf: %w", err)
	}
	return nil
}

func (s *Server) args() []string {
	args := []string{filepath.Join(s.dir, "redis.conf"), "--port", strconv.Itoa(s.port)}
	if s.tlsPort != 0 {
		args = append(args, "--tls-port", strconv.Itoa(s.tlsPort))
	}
	if s.cluster != nil {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(s.cluster.nodeTimeout.Milliseconds(), 10),
			// A replica's first (diskless) sync starts at once, not after the default 5 s delay.
			"--repl-diskless-sync-delay", "0",
		)
	}
	return append(args, s.opts.ExtraArgs...)
}

// start launches redis-server on s.port and waits for it to become ready. The
// caller holds s.mu (or owns s exclusively).
func (s *Server) start() error {
	bin, err := exec.LookPath(serverBinary)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	logStart := fileSize(s.LogFile())
	stdioPath := filepath.Join(s.dir, "stdio.log")
	stdioStart := fileSize(stdioPath)
	stdio, err := os.OpenFile(stdioPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", stdioPath, err)
	}
	cmd := exec.Command(bin, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = stdio
	cmd.Stderr = stdio
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	_ = stdio.Close() // the child holds its own descriptor
	if err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // a non-zero status is expected after SIGKILL
		close(p.done)
	}()

	if err := s.waitReady(p); err != nil {
		_ = stopProcess(p)
		logs := tail(s.LogFile(), logStart) + tail(stdioPath, stdioStart)
		if errors.Is(err, errPortInUse) || strings.Contains(logs, "already in use") {
			err = fmt.Errorf("%w (%w)", errPortInUse, err)
		}
		if logs != "" {
			err = fmt.Errorf("%w\n--- redis-server output (%s) ---\n%s", err, s.dir, logs)
		}
		return err
	}
	s.proc = p
	return nil
}

// waitReady polls the server until it answers PING and INFO reports our own
// pid, which guards against another process owning the port.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	var lastErr error
	for {
		if p.exited() {
			return fmt.Errorf("redis-server exited during startup: %s", p.cmd.ProcessState)
		}
		pid, err := probe(s.Addr())
		if err == nil {
			if pid != p.cmd.Process.Pid {
				return fmt.Errorf("%w: port %d answered by pid %d, not %d",
					errPortInUse, s.port, pid, p.cmd.Process.Pid)
			}
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d not ready after %v: %w",
				s.port, s.opts.StartTimeout, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe sends PING and returns the process id reported by INFO server.
func probe(addr string) (int, error) {
	c, err := dialRESP(addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	pong, err := c.doString("PING")
	if err != nil {
		return 0, err
	}
	if pong != "PONG" {
		return 0, fmt.Errorf("unexpected PING reply %q", pong)
	}
	info, err := c.doString("INFO", "server")
	if err != nil {
		return 0, err
	}
	v, ok := infoField(info, "process_id")
	if !ok {
		return 0, errors.New("INFO server lacks process_id")
	}
	return strconv.Atoi(v)
}

// freePort returns a loopback TCP port that is currently free and is not
// 6379. With bus set, port+10000 (the cluster bus port) is free as well.
func freePort(bus bool) (int, error) {
	var lastErr error
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lastErr = err
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port == reservedPort || (bus && port+busPortOffset > 65535) {
			_ = l.Close()
			continue
		}
		if bus {
			bl, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+busPortOffset)))
			if err != nil {
				_ = l.Close()
				lastErr = err
				continue
			}
			_ = bl.Close()
		}
		_ = l.Close()
		return port, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no suitable port found")
	}
	return 0, fmt.Errorf("find free port: %w", lastErr)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tail returns at most the last 4 KiB written to path after offset.
func tail(path string, offset int64) string {
	const limit = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if size := fileSize(path); size-offset > limit {
		offset = size - limit
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, limit))
	if err != nil {
		return ""
	}
	return string(b)
}
