package redisstreams

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/siotest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// The Node adapter's conformance checklist (wire-protocol.md 2.2), each case with 3 servers and one real client
// per server, against every Redis configuration.
func TestConformance(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			requireRedis(t)
			for _, tc := range conformanceCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, cfg) })
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(*testing.T, config)
}{
	{"B1_broadcast_all_with_binary", testBroadcastAll},
	{"B2_broadcast_namespace", testBroadcastNamespace},
	{"B3_broadcast_room", testBroadcastRoom},
	{"B4_broadcast_except", testBroadcastExcept},
	{"B5_broadcast_local", testBroadcastLocal},
	{"B5b_volatile_and_compress", testBroadcastFlags},
	{"B6_broadcast_acks", testBroadcastAcks},
	{"B7_broadcast_acks_binary", testBroadcastAcksBinary},
	{"B8_broadcast_acks_no_client", testBroadcastAcksNoClient},
	{"B9_broadcast_acks_timeout", testBroadcastAcksTimeout},
	{"B10_single_ack_local", testSingleAckLocal},
	{"B11_single_ack_remote", testSingleAckRemote},
	{"J_sockets_join", testSocketsJoin},
	{"L_sockets_leave", testSocketsLeave},
	{"D1_disconnect_sockets", testDisconnectSockets},
	{"D2_emit_then_disconnect_keeps_order", testEmitThenDisconnect},
	{"F1_fetch_all", testFetchAll},
	{"F2_fetch_single_remote", testFetchSingleRemote},
	{"F3_fetch_local", testFetchLocal},
	{"F4_fetch_timeout", testFetchTimeout},
	{"F5_remote_socket_ops", testRemoteSocketOps},
	{"S1_server_side_emit", testServerSideEmit},
	{"S2_server_side_emit_ack", testServerSideEmitAck},
	{"S3_server_side_emit_timeout", testServerSideEmitTimeout},
	{"S4_closed_server_leaves", testClosedServerLeaves},
	{"server_count", testServerCount},
}

// threeClients starts 3 servers and one client on each, recording the given events.
func threeClients(t *testing.T, cfg config, co clusterOpts, events ...string) ([]*node, []*testClient) {
	nodes := startCluster(t, cfg, co)
	clients := make([]*testClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.connect(t, clientOpts{}, events...)
	}
	return nodes, clients
}

// marker broadcasts a "marker" event to everyone from node 0 and waits for it on every client: entries are
// delivered in stream order, so anything a client has not received before the marker, it will not receive.
func marker(t *testing.T, nodes []*node, clients []*testClient) {
	t.Helper()
	nodes[0].io.Emit("marker")
	for _, c := range clients {
		c.expect(t, "marker")
	}
}

func testBroadcastAll(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "test")
	nodes[0].io.Emit("test", 1, "2", []byte{3, 4})
	for _, c := range clients {
		args := c.expect(t, "test")
		if len(args) != 3 || toFloat(args[0]) != 1 || args[1] != "2" || !reflect.DeepEqual(asBytes(args[2]), []byte{3, 4}) {
			t.Fatalf("client got %#v (%T %T %T)", args, args[0], args[1], args[2])
		}
	}
}

func testBroadcastNamespace(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{namespaces: []string{"/custom"}})
	var clients []*testClient
	for _, n := range nodes {
		clients = append(clients, n.connect(t, clientOpts{nsp: "/custom"}, "test"))
	}
	root := nodes[1].connect(t, clientOpts{}, "test", "marker")
	nodes[0].io.Of("/custom", nil).Emit("test", "custom")
	for _, c := range clients {
		if args := c.expect(t, "test"); args[0] != "custom" {
			t.Fatalf("got %v", args)
		}
	}
	nodes[0].io.Emit("marker")
	root.expect(t, "marker") // and not "test"
}

func testBroadcastRoom(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "test", "marker")
	clients[1].server.Join("room1")
	nodes[0].io.To("room1").Emit("test", "room")
	if args := clients[1].expect(t, "test"); args[0] != "room" {
		t.Fatalf("got %v", args)
	}
	marker(t, nodes, clients)
}

func testBroadcastExcept(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "test", "marker")
	clients[1].server.Join("room1")
	nodes[0].io.Except("room1").Emit("test", "except")
	clients[0].expect(t, "test")
	clients[2].expect(t, "test")
	marker(t, nodes, clients)
}

func testBroadcastLocal(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "test", "marker")
	nodes[0].io.Local().Emit("test", "local")
	clients[0].expect(t, "test")
	marker(t, nodes, clients)
}

// Volatile packets may be dropped by design, so the check is on what reaches the stream: the flags, with Node's
// names, and no flag that was not set.
func testBroadcastFlags(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{})
	nodes[0].io.Volatile().Compress(false).Emit("test", "v")
	nodes[0].io.Emit("test", "plain")
	n := nodes[0].nsp(t, "/")
	rc := cfg.newClient(t)
	var entries []redis.XMessage
	waitFor(t, "two stream entries", func() bool {
		entries, _ = rc.XRange(t.Context(), n.stream, "-", "+").Result()
		entries = slices.DeleteFunc(entries, func(e redis.XMessage) bool { return e.Values["type"] != "3" }) // heartbeats
		return len(entries) == 2
	})
	flags := func(e redis.XMessage) any {
		d, err := wire.DecodeJSON([]byte(e.Values["data"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		return d.(map[string]any)["opts"].(map[string]any)["flags"]
	}
	if f := flags(entries[0]); !reflect.DeepEqual(f, map[string]any{"compress": false, "volatile": true}) {
		t.Fatalf("volatile entry flags %v", f)
	}
	if f := flags(entries[1]); !reflect.DeepEqual(f, map[string]any{}) {
		t.Fatalf("plain entry flags %v", f)
	}
}

// answer makes a client acknowledge event with value (nil: never answer).
func answer(c *testClient, event string, value any) {
	_ = c.On(typesEvent(event), func(args ...any) {
		if value == nil {
			return
		}
		if ack, ok := args[len(args)-1].(socket.Ack); ok {
			ack([]any{value}, nil)
		}
	})
}

type ackResult struct {
	args []any
	err  error
}

func emitWithAck(op *socket.BroadcastOperator, event string, args ...any) ackResult {
	ch := make(chan ackResult, 1)
	op.EmitWithAck(event, args...)(func(res []any, err error) { ch <- ackResult{res, err} })
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		return ackResult{err: errors.New("ack callback never called")}
	}
}

func testBroadcastAcks(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	for i, c := range clients {
		answer(c, "test", i+1)
	}
	r := emitWithAck(nodes[0].io.Timeout(2*time.Second), "test")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := sortedFloats(r.args); !reflect.DeepEqual(got, []float64{1, 2, 3}) {
		t.Fatalf("responses %v", r.args)
	}
	waitFor(t, "ack requests to be dropped", func() bool {
		n := nodes[0].nsp(t, "/")
		n.reqMu.Lock()
		defer n.reqMu.Unlock()
		return len(n.ackRequests) == 0
	})
}

func testBroadcastAcksBinary(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	for i, c := range clients {
		answer(c, "test", []byte{byte(i + 1)})
	}
	r := emitWithAck(nodes[0].io.Timeout(2*time.Second), "test")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got []int
	for _, a := range r.args {
		b := asBytes(a)
		if len(b) != 1 {
			t.Fatalf("response %#v (%T) is not binary", a, a)
		}
		got = append(got, int(b[0]))
	}
	sort.Ints(got)
	if !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Fatalf("responses %v", got)
	}
}

func testBroadcastAcksNoClient(t *testing.T, cfg config) {
	nodes, _ := threeClients(t, cfg, clusterOpts{})
	// A minute's timeout: emitWithAck gives up after 15 s, so an operator that waited for it fails here.
	r := emitWithAck(nodes[0].io.To("abc").Timeout(time.Minute), "test")
	if r.err != nil || len(r.args) != 0 {
		t.Fatalf("got %v, %v", r.args, r.err)
	}
}

func testBroadcastAcksTimeout(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	answer(clients[0], "test", 1)
	answer(clients[1], "test", 2)
	answer(clients[2], "test", nil)
	r := emitWithAck(nodes[0].io.Timeout(500*time.Millisecond), "test")
	if r.err == nil {
		t.Fatal("no timeout error")
	}
	if got := sortedFloats(r.args); !reflect.DeepEqual(got, []float64{1, 2}) {
		t.Fatalf("responses %v", r.args)
	}
}

func testSingleAckLocal(t *testing.T, cfg config) {
	_, clients := threeClients(t, cfg, clusterOpts{})
	answer(clients[1], "test", 2)
	ch := make(chan ackResult, 1)
	clients[1].server.Timeout(2 * time.Second).EmitWithAck("test")(func(res []any, err error) { ch <- ackResult{res, err} })
	r := waitAck(t, ch)
	if r.err != nil || len(r.args) != 1 || toFloat(r.args[0]) != 2 {
		t.Fatalf("got %v, %v", r.args, r.err)
	}
}

func testSingleAckRemote(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	answer(clients[1], "test", 2)
	sockets := fetch(t, nodes[0].io.In(socket.Room(clients[1].Id())))
	if len(sockets) != 1 {
		t.Fatalf("fetched %d sockets", len(sockets))
	}
	ch := make(chan ackResult, 1)
	sockets[0].Timeout(2 * time.Second).EmitWithAck("test")(func(res []any, err error) { ch <- ackResult{res, err} })
	r := waitAck(t, ch)
	if r.err != nil || len(r.args) != 1 || toFloat(r.args[0]) != 2 {
		t.Fatalf("got %#v, %v", r.args, r.err)
	}
}

// waitAck waits for an acknowledgement callback's result, with a deadline.
func waitAck(t testing.TB, ch <-chan ackResult) ackResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("ack callback never called")
		return ackResult{}
	}
}

func fetch(t testing.TB, op interface {
	FetchSockets() func(func([]*socket.RemoteSocket, error))
}) []*socket.RemoteSocket {
	t.Helper()
	var out []*socket.RemoteSocket
	var err error
	op.FetchSockets()(func(s []*socket.RemoteSocket, e error) { out, err = s, e })
	if err != nil {
		t.Fatalf("fetchSockets: %v", err)
	}
	return out
}

func testSocketsJoin(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	nodes[0].io.SocketsJoin("room1")
	for _, c := range clients {
		waitFor(t, "join room1", func() bool { return rooms(c.server)["room1"] })
	}
	clients[2].server.Leave("room1") // room1 = clients 0 and 1
	nodes[0].io.In("room1").SocketsJoin("room2")
	waitFor(t, "matching join", func() bool { return rooms(clients[0].server)["room2"] && rooms(clients[1].server)["room2"] })
	nodes[0].io.In(socket.Room(clients[2].Id())).SocketsJoin("room3")
	waitFor(t, "single join", func() bool { return rooms(clients[2].server)["room3"] })
	// Every join above went through the one stream in order: once room3 arrived, room2 would have too.
	if rooms(clients[2].server)["room2"] || rooms(clients[0].server)["room3"] || rooms(clients[1].server)["room3"] {
		t.Fatalf("join leaked: %s %s %s", fmtRooms(clients[0].server), fmtRooms(clients[1].server), fmtRooms(clients[2].server))
	}
}

func testSocketsLeave(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	clients[0].server.Join("room1", "room2")
	clients[1].server.Join("room1", "room2", "room3")
	clients[2].server.Join("room2", "room3")
	nodes[0].io.In("room1").SocketsLeave("room2")
	waitFor(t, "matching leave", func() bool { return !rooms(clients[0].server)["room2"] && !rooms(clients[1].server)["room2"] })
	nodes[0].io.In(socket.Room(clients[1].Id())).SocketsLeave("room3")
	waitFor(t, "single leave", func() bool { return !rooms(clients[1].server)["room3"] })
	if !rooms(clients[2].server)["room2"] || !rooms(clients[2].server)["room3"] {
		t.Fatalf("client 2 lost a room: %s", fmtRooms(clients[2].server))
	}
	nodes[0].io.SocketsLeave("room1")
	waitFor(t, "leave all", func() bool { return !rooms(clients[0].server)["room1"] && !rooms(clients[1].server)["room1"] })
}

func testDisconnectSockets(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	nodes[0].io.DisconnectSockets(true)
	for _, c := range clients {
		if args := c.expect(t, "disconnect"); args[0] != "io server disconnect" {
			t.Fatalf("reason %v", args)
		}
	}
}

func testEmitThenDisconnect(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "bye")
	nodes[0].io.Emit("bye")
	nodes[0].io.DisconnectSockets(true)
	for _, c := range clients {
		c.expect(t, "bye")
		c.expect(t, "disconnect")
	}
}

func testFetchAll(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	sockets := fetch(t, nodes[0].io)
	var got, want []string
	for _, s := range sockets {
		got = append(got, string(s.Id()))
	}
	for _, c := range clients {
		want = append(want, c.Id())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fetched %v, want %v", got, want)
	}
	n := nodes[0].nsp(t, "/")
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	if len(n.requests) != 0 {
		t.Fatalf("%d requests left", len(n.requests))
	}
}

func testFetchSingleRemote(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{})
	c := nodes[1].connect(t, clientOpts{query: map[string]string{"k": "v"}})
	c.server.SetData("test")
	sockets := fetch(t, nodes[0].io.In(socket.Room(c.Id())))
	if len(sockets) != 1 {
		t.Fatalf("fetched %d", len(sockets))
	}
	s := sockets[0]
	if s.Data() != "test" || s.Rooms().Len() != 1 || !s.Rooms().Has(socket.Room(c.Id())) {
		t.Fatalf("data %v rooms %v", s.Data(), s.Rooms().Keys())
	}
	want, got := c.server.Handshake(), s.Handshake()
	if got.Address != want.Address || got.Url != want.Url || got.Time != want.Time || got.Issued != want.Issued ||
		got.Secure != want.Secure || got.Xdomain != want.Xdomain || got.Query["k"] != "v" || got.Headers["User-Agent"] != "Go-http-client/1.1" {
		t.Fatalf("handshake\n got %#v\nwant %#v", got, want)
	}
}

func testFetchLocal(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{})
	sockets := fetch(t, nodes[0].io.Local())
	if len(sockets) != 1 || string(sockets[0].Id()) != clients[0].Id() {
		t.Fatalf("fetched %d", len(sockets))
	}
}

// A subscriber that never answers (here: a bare connection subscribed to the public channel) must not hold
// fetchSockets beyond the operator's timeout (300 ms here, with a RequestsTimeout of a minute), and the answers
// received are still returned.
func testFetchTimeout(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{adapter: func(o *Options) { o.RequestsTimeout = time.Minute }})
	rc := cfg.newClient(t)
	n := nodes[0].nsp(t, "/")
	var ps interface{ Close() error }
	if cfg.opts.StreamsOnly {
		ps = silentServer(t, rc, n)
	} else if cfg.opts.UseShardedPubSub {
		ps = rc.SSubscribe(t.Context(), n.publicChannel)
	} else {
		ps = rc.Subscribe(t.Context(), n.publicChannel)
	}
	defer ps.Close()
	waitFor(t, "silent subscriber", func() bool { return n.ServerCount() == 4 })
	var got []*socket.RemoteSocket
	var err error
	done := make(chan struct{})
	go nodes[0].io.Timeout(300 * time.Millisecond).FetchSockets()(func(s []*socket.RemoteSocket, e error) {
		got, err = s, e
		close(done)
	})
	select {
	case <-done:
	case <-time.After(30 * time.Second): // half the RequestsTimeout: only the operator's timeout ends it sooner
		t.Fatal("fetchSockets still waiting: the operator's timeout was not honoured")
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if len(got) != len(clients) {
		t.Fatalf("partial result has %d sockets, want %d", len(got), len(clients))
	}
}

// silentServer makes a streams-only "server" that only heartbeats (with a fake uid) on n's stream, until closed.
func silentServer(t *testing.T, rc redis.UniversalClient, n *nspAdapter) *silent {
	t.Helper()
	s := &silent{t: t, rc: rc, n: n, uid: "silent" + randomID(), stop: make(chan struct{}), done: make(chan struct{})}
	values := s.entry(wire.Heartbeat)
	go func() {
		defer close(s.done)
		for {
			_ = rc.XAdd(t.Context(), &redis.XAddArgs{Stream: n.stream, Values: values}).Err()
			select {
			case <-s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type silent struct {
	t          *testing.T
	rc         redis.UniversalClient
	n          *nspAdapter
	uid        string
	once       sync.Once
	stop, done chan struct{}
}

// entry returns the fields of a message of type typ from the silent server, without data.
func (s *silent) entry(typ wire.MessageType) []any {
	fields, err := (&wire.Message{Type: typ, UID: s.uid, Nsp: s.n.name}).StreamFields(false)
	if err != nil {
		s.t.Fatal(err)
	}
	values := make([]any, len(fields))
	for i, f := range fields {
		values[i] = f
	}
	return values
}

// Close stops the heartbeats: the server goes silent.
func (s *silent) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// leave stops the heartbeats and writes ADAPTER_CLOSE, as a server that closes does.
func (s *silent) leave() {
	_ = s.Close()
	if err := s.rc.XAdd(s.t.Context(), &redis.XAddArgs{Stream: s.n.stream, Values: s.entry(wire.AdapterClose)}).Err(); err != nil {
		s.t.Fatal(err)
	}
}

func testRemoteSocketOps(t *testing.T, cfg config) {
	nodes, clients := threeClients(t, cfg, clusterOpts{}, "hello")
	remote := fetch(t, nodes[0].io.In(socket.Room(clients[2].Id())))[0]
	remote.Join("r1")
	waitFor(t, "remote join", func() bool { return rooms(clients[2].server)["r1"] })
	remote.Leave("r1")
	waitFor(t, "remote leave", func() bool { return !rooms(clients[2].server)["r1"] })
	_ = remote.Emit("hello", "there")
	if args := clients[2].expect(t, "hello"); args[0] != "there" {
		t.Fatalf("got %v", args)
	}
	remote.Disconnect(true)
	clients[2].expect(t, "disconnect")
}

// serverSideEvents records the server-side events each node receives.
func serverSideEvents(nodes []*node, event string, reply func(i int) any) []chan []any {
	chans := make([]chan []any, len(nodes))
	for i, n := range nodes {
		chans[i] = make(chan []any, 16)
		n.io.On(event, func(args ...any) {
			if len(args) > 0 {
				if ack, ok := args[len(args)-1].(socket.Ack); ok {
					if v := reply(i); v != nil {
						ack([]any{v}, nil)
					}
					args = args[:len(args)-1]
				}
			}
			chans[i] <- args
		})
	}
	return chans
}

func testServerSideEmit(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{})
	got := serverSideEvents(nodes, "hello", func(int) any { return nil })
	if err := nodes[0].io.ServerSideEmit("hello", "world", 1, "2"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		select {
		case args := <-got[i]:
			if len(args) != 3 || args[0] != "world" || toFloat(args[1]) != 1 || args[2] != "2" {
				t.Fatalf("node %d got %#v", i, args)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("node %d got nothing", i)
		}
	}
	// The sender is not an emitter of its own event: a second emit from node 1 reaches node 0 first in line.
	_ = nodes[1].io.ServerSideEmit("hello", "again", 2, "3")
	select {
	case args := <-got[0]:
		if args[0] != "again" {
			t.Fatalf("node 0 received its own event: %v", args)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node 0 got nothing")
	}
}

func testServerSideEmitAck(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{})
	serverSideEvents(nodes, "hello", func(i int) any { return []any{nil, 2, "3"}[i] })
	r := serverSideEmitWithAck(nodes[0].io, "hello")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.args) != 2 || !slices.ContainsFunc(r.args, func(v any) bool { return v == "3" }) ||
		!slices.ContainsFunc(r.args, func(v any) bool { return toFloat(v) == 2 }) {
		t.Fatalf("responses %#v", r.args)
	}
}

func serverSideEmitWithAck(io *socket.Server, event string) ackResult {
	ch := make(chan ackResult, 1)
	if err := io.ServerSideEmitWithAck(event)(func(res []any, err error) { ch <- ackResult{res, err} }); err != nil {
		return ackResult{err: err}
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		return ackResult{err: errors.New("ack never called")}
	}
}

func testServerSideEmitTimeout(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{adapter: func(o *Options) { o.RequestsTimeout = 500 * time.Millisecond }})
	serverSideEvents(nodes, "hello", func(i int) any { return []any{nil, 2, nil}[i] })
	r := serverSideEmitWithAck(nodes[0].io, "hello")
	if !errors.Is(r.err, ErrTimeout) || r.err.Error() != "redisstreams: timeout reached: only 1 responses received out of 2" {
		t.Fatalf("err = %v", r.err)
	}
	var te *TimeoutError
	if !errors.As(r.err, &te) || te.Got != 1 || te.Want != 2 {
		t.Fatalf("err = %#v, want a *TimeoutError{Got: 1, Want: 2}", r.err)
	}
	if len(r.args) != 1 || toFloat(r.args[0]) != 2 {
		t.Fatalf("responses %#v", r.args)
	}
}

// Node has to skip this case (a closed adapter stays subscribed); here the closed server unsubscribes, so the
// others stop waiting for it at once. RequestsTimeout is a minute: serverSideEmitWithAck gives up after 15 s, so a
// request that waited for the closed server fails.
func testClosedServerLeaves(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{adapter: func(o *Options) { o.RequestsTimeout = time.Minute }})
	serverSideEvents(nodes, "hello", func(i int) any { return i })
	nodes[2].io.Of("/", nil).Adapter().Close()
	n := nodes[0].nsp(t, "/")
	if cfg.opts.StreamsOnly {
		// ADAPTER_CLOSE is read asynchronously; a request sent before stops waiting for the server once it is.
		r := serverSideEmitWithAck(nodes[0].io, "hello")
		if r.err != nil || len(r.args) < 1 || !slices.ContainsFunc(r.args, func(v any) bool { return toFloat(v) == 1 }) {
			t.Fatalf("got %v, %v", r.args, r.err)
		}
		waitFor(t, "closed server removed", func() bool { return n.ServerCount() == 2 })
	}
	if c := n.ServerCount(); c != 2 {
		t.Fatalf("server count %d after close, want 2", c)
	}
	r := serverSideEmitWithAck(nodes[0].io, "hello")
	if r.err != nil || len(r.args) != 1 || toFloat(r.args[0]) != 1 {
		t.Fatalf("got %v, %v", r.args, r.err)
	}
}

func testServerCount(t *testing.T, cfg config) {
	nodes := startCluster(t, cfg, clusterOpts{})
	for i, n := range nodes {
		if c := n.nsp(t, "/").ServerCount(); c != 3 {
			t.Fatalf("node %d counts %d servers", i, c)
		}
	}
}

// asBytes returns the bytes of a binary value as the Go client and server decode it (nil if not binary).
func asBytes(v any) []byte { return siotest.Bytes(v) }

// toFloat returns a decoded number as a float64 (-1 if not a number).
func toFloat(v any) float64 { return siotest.Number(v) }

func sortedFloats(v []any) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = toFloat(x)
	}
	sort.Float64s(out)
	return out
}
