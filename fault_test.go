package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// Fault tests: a publishing server emits numbered broadcasts at a steady rate while Redis is stopped (SIGSTOP) or
// crashes and restarts empty; three receiving servers each hold one raw websocket client that records every
// number it gets. Every number must reach every client exactly once, except the entries Redis itself lost before a
// receiver read them, which that receiver must count (Stats.Lost) exactly, and the writes the publisher dropped
// before sending them (Stats.Dropped - Stats.DroppedSent). The rates are modest on purpose: the
// tests check correctness under -race on a busy machine, not speed, and assert no timing.

// faultRate is the emit rate of the fault tests, per second.
const faultRate = 1000

func TestFaultRedisPaused(t *testing.T) {
	// 15 s of SIGSTOP at 1,000 broadcasts/s: 15,000 writes held by the publisher, more than the default MaxLen of a
	// stream, so MaxLen is raised as docs/delivery.md advises for outages this long.
	runFault(t, faultScenario{
		publisher: familyGoRedis,
		receivers: []string{familyGoRedis, familyRueidis, familyGoRedis},
		outage:    15 * time.Second,
		fault: func(t *testing.T, srv *redistest.Server) func() {
			pid := srv.Pid()
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		},
	})
}

// Redis down for 5 s, longer than MaxOutage (2 s), and restarted empty: the publisher drops (and counts) what it
// held longer than that; the receivers count the entries that vanished with Redis before they read them. Before the
// fixes in reader.go, a reader that happened to write the epoch key in both data sets did not notice the new one
// (until its entry count gave it away), and counted 100-entry reads twice as "trimmed" or missed losses.
func TestFaultRedisDownPastMaxOutage(t *testing.T) {
	runFault(t, faultScenario{
		publisher: familyGoRedis,
		receivers: []string{familyGoRedis, familyRueidis, familyGoRedis},
		outage:    5 * time.Second,
		maxOutage: 2 * time.Second,
		restart:   true,
		fault:     stopThenRestart,
	})
}

func TestFaultRedisRestarted(t *testing.T) {
	runFault(t, faultScenario{
		publisher: familyRueidis,
		receivers: []string{familyRueidis, familyGoRedis, familyRueidis},
		outage:    8 * time.Second,
		restart:   true,
		fault:     stopThenRestart,
	})
}

// Every connection of the servers to Redis (stream writers, blocked readers, PUB/SUB subscribers) killed with
// CLIENT KILL every 300 ms for 4 s while Redis itself is fine: each client reconnects, the publisher sends again
// what it did not get a reply for (readers skip the repeats), the readers resume after the last entry they read,
// and the subscribers subscribe again (requests work afterwards). 0 lost, 0 duplicated.
func TestFaultConnectionsKilled(t *testing.T) {
	var kills atomic.Int64
	runFault(t, faultScenario{
		publisher: familyGoRedis,
		receivers: []string{familyGoRedis, familyRueidis, familyRueidis},
		outage:    4 * time.Second,
		noHold:    true,
		fault: func(t *testing.T, srv *redistest.Server) func() {
			rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(300 * time.Millisecond)
				defer tick.Stop()
				for {
					for _, typ := range []string{"normal", "pubsub"} {
						n, err := rc.Do(t.Context(), "CLIENT", "KILL", "TYPE", typ, "SKIPME", "yes").Int64()
						if err != nil {
							t.Errorf("client kill: %v", err)
						}
						kills.Add(n)
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			return func() {
				close(stop)
				<-done
				_ = rc.Close()
			}
		},
		after: func(t *testing.T, nodes []*node) {
			t.Logf("connections killed: %d", kills.Load())
			if kills.Load() == 0 {
				t.Error("no connection killed: the fault did not happen")
			}
			for i, n := range nodes {
				waitFor(t, fmt.Sprintf("server %d subscribed again", i), func() bool { return n.nsp(t, "/").ServerCount() == int64(len(nodes)) })
			}
		},
	})
}

type faultScenario struct {
	publisher string   // client family of the publishing server
	receivers []string // client family of each receiving server
	outage    time.Duration
	restart   bool          // Redis loses its data: receivers may lose (and must count) what they had not read
	noHold    bool          // the fault need not make the publisher hold writes
	maxOutage time.Duration // Options.MaxOutage if set; writes held longer are dropped (and counted)
	fault     func(*testing.T, *redistest.Server) (end func())
	after     func(*testing.T, []*node) // more checks once every receiver has caught up, if set
}

func runFault(t *testing.T, sc faultScenario) {
	requireRedis(t)
	if testing.Short() {
		t.Skip("fault test: seconds of outage")
	}
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	var adapters []*Adapter
	for _, family := range append([]string{sc.publisher}, sc.receivers...) {
		a, _, err := config{family: family}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix,
			ChannelPrefix: prefix, MaxLen: 100000, BlockTime: time.Second, RequestsTimeout: 2 * time.Second,
			MaxOutage: sc.maxOutage, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, a)
	}
	nodes := startClusterWithAdapters(t, adapters)
	counters := make([]*wsCounter, len(sc.receivers))
	for i := range counters {
		counters[i] = dialCounter(t, nodes[i+1].url, "seq")
	}
	pub := nodes[0]

	// Emit at faultRate on an absolute schedule; the fault starts after 2 s, lasts sc.outage, and emitting goes on
	// 2 s after it ended.
	var (
		sent       atomic.Int64
		maxEmit    atomic.Int64 // longest single io.Emit, ns
		stopEmit   = make(chan struct{})
		emitDone   = make(chan struct{})
		maxQueued  atomic.Int64
		maxHeap    atomic.Uint64
		samplerEnd = make(chan struct{})
	)
	go func() {
		defer close(emitDone)
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopEmit:
				return
			case <-tick.C:
			}
			due := int64(time.Since(start).Seconds() * faultRate)
			for n := sent.Load(); n < due; n++ {
				t0 := time.Now()
				pub.io.Emit("seq", n)
				if d := int64(time.Since(t0)); d > maxEmit.Load() {
					maxEmit.Store(d)
				}
				sent.Store(n + 1)
			}
		}
	}()
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-samplerEnd:
				return
			case <-tick.C:
			}
			if q := pub.adapter.Stats().QueuedBytes; q > maxQueued.Load() {
				maxQueued.Store(q)
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxHeap.Load() {
				maxHeap.Store(ms.HeapInuse)
			}
		}
	}()
	defer close(samplerEnd)

	time.Sleep(2 * time.Second) // steady traffic before the fault (a schedule, not a wait for an event)
	end := sc.fault(t, srv)
	time.Sleep(sc.outage)
	held := pub.adapter.Stats().HeldWrites
	end()
	time.Sleep(2 * time.Second)
	close(stopEmit)
	<-emitDone
	total := sent.Load()

	// Every receiver gets every number, or counts it lost, or the publisher dropped it before sending it (no reader
	// ever saw its number); the held writes drain at Redis speed. A receiver that misses a broadcast without
	// counting it never gets there: the wait ends at the deadline, and the checks below say which one. (With all of
	// Dropped counted here, the wait ended up to DroppedSent broadcasts early: a receiver still delivering the
	// drained backlog, most often the rueidis one, was checked 87-331 short, and had them all 20 ms later.)
	unsent := func(s Stats) int64 { return int64(s.Dropped) - int64(s.DroppedSent) }
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range counters {
		a := nodes[i+1].adapter
		for {
			unique, _ := c.counts(total)
			if int64(unique)+int64(a.Stats().Lost)+unsent(pub.adapter.Stats()) >= total {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("receiver %d: %d of %d received, %d lost after 60 s; stats %+v; publisher %+v", i, unique,
					total, a.Stats().Lost, a.Stats(), pub.adapter.Stats())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ps := pub.adapter.Stats()
	t.Logf("publisher: emitted %d (%d/s), writes held at the end of the outage %d, max queued %d B, max heap in use %d MiB, longest io.Emit %v; stats Published %d Dropped %d (%d after being sent) PublishErrors %d",
		total, faultRate, held, maxQueued.Load(), maxHeap.Load()>>20, time.Duration(maxEmit.Load()).Round(time.Millisecond),
		ps.Published, ps.Dropped, ps.DroppedSent, ps.PublishErrors)
	if ps.Dropped != 0 && sc.maxOutage == 0 {
		t.Errorf("publisher dropped %d writes", ps.Dropped)
	}
	if held == 0 && !sc.noHold {
		t.Errorf("no write held during the outage: the fault did not happen")
	}
	for i, c := range counters {
		s := nodes[i+1].adapter.Stats()
		unique, dups := c.counts(total)
		// Exact: a broadcast the receiver did not get is one it counted lost, or one the publisher dropped before
		// sending it. A write dropped after it was sent either reached the receiver, or left a gap in the
		// publisher's numbering that the receiver counted lost (see docs/delivery.md).
		missing := total - int64(unique)
		t.Logf("receiver %d (%s): received %d of %d, missing %d (%d dropped unsent, %d other), delivered twice %d; stats Lost %d Duplicates %d Invalid %d ReadErrors %d",
			i, sc.receivers[i], unique, total, missing, unsent(ps), missing-unsent(ps), dups, s.Lost, s.Duplicates,
			s.Invalid, s.ReadErrors)
		if dups != 0 {
			t.Errorf("receiver %d: %d broadcasts delivered more than once", i, dups)
		}
		if missing != int64(s.Lost)+unsent(ps) {
			t.Errorf("receiver %d: %d broadcasts missing, %d counted lost + %d dropped unsent by the publisher", i,
				missing, s.Lost, unsent(ps))
		}
		if !sc.restart && missing != 0 {
			t.Errorf("receiver %d: %d broadcasts lost while Redis kept its data", i, missing)
		}
		if err := c.failure(); err != nil {
			t.Errorf("receiver %d: client: %v", i, err)
		}
	}
	if sc.after != nil {
		sc.after(t, nodes)
	}
}

// wsCounter is a raw Socket.IO websocket client (EIO 4) that records the numbers of one event. It is much lighter
// than a full client, so that thousands of events per second are cheap under -race.
type wsCounter struct {
	conn  *websocket.Conn
	event string
	pre   string // namespace prefix of its packets

	mu  sync.Mutex
	got map[int64]int
	err error
}

func dialCounter(t *testing.T, url, event string) *wsCounter {
	t.Helper()
	return dialCounterOn(t, url, "/", event)
}

// dialCounterOn is dialCounter on namespace nsp.
func dialCounterOn(t *testing.T, url, nsp, event string) *wsCounter {
	t.Helper()
	pre := "" // the packet prefix of the namespace: none for "/", "/name," for the others
	if nsp != "/" {
		pre = nsp + ","
	}
	u := "ws" + strings.TrimPrefix(url, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("engine.io open: %q %v", open, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40"+pre)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ok), "40"+pre+"{") {
		t.Fatalf("socket.io connect: %q %v", ok, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &wsCounter{conn: conn, event: event, pre: pre, got: map[int64]int{}}
	go c.loop()
	return c
}

func (c *wsCounter) loop() {
	prefix := `42` + c.pre + `["` + c.event + `",`
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return // closed by the test's cleanup, or by the server (then counts fall short and say so)
		}
		s := string(msg)
		switch {
		case s == "2":
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
		case strings.HasPrefix(s, prefix) && strings.HasSuffix(s, "]"):
			num, _, _ := strings.Cut(s[len(prefix):len(s)-1], ",") // the number may be followed by more arguments
			n, err := strconv.ParseInt(num, 10, 64)
			c.mu.Lock()
			if err != nil {
				c.err = fmt.Errorf("unexpected frame %q", s)
			}
			c.got[n]++
			c.mu.Unlock()
		default:
			c.mu.Lock()
			c.err = fmt.Errorf("unexpected frame %q", s)
			c.mu.Unlock()
		}
	}
}

// counts returns how many of the numbers below total were received, and how many were received more than once.
func (c *wsCounter) counts(total int64) (unique, repeated int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, k := range c.got {
		if n < total {
			unique++
		}
		if k > 1 {
			repeated++
		}
	}
	return unique, repeated
}

func (c *wsCounter) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// waitContext is a context for a bounded wait in a fault test.
func waitContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A receiver held up by slow delivery loses entries three ways: trimmed in the first data set, vanished with it
// when Redis restarts empty, and trimmed in the new one. It reports each while it is still behind, and once it
// catches up every broadcast was delivered once or counted lost, exactly (Node's adapter, and this one before,
// counted entries-added from the old data set against the new one).
func TestFaultRestartThenLag(t *testing.T) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	var adapters []*Adapter
	for _, family := range []string{familyGoRedis, familyRueidis} {
		a, _, err := config{family: family}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix,
			ChannelPrefix: prefix, MaxLen: 10, ReadCount: 1, BlockTime: 200 * time.Millisecond,
			RequestsTimeout: 2 * time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, a)
	}
	gate := make(chan struct{})
	var openGate sync.Once
	adapters[1].beforeDispatch = func() { <-gate }
	newDataSet := make(chan struct{}, 1)
	adapters[1].onNewDataSet = func(string) {
		select {
		case newDataSet <- struct{}{}:
		default:
		}
	}
	nodes := startClusterWithAdapters(t, adapters)
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) }) // before the adapters close (cleanups run last first)
	counter := dialCounter(t, nodes[1].url, "seq")
	pub, recv := nodes[0], nodes[1].adapter

	emit := func(from, to int) {
		for i := from; i < to; i++ {
			pub.io.Emit("seq", i)
		}
		waitFor(t, "published", func() bool { return pub.adapter.Stats().Published >= uint64(to) })
	}
	// Node 1 reads 6 entries (one in delivery, four queued, one in hand) and stops; then the stream moves on.
	emit(0, 10)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	sixth, err := rc.XRangeN(t.Context(), prefix, "-", "+", 6).Result()
	if err != nil || len(sixth) != 6 {
		t.Fatalf("xrange: %v %v", sixth, err)
	}
	waitFor(t, "node 1 held up", func() bool {
		st := recv.Stats().Streams
		return len(st) == 1 && st[0].LastID == sixth[5].ID
	})
	emit(10, 300)
	waitFor(t, "trimming reported while behind", func() bool { return recv.Stats().Lost > 0 })
	lostBefore := recv.Stats().Lost

	if err := srv.Restart(); err != nil { // SIGKILL, then a new empty redis-server on the same port
		t.Fatal(err)
	}
	emit(300, 301) // held until the publisher reconnects, then the first entry of the new data set
	select {
	case <-newDataSet:
	case <-time.After(15 * time.Second):
		t.Fatal("the receiver did not notice that Redis lost its data")
	}
	waitFor(t, "vanished entries counted", func() bool { return recv.Stats().Lost > lostBefore })
	lostRestart := recv.Stats().Lost

	emit(301, 2300)
	waitFor(t, "trimming in the new data set reported while behind", func() bool { return recv.Stats().Lost > lostRestart })
	openGate.Do(func() { close(gate) })
	const total = 2300
	var unique, dups int
	deadline := time.Now().Add(30 * time.Second)
	for {
		unique, dups = counter.counts(total)
		if unique+int(recv.Stats().Lost) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := recv.Stats()
	t.Logf("receiver: received %d of %d, lost %d (%d trimmed before the restart, %d vanished with it, %d trimmed after), duplicates dropped %d",
		unique, total, s.Lost, lostBefore, lostRestart-lostBefore, s.Lost-lostRestart, s.Duplicates)
	if dups != 0 {
		t.Errorf("%d broadcasts delivered more than once", dups)
	}
	if unique+int(s.Lost) != total {
		t.Errorf("received %d + lost %d != %d emitted", unique, s.Lost, total)
	}
	if err := counter.failure(); err != nil {
		t.Error(err)
	}
}

// Overload, every server in a process of its own: three receiving servers deliver at most about 1,000
// broadcasts/s each (a pause before each batch of ReadCount entries) while a publishing server emits twice that
// for 30 s into a stream trimmed to about 2,000 entries. The receivers fall behind and lose entries to trimming.
// Checked: each reports its losses while the load lasts; the memory of every process (VmRSS, sampled) stays
// bounded, because the backlog stays in Redis and every queue between Redis and the sockets is bounded; and once
// the load stops every broadcast reached each receiver's client once or was counted lost, exactly. The clients are
// raw websocket clients in the test process.
func TestFaultOverload(t *testing.T) {
	requireRedis(t)
	if testing.Short() && !redistest.Strict() {
		t.Skip("fault test: 30 s of load")
	}
	const (
		rate     = 2000 // broadcasts/s, twice what a receiver delivers
		seconds  = 30
		total    = rate * seconds
		maxLen   = 2000
		read     = 50
		delay    = 50 * time.Millisecond // per batch of read entries: at most 1,000 deliveries/s
		pad      = 1000                  // bytes of padding in each broadcast, so that memory kept per broadcast shows
		families = "go-redis rueidis go-redis"
	)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	env := func(role, family string) []string {
		return []string{helperAddrEnv + "=" + srv.Addr(), helperStreamEnv + "=" + prefix, helperRoleEnv + "=" + role,
			helperFamilyEnv + "=" + family, helperMaxLenEnv + "=" + strconv.Itoa(maxLen),
			helperReadEnv + "=" + strconv.Itoa(read), helperDelayEnv + "=" + delay.String()}
	}
	var procs []*serverProcess
	var counters []*wsCounter
	for i, family := range strings.Fields(families) {
		p := startServerProcess(t, fmt.Sprintf("receiver %d (%s)", i, family), env("receiver", family)...)
		procs = append(procs, p)
		counters = append(counters, dialCounter(t, p.url, "seq"))
	}
	pub := startServerProcess(t, "publisher (go-redis)", env("publisher", familyGoRedis)...)
	procs = append(procs, pub)

	// VmRSS of every process, every 250 ms, from just before the load until the receivers caught up.
	type sample struct {
		at  time.Duration // since the load began
		rss []int64       // per process, then Redis
	}
	var (
		samplesMu sync.Mutex
		samples   []sample
		stopRSS   = make(chan struct{})
		rssDone   = make(chan struct{})
	)
	loadStart := time.Now()
	go func() {
		defer close(rssDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			s := sample{at: time.Since(loadStart)}
			for _, p := range procs {
				s.rss = append(s.rss, p.rss())
			}
			s.rss = append(s.rss, rssOf(srv.Pid()))
			samplesMu.Lock()
			samples = append(samples, s)
			samplesMu.Unlock()
			select {
			case <-stopRSS:
				return
			case <-tick.C:
			}
		}
	}()
	stopSampling := sync.OnceFunc(func() { close(stopRSS); <-rssDone })
	t.Cleanup(stopSampling)

	pub.send(t, fmt.Sprintf("emit %d %d %d", rate, total, pad))
	pub.expect(t, "emitted ", seconds*time.Second+60*time.Second)
	loadTime := time.Since(loadStart)
	lostDuringLoad := make([]uint64, len(counters))
	for i := range counters {
		lostDuringLoad[i] = procs[i].stats(t).Lost
	}
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range counters {
		for {
			unique, _ := c.counts(total)
			lost := procs[i].stats(t).Lost
			if int64(unique)+int64(lost) >= total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d received + %d lost < %d", procs[i].name, unique, lost, total)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	caughtUp := time.Since(loadStart)
	stopSampling()

	pubResult, ps := pub.close(t)
	t.Logf("publisher: emitted %d at %d/s in %v, all caught up after %v; close: %s; stats Published %d Dropped %d PublishErrors %d",
		total, rate, loadTime.Round(time.Millisecond), caughtUp.Round(time.Millisecond), pubResult, ps.Published, ps.Dropped, ps.PublishErrors)
	if ps.Published != total || ps.Dropped != 0 || ps.PublishErrors != 0 {
		t.Errorf("publisher: %d of %d writes published, %d dropped, %d failed", ps.Published, total, ps.Dropped, ps.PublishErrors)
	}
	for i, c := range counters {
		_, s := procs[i].close(t)
		unique, dups := c.counts(total)
		t.Logf("%s: received %d, lost %d (%d reported while the load lasted), delivered twice %d; stats Received %d Duplicates %d Invalid %d",
			procs[i].name, unique, s.Lost, lostDuringLoad[i], dups, s.Received, s.Duplicates, s.Invalid)
		if dups != 0 || s.Duplicates != 0 {
			t.Errorf("%s: %d broadcasts delivered more than once, %d repeats skipped", procs[i].name, dups, s.Duplicates)
		}
		if int64(unique)+int64(s.Lost) != total {
			t.Errorf("%s: received %d + lost %d != %d emitted", procs[i].name, unique, s.Lost, total)
		}
		if lostDuringLoad[i] == 0 {
			t.Errorf("%s: no loss reported while it was behind", procs[i].name)
		}
		if err := c.failure(); err != nil {
			t.Errorf("%s: client: %v", procs[i].name, err)
		}
	}

	// Memory. What the adapter itself may hold is small: a receiver at most 6 batches of read entries (the batch
	// being delivered, 4 queued, 1 read), the publisher at most 4×MaxBatch queued writes while Redis keeps up (more
	// only when Redis is slower than the emits, which it is not here). The rest is the runtime's: heap growth up to
	// the GC target, goroutine stacks, the race detector's shadow memory, so the bound on the peak is generous. What
	// would show a leak is growth with the traffic, so the growth after the first third of the load is bounded
	// more tightly: with every stream entry kept in memory (tried once), each process grew by 150 to 300 MiB in
	// those 20 s, against 0 to 4 MiB without.
	const (
		entrySize  = pad + 200
		queueBound = 4 * DefaultMaxBatch * entrySize // the larger of the two, the publisher's
		maxGrowth  = 64<<20 + 2*queueBound           // above the VmRSS before the load
		maxLate    = 24 << 20                        // above the peak of the first third of the load
	)
	samplesMu.Lock()
	defer samplesMu.Unlock()
	names := []string{}
	for _, p := range procs {
		names = append(names, p.name)
	}
	names = append(names, "redis-server")
	for j, name := range names {
		var base, early, peak int64
		var line []string
		for k, s := range samples {
			v := s.rss[j]
			switch {
			case k == 0:
				base = v
			case s.at < loadTime/3:
				early = max(early, v)
			}
			peak = max(peak, v)
			if k%8 == 0 {
				line = append(line, strconv.FormatInt(v>>20, 10))
			}
		}
		t.Logf("%s: VmRSS before the load %d MiB, peak in the first third %d MiB, peak %d MiB; every 2 s: %s MiB",
			name, base>>20, early>>20, peak>>20, strings.Join(line, " "))
		if base == 0 || j == len(procs) { // no /proc (not Linux), or Redis (trimmed by MaxLen: logged only)
			continue
		}
		if peak-base > maxGrowth {
			t.Errorf("%s: VmRSS grew by %d MiB under load, more than %d MiB", name, (peak-base)>>20, maxGrowth>>20)
		}
		if peak-early > maxLate {
			t.Errorf("%s: VmRSS grew by %d MiB after the first third of the load (with the traffic), more than %d MiB",
				name, (peak-early)>>20, maxLate>>20)
		}
	}
}

// Close while Redis is stopped: the writes still held when Close's context ends are dropped, each counted in
// Stats.Dropped (docs/delivery.md's promise), the one in flight at that moment included; none is counted as a failed
// write, and none is left unaccounted for.
func TestFaultCloseDuringOutage(t *testing.T) {
	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) { testCloseDuringOutage(t, family) })
	}
}

func testCloseDuringOutage(t *testing.T, family string) {
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	a, _, err := config{family: family}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix,
		ChannelPrefix: prefix, BlockTime: time.Second, RequestsTimeout: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pub := startClusterWithAdapters(t, []*Adapter{a})[0]
	for i := range 100 {
		pub.io.Emit("seq", i)
	}
	waitFor(t, "published", func() bool { return a.Stats().Published >= 100 })
	published := a.Stats().Published // the writes of the namespace's set-up included

	pid := srv.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) // before the server is closed
	for i := range 500 {
		pub.io.Emit("seq", 100+i)
	}
	stopped := time.Now()
	waitForLong(t, "outage detected", 20*time.Second, func() bool { return a.Stats().HeldWrites > 0 })
	t.Logf("outage detected after %v", time.Since(stopped))
	for i := range 500 {
		pub.io.Emit("seq", 600+i)
	}
	// The writer sends the held writes again after a pause of about 50 ms, and that round trip waits up to
	// RequestsTimeout (1 s): Close most likely ends it midway.
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closeStart := time.Now()
	err = a.Close(ctx)
	closeTime := time.Since(closeStart)
	s := a.Stats()
	t.Logf("Close took %v: %v; stats Published %d Dropped %d PublishErrors %d QueuedWrites %d", closeTime, err, s.Published, s.Dropped,
		s.PublishErrors, s.QueuedWrites)
	if err == nil {
		t.Error("Close returned nil with writes still held")
	}
	if s.PublishErrors != 0 {
		t.Errorf("%d writes counted as failed, not dropped", s.PublishErrors)
	}
	if s.Published != published || s.Dropped != 1000 || s.QueuedWrites != 0 {
		t.Errorf("after Close: published %d (want %d), dropped %d (want 1000), still queued %d", s.Published,
			published, s.Dropped, s.QueuedWrites)
	}
}

// stopThenRestart is a fault: Redis stops (SIGKILL, its data gone); the returned function starts it again, empty.
func stopThenRestart(t *testing.T, srv *redistest.Server) func() {
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := srv.Restart(); err != nil {
			t.Error(err)
		}
	}
}

// A server process is SIGKILLed while another server broadcasts numbered events at a steady rate to every client:
// the killed server's clients (raw clients doing what socket.io-client does) reconnect at once, spread over the
// two survivors, with their pid and last offset, while the broadcasts go on. Each resumes its session and ends up
// with every number exactly once: those before the kill on the old connection, the ones it missed replayed, the rest
// live.
func TestFaultServerKilled(t *testing.T) {
	requireRedis(t)
	if testing.Short() {
		t.Skip("fault test: a server process killed under traffic")
	}
	cs := newCrashSetup(t, configs[0], 2, recoveryProcess{Refresh: time.Second})
	b, c := cs.nodes[0], cs.nodes[1]
	a := cs.start(t, "A")
	var olds []*csrClient
	for range 40 {
		olds = append(olds, dialCSRT(t, a.url, nil, ""))
	}
	for _, x := range olds {
		cs.livePid(t, x.sid, nil)
	}
	resumeUnderTraffic(t, b, olds, func() { a.kill(t) }, b, c)
}

// resumeUnderTraffic has pub emit numbered "seq" broadcasts to everyone at 500/s on an absolute schedule; once each
// client of olds has a number (an offset) and one more second passed, lose cuts them off (all at once); they come
// back at once, with their pid and last offset, on targets in turn, while the broadcasts go on for 2 s more. Each
// must resume its session and have every number exactly once, old and new connections together.
func resumeUnderTraffic(t *testing.T, pub *node, olds []*csrClient, lose func(), targets ...*node) {
	t.Helper()
	const rate = 500
	var sent atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			due := int64(time.Since(start).Seconds() * rate)
			for n := sent.Load(); n < due; n++ {
				pub.io.Emit("seq", n)
				sent.Store(n + 1)
			}
		}
	}()
	for _, x := range olds { // each has an offset (without one, no client can recover: docs/recovery.md)
		x.waitNumbers(t, "seq", 1)
	}
	time.Sleep(time.Second) // more traffic first (a schedule)
	lose()
	atLoss := sent.Load()
	news := make([]*csrClient, len(olds))
	var wg sync.WaitGroup
	for i, x := range olds {
		wg.Go(func() {
			<-x.done // its connection is gone
			n, err := dialCSR(targets[i%len(targets)].url, x.state(), "")
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			t.Cleanup(n.cut)
			news[i] = n
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // traffic after the recoveries
	close(stop)
	<-done
	total := sent.Load()
	if t.Failed() {
		return
	}
	missed := 0
	for i, x := range olds {
		n := news[i]
		if n.sid != x.sid {
			t.Fatalf("client %d: new id %s, want %s (not recovered)", i, n.sid, x.sid)
		}
		before := x.numbers("seq")
		got := append(before, n.waitNumbers(t, "seq", int(total)-len(before))...)
		for j, v := range got {
			if v != int64(j) {
				t.Fatalf("client %d: number %d at index %d (received %d on its first connection, %d after): %v", i, v, j,
					len(before), len(got)-len(before), got[max(0, j-3):min(len(got), j+3)])
			}
		}
		if len(got) != int(total) {
			t.Fatalf("client %d: %d numbers, want %d", i, len(got), total)
		}
		missed += int(atLoss) - len(before)
		if err := errors.Join(x.failure(), n.failure()); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	var restored uint64
	for _, n := range targets {
		restored += n.adapter.Stats().Restored
	}
	t.Logf("%d broadcasts at %d/s; %d clients resumed at once (%d restores), each with all %d numbers once; %d broadcasts were sent before the loss and not yet received (on average %.1f per client)",
		total, rate, len(olds), restored, total, missed, float64(missed)/float64(len(olds)))
	if restored != uint64(len(olds)) {
		t.Fatalf("%d restores, want %d", restored, len(olds))
	}
}
