package redisstreams

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/siotest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// A client whose network path died comes back, on a new connection, before its server noticed (Node #26: Node
// has no session to restore then). On the same server, the old socket is closed first and the new one keeps its
// rooms; on another server, the old server finds out at its next session write and closes its socket. Either way
// the client gets what it missed once.
func TestRecoveryBeforeServerNoticed(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "cluster", "rueidis-standalone", "standalone-streamsonly") {
		t.Run(cfg.name, func(t *testing.T) {
			for _, other := range []bool{false, true} {
				name := "same_server"
				if other {
					name = "other_server"
				}
				t.Run(name, func(t *testing.T) { testBeforeServerNoticed(t, cfg, other) })
			}
		})
	}
}

func testBeforeServerNoticed(t *testing.T, cfg config, other bool) {
	cs := newCrashSetup(t, cfg, 2, recoveryProcess{Refresh: 300 * time.Millisecond})
	a, b := cs.nodes[0], cs.nodes[1]
	proxy, url := newBlackhole(t, a.url)
	x := dialTestClient(t, url, clientOpts{query: map[string]string{"rooms": "r1"}}, "ev")
	old, err := siotest.ServerSocket(a.conn, x.Id(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pid := cs.livePid(t, x.Id(), func(s wire.Session) bool { return sameRooms(s.Rooms, x.Id(), "r1") })
	b.io.Emit("ev", 1)
	offset := expectNumbers(t, x, "0-0", 1)
	proxy.cut()
	b.io.Emit("ev", 2) // lost in the network
	to := a
	if other {
		to = b
	}
	x2 := reconnect(t, to, pid, offset, "ev")
	if !x2.server.Recovered() || x2.server.Id() != old.Id() {
		t.Fatalf("recovered=%v id %s, want %s", x2.server.Recovered(), x2.server.Id(), old.Id())
	}
	if !other && old.Connected() {
		t.Fatal("the old socket is still connected on the server that restored its session")
	}
	// The old socket leaves its server (at once, or at that server's next write).
	waitFor(t, "the old socket to be closed", func() bool { return !old.Connected() })
	if s := a.adapter.Stats(); s.Superseded != 1 {
		t.Fatalf("Superseded %d on the old server, want 1", s.Superseded)
	}
	last := expectNumbers(t, x2, offset, 2)
	// From one server: a server delivers its own broadcasts at once, before the other servers' it has not read yet.
	to.io.To("r1").Emit("ev", 3)
	to.io.Emit("ev", 4)
	last = expectNumbers(t, x2, last, 3, 4)
	// The session is the new socket's: its next restore brings the room back.
	cs.livePid(t, x.Id(), func(s wire.Session) bool { return sameRooms(s.Rooms, x.Id(), "r1") })
	x3pid := drop(t, cs.cfg, to, x2)
	x3 := reconnect(t, a, x3pid, last, "ev")
	if !x3.server.Recovered() || !rooms(x3.server)["r1"] {
		t.Fatalf("third connection: recovered=%v rooms %s", x3.server.Recovered(), fmtRooms(x3.server))
	}
}

// The old server's last write races the restore elsewhere: the client came back on B before A noticed it had
// gone, joined a room and changed its data there, and dropped again (B stored the session); then A notices, late,
// and stores its own, older view. That write is refused: the next restore gets B's rooms and data. After the
// session ended for good on B, A's late write cannot bring it back either.
func TestRecoveryStaleWriteRefused(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "cluster", "rueidis-cluster") {
		t.Run(cfg.name, func(t *testing.T) {
			// A's refresh is too rare to find out first: its stale write is the disconnection's.
			cs := newCrashSetup(t, cfg, 2, recoveryProcess{Refresh: time.Minute})
			a, b := cs.nodes[0], cs.nodes[1]
			t.Run("dropped_again", func(t *testing.T) {
				proxy, url := newBlackhole(t, a.url)
				x := dialTestClient(t, url, clientOpts{query: map[string]string{"rooms": "r1", "data": "fromA"}}, "ev")
				old, err := siotest.ServerSocket(a.conn, x.Id(), 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				pid := cs.livePid(t, x.Id(), nil)
				b.io.Emit("ev", 1)
				offset := expectNumbers(t, x, "0-0", 1)
				proxy.cut()
				x2 := reconnect(t, b, pid, offset, "ev")
				if !x2.server.Recovered() {
					t.Fatal("not recovered")
				}
				x2.server.SetData(map[string]any{"v": "fromB"})
				x2.server.Join("rB")
				cs.livePid(t, x.Id(), func(s wire.Session) bool { return slices.Contains(s.Rooms, "rB") })
				b.io.Emit("ev", 2)
				offset = expectNumbers(t, x2, offset, 2)
				drop(t, cs.cfg, b, x2)
				// A notices now: a recoverable close, which writes A's view.
				old.Conn().Close(true)
				waitFor(t, "A to close its socket", func() bool { return !old.Connected() })
				stored, ok := cs.stored(t, cs.key(pid))
				if d, _ := stored.Data.(map[string]any); !ok || d["v"] != "fromB" || !slices.Contains(stored.Rooms, "rB") {
					t.Fatalf("stored after A's late write: %+v (%v), want B's", stored, ok)
				}
				x3 := reconnect(t, a, pid, offset, "ev")
				if d, _ := x3.server.Data().(map[string]any); !x3.server.Recovered() || d["v"] != "fromB" || !rooms(x3.server)["rB"] {
					t.Fatalf("restored: recovered=%v data %v rooms %s", x3.server.Recovered(), x3.server.Data(), fmtRooms(x3.server))
				}
			})
			t.Run("ended", func(t *testing.T) {
				proxy, url := newBlackhole(t, a.url)
				x := dialCSRT(t, url, nil, "")
				old := waitSocket(t, a, x.sid)
				pid := cs.livePid(t, x.sid, nil)
				b.io.Emit("ev", 1)
				x.waitNumbers(t, "ev", 1)
				proxy.cut()
				x2 := resumeCSR(t, b.url, x)
				// It leaves for good on B (a server-side disconnection the raw client does not answer by closing).
				waitSocket(t, b, x2.sid).Disconnect(false)
				waitFor(t, "B's marker", func() bool { _, ok := cs.stored(t, cs.key(pid)); return !ok })
				old.Conn().Close(true)
				waitFor(t, "A to close its socket", func() bool { return !old.Connected() })
				if _, ok := cs.stored(t, cs.key(pid)); ok {
					t.Fatal("A's late write brought back a session that ended")
				}
				if ttl := cs.rc.PTTL(t.Context(), cs.key(pid)).Val(); ttl <= 0 || ttl > a.nsp(t, "/").liveTTL() {
					t.Fatalf("marker TTL %v", ttl)
				}
				x3 := dialCSRT(t, a.url, x2.state(), "")
				if x3.sid == x.sid {
					t.Fatal("a session that ended was restored")
				}
			})
		})
	}
}

// waitSocket returns the server-side socket with this id, once n has it.
func waitSocket(t *testing.T, n *node, sid string) *socket.Socket {
	t.Helper()
	var s *socket.Socket
	waitFor(t, "socket "+sid, func() bool {
		var ok bool
		s, ok = n.io.Of("/", nil).Sockets().Load(socket.SocketId(sid))
		return ok
	})
	return s
}

// Two restores of one session at the same time, on two servers: the claims are atomic, so either one gets the
// session and the other a fresh one, or (when the second claim comes once the first restore wrote the session back)
// the second takes it over, as a client coming back again would, and the first socket is closed. Either way, in
// the end one socket holds the session.
func TestRecoveryConcurrentRestores(t *testing.T) {
	cs := newCrashSetup(t, configs[0], 2, recoveryProcess{Refresh: 300 * time.Millisecond})
	a, b := cs.nodes[0], cs.nodes[1]
	takeovers := 0
	for round := range 10 {
		x := dialCSRT(t, a.url, nil, "")
		a.io.To(socket.Room(x.sid)).Emit("ev", round)
		x.waitNumbers(t, "ev", 1)
		cs.livePid(t, x.sid, nil)
		x.cut()
		auth := x.state()
		var wg sync.WaitGroup
		var got [2]*csrClient
		for i, n := range []*node{a, b} {
			wg.Go(func() {
				c, err := dialCSR(n.url, auth, "")
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(c.cut)
				got[i] = c
			})
		}
		wg.Wait()
		if got[0] == nil || got[1] == nil {
			t.FailNow()
		}
		recovered := 0
		for _, c := range got {
			if c.sid == x.sid {
				recovered++
			}
		}
		switch {
		case recovered == 0:
			t.Fatalf("round %d: neither restore got the session of %s", round, x.sid)
		case recovered == 2:
			takeovers++
		}
		waitFor(t, "one socket to hold the session", func() bool {
			held := 0
			for _, n := range []*node{a, b} {
				if s, ok := n.io.Of("/", nil).Sockets().Load(socket.SocketId(x.sid)); ok && s.Connected() {
					held++
				}
			}
			return held == 1
		})
	}
	t.Logf("10 rounds: %d with one restore taking over from the other", takeovers)
}

// A reconnection before the client received any event with an offset cannot be recovered: socket.io-client then
// sends its pid without an offset, the Go client an empty one, and the server (servers/socket, as Node's) asks the
// adapter to restore only with both. A first event emitted to every socket at connection gives the client an
// offset at once: then it recovers, after a kill too.
func TestRecoveryWithoutOffset(t *testing.T) {
	cs := newCrashSetup(t, configs[0], 1, recoveryProcess{Refresh: 300 * time.Millisecond})
	d := cs.nodes[0]
	for _, killed := range []bool{false, true} {
		name := "dropped"
		if killed {
			name = "killed"
		}
		t.Run(name, func(t *testing.T) {
			url, end := d.url, func() {}
			if killed {
				a := cs.start(t, "A")
				url, end = a.url, func() { a.kill(t) }
			}
			x := dialCSRT(t, url, nil, "")
			y := dialCSRT(t, url, nil, "welcome=1")
			y.waitNumbers(t, "welcome", 1)
			cs.livePid(t, x.sid, nil)
			cs.livePid(t, y.sid, nil)
			x.cut()
			y.cut()
			end()
			d.io.Emit("ev", 1)
			before := d.adapter.Stats()
			for i, auth := range []map[string]any{x.state(), {"pid": x.pid, "offset": ""}} {
				if _, has := auth["offset"]; has != (i == 1) {
					t.Fatalf("auth %v", auth)
				}
				x2 := dialCSRT(t, d.url, auth, "")
				if x2.sid == x.sid {
					t.Fatalf("recovered without an offset (%v)", auth)
				}
				x2.cut()
			}
			if after := d.adapter.Stats(); after.Restored+after.RestoreNoOffset+after.RestoreNoSession !=
				before.Restored+before.RestoreNoOffset+before.RestoreNoSession {
				t.Fatalf("the server asked for a restore without an offset: %+v", after)
			}
			y2 := resumeCSR(t, d.url, y) // with the offset of the welcome event
			if got := y2.waitNumbers(t, "ev", 1); got[0] != 1 {
				t.Fatalf("missed %v", got)
			}
		})
	}
}

// What the sessions cost Redis, counted with INFO commandstats on a Redis of its own: one script call when a socket
// connects (with the rooms and data its connection handler gave it), one for a burst of room changes however many,
// one when it leaves for good; none with SessionsOnDisconnect (its only write is at a drop). The session writer is
// held while each step happens, so that what is coalesced does not depend on timing.
func TestSessionWriteCost(t *testing.T) {
	requireRedis(t)
	for _, mode := range []SessionMode{SessionsLive, SessionsOnDisconnect} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := redistest.StartServerT(t, redistest.ServerOptions{})
			a, _, err := config{}.newAdapterOn(t, []string{srv.Addr()}, Options{Sessions: mode, StreamName: "cost",
				ChannelPrefix: "cost", RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			n := startClusterWithAdapters(t, []*Adapter{a}, clusterOpts{recovery: true})[0]
			_ = n.io.Of("/", nil).On("connection", recoveryConnection)
			live := mode == SessionsLive
			calls := func() map[string]int64 {
				c, err := srv.CommandCalls()
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			writes := func(since map[string]int64) int64 {
				now := calls()
				return now["evalsha"] + now["eval"] - since["evalsha"] - since["eval"]
			}
			// step holds the writer while f runs, and waits until the session commands (script calls) it caused,
			// at least one, have run.
			step := func(what string, f func(), atLeast ...int64) map[string]int64 {
				hold := make(chan struct{})
				a.sessions.beforeBatch.Store(&hold)
				before := calls()
				f()
				close(hold)
				if live {
					n := append(atLeast, 1)[0]
					waitFor(t, what+"'s session write", func() bool { return writes(before) >= n })
				}
				d := map[string]int64{}
				for k, v := range calls() {
					if v != before[k] {
						d[k] = v - before[k]
					}
				}
				return d
			}
			// The scripts get cached, the connections opened.
			step("warm-up", func() { dialCSRT(t, n.url, nil, "rooms=w1,w2") })

			var s *socket.Socket
			connect := step("connect", func() {
				c := dialCSRT(t, n.url, nil, "rooms=r1,r2,r3&data=d")
				s = waitSocket(t, n, c.sid)
				waitFor(t, "the connection handler", func() bool { return len(rooms(s)) == 4 })
			})
			burst := step("burst", func() {
				for i := range 20 {
					s.Join(socket.Room(fmt.Sprint("burst", i)))
				}
				s.Leave("r1")
			})
			leave := step("leave", func() { s.Disconnect(false) })
			// A drop and a restore (claim, replay, one write of the restored session once its socket is back).
			x := dialCSRT(t, n.url, nil, "rooms=q")
			n.io.To(socket.Room(x.sid)).Emit("ev", 1)
			x.waitNumbers(t, "ev", 1)
			waitFor(t, "its session", func() bool { return !live || a.Stats().LiveSessions == 2 })
			before := calls()
			x.cut()
			waitFor(t, "the drop's session write", func() bool { _, ok := n.io.Of("/", nil).Sockets().Load(socket.SocketId(x.sid)); return !ok })
			dropped := calls()
			restore := step("restore", func() {
				x2 := dialCSRT(t, n.url, x.state(), "")
				waitFor(t, "the restored socket", func() bool { _, ok := n.io.Of("/", nil).Sockets().Load(socket.SocketId(x2.sid)); return ok })
			}, 2)
			drop := map[string]int64{}
			for k, v := range dropped {
				if v != before[k] {
					drop[k] = v - before[k]
				}
			}
			t.Logf("%s: Redis commands (INFO commandstats, commands run by scripts included) per connect %v, per burst of 21 room changes %v, per socket leaving %v, per drop %v, per restore %v",
				mode, connect, burst, leave, drop, restore)
			want, wantRestore := int64(0), int64(1) // GETDEL
			if live {
				want, wantRestore = 1, 2 // the claim, then the restored session
			}
			for what, d := range map[string]map[string]int64{"connect": connect, "burst": burst, "leave": leave, "drop": drop, "restore": restore} {
				// Script calls and GETDEL are the session writes (SET also counts the readers' epoch checks);
				// with SessionsOnDisconnect a drop is a SET.
				w := want
				switch what {
				case "restore":
					w = wantRestore
				case "drop":
					w = 1
				}
				got := d["evalsha"] + d["eval"] + d["getdel"]
				if what == "drop" && !live {
					got = min(d["set"], 1)
				}
				if got != w {
					t.Errorf("%s: %d session commands (%v), want %d", what, got, d, w)
				}
			}
		})
	}
}

// No session key outlives its use: sockets that leave for good take theirs (a DEL, or for a restored socket a
// marker that expires), sessions of drops and of a killed server expire, every key has a TTL no longer than a live
// session's, and at the end nothing is left.
func TestSessionKeysNotLeftBehind(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "cluster") {
		t.Run(cfg.name, func(t *testing.T) {
			cs := newCrashSetup(t, cfg, 2, recoveryProcess{Window: time.Second, Refresh: 200 * time.Millisecond})
			a, b := cs.nodes[0], cs.nodes[1]
			prefix := cs.rp.Prefix + ":session:"
			maxTTL := a.nsp(t, "/").liveTTL()
			checkTTLs := func() {
				for _, k := range sessionKeys(t, cs.rc, prefix) {
					if ttl := cs.rc.PTTL(t.Context(), k).Val(); ttl > maxTTL || ttl == -1 {
						t.Fatalf("key %s: TTL %v (max %v)", k, ttl, maxTTL)
					}
				}
			}
			p := cs.start(t, "A")
			var leave, dropped, killed []*csrClient
			for i := range 6 {
				leave = append(leave, dialCSRT(t, a.url, nil, "rooms=x"))
				dropped = append(dropped, dialCSRT(t, a.url, nil, "rooms=y"))
				if i < 3 {
					killed = append(killed, dialCSRT(t, p.url, nil, ""))
				}
			}
			a.io.Emit("ev", 1)
			for _, c := range slices.Concat(leave, dropped, killed) {
				c.waitNumbers(t, "ev", 1)
				cs.livePid(t, c.sid, nil)
			}
			checkTTLs()
			for _, c := range leave {
				waitSocket(t, a, c.sid).Disconnect(false)
			}
			for _, c := range dropped {
				c.cut()
			}
			p.kill(t)
			// Half of the dropped ones come back on B, then leave for good.
			for _, c := range dropped[:3] {
				c2 := resumeCSR(t, b.url, c)
				waitSocket(t, b, c2.sid).Disconnect(false)
			}
			checkTTLs()
			waitFor(t, "every session key to go", func() bool {
				checkTTLs()
				return len(sessionKeys(t, cs.rc, prefix)) == 0
			})
			if s := a.adapter.Stats(); s.LiveSessions != 0 || s.SessionErrors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// Node #39 / socket.io#5419: a client that drops again and again, back on its server or on another one, gets at
// each recovery what it missed since the last one, and nothing twice. A Go client, three recoveries in a row.
func TestRecoveryRepeated(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "rueidis-cluster") {
		for _, across := range []bool{false, true} {
			name := cfg.name + "/same_server"
			if across {
				name = cfg.name + "/across_servers"
			}
			t.Run(name, func(t *testing.T) {
				nodes := recoveryCluster(t, cfg, clusterOpts{nodes: 2})
				c := nodes[0].connect(t, clientOpts{}, "ev")
				c.server.Join("r")
				nodes[1].io.To("r").Emit("ev", 0)
				offset := expectNumbers(t, c, "0-0", 0)
				on := nodes[0]
				n := 1
				for round := 1; round <= 3; round++ {
					pid := drop(t, cfg, on, c)
					nodes[1].io.Emit("ev", n)
					nodes[0].io.To("r").Emit("ev", n+1)
					nodes[1].io.To("other").Emit("ev", -1)
					if across {
						on = nodes[round%2]
					}
					c = reconnect(t, on, pid, offset, "ev")
					if !c.server.Recovered() {
						t.Fatalf("round %d: not recovered", round)
					}
					offset = expectNumbers(t, c, offset, n, n+1)
					nodes[1].io.To("r").Emit("ev", n+2) // received live: not replayed by the next recovery
					offset = expectNumbers(t, c, offset, n+2)
					n += 3
				}
			})
		}
	}
}
