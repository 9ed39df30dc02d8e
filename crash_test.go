package redisstreams

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Connection state recovery when a server dies (SIGKILL: nothing closed, nothing flushed): its clients resume on
// another server with every broadcast they missed, in order, once, back in their rooms (also those joined and left
// after they connected) and with their data. The dying servers are processes of their own (the test binary run as
// TestHelperServerProcess, role "recovery"); the survivors and the clients are in the test process.

// helperOptionsEnv carries a recovery server process's recoveryProcess as JSON.
const helperOptionsEnv = "REDISSTREAMS_HELPER_OPTIONS"

// recoveryProcess configures a recovery server process.
type recoveryProcess struct {
	Family      string
	Cluster     bool
	Prefix      string        // StreamName, ChannelPrefix, and SessionKeyPrefix = Prefix + ":session:"
	Window      time.Duration // MaxDisconnectionDuration
	Refresh     time.Duration // Options.SessionRefresh (0: default)
	Sessions    SessionMode
	StreamsOnly bool
}

func (rp recoveryProcess) options(logger *slog.Logger) Options {
	return Options{StreamName: rp.Prefix, ChannelPrefix: rp.Prefix, SessionKeyPrefix: rp.Prefix + ":session:",
		BlockTime: time.Second, RequestsTimeout: 2 * time.Second, ReadCount: 1, SessionRefresh: rp.Refresh,
		Sessions: rp.Sessions, StreamsOnly: rp.StreamsOnly, Logger: logger}
}

// recoveryConnection is the connection handler of every server of these tests: the client's query names the
// rooms to join ("rooms", comma separated) and the socket's data ("data"); "welcome" makes the server emit a first
// event at once, so that the client has an offset from the start.
func recoveryConnection(args ...any) {
	s := args[0].(*socket.Socket)
	if s.Recovered() {
		return
	}
	q := s.Handshake().Query
	if rs := firstQuery(q, "rooms"); rs != "" {
		s.Join(toRooms(strings.Split(rs, ","))...)
	}
	if d := firstQuery(q, "data"); d != "" {
		s.SetData(map[string]any{"v": d})
	}
	if firstQuery(q, "welcome") != "" {
		_ = s.Emit("welcome", string(s.Id()))
	}
}

func firstQuery(q map[string]any, k string) string {
	switch v := q[k].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// recoveryServerMain is a recovery server process (see TestHelperServerProcess). It prints "ready <url>", then
// answers, one line each:
//
//	join <sid> <room> | leave <sid> <room> | data <sid> <value>   -> "done" (the socket's rooms or data changed)
//	emit <event> <n> [room]                                      -> "done" (io.Emit, or io.To(room).Emit)
//	stats                                                        -> "stats <Stats as JSON>"
//	quit, or EOF                                                 -> closes, prints "closed <error or ok>" and stats
func recoveryServerMain(t *testing.T, addr string) {
	var rp recoveryProcess
	if err := json.Unmarshal([]byte(os.Getenv(helperOptionsEnv)), &rp); err != nil {
		t.Fatalf("%s: %v", helperOptionsEnv, err)
	}
	say := helperSay
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, _, err := config{family: rp.Family, cluster: rp.Cluster}.newAdapterOn(t, strings.Split(addr, ","), rp.options(logger))
	if err != nil {
		t.Fatal(err)
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(a)
	csr := socket.DefaultConnectionStateRecovery()
	csr.SetMaxDisconnectionDuration(rp.Window.Milliseconds())
	so.SetConnectionStateRecovery(csr)
	server := socket.NewServer(nil, so)
	_ = server.Of("/", nil).On("connection", recoveryConnection)
	srv := httptest.NewServer(server.ServeHandler(nil))
	say("ready %s", srv.URL)

	helperCommands(func(f []string, line string) {
		sock := func() *socket.Socket {
			s, ok := server.Of("/", nil).Sockets().Load(socket.SocketId(f[1]))
			if !ok {
				t.Errorf("no socket %s", f[1])
			}
			return s
		}
		switch {
		case f[0] == "stats":
			b, _ := json.Marshal(a.Stats())
			say("stats %s", b)
			return
		case f[0] == "join" && len(f) == 3:
			if s := sock(); s != nil {
				s.Join(socket.Room(f[2]))
			}
		case f[0] == "leave" && len(f) == 3:
			if s := sock(); s != nil {
				s.Leave(socket.Room(f[2]))
			}
		case f[0] == "data" && len(f) == 3:
			if s := sock(); s != nil {
				s.SetData(map[string]any{"v": f[2]})
			}
		case f[0] == "emit" && (len(f) == 3 || len(f) == 4):
			n, _ := strconv.Atoi(f[2])
			if len(f) == 4 {
				server.To(socket.Room(f[3])).Emit(f[1], n)
			} else {
				server.Emit(f[1], n)
			}
		default:
			t.Errorf("unknown command %q", line)
		}
		say("done")
	})
	closeHelper(t, server, srv, a)
}

// crashSetup is a cluster of in-process servers (the survivors) sharing a prefix with server processes.
type crashSetup struct {
	cfg   config
	rp    recoveryProcess
	nodes []*node
	rc    redis.UniversalClient
}

func newCrashSetup(t *testing.T, cfg config, survivors int, rp recoveryProcess) *crashSetup {
	t.Helper()
	requireRedis(t)
	rp.Family, rp.Cluster, rp.StreamsOnly = cfg.family, cfg.cluster, cfg.opts.StreamsOnly
	rp.Prefix = "t" + randomID()
	if rp.Window == 0 {
		rp.Window = time.Minute
	}
	cs := &crashSetup{cfg: cfg, rp: rp, rc: cfg.newClient(t)}
	if survivors > 0 {
		cs.nodes = startCluster(t, cfg, clusterOpts{nodes: survivors, recovery: true, recoveryDuration: rp.Window,
			adapter: func(o *Options) {
				logger := o.Logger
				*o = rp.options(logger)
			}})
		for _, n := range cs.nodes {
			_ = n.io.Of("/", nil).On("connection", recoveryConnection)
		}
	}
	return cs
}

// start starts a server process of the setup (after the survivors: in streams-only mode they count each other
// before it joins).
func (cs *crashSetup) start(t *testing.T, name string) *serverProcess {
	t.Helper()
	b, _ := json.Marshal(cs.rp)
	addrs := []string{standalone.Addr()}
	if cs.cfg.cluster {
		addrs = cluster.Addrs()
	}
	return startServerProcess(t, name, helperAddrEnv+"="+strings.Join(addrs, ","), helperRoleEnv+"=recovery",
		helperOptionsEnv+"="+string(b))
}

// do sends a command to a recovery server process and waits for its "done".
func (p *serverProcess) do(t *testing.T, format string, args ...any) {
	t.Helper()
	p.send(t, fmt.Sprintf(format, args...))
	p.expect(t, "done", 10*time.Second)
}

func (cs *crashSetup) key(pid string) string { return cs.rp.Prefix + ":session:" + pid }

// stored returns the session stored under key, and whether there is one.
func (cs *crashSetup) stored(t testing.TB, key string) (wire.Session, bool) {
	raw, err := cs.rc.Get(t.Context(), key).Result()
	if err != nil {
		return wire.Session{}, false
	}
	s, err := wire.DecodeSession(raw)
	return s, err == nil
}

// livePid waits until the session of the client with this socket id is in Redis, as it is when want accepts it,
// and returns its private id.
func (cs *crashSetup) livePid(t *testing.T, sid string, want func(wire.Session) bool) string {
	t.Helper()
	var pid string
	var last wire.Session
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the session of %s, last seen under pid %q: %+v", sid, pid, last)
		}
	})
	waitFor(t, "the session of "+sid+" in Redis", func() bool {
		if pid == "" {
			pid = findSession(t, cs.rc, cs.rp.Prefix+":session:", socket.SocketId(sid))
		}
		if pid == "" {
			return false
		}
		s, ok := cs.stored(t, cs.key(pid))
		last = s
		return ok && (want == nil || want(s))
	})
	return pid
}

func sameRooms(got []string, want ...string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// expectNumbers reads events "ev" and checks they carry exactly these numbers, in order, each with an offset after
// the one before; it returns the last offset.
func expectNumbers(t *testing.T, c *testClient, after string, want ...int) string {
	t.Helper()
	last := after
	for _, w := range want {
		args := c.expect(t, "ev")
		o := offsetOf(t, args)
		if int(toFloat(args[0])) != w || wire.CompareIDs(o, last) <= 0 {
			t.Fatalf("got ev %v at %s, want %d after %s", args, o, w, last)
		}
		last = o
	}
	return last
}

// A server is killed; its client resumes on a survivor with its rooms (joined at connect, joined and left later),
// its data (changed after it connected) and exactly the broadcasts it missed. On every layout and client family.
func TestRecoveryAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("server processes")
	}
	for _, cfg := range configsNamed("standalone", "cluster", "rueidis-standalone", "rueidis-cluster", "standalone-streamsonly") {
		t.Run(cfg.name, func(t *testing.T) {
			cs := newCrashSetup(t, cfg, 2, recoveryProcess{Refresh: 500 * time.Millisecond})
			a := cs.start(t, "A")
			b, c := cs.nodes[0], cs.nodes[1]
			x := dialTestClient(t, a.url, clientOpts{query: map[string]string{"rooms": "r1,r2", "data": "d1"}}, "ev")
			sid := x.Id()
			// The connection handler ran (the client may get the CONNECT before it does).
			cs.livePid(t, sid, func(s wire.Session) bool { return sameRooms(s.Rooms, sid, "r1", "r2") })
			// Later changes: data (captured by the next write), a room joined, a room left.
			a.do(t, "data %s d2", sid)
			a.do(t, "join %s r3", sid)
			a.do(t, "leave %s r2", sid)
			pid := cs.livePid(t, sid, func(s wire.Session) bool {
				d, _ := s.Data.(map[string]any)
				return sameRooms(s.Rooms, sid, "r1", "r3") && d["v"] == "d2"
			})
			b.io.Emit("ev", 1)
			offset := expectNumbers(t, x, "0-0", 1)

			a.kill(t)
			c.io.Emit("ev", 2)
			c.io.To("r1").Emit("ev", 3)
			c.io.To("r2").Emit("ev", 4) // left
			b.io.To("r3").Emit("ev", 5)
			c.io.Except("r1").Emit("ev", 6)
			c.io.To("other").Emit("ev", 7)

			x2 := reconnect(t, b, pid, offset, "ev")
			if !x2.server.Recovered() || string(x2.server.Id()) != sid {
				t.Fatalf("recovered=%v id %s, want %s", x2.server.Recovered(), x2.server.Id(), sid)
			}
			if got := rooms(x2.server); len(got) != 3 || !got[sid] || !got["r1"] || !got["r3"] {
				t.Fatalf("rooms %v, want %s r1 r3", got, sid)
			}
			if d, _ := x2.server.Data().(map[string]any); d["v"] != "d2" {
				t.Fatalf("data %#v", x2.server.Data())
			}
			last := expectNumbers(t, x2, offset, 2, 3, 5)
			c.io.To("r3").Emit("ev", 8)
			expectNumbers(t, x2, last, 8)
			if st := b.adapter.Stats(); st.Restored != 1 || st.SessionErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// Three recoveries in a row, each after the server holding the client was killed (A, then B, then C, all
// processes; D survives): each replays only what the client missed since the last one, rooms joined on the way
// included, and each restoring server keeps the session live for the next crash.
func TestRecoveryChainOfKills(t *testing.T) {
	if testing.Short() {
		t.Skip("server processes")
	}
	for _, cfg := range configsNamed("standalone", "rueidis-cluster") {
		t.Run(cfg.name, func(t *testing.T) {
			cs := newCrashSetup(t, cfg, 1, recoveryProcess{Refresh: 500 * time.Millisecond})
			d := cs.nodes[0]
			procs := []*serverProcess{cs.start(t, "A"), cs.start(t, "B"), cs.start(t, "C")}
			x := dialTestClient(t, procs[0].url, clientOpts{query: map[string]string{"rooms": "r0"}}, "ev")
			sid := x.Id()
			pid := cs.livePid(t, sid, func(s wire.Session) bool { return sameRooms(s.Rooms, sid, "r0") })
			d.io.Emit("ev", 1)
			offset := expectNumbers(t, x, "0-0", 1)
			want := []string{sid, "r0"}
			n := 2
			for i, p := range procs {
				p.kill(t)
				d.io.Emit("ev", n)
				d.io.To(socket.Room(fmt.Sprint("r", i))).Emit("ev", n+1)
				d.io.To("elsewhere").Emit("ev", -1)
				if i < len(procs)-1 {
					next := procs[i+1]
					x = dialTestClient(t, next.url, clientOpts{auth: map[string]any{"pid": pid, "offset": offset}}, "ev")
					if x.Id() != sid {
						t.Fatalf("recovery %d: id %s, want %s (not recovered)", i+1, x.Id(), sid)
					}
					offset = expectNumbers(t, x, offset, n, n+1)
					// A room joined on this server, and a broadcast received here: the next recovery starts after it.
					room := fmt.Sprint("r", i+1)
					next.do(t, "join %s %s", sid, room)
					want = append(want, room)
					cs.livePid(t, sid, func(s wire.Session) bool { return sameRooms(s.Rooms, want...) })
					d.io.To(socket.Room(room)).Emit("ev", n+2)
					offset = expectNumbers(t, x, offset, n+2)
					n += 3
					continue
				}
				x2 := reconnect(t, d, pid, offset, "ev")
				if !x2.server.Recovered() || string(x2.server.Id()) != sid {
					t.Fatalf("recovery %d: recovered=%v id %s", i+1, x2.server.Recovered(), x2.server.Id())
				}
				got := []string{}
				for r := range rooms(x2.server) {
					got = append(got, r)
				}
				if !sameRooms(got, want...) {
					t.Fatalf("rooms %v, want %v", got, want)
				}
				offset = expectNumbers(t, x2, offset, n, n+1)
				d.io.To("r0").Emit("ev", 100)
				expectNumbers(t, x2, offset, 100)
			}
		})
	}
}

// The recovery window counts from the crash (killed) or from the drop (dropped): a client back shortly before it
// ends recovers; one back after it gets a fresh session, and its session key is gone.
func TestRecoveryWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the window")
	}
	const window = 2 * time.Second
	cs := newCrashSetup(t, configs[0], 1, recoveryProcess{Window: window, Refresh: 300 * time.Millisecond})
	d := cs.nodes[0]
	liveTTL := d.nsp(t, "/").liveTTL()

	type away struct {
		name     string
		pid, sid string
		offset   string
	}
	check := func(t *testing.T, since time.Time, near, past away) {
		// The session of the one back in time lasts the window from the event at least.
		ttl := cs.rc.PTTL(t.Context(), cs.key(near.pid)).Val()
		if elapsed := time.Since(since); ttl < window-elapsed || ttl > liveTTL {
			t.Fatalf("session TTL %v %v after it began, want at least %v and at most %v", ttl, elapsed, window-elapsed, liveTTL)
		}
		time.Sleep(time.Until(since.Add(window - 400*time.Millisecond))) // back near the end (a schedule)
		x := reconnect(t, d, near.pid, near.offset, "ev")
		if !x.server.Recovered() || string(x.server.Id()) != near.sid {
			t.Fatalf("%s: not recovered %v before the end of the window", near.name, time.Until(since.Add(window)))
		}
		expectNumbers(t, x, near.offset, 2)
		waitFor(t, "the session of "+past.name+" to expire", func() bool {
			return cs.rc.Exists(t.Context(), cs.key(past.pid)).Val() == 0
		})
		y := reconnect(t, d, past.pid, past.offset, "ev")
		if y.server.Recovered() || string(y.server.Id()) == past.sid {
			t.Fatalf("%s recovered after the window", past.name)
		}
		if cs.rc.Exists(t.Context(), cs.key(past.pid)).Val() != 0 {
			t.Fatal("a session key under the expired private id")
		}
	}
	t.Run("killed", func(t *testing.T) {
		a := cs.start(t, "A")
		var clients []away
		for _, name := range []string{"near", "past"} {
			c := dialTestClient(t, a.url, clientOpts{}, "ev")
			clients = append(clients, away{name: name, sid: c.Id(), pid: cs.livePid(t, c.Id(), nil)})
			defer func(c *testClient) { c.Disconnect() }(c)
			d.io.To(socket.Room(c.Id())).Emit("ev", 1)
			clients[len(clients)-1].offset = expectNumbers(t, c, "0-0", 1)
		}
		since := time.Now()
		a.kill(t)
		d.io.Emit("ev", 2)
		check(t, since, clients[0], clients[1])
	})
	t.Run("dropped", func(t *testing.T) {
		// "past" drops first, so that it expires first; "near" last, so that the time its drop takes (its server
		// noticing, the session written) is not taken from the window it is back within.
		clients := map[string]away{}
		var since time.Time
		for _, name := range []string{"past", "near"} {
			c := d.connect(t, clientOpts{}, "ev")
			d.io.To(socket.Room(c.Id())).Emit("ev", 1)
			o := expectNumbers(t, c, "0-0", 1)
			since = time.Now() // before the drop: the session's TTL starts later
			clients[name] = away{name: name, sid: c.Id(), pid: drop(t, cs.cfg, d, c), offset: o}
		}
		d.io.Emit("ev", 2)
		check(t, since, clients["near"], clients["past"])
	})
}

// A server stopped gracefully (its server, then its adapter, closed: "server shutting down") stores its sockets'
// sessions with the window's TTL; its clients resume on another server, with either mode.
func TestRecoveryAfterGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("server processes")
	}
	for _, mode := range []SessionMode{SessionsLive, SessionsOnDisconnect} {
		t.Run(mode.String(), func(t *testing.T) {
			cs := newCrashSetup(t, configs[0], 1, recoveryProcess{Sessions: mode})
			b := cs.nodes[0]
			a := cs.start(t, "A")
			x := dialCSRT(t, a.url, nil, "rooms=r1")
			b.io.To("r1").Emit("ev", 1) // received: the connection handler has run
			x.waitNumbers(t, "ev", 1)
			if result, _ := a.close(t); result != "ok" {
				t.Fatalf("close: %s", result)
			}
			<-x.done
			b.io.To("r1").Emit("ev", 2)
			x2 := resumeCSR(t, b.url, x)
			if got := x2.waitNumbers(t, "ev", 1); got[0] != 2 {
				t.Fatalf("missed %v", got)
			}
		})
	}
}

// A connected socket's session that vanished from Redis (a data set lost, a key evicted or expired during a long
// outage) is written again by its server at its next refresh.
func TestLiveSessionWrittenAgain(t *testing.T) {
	cs := newCrashSetup(t, configs[1], 1, recoveryProcess{Refresh: 200 * time.Millisecond})
	x := dialCSRT(t, cs.nodes[0].url, nil, "rooms=r1")
	pid := cs.livePid(t, x.sid, nil)
	if err := cs.rc.Del(t.Context(), cs.key(pid)).Err(); err != nil {
		t.Fatal(err)
	}
	cs.livePid(t, x.sid, func(s wire.Session) bool { return sameRooms(s.Rooms, x.sid, "r1") })
}
