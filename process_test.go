package redisstreams

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Server processes for the fault tests that measure each process (TestFaultOverload): the test binary runs itself
// again as TestHelperServerProcess, one Socket.IO server with its adapter per process, driven over stdin and
// stdout by lines. The Redis address goes in helperAddrEnv, which also keeps TestMain from starting Redis.
const (
	helperRoleEnv    = "REDISSTREAMS_HELPER_ROLE"   // "publisher", "receiver", or "recovery" (recoveryServerMain)
	helperFamilyEnv  = "REDISSTREAMS_HELPER_FAMILY" // familyGoRedis or familyRueidis
	helperMaxLenEnv  = "REDISSTREAMS_HELPER_MAXLEN" // Options.MaxLen
	helperReadEnv    = "REDISSTREAMS_HELPER_READ"   // Options.ReadCount
	helperDelayEnv   = "REDISSTREAMS_HELPER_DELAY"  // receiver: pause before each batch is delivered (a Go duration)
	helperOutputMark = "helper: "                   // prefix of the protocol's output lines
	helperCloseWait  = 15 * time.Second             // how long a helper may take to close
)

// TestHelperServerProcess is the server process of the multi-process fault tests (it skips unless started by
// one). It prints "ready <url>" once its namespace "/" follows the stream, then answers, one line each:
//
//	stats             -> "stats <Stats as JSON>"
//	emit <rate> <n> <pad>
//	                  -> (publisher) emits ("seq", i, a string of pad bytes) for i in 0..n-1, on an absolute
//	                     schedule of rate per second, then "emitted <n>"
//	quit, or EOF      -> closes the server and the adapter, prints "closed <error or ok>" and the final stats
func TestHelperServerProcess(t *testing.T) {
	addr, role := os.Getenv(helperAddrEnv), os.Getenv(helperRoleEnv)
	if addr == "" || role == "" {
		t.Skip("server process of the multi-process fault tests")
	}
	if role == "recovery" {
		recoveryServerMain(t, addr)
		return
	}
	atoi := func(env string) int64 {
		n, err := strconv.ParseInt(os.Getenv(env), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return n
	}
	say := helperSay
	prefix := os.Getenv(helperStreamEnv)
	a, _, err := config{family: os.Getenv(helperFamilyEnv)}.newAdapterOn(t, []string{addr}, Options{StreamName: prefix,
		ChannelPrefix: prefix, MaxLen: atoi(helperMaxLenEnv), ReadCount: atoi(helperReadEnv), BlockTime: time.Second,
		RequestsTimeout: 2 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("process", role)})
	if err != nil {
		t.Fatal(err)
	}
	if role == "receiver" {
		delay, err := time.ParseDuration(os.Getenv(helperDelayEnv))
		if err != nil {
			t.Fatal(err)
		}
		a.beforeDispatch = func() { time.Sleep(delay) }
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(a)
	server := socket.NewServer(nil, so) // the "/" namespace joins the cluster
	srv := httptest.NewServer(server.ServeHandler(nil))
	stats := func() string {
		b, err := json.Marshal(a.Stats())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	say("ready %s", srv.URL)

	helperCommands(func(f []string, line string) {
		switch {
		case f[0] == "stats":
			say("stats %s", stats())
		case f[0] == "emit" && len(f) == 4 && role == "publisher":
			rate, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			size, _ := strconv.Atoi(f[3])
			pad := strings.Repeat("x", size)
			start := time.Now()
			for sent := 0; sent < n; {
				due := min(int(time.Since(start).Seconds()*float64(rate)), n)
				for ; sent < due; sent++ {
					server.Emit("seq", sent, pad)
				}
				time.Sleep(5 * time.Millisecond)
			}
			say("emitted %d", n)
		default:
			t.Errorf("unknown command %q", line)
		}
	})
	closeHelper(t, server, srv, a)
}

// helperCommands passes each command line of a helper process's stdin, split in fields, to handle, until "quit" or
// the end of stdin.
func helperCommands(handle func(fields []string, line string)) {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "quit" {
			return
		}
		handle(f, in.Text())
	}
}

var helperOut sync.Mutex

// helperSay prints a line of a helper process's protocol.
func helperSay(format string, args ...any) {
	helperOut.Lock()
	defer helperOut.Unlock()
	fmt.Printf(helperOutputMark+format+"\n", args...)
}

// closeHelper closes a helper process's server, its HTTP server and its adapter, and says "closed <error or ok>"
// and the final stats.
func closeHelper(t *testing.T, server *socket.Server, srv *httptest.Server, a *Adapter) {
	done := make(chan struct{})
	server.Close(func(error) { close(done) })
	select {
	case <-done:
	case <-time.After(helperCloseWait / 2):
		t.Error("server close did not finish")
	}
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), helperCloseWait/2)
	defer cancel()
	result := "ok"
	if err := a.Close(ctx); err != nil {
		result = err.Error()
	}
	helperSay("closed %s", result)
	b, _ := json.Marshal(a.Stats())
	helperSay("stats %s", b)
}

// serverProcess is a running TestHelperServerProcess.
type serverProcess struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // protocol lines, without the mark
	exited chan struct{}
	url    string

	mu     sync.Mutex
	stderr bytes.Buffer
	other  []string // stdout lines outside the protocol (the test framework's)
	killed bool     // by kill: its exit is no failure
}

// kill sends SIGKILL to the process and waits until it has exited: a crash, with nothing closed or flushed.
func (p *serverProcess) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("%s: kill: %v", p.name, err)
	}
	<-p.exited
}

// startServerProcess starts a server process and waits until it is ready. Cleanup makes it close (and fails the
// test unless it exits cleanly: the race detector's reports fail it too), or kills it.
func startServerProcess(t *testing.T, name string, env ...string) *serverProcess {
	t.Helper()
	p := &serverProcess{name: name, lines: make(chan string, 64), exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperServerProcess$", "-test.count=1", "-test.timeout=5m")
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), helperOutputMark); ok {
				p.lines <- l
			} else {
				p.mu.Lock()
				p.other = append(p.other, sc.Text())
				p.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close() // EOF: the process closes its server and adapter
		select {
		case <-p.exited:
		case <-time.After(helperCloseWait):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not exit after closing; killed", p.name)
		}
		p.mu.Lock()
		killed := p.killed
		p.mu.Unlock()
		if waitErr != nil && !killed || t.Failed() || testing.Verbose() {
			if waitErr != nil && !killed {
				t.Errorf("%s exited: %v", p.name, waitErr)
			}
			t.Logf("%s: stdout %q; stderr:\n%s", p.name, p.otherLines(), p.stderrTail(4000))
		}
	})
	l := p.expect(t, "ready ", 30*time.Second)
	p.url = l
	return p
}

// expect returns the rest of the next protocol line, which must start with prefix.
func (p *serverProcess) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	select {
	case l := <-p.lines:
		rest, ok := strings.CutPrefix(l, prefix)
		if !ok {
			t.Fatalf("%s said %q, want %q...", p.name, l, prefix)
		}
		return rest
	case <-p.exited:
		t.Fatalf("%s exited; stderr:\n%s", p.name, p.stderrTail(4000))
	case <-time.After(timeout):
		t.Fatalf("%s: no %q line within %v", p.name, prefix, timeout)
	}
	return ""
}

// send writes one command line.
func (p *serverProcess) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// stats asks the process for its adapter's Stats.
func (p *serverProcess) stats(t *testing.T) Stats {
	t.Helper()
	p.send(t, "stats")
	var s Stats
	if err := json.Unmarshal([]byte(p.expect(t, "stats ", 10*time.Second)), &s); err != nil {
		t.Fatalf("%s: stats: %v", p.name, err)
	}
	return s
}

// close asks the process to close its server and adapter, and returns the result of Adapter.Close and the final
// stats.
func (p *serverProcess) close(t *testing.T) (string, Stats) {
	t.Helper()
	p.send(t, "quit")
	result := p.expect(t, "closed ", helperCloseWait)
	var s Stats
	if err := json.Unmarshal([]byte(p.expect(t, "stats ", 5*time.Second)), &s); err != nil {
		t.Fatalf("%s: stats: %v", p.name, err)
	}
	return result, s
}

// rss returns the process's resident set size in bytes (VmRSS, Linux), or 0 when it cannot tell.
func (p *serverProcess) rss() int64 { return rssOf(p.cmd.Process.Pid) }

func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

func (p *serverProcess) otherLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.other...)
}

func (p *serverProcess) stderrTail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.stderr.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}
