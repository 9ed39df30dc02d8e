package redisstreams

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// The streams-only layout (Options.StreamsOnly). The whole conformance suite also runs in this mode (configs
// "standalone-streamsonly" and "cluster-streamsonly"), and the recovery suite on standalone.

func streamsOnlyConfig() config { return configsNamed("standalone-streamsonly")[0] }

// fastHeartbeats: a server is considered gone 1s after its last message.
func fastHeartbeats(o *Options) {
	o.HeartbeatInterval = 200 * time.Millisecond
	o.HeartbeatTimeout = time.Second
	o.RequestsTimeout = 10 * time.Second
}

// With every PUB/SUB command disabled on the Redis server, everything still works.
func TestStreamsOnlyWithoutPubSub(t *testing.T) {
	srv := redistest.StartServerT(t, redistest.ServerOptions{Config: strings.Join([]string{
		`rename-command PUBLISH ""`, `rename-command SUBSCRIBE ""`, `rename-command PSUBSCRIBE ""`,
		`rename-command SPUBLISH ""`, `rename-command SSUBSCRIBE ""`, `rename-command PUBSUB ""`,
	}, "\n")})
	newClient := func(t testing.TB) redis.UniversalClient {
		rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rc.Close() })
		return rc
	}
	if err := newClient(t).Publish(t.Context(), "x", "y").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("PUBLISH is not disabled: %v", err)
	}
	nodes := startClusterWith(t, config{name: "nopubsub", opts: Options{StreamsOnly: true}}, clusterOpts{}, newClient)
	clients := make([]*testClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.connect(t, clientOpts{}, "test")
		answer(clients[i], "ask", i+1)
	}
	for i, n := range nodes {
		if c := n.nsp(t, "/").ServerCount(); c != 3 {
			t.Fatalf("node %d counts %d servers", i, c)
		}
	}
	nodes[0].io.Emit("test", "all")
	for _, c := range clients {
		if args := c.expect(t, "test"); args[0] != "all" {
			t.Fatalf("got %v", args)
		}
	}
	if got := fetch(t, nodes[1].io.Timeout(5*time.Second)); len(got) != 3 {
		t.Fatalf("fetched %d sockets", len(got))
	}
	serverSideEvents(nodes, "hello", func(i int) any { return i * 10 })
	r := serverSideEmitWithAck(nodes[2].io, "hello")
	if r.err != nil || !reflect.DeepEqual(sortedFloats(r.args), []float64{0, 10}) {
		t.Fatalf("serverSideEmitWithAck: %v, %v", r.args, r.err)
	}
	r = emitWithAck(nodes[0].io.Timeout(5*time.Second), "ask")
	if r.err != nil || !reflect.DeepEqual(sortedFloats(r.args), []float64{1, 2, 3}) {
		t.Fatalf("emitWithAck: %v, %v", r.args, r.err)
	}
	for _, n := range nodes {
		if st := n.adapter.Stats(); st.PublishErrors != 0 {
			t.Fatalf("%d publish errors", st.PublishErrors)
		}
	}
}

// Heartbeats keep an idle server counted, a silent one is forgotten after HeartbeatTimeout, the emitter is never
// counted, and a closing server is forgotten at once.
func TestStreamsOnlyHeartbeats(t *testing.T) {
	cfg := streamsOnlyConfig()
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: fastHeartbeats})
	n := nodes[0].nsp(t, "/")
	rc := cfg.newClient(t)
	time.Sleep(1500 * time.Millisecond) // idle for longer than HeartbeatTimeout
	if c := n.ServerCount(); c != 2 {
		t.Fatalf("idle servers: count %d, want 2", c)
	}
	entries, err := rc.XRange(t.Context(), n.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	types := map[any]int{}
	for _, e := range entries {
		types[e.Values["type"]]++
		if _, ok := e.Values["data"]; ok {
			t.Fatalf("heartbeat entry with data: %v", e.Values)
		}
	}
	if types["1"] != 2 || types["2"] < 4 {
		t.Fatalf("entry types %v: want 2 INITIAL_HEARTBEAT and idle HEARTBEATs", types)
	}

	silent := silentServer(t, rc, n)
	waitFor(t, "silent server counted", func() bool { return n.ServerCount() == 3 })
	emitter(t, rc, n)
	_ = silent.Close()
	start := time.Now()
	waitFor(t, "silent server forgotten", func() bool { return n.ServerCount() == 2 })
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("silent server forgotten after %v", d)
	}

	// A closing server is forgotten when its ADAPTER_CLOSE is read, not after HeartbeatTimeout (a minute here: the
	// count can drop within waitFor's deadline only by ADAPTER_CLOSE).
	closing := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) {
		o.HeartbeatInterval = 200 * time.Millisecond
		o.HeartbeatTimeout = time.Minute
	}})
	closing[1].io.Of("/", nil).Adapter().Close()
	waitFor(t, "closed server forgotten", func() bool { return closing[0].nsp(t, "/").ServerCount() == 1 })
}

// emitter writes an entry with the emitter's uid, which must not count as a server, then one of a new server: once
// that one is counted, the emitter's entry (before it in the stream) has been read. It is called with 3 servers.
func emitter(t *testing.T, rc redis.UniversalClient, n *nspAdapter) {
	t.Helper()
	for _, s := range []*silent{{t: t, n: n, uid: emitterUID}, {t: t, n: n, uid: "sentinel" + randomID()}} {
		if err := rc.XAdd(t.Context(), &redis.XAddArgs{Stream: n.stream, Values: s.entry(wire.Heartbeat)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the entry after the emitter's read", func() bool { return n.ServerCount() >= 4 })
	if c := n.ServerCount(); c != 4 {
		t.Fatalf("emitter counted: %d servers, want 3 and the sentinel", c)
	}
}

// Requests stop waiting for a server that stops heartbeating: they complete with the live servers' answers about
// HeartbeatTimeout after its last heartbeat, not at the request timeout (10s here).
func TestStreamsOnlyDeadServerIsNotWaitedFor(t *testing.T) {
	cfg := streamsOnlyConfig()
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: fastHeartbeats})
	clients := []*testClient{nodes[0].connect(t, clientOpts{}), nodes[1].connect(t, clientOpts{})}
	for i, c := range clients {
		answer(c, "ask", i+1)
	}
	serverSideEvents(nodes, "hello", func(i int) any { return i + 1 })
	n := nodes[0].nsp(t, "/")
	rc := cfg.newClient(t)

	cases := []struct {
		name string
		run  func() (time.Duration, error)
	}{
		{"fetchSockets", func() (time.Duration, error) {
			start := time.Now()
			var got []*socket.RemoteSocket
			var err error
			nodes[0].io.FetchSockets()(func(s []*socket.RemoteSocket, e error) { got, err = s, e })
			if err == nil && len(got) != 2 {
				err = fmt.Errorf("%d sockets", len(got))
			}
			return time.Since(start), err
		}},
		{"serverSideEmitWithAck", func() (time.Duration, error) {
			start := time.Now()
			r := serverSideEmitWithAck(nodes[0].io, "hello")
			if r.err == nil && !reflect.DeepEqual(sortedFloats(r.args), []float64{2}) {
				r.err = fmt.Errorf("responses %v", r.args)
			}
			return time.Since(start), r.err
		}},
		{"broadcastWithAck", func() (time.Duration, error) {
			start := time.Now()
			r := emitWithAck(nodes[0].io.Timeout(10*time.Second), "ask")
			if r.err == nil && !reflect.DeepEqual(sortedFloats(r.args), []float64{1, 2}) {
				r.err = fmt.Errorf("responses %v", r.args)
			}
			return time.Since(start), r.err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			silent := silentServer(t, rc, n)
			waitFor(t, "silent server counted", func() bool { return n.ServerCount() == 3 })
			go func() {
				time.Sleep(100 * time.Millisecond)
				_ = silent.Close() // the "server" dies while the request waits for it
			}()
			d, err := tc.run()
			if err != nil {
				t.Fatal(err)
			}
			if d > 2500*time.Millisecond {
				t.Fatalf("took %v", d)
			}
			t.Logf("completed in %v", d)
			waitFor(t, "silent server forgotten", func() bool { return n.ServerCount() == 2 })
		})
	}
}

// Environment of the helper process of TestStreamsOnlyKilledServer.
const (
	helperAddrEnv   = "REDISSTREAMS_HELPER_REDIS"
	helperStreamEnv = "REDISSTREAMS_HELPER_STREAM"
)

// A real server process, SIGKILLed while a fetchSockets waits for its answer: the request completes with the
// live servers' answers within HeartbeatTimeout plus a margin, not at the request timeout.
func TestStreamsOnlyKilledServer(t *testing.T) {
	cfg := streamsOnlyConfig()
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: fastHeartbeats})
	nodes[0].connect(t, clientOpts{})
	nodes[1].connect(t, clientOpts{})
	n := nodes[0].nsp(t, "/")

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStreamsOnlyServer$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperAddrEnv+"="+standalone.Addr(), helperStreamEnv+"="+nodes[0].adapter.opts.StreamName)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for _, nd := range nodes {
		waitFor(t, "helper server counted", func() bool { return nd.nsp(t, "/").ServerCount() == 3 })
	}

	type result struct {
		sockets []*socket.RemoteSocket
		err     error
		d       time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go nodes[0].io.FetchSockets()(func(s []*socket.RemoteSocket, e error) { done <- result{s, e, time.Since(start)} })
	select {
	case l := <-lines:
		if l != "FETCH" {
			t.Fatalf("helper said %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("helper never got the request; stderr: %s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killed := time.Since(start)
	select {
	case r := <-done:
		if r.err != nil || len(r.sockets) != 2 {
			t.Fatalf("fetchSockets: %d sockets, %v", len(r.sockets), r.err)
		}
		if r.d > 3*time.Second {
			t.Fatalf("fetchSockets took %v", r.d)
		}
		t.Logf("helper killed %v after the request; fetchSockets completed after %v", killed, r.d)
	case <-time.After(15 * time.Second):
		t.Fatal("fetchSockets never completed")
	}
	waitFor(t, "killed server forgotten", func() bool { return n.ServerCount() == 2 })
}

// TestHelperStreamsOnlyServer is the server process of TestStreamsOnlyKilledServer: a streams-only server whose
// FETCH_SOCKETS answers never reach Redis (it says "FETCH" on stdout and waits to be killed).
func TestHelperStreamsOnlyServer(t *testing.T) {
	addr := os.Getenv(helperAddrEnv)
	if addr == "" {
		t.Skip("helper process of TestStreamsOnlyKilledServer")
	}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	rc.AddHook(holdFetchResponses{})
	opts := Options{StreamsOnly: true, StreamName: os.Getenv(helperStreamEnv), ReadCount: 1, BlockTime: time.Second}
	fastHeartbeats(&opts)
	a, err := New(t.Context(), goredisbackend.New(rc), opts)
	if err != nil {
		t.Fatal(err)
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(a)
	socket.NewServer(nil, so) // the "/" namespace joins the cluster
	time.Sleep(time.Minute)   // killed long before
}

// holdFetchResponses holds any write of a FETCH_SOCKETS_RESPONSE (and the writes queued behind it).
type holdFetchResponses struct{}

func (holdFetchResponses) DialHook(next redis.DialHook) redis.DialHook { return next }

func (holdFetchResponses) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		holdFetchResponse(cmd)
		return next(ctx, cmd)
	}
}

func (holdFetchResponses) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			holdFetchResponse(c)
		}
		return next(ctx, cmds)
	}
}

func holdFetchResponse(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) == 0 || !strings.EqualFold(fmt.Sprint(args[0]), "xadd") {
		return
	}
	for i := 1; i+1 < len(args); i++ {
		if fmt.Sprint(args[i]) == "type" && fmt.Sprint(args[i+1]) == "8" {
			fmt.Println("FETCH")
			time.Sleep(time.Minute)
		}
	}
}

func TestStreamsOnlyOptions(t *testing.T) {
	rc := configs[0].newClient(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{HeartbeatInterval: -1}, "HeartbeatInterval"},
		{Options{HeartbeatTimeout: -1}, "HeartbeatTimeout"},
		{Options{HeartbeatInterval: 10 * time.Second}, "HeartbeatTimeout"},
		{Options{HeartbeatInterval: time.Second, HeartbeatTimeout: time.Second}, "HeartbeatTimeout"},
		{Options{HeartbeatTimeout: time.Second}, "HeartbeatTimeout"},
	} {
		if _, err := New(t.Context(), goredisbackend.New(rc), tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one about %s", tc.opts, err, tc.want)
		}
	}
	o := Options{}.withDefaults()
	if o.StreamsOnly || o.HeartbeatInterval != 5*time.Second || o.HeartbeatTimeout != 10*time.Second {
		t.Fatalf("defaults %+v", o)
	}
	a, err := New(t.Context(), goredisbackend.New(rc), Options{StreamsOnly: true, HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close(t.Context())
}

// Close stops the heartbeat loop with everything else, and a closed namespace sends ADAPTER_CLOSE.
func TestStreamsOnlyCloseStopsEverything(t *testing.T) {
	cfg := streamsOnlyConfig()
	rc := cfg.newClient(t)
	stream := "t" + randomID()
	a, err := New(t.Context(), goredisbackend.New(rc), Options{StreamsOnly: true, StreamName: stream, BlockTime: 5 * time.Second,
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWithAdapters(t, []*Adapter{a})
	nodes[0].io.Emit("x")
	waitFor(t, "an idle heartbeat after the broadcast", func() bool {
		entries, err := rc.XRange(t.Context(), stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			if e.Values["type"] == "3" {
				return slices.ContainsFunc(entries[i:], func(e redis.XMessage) bool { return e.Values["type"] == "2" })
			}
		}
		return false
	})
	if adapterGoroutines() == 0 {
		t.Fatal("no adapter goroutines while running")
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "adapter goroutines to end", func() bool { return adapterGoroutines() == 0 })
	entries, err := rc.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range entries {
		types = append(types, fmt.Sprint(e.Values["type"]))
	}
	if len(types) < 3 || types[0] != "1" || types[len(types)-1] != "13" || !slices.Contains(types, "2") {
		t.Fatalf("entry types %v: want INITIAL_HEARTBEAT first, HEARTBEATs, ADAPTER_CLOSE last", types)
	}
	if !slices.Contains(types, "3") {
		t.Fatalf("entry types %v: no broadcast", types)
	}
	// Nothing is written after ADAPTER_CLOSE: the entries were read once no goroutine of the adapter was left, and
	// the last one is ADAPTER_CLOSE.
}

// A server that closes while a broadcast with acks waits for its client count gets a count of 0 on its behalf, and
// the operator then completes: the application's ack runs, and here calls fetchSockets. That ack must not run on
// the goroutine that reads the stream, which has to read the answers to the fetch: the fetch completes well within
// RequestsTimeout (a minute here), with the other server's socket. (HeartbeatTimeout is long too, so that a reader
// held up does not show as the other server going silent.)
func TestStreamsOnlyAckOfClosingServerCanFetch(t *testing.T) {
	cfg := streamsOnlyConfig()
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) {
		o.HeartbeatInterval = 200 * time.Millisecond
		o.HeartbeatTimeout = 30 * time.Second
		o.RequestsTimeout = time.Minute
	}})
	nodes[1].connect(t, clientOpts{})
	n := nodes[0].nsp(t, "/")
	c := silentServer(t, cfg.newClient(t), n)
	waitFor(t, "silent server counted", func() bool { return n.ServerCount() == 3 })

	// To a room nobody is in: the operator waits for 3 client counts of 0 and no acknowledgement.
	type fetched struct {
		sockets []*socket.RemoteSocket
		err     error
	}
	done := make(chan fetched, 1)
	nodes[0].io.To("nobody").Timeout(time.Minute).EmitWithAck("ask")(func([]any, error) {
		nodes[0].io.FetchSockets()(func(s []*socket.RemoteSocket, err error) { done <- fetched{s, err} })
	})
	waitFor(t, "the other server's client count", func() bool {
		n.reqMu.Lock()
		defer n.reqMu.Unlock()
		for _, ar := range n.ackRequests {
			_, counted := ar.counted[nodes[1].nsp(t, "/").uid]
			return counted
		}
		return false
	})
	c.leave() // ADAPTER_CLOSE: its count of 0 completes the operator
	select {
	case r := <-done:
		if r.err != nil || len(r.sockets) != 1 {
			t.Fatalf("fetchSockets from the ack: %d sockets, %v", len(r.sockets), r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fetchSockets from the ack did not complete within 10s (RequestsTimeout 1m): it blocks the reader")
	}
}
