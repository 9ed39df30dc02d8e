package interop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Connection state recovery across languages when a server dies, and the recovery cases Node users report, with
// socket.io-client reconnecting by itself through a load balancer (lb), as in an application.

// goServerProcessEnv makes the test binary a Go server (TestGoServerProcess); its value is "<prefix> <cluster 0|1>
// <redis addresses, comma separated>".
const goServerProcessEnv = "INTEROP_GO_SERVER"

const goServerReady = "GO-SERVER-READY "

// TestGoServerProcess is a Go server with recovery on, in a process of its own, so that a test can kill it: it
// prints goServerReady and its URL, and runs until its stdin closes (or it is killed).
func TestGoServerProcess(t *testing.T) {
	spec := os.Getenv(goServerProcessEnv)
	if spec == "" {
		t.Skip("a Go server process of the interop tests")
	}
	f := strings.Fields(spec)
	if len(f) != 3 {
		t.Fatalf("%s=%q", goServerProcessEnv, spec)
	}
	cfg := config{cluster: f[1] == "1", recovery: true}
	var rc redis.UniversalClient
	if cfg.cluster {
		rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(f[2], ",")})
	} else {
		rc = redis.NewClient(&redis.Options{Addr: f[2]})
	}
	defer rc.Close()
	g := startGoServer(t, "GK", rc, cfg.goOptions(t, f[0]), nil, true)
	fmt.Println(goServerReady + g.url())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// goProc is a running TestGoServerProcess.
type goProc struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
}

func startGoProc(t *testing.T, cfg config, prefix string) *goProc {
	t.Helper()
	addrs, cl := shared.Standalone.Addr(), "0"
	if cfg.cluster {
		addrs, cl = strings.Join(shared.Cluster.Addrs(), ","), "1"
	}
	p := &goProc{cmd: exec.Command(os.Args[0], "-test.run=^TestGoServerProcess$", "-test.count=1"), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), goServerProcessEnv+"="+prefix+" "+cl+" "+addrs)
	p.cmd.SysProcAttr = sysProcAttr()
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), goServerReady); ok {
				ready <- u
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case p.url = <-ready:
	case <-p.exited:
		t.Fatal("Go server process exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("Go server process not ready within 30s")
	}
	return p
}

// kill crashes the server: SIGKILL, nothing closed or written.
func (p *goProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// lb is a TCP load balancer in front of one server at a time: new connections go to its current target; while
// it is paused, they are closed at once (the clients keep trying).
type lb struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	paused bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newLB(t testing.TB, target string) *lb {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{ln: ln}
	l.to(target)
	l.wg.Go(l.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		l.mu.Lock()
		for _, c := range l.conns {
			_ = c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l
}

func (l *lb) url() string { return "http://" + l.ln.Addr().String() }

// to sends new connections to the server at url.
func (l *lb) to(url string) {
	l.mu.Lock()
	l.target = strings.TrimPrefix(url, "http://")
	l.mu.Unlock()
}

func (l *lb) pause(p bool) {
	l.mu.Lock()
	l.paused = p
	l.mu.Unlock()
}

func (l *lb) serve() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		target, paused := l.target, l.paused
		l.mu.Unlock()
		var out net.Conn
		if !paused {
			out, err = net.Dial("tcp", target)
		}
		if paused || err != nil {
			_ = in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		for _, p := range [][2]net.Conn{{in, out}, {out, in}} {
			l.wg.Go(func() {
				_, _ = io.Copy(p[0], p[1])
				_ = p[0].Close() // the other side sees the end too
			})
		}
	}
}

// recoverySetup is G0 (Go) and N0 (Node) with recovery on, sharing a prefix, and a Node client process.
type recoverySetup struct {
	cfg    config
	prefix string
	g0     *goServer
	n0     *nodeServer
	nc     *nodeClients
	rc     redis.UniversalClient
}

// newRecoverySetup starts it; window is G0's recovery window (0: Socket.IO's default).
func newRecoverySetup(t *testing.T, cfg config, window time.Duration) *recoverySetup {
	t.Helper()
	cfg.recovery = true
	if window == 0 {
		window = 2 * time.Minute
	}
	rs := &recoverySetup{cfg: cfg, prefix: "interop-" + randomHex(4), rc: cfg.newRedis(t)}
	waitN0 := spawnNodeServer(t, nodeDir, "N0", cfg.nodeEnv(rs.prefix))
	rs.nc = startNodeClients(t)
	rs.g0 = startGoServerWindow(t, "G0", cfg.newRedis(t), cfg.goOptions(t, rs.prefix), nil, window)
	rs.n0 = waitN0()
	return rs
}

func (rs *recoverySetup) waitCount(t *testing.T, n int) {
	t.Helper()
	for _, s := range []server{rs.g0, rs.n0} {
		waitFor(t, fmt.Sprintf("%s to count %d servers", s.name(), n), func() bool { return s.count(t, "/") == n })
	}
}

// livePid waits until the session of socket sid is in Redis and returns its private id.
func (rs *recoverySetup) livePid(t *testing.T, sid string) string {
	t.Helper()
	var pid string
	waitFor(t, "the live session of "+sid, func() bool {
		pid = findSession(t, rs.rc, rs.prefix+":session:", sid)
		return pid != ""
	})
	return pid
}

// expectSeq reads the events named ev (and others among names) and checks their first argument is exactly want,
// in order, each with its offset; it returns the last offset.
func expectSeq(t *testing.T, c *client, ev string, want ...string) string {
	t.Helper()
	var last string
	for _, w := range want {
		args, off := withOffset(t, c.label, c.next(t, ev).args)
		if len(args) == 0 || args[0] != w || last != "" && wire.CompareIDs(off, last) <= 0 {
			t.Fatalf("%s: got %s %s at %s, want %s after %s", c, ev, show(args), off, w, last)
		}
		last = off
	}
	return last
}

// A Go server is killed (a process of its own). Its clients, socket.io-client through a load balancer that now
// sends them to another server, and a Go client coming back with the same pid and offset, resume their sessions
// on the Go survivor and on the Node server (Node restores the session the Go server kept live): same id, their
// room, and exactly the broadcasts they missed, from both languages.
func TestRecoveryInteropKilled(t *testing.T) {
	requireInterop(t)
	for _, cfg := range []config{{name: "standalone"}, {name: "cluster", cluster: true}} {
		t.Run(cfg.name, func(t *testing.T) {
			rs := newRecoverySetup(t, cfg, 0)
			for _, to := range []server{rs.g0, rs.n0} {
				t.Run("to_"+to.name(), func(t *testing.T) {
					gk := startGoProc(t, rs.cfg, rs.prefix)
					rs.waitCount(t, 3)
					bal := newLB(t, gk.url)
					room := uniq("killed-room")
					nodeC := rs.nc.connectReconnecting(t, "node@GK", bal.url(), map[string]string{"rooms": room})
					goC := connectGo(t, "go@GK", gk.url, "/", map[string]string{"rooms": room}, nil, false)
					pids := map[*client]string{nodeC: rs.livePid(t, nodeC.id), goC: rs.livePid(t, goC.id)}
					before := uniq("before")
					rs.g0.emit(t, target{to: []string{room}}, before, "b")
					offsets := map[*client]string{}
					for _, c := range []*client{nodeC, goC} {
						_, offsets[c] = withOffset(t, c.label, c.next(t, before).args)
					}

					bal.to(to.url())
					gk.kill(t)
					ev := uniq("missed")
					rs.g0.emit(t, target{}, ev, "1")
					rs.n0.emit(t, target{to: []string{room}}, ev, "2")
					rs.g0.emit(t, target{to: []string{uniq("other")}}, ev, "x")
					rs.n0.emit(t, target{except: []string{room}}, ev, "x")
					rs.g0.emit(t, target{to: []string{room}}, ev, "3")

					// socket.io-client reconnects by itself, through the load balancer.
					e := nodeC.next(t, "connect")
					if e.args[0] != nodeC.id || e.args[1] != true {
						t.Fatalf("%s reconnected as %v, recovered %v; want %s, true", nodeC, e.args[0], e.args[1], nodeC.id)
					}
					goC2 := connectGo(t, "go@GK-recovered", to.url(), "/", nil, map[string]any{"pid": pids[goC], "offset": offsets[goC]}, false)
					if goC2.id != goC.id {
						t.Fatalf("Go client resumed as %s, want %s", goC2.id, goC.id)
					}
					for _, c := range []*client{nodeC, goC2} {
						last := expectSeq(t, c, ev, "1", "2", "3")
						if wire.CompareIDs(last, offsets[nodeC]) <= 0 {
							t.Fatalf("%s: replay before the last offset", c)
						}
						c.server = to
						if d, ok := roomsOf(t, c, "/"); !ok || !d.recovered || !hasRoom(d, room) {
							t.Fatalf("%s on %s: %+v (found %v), want recovered and in %s", c, to.name(), d, ok, room)
						}
					}
					after := uniq("after")
					rs.n0.emit(t, target{to: []string{room}}, after, "a")
					for _, c := range []*client{nodeC, goC2} {
						expectSeq(t, c, after, "a")
					}
					nodeC.close()
					goC2.close()
				})
			}
		})
	}
}

// Recoveries in a row of one socket.io-client, reconnecting by itself through a load balancer: on the same Go
// server, on the same Node server, and alternating between them. The load balancer refuses connections while the
// missed broadcasts are made, so that each recovery has something to replay: exactly what was missed since the
// last one (Node #39, socket.io#5419).
func TestRecoveryInteropRepeated(t *testing.T) {
	requireInterop(t)
	rs := newRecoverySetup(t, config{name: "standalone"}, 0)
	rs.waitCount(t, 2)
	for _, tc := range []struct {
		name string
		path []server
	}{
		{"G0", []server{rs.g0, rs.g0, rs.g0, rs.g0}},
		{"N0", []server{rs.n0, rs.n0, rs.n0, rs.n0}},
		{"across", []server{rs.g0, rs.n0, rs.g0, rs.n0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bal := newLB(t, tc.path[0].url())
			room := uniq("rep-room")
			c := rs.nc.connectReconnecting(t, "node@"+tc.name, bal.url(), map[string]string{"rooms": room})
			ev := uniq("rep")
			rs.g0.emit(t, target{to: []string{room}}, ev, "0")
			expectSeq(t, c, ev, "0")
			n := 1
			for round := 1; round <= 3; round++ {
				bal.pause(true)
				bal.to(tc.path[round].url())
				c.drop(t)
				c.next(t, "disconnect")
				rs.g0.emit(t, target{}, ev, fmt.Sprint(n))
				rs.n0.emit(t, target{to: []string{room}}, ev, fmt.Sprint(n+1))
				rs.g0.emit(t, target{to: []string{uniq("other")}}, ev, "x")
				waitFor(t, "the session stored", func() bool { return findSession(t, rs.rc, rs.prefix+":session:", c.id) != "" })
				bal.pause(false)
				if e := c.next(t, "connect"); e.args[0] != c.id || e.args[1] != true {
					t.Fatalf("round %d: reconnected as %v, recovered %v", round, e.args[0], e.args[1])
				}
				expectSeq(t, c, ev, fmt.Sprint(n), fmt.Sprint(n+1))
				rs.n0.emit(t, target{to: []string{room}}, ev, fmt.Sprint(n+2)) // live, not replayed next time
				expectSeq(t, c, ev, fmt.Sprint(n+2))
				n += 3
			}
			c.close()
		})
	}
}

// socket.io-client back shortly before the end of the recovery window recovers; back after it, it gets a fresh
// session and its old session key is gone. On a Go server with a 2 s window.
func TestRecoveryInteropWindow(t *testing.T) {
	requireInterop(t)
	const window = 2 * time.Second
	rs := newRecoverySetup(t, config{name: "standalone"}, window)
	rs.waitCount(t, 2)
	for _, past := range []bool{false, true} {
		name := "near_the_end"
		if past {
			name = "past_the_end"
		}
		t.Run(name, func(t *testing.T) {
			bal := newLB(t, rs.g0.url())
			c := rs.nc.connectReconnecting(t, "node@G0", bal.url(), nil)
			ev := uniq("win")
			rs.g0.emit(t, target{to: []string{c.id}}, ev, "0")
			expectSeq(t, c, ev, "0")
			pid := rs.livePid(t, c.id)
			bal.pause(true)
			dropped := time.Now()
			c.drop(t)
			c.next(t, "disconnect")
			rs.n0.emit(t, target{}, ev, "1")
			key := rs.prefix + ":session:" + pid
			if past {
				waitFor(t, "the session to expire", func() bool { return rs.rc.Exists(t.Context(), key).Val() == 0 })
			} else {
				time.Sleep(time.Until(dropped.Add(window - 600*time.Millisecond))) // a schedule: back near the end
			}
			bal.pause(false)
			e := c.next(t, "connect")
			if recovered := e.args[0] == c.id && e.args[1] == true; recovered == past {
				t.Fatalf("reconnected as %v (was %s), recovered %v, %v after the drop", e.args[0], c.id, e.args[1], time.Since(dropped))
			}
			if past {
				if rs.rc.Exists(t.Context(), key).Val() != 0 {
					t.Fatal("the expired session's key is back")
				}
			} else {
				expectSeq(t, c, ev, "1")
			}
			c.close()
		})
	}
}

// A reconnection before the first event: socket.io-client has no offset to send (it sends its pid alone), so no
// server, Go or Node, restores the session; one event emitted to the socket at connection (a "welcome") gives it
// an offset, and then it recovers.
func TestRecoveryInteropWithoutOffset(t *testing.T) {
	requireInterop(t)
	rs := newRecoverySetup(t, config{name: "standalone"}, 0)
	rs.waitCount(t, 2)
	for _, s := range []server{rs.g0, rs.n0} {
		for _, welcome := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/welcome=%v", s.name(), welcome), func(t *testing.T) {
				bal := newLB(t, s.url())
				c := rs.nc.connectReconnecting(t, "node@"+s.name(), bal.url(), nil)
				if welcome {
					s.emit(t, target{to: []string{c.id}}, "welcome", "w")
					c.next(t, "welcome")
				}
				st := c.stateFn(t)
				if _, has := st["offset"]; has != welcome || st["pid"] == nil {
					t.Fatalf("client state %v", st)
				}
				bal.pause(true)
				c.drop(t)
				c.next(t, "disconnect")
				waitFor(t, "the session stored", func() bool { return findSession(t, rs.rc, rs.prefix+":session:", c.id) != "" })
				bal.pause(false)
				e := c.next(t, "connect")
				if recovered := e.args[0] == c.id && e.args[1] == true; recovered != welcome {
					t.Fatalf("recovered %v (id %v, was %s), want %v", e.args[1], e.args[0], c.id, welcome)
				}
				c.close()
			})
		}
	}
}

// A Node server asked to restore a session a Go server is restoring (the Go server's marker in the key, wire.
// OwnerPrefix) refuses it cleanly: a fresh session, and the Node server goes on serving.
func TestRecoveryInteropNodeMeetsMarker(t *testing.T) {
	requireInterop(t)
	rs := newRecoverySetup(t, config{name: "standalone"}, 0)
	rs.waitCount(t, 2)
	c := rs.nc.connect(t, "node@N0", rs.n0.url(), "/", nil, nil, false)
	ev := uniq("m")
	rs.g0.emit(t, target{}, ev, "0")
	_, offset := withOffset(t, c.label, c.next(t, ev).args)
	marker, err := wire.OwnerPrefix("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	pid := "markedmarkedmarkedma"
	rs.rc.Set(t.Context(), rs.prefix+":session:"+pid, marker, time.Minute)
	c2 := rs.nc.connect(t, "node@N0-marker", rs.n0.url(), "/", nil, map[string]any{"pid": pid, "offset": offset}, false)
	if d, ok := rs.n0.local(t, "/", c2.id); !ok || d.recovered {
		t.Fatalf("N0 restored a marker: %+v %v", d, ok)
	}
	rs.n0.emit(t, target{}, ev, "1")
	expectSeq(t, c2, ev, "1")
}
