//go:build unix

package redisstreams

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Redis Cluster master failover, on a cluster of its own (3 masters, 1 replica each, cluster-node-timeout 1 s).
// Two groups of servers share it, one per client family of the publisher: in each, a publishing server emits
// numbered broadcasts (500/s on "/", 500/s on a second namespace) and three receiving servers (both families) hold a
// raw client on each namespace; the last one reads 10 entries at a time and is held up by delivery around the hard
// failover. StreamCount is 4: the streams of "/" of both groups are on one master, those of the second namespace on
// others. That master is failed over twice while the broadcasts go on:
//
//   - gracefully: CLUSTER FAILOVER on its replica (nothing may be lost);
//   - hard: the replication link of the new master is cut (its replica paused, the link killed), the master goes on
//     acknowledging writes for a moment that its replica never gets, then it is killed (SIGKILL) and its replica is
//     promoted after the node timeout. The writes acknowledged in between are gone: the receivers that had read
//     them delivered them, the others (the held-up ones always) must count them lost.
//
// Checked: every receiver gets every broadcast at most once, and every one it misses is counted in its Stats.Lost,
// exactly; the publishers drop nothing; a connection state recovery session that spans the hard failover is
// restored with what it missed; every server counts every server again, and fetchSockets works.
func TestFaultClusterFailover(t *testing.T) {
	if testing.Short() && !redistest.Strict() {
		t.Skip("fault test: a cluster with replicas, seconds of failover")
	}
	start := time.Now()
	c := redistest.StartClusterT(t, redistest.ClusterOptions{Replicas: 1, NodeTimeout: time.Second})
	t.Logf("cluster with replicas ready in %v", time.Since(start).Round(time.Millisecond))

	const streamCount = 4
	// Both groups' "/" streams on the same master; their second namespace's streams on other masters.
	var target redistest.Shard
	prefixes := make([]string, 2)
	for i := range prefixes {
		for {
			p := "t" + randomID()
			sh, err := c.ShardOf(wire.StreamName(p, streamCount, "/"))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 || sh.Master == target.Master {
				target, prefixes[i] = sh, p
				break
			}
		}
	}
	// A third pair of servers, with connection state recovery, for a session that spans the hard failover.
	var recPrefix string
	for {
		p := "t" + randomID()
		if sh, err := c.ShardOf(wire.StreamName(p, streamCount, "/")); err != nil {
			t.Fatal(err)
		} else if sh.Master == target.Master {
			recPrefix = p
			break
		}
	}
	if len(target.Replicas) != 1 {
		t.Fatalf("the master of the streams has %d replicas, want 1", len(target.Replicas))
	}
	other := ""
	for _, name := range []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j"} {
		ok := wire.StreamName(prefixes[0], streamCount, name) != wire.StreamName(prefixes[0], streamCount, "/")
		for _, p := range prefixes {
			sh, err := c.ShardOf(wire.StreamName(p, streamCount, name))
			if err != nil {
				t.Fatal(err)
			}
			ok = ok && sh.Master != target.Master
		}
		if ok {
			other = name
			break
		}
	}
	if other == "" {
		t.Fatal("no namespace with its streams on the other masters")
	}
	namespaces := []string{"/", other}

	type group struct {
		family    string
		families  []string // publisher, then receivers
		nodes     []*node
		counters  [][]*wsCounter // by receiver, by namespace
		sent      atomic.Int64   // numbers emitted on each namespace
		stop      chan struct{}
		emitDone  chan struct{}
		published uint64
	}
	// The last receiver of each group reads 10 entries at a time, and its delivery is held up from just before the
	// replication link is cut until the replica took over: it has read none of the writes the replica never got,
	// and resumes inside the data set the replica has, where nothing tells that entries are missing.
	groups := []*group{
		{family: familyGoRedis, families: []string{familyGoRedis, familyGoRedis, familyRueidis, familyRueidis}},
		{family: familyRueidis, families: []string{familyRueidis, familyRueidis, familyGoRedis, familyGoRedis}},
	}
	var hold sync.RWMutex // write-locked: the held receivers deliver nothing
	for gi, g := range groups {
		var adapters []*Adapter
		for i, family := range g.families {
			held := i == len(g.families)-1
			readCount := int64(0)
			if held {
				readCount = 10 // little read ahead when held up, and a quick catch-up afterwards
			}
			a, _, err := config{family: family, cluster: true}.newAdapterOn(t, c.Addrs(), Options{StreamName: prefixes[gi],
				StreamCount: streamCount, ChannelPrefix: prefixes[gi], MaxLen: 100000, BlockTime: time.Second,
				ReadCount: readCount, RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if held {
				a.beforeDispatch = func() { hold.RLock(); hold.RUnlock() }
			}
			adapters = append(adapters, a)
		}
		g.nodes = startClusterWithAdapters(t, adapters, clusterOpts{namespaces: []string{other}})
		for _, n := range g.nodes[1:] {
			var cs []*wsCounter
			for _, nsp := range namespaces {
				cs = append(cs, dialCounterOn(t, n.url, nsp, "seq"))
			}
			g.counters = append(g.counters, cs)
		}
	}

	var recAdapters []*Adapter
	for _, family := range []string{familyGoRedis, familyRueidis} {
		a, _, err := config{family: family, cluster: true}.newAdapterOn(t, c.Addrs(), Options{StreamName: recPrefix,
			StreamCount: streamCount, ChannelPrefix: recPrefix, SessionKeyPrefix: recPrefix + ":session:",
			BlockTime: time.Second, RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		recAdapters = append(recAdapters, a)
	}
	rec := startClusterWithAdapters(t, recAdapters, clusterOpts{recovery: true})

	// Each publisher emits the numbers 0, 1, 2... on both namespaces, 500/s each, on an absolute schedule.
	const rate = 500
	for _, g := range groups {
		g.stop, g.emitDone = make(chan struct{}), make(chan struct{})
		pub := g.nodes[0].io
		go func() {
			defer close(g.emitDone)
			begin := time.Now()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-g.stop:
					return
				case <-tick.C:
				}
				due := int64(time.Since(begin).Seconds() * rate)
				for n := g.sent.Load(); n < due; n++ {
					for _, nsp := range namespaces {
						pub.Of(nsp, nil).Emit("seq", n)
					}
					g.sent.Store(n + 1)
				}
			}
		}()
	}
	stopEmitting := sync.OnceFunc(func() {
		for _, g := range groups {
			close(g.stop)
			<-g.emitDone
		}
	})
	t.Cleanup(stopEmitting)
	sentNow := func() (n int64) {
		for _, g := range groups {
			n += g.sent.Load()
		}
		return n
	}
	// progress waits until every publisher has emitted (and Redis acknowledged) more: the schedule of the test is
	// counted in broadcasts, not in seconds.
	progress := func(what string, more int64) {
		t.Helper()
		var want []uint64
		for _, g := range groups {
			want = append(want, g.nodes[0].adapter.Stats().Published+uint64(more))
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			behind := ""
			for i, g := range groups {
				if s := g.nodes[0].adapter.Stats(); s.Published < want[i] {
					behind += fmt.Sprintf("; %s publisher: published %d, want %d, held %d", g.family, s.Published,
						want[i], s.HeldWrites)
				}
			}
			if behind == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s%s", what, behind)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	progress("steady traffic", 1000)
	master, replica := target.Master, target.Replicas[0]
	t0 := time.Now()
	if err := c.Failover(replica, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful failover %s -> %s done in %v, %d emitted so far", master.Addr(), replica.Addr(),
		time.Since(t0).Round(time.Millisecond), sentNow())
	progress("traffic after the graceful failover", 1000)

	// A client of the recovery pair disconnects before the hard failover; it comes back after it.
	sessions := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer sessions.Close()
	rc0 := rec[0].connect(t, clientOpts{}, "init", "test")
	rec[0].io.Emit("init")
	offset := offsetOf(t, rc0.expect(t, "init"))
	sid := rc0.server.Id()
	rc0.Io().Engine().Close()
	var pid string
	waitFor(t, "persisted session", func() bool {
		pid = findSession(t, sessions, recPrefix+":session:", sid)
		return pid != ""
	})

	// Hard failover of the new master (replica), whose replica is now the old master.
	master, replica = replica, master
	hold.Lock()
	released := sync.OnceFunc(hold.Unlock)
	t.Cleanup(released)
	// They read ahead by at most 60 entries of each stream (6 batches of ReadCount), then stop reading.
	progress("held receivers stopped", 300)
	if err := syscall.Kill(replica.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	killed, err := rc.Do(t.Context(), "CLIENT", "KILL", "TYPE", "replica").Int64()
	_ = rc.Close()
	if err != nil || killed != 1 {
		t.Fatalf("kill the replication link: %d killed, %v", killed, err)
	}
	before := sentNow()
	progress("writes the replica never gets", 100)
	unreplicated := sentNow() - before
	t0 = time.Now()
	if err := master.Stop(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	if err := syscall.Kill(replica.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitPromoted(replica, 30*time.Second, master); err != nil {
		t.Fatal(err)
	}
	t.Logf("hard failover %s -> %s: promoted %v after the kill; about %d broadcasts emitted after the replication link was cut",
		master.Addr(), replica.Addr(), time.Since(t0).Round(time.Millisecond), unreplicated)
	released()
	progress("traffic after the hard failover", 1000)
	stopEmitting()

	// Every receiver gets every number, or counts it lost.
	deadline := time.Now().Add(30 * time.Second)
	for _, g := range groups {
		total := g.sent.Load()
		for i, cs := range g.counters {
			a := g.nodes[i+1].adapter
			for {
				var unique int64
				for _, c := range cs {
					u, _ := c.counts(total)
					unique += int64(u)
				}
				if unique+int64(a.Stats().Lost) >= total*int64(len(cs)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s group, receiver %d: %d of %d received, %d lost; stats %+v; publisher %+v", g.family, i,
						unique, total*int64(len(cs)), a.Stats().Lost, a.Stats(), g.nodes[0].adapter.Stats())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	var anyLost bool
	for _, g := range groups {
		total := g.sent.Load()
		ps := g.nodes[0].adapter.Stats()
		t.Logf("%s group: publisher emitted %d on each of %v; stats Published %d Dropped %d PublishErrors %d",
			g.family, total, namespaces, ps.Published, ps.Dropped, ps.PublishErrors)
		if ps.Dropped != 0 || ps.PublishErrors != 0 {
			t.Errorf("%s group: the publisher dropped %d writes, %d failed", g.family, ps.Dropped, ps.PublishErrors)
		}
		for i, cs := range g.counters {
			s := g.nodes[i+1].adapter.Stats()
			var missing, dups int64
			var per []string
			for j, c := range cs {
				u, d := c.counts(total)
				missing += total - int64(u)
				dups += int64(d)
				per = append(per, fmt.Sprintf("%s %d/%d", namespaces[j], u, total))
				if err := c.failure(); err != nil {
					t.Errorf("%s group, receiver %d: client: %v", g.family, i, err)
				}
			}
			t.Logf("%s group, receiver %d (%s): received %v, missing %d, delivered twice %d; stats Lost %d Duplicates %d ReadErrors %d",
				g.family, i, g.families[i+1], per, missing, dups, s.Lost, s.Duplicates, s.ReadErrors)
			if dups != 0 {
				t.Errorf("%s group, receiver %d: %d broadcasts delivered more than once", g.family, i, dups)
			}
			if missing != int64(s.Lost) {
				t.Errorf("%s group, receiver %d: %d broadcasts missing, %d counted lost", g.family, i, missing, s.Lost)
			}
			anyLost = anyLost || missing > 0
		}
	}
	if !anyLost {
		t.Log("no broadcast lost: every write acknowledged before the kill had reached its readers or the replica")
	}

	// The session that spans the hard failover is restored with the broadcasts it missed.
	rec[1].io.Emit("test", 1)
	rec[0].io.Emit("test", 2)
	rc1 := reconnect(t, rec[1], pid, offset, "test")
	if !rc1.server.Recovered() {
		t.Error("the session was not recovered after the failover")
	} else {
		for want := 1; want <= 2; want++ {
			if args := rc1.expect(t, "test"); toFloat(args[0]) != float64(want) {
				t.Errorf("recovered session: got %v, want %d", args, want)
			}
		}
	}

	// Requests work again: every server counts the group's servers and fetches the receivers' sockets.
	for gi, g := range groups {
		for i, n := range g.nodes {
			deadline := time.Now().Add(15 * time.Second)
			for n.nsp(t, "/").ServerCount() != int64(len(g.nodes)) {
				if time.Now().After(deadline) {
					var counts []int64
					for _, m := range g.nodes {
						counts = append(counts, m.nsp(t, "/").ServerCount())
					}
					var where []string
					for _, srv := range c.Nodes() {
						if srv.Pid() == 0 {
							continue
						}
						nc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
						m, err := nc.PubSubNumSub(t.Context(), wire.ChannelName(prefixes[gi], "/", "")).Result()
						_ = nc.Close()
						where = append(where, fmt.Sprintf("%s:%v%v", srv.Addr(), m, err))
					}
					t.Fatalf("%s group, server %d: the servers count %v servers, want %d each; subscribers by node: %v", g.family, i, counts, len(g.nodes), where)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := fetch(t, n.io); len(got) != len(g.counters) {
				t.Errorf("%s group, server %d: fetchSockets found %d sockets, want %d", g.family, i, len(got), len(g.counters))
			}
		}
	}
}
