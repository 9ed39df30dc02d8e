package redisstreams

import (
	"context"
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
// receiver read them, which that receiver must count (Stats.Lost) exactly. The rates are modest on purpose: the
// tests check correctness under -race on a busy machine, not speed, and assert no timing.

// faultRate is the emit rate of the fault tests, per second.
const faultRate = 1000

func TestFaultRedisPaused(t *testing.T) {
	// 15 s of SIGSTOP at 1,000 broadcasts/s: 15,000 writes held by the publisher, more than the default MaxLen of a
	// stream, so MaxLen is raised as the README advises for outages this long.
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

func TestFaultRedisRestarted(t *testing.T) {
	runFault(t, faultScenario{
		publisher: familyRueidis,
		receivers: []string{familyRueidis, familyGoRedis, familyRueidis},
		outage:    8 * time.Second,
		restart:   true,
		fault: func(t *testing.T, srv *redistest.Server) func() {
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := srv.Restart(); err != nil {
					t.Error(err)
				}
			}
		},
	})
}

type faultScenario struct {
	publisher string   // client family of the publishing server
	receivers []string // client family of each receiving server
	outage    time.Duration
	restart   bool // Redis loses its data: receivers may lose (and must count) what they had not read
	fault     func(*testing.T, *redistest.Server) (end func())
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
			Logger: testLogger(t)})
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

	// Every receiver gets every number, or counts it lost; the held writes drain at Redis speed.
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range counters {
		a := nodes[i+1].adapter
		for {
			unique, _ := c.counts(total)
			if int64(unique)+int64(a.Stats().Lost) >= total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("receiver %d: %d of %d received, %d lost; stats %+v", i, unique, total, a.Stats().Lost, a.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ps := pub.adapter.Stats()
	t.Logf("publisher: emitted %d (%d/s), writes held at the end of the outage %d, max queued %d B, max heap in use %d MiB, longest io.Emit %v; stats Published %d Dropped %d PublishErrors %d",
		total, faultRate, held, maxQueued.Load(), maxHeap.Load()>>20, time.Duration(maxEmit.Load()).Round(time.Millisecond),
		ps.Published, ps.Dropped, ps.PublishErrors)
	if ps.Dropped != 0 {
		t.Errorf("publisher dropped %d writes", ps.Dropped)
	}
	if held == 0 {
		t.Errorf("no write held during the outage: the fault did not happen")
	}
	for i, c := range counters {
		s := nodes[i+1].adapter.Stats()
		unique, dups := c.counts(total)
		missing := total - int64(unique)
		t.Logf("receiver %d (%s): received %d of %d, missing %d, delivered twice %d; stats Lost %d Duplicates %d Invalid %d ReadErrors %d",
			i, sc.receivers[i], unique, total, missing, dups, s.Lost, s.Duplicates, s.Invalid, s.ReadErrors)
		if dups != 0 {
			t.Errorf("receiver %d: %d broadcasts delivered more than once", i, dups)
		}
		if missing != int64(s.Lost) {
			t.Errorf("receiver %d: %d broadcasts missing, %d counted lost", i, missing, s.Lost)
		}
		if !sc.restart && missing != 0 {
			t.Errorf("receiver %d: %d broadcasts lost while Redis kept its data", i, missing)
		}
		if err := c.failure(); err != nil {
			t.Errorf("receiver %d: client: %v", i, err)
		}
	}
}

// wsCounter is a raw Socket.IO websocket client (EIO 4) that records the numbers of one event. It is much lighter
// than a full client, so that thousands of events per second are cheap under -race.
type wsCounter struct {
	conn  *websocket.Conn
	event string

	mu  sync.Mutex
	got map[int64]int
	err error
}

func dialCounter(t *testing.T, url, event string) *wsCounter {
	t.Helper()
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
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ok), "40{") {
		t.Fatalf("socket.io connect: %q %v", ok, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &wsCounter{conn: conn, event: event, got: map[int64]int{}}
	go c.loop()
	return c
}

func (c *wsCounter) loop() {
	prefix := `42["` + c.event + `",`
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
			n, err := strconv.ParseInt(s[len(prefix):len(s)-1], 10, 64)
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

// Overload for a bounded time: the receivers deliver at most about 2,500 broadcasts/s each while the publisher
// emits twice that for 6 s into a stream trimmed to about 2,000 entries. They fall behind and lose entries to
// trimming: each loss is reported while the load lasts, memory stays bounded (the backlog stays in Redis, not in
// the servers), and once the load stops every broadcast was delivered once or counted lost, exactly.
func TestFaultOverload(t *testing.T) {
	requireRedis(t)
	if testing.Short() {
		t.Skip("fault test: seconds of load")
	}
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	prefix := "t" + randomID()
	var adapters []*Adapter
	for _, family := range []string{familyGoRedis, familyGoRedis, familyRueidis, familyGoRedis} {
		a, _, err := config{family: family}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix,
			ChannelPrefix: prefix, MaxLen: 2000, ReadCount: 50, BlockTime: time.Second, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		adapters = append(adapters, a)
	}
	for _, a := range adapters[1:] {
		a.beforeDispatch = func() { time.Sleep(20 * time.Millisecond) } // 50 entries per 20 ms at most
	}
	nodes := startClusterWithAdapters(t, adapters)
	counters := make([]*wsCounter, 3)
	for i := range counters {
		counters[i] = dialCounter(t, nodes[i+1].url, "seq")
	}
	const rate, seconds = 5000, 6
	var maxHeap uint64
	var ms runtime.MemStats
	lostDuringLoad := make([]uint64, 3)
	start := time.Now()
	sent := 0
	for sent < rate*seconds {
		due := min(int(time.Since(start).Seconds()*rate), rate*seconds)
		for ; sent < due; sent++ {
			nodes[0].io.Emit("seq", sent)
		}
		if sent%rate < 50 { // about once a second
			runtime.ReadMemStats(&ms)
			maxHeap = max(maxHeap, ms.HeapInuse)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range lostDuringLoad {
		lostDuringLoad[i] = nodes[i+1].adapter.Stats().Lost
	}
	total := int64(sent)
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range counters {
		for {
			unique, _ := c.counts(total)
			if int64(unique)+int64(nodes[i+1].adapter.Stats().Lost) >= total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("receiver %d: %d received + %d lost < %d", i, unique, nodes[i+1].adapter.Stats().Lost, total)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("emitted %d at %d/s; max heap in use %d MiB (all servers, one process); publisher %+v", total, rate,
		maxHeap>>20, nodes[0].adapter.Stats())
	for i, c := range counters {
		s := nodes[i+1].adapter.Stats()
		unique, dups := c.counts(total)
		t.Logf("receiver %d: received %d, lost %d (%d reported while the load lasted), delivered twice %d", i, unique,
			s.Lost, lostDuringLoad[i], dups)
		if dups != 0 {
			t.Errorf("receiver %d: %d broadcasts delivered more than once", i, dups)
		}
		if int64(unique)+int64(s.Lost) != total {
			t.Errorf("receiver %d: received %d + lost %d != %d", i, unique, s.Lost, total)
		}
		if lostDuringLoad[i] == 0 {
			t.Errorf("receiver %d: no loss reported while it was behind", i)
		}
	}
	if p := nodes[0].adapter.Stats(); p.Dropped != 0 {
		t.Errorf("publisher dropped %d writes", p.Dropped)
	}
}
