package redisstreams

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/siotest"
	"github.com/socketio-go/redisstreams/wstransport"
)

// Shared Redis processes, started once for the package by TestMain; standalone and cluster name them for the
// package's tests.
var (
	shared     redistest.Shared
	standalone *redistest.Server
	cluster    *redistest.Cluster
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(helperAddrEnv) != "" {
		os.Exit(m.Run()) // a helper process (TestHelperStreamsOnlyServer): no Redis of its own
	}
	os.Exit(shared.Main(m, redistest.MainOptions{Started: func(err error) {
		standalone, cluster = shared.Standalone, shared.Cluster
		if err != nil && !redistest.Strict() {
			// The runnable examples need Redis and, unlike tests, cannot skip themselves.
			_ = flag.Set("test.skip", "^Example")
		}
	}}))
}

// requireRedis skips (or, in CI, fails) a test when the shared Redis processes could not be started.
func requireRedis(t testing.TB) {
	t.Helper()
	shared.Require(t)
}

// config is one Redis set-up the conformance suite runs against.
type config struct {
	name    string
	family  string // client library of the adapters: familyGoRedis (also when empty) or familyRueidis
	cluster bool
	opts    Options
	// wsTransport: the servers use this module's websocket transport (wstransport) instead of the engine's.
	wsTransport bool
}

// Client families.
const (
	familyGoRedis = "go-redis"
	familyRueidis = "rueidis"
)

// Other tests refer to the first three entries by index: add new ones at the end.
var configs = []config{
	{name: "standalone"},
	{name: "cluster", cluster: true},
	{name: "cluster-streamcount5", cluster: true, opts: Options{StreamCount: 5}},
	{name: "cluster-sharded", cluster: true, opts: Options{UseShardedPubSub: true}},
	{name: "rueidis-standalone", family: familyRueidis},
	{name: "rueidis-cluster", family: familyRueidis, cluster: true},
	{name: "rueidis-cluster-sharded", family: familyRueidis, cluster: true, opts: Options{UseShardedPubSub: true}},
	{name: "standalone-streamsonly", opts: Options{StreamsOnly: true}},
	{name: "cluster-streamsonly", cluster: true, opts: Options{StreamsOnly: true}},
	{name: "rueidis-standalone-streamsonly", family: familyRueidis, opts: Options{StreamsOnly: true}},
	{name: "standalone-wstransport", wsTransport: true},
}

// configsNamed returns the configurations with these names, in this order.
func configsNamed(names ...string) []config {
	var out []config
	for _, name := range names {
		i := slices.IndexFunc(configs, func(c config) bool { return c.name == name })
		if i < 0 {
			panic("no configuration " + name)
		}
		out = append(out, configs[i])
	}
	return out
}

func (c config) newClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	requireRedis(t)
	var rc redis.UniversalClient
	if c.cluster {
		rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs()})
	} else {
		rc = redis.NewClient(&redis.Options{Addr: standalone.Addr()})
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// newAdapter returns an adapter on a new client of the configuration's family, closed when the test ends (after
// the adapter). newClient, a go-redis client whatever the family, remains for tests that work on Redis directly.
func (c config) newAdapter(t testing.TB, opts Options) (*Adapter, error) {
	t.Helper()
	requireRedis(t)
	addrs := []string{standalone.Addr()}
	if c.cluster {
		addrs = cluster.Addrs()
	}
	a, _, err := c.newAdapterOn(t, addrs, opts)
	return a, err
}

// newAdapterOn builds an adapter of the config's client family on the given Redis, with a client closed at the
// end of the test, and returns a ping of that client (to check the adapter did not close it).
func (c config) newAdapterOn(t testing.TB, addrs []string, opts Options) (*Adapter, func(context.Context) error, error) {
	t.Helper()
	switch c.family {
	case "", familyGoRedis:
		var rc redis.UniversalClient
		if c.cluster {
			rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		} else {
			rc = redis.NewClient(&redis.Options{Addr: addrs[0]})
		}
		t.Cleanup(func() { _ = rc.Close() })
		a, err := New(t.Context(), goredisbackend.New(rc), opts)
		return a, func(ctx context.Context) error { return rc.Ping(ctx).Err() }, err
	case familyRueidis:
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true, ForceSingleClient: !c.cluster})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rc.Close)
		a, err := New(t.Context(), rueidisbackend.New(rc), opts)
		return a, func(ctx context.Context) error { return rc.Do(ctx, rc.B().Ping().Build()).Error() }, err
	}
	t.Fatalf("unknown client family %q", c.family)
	return nil, nil, nil
}

// node is one Socket.IO server with its adapter, listening on a real loopback port.
type node struct {
	io      *socket.Server
	adapter *Adapter
	ws      *wstransport.Transport // nil: the engine's websocket transport
	url     string

	mu          sync.Mutex
	sockets     map[string][]*socket.Socket // server-side sockets by namespace
	disconnects []string                    // server-side disconnect reasons, for diagnostics
	conn        chan *socket.Socket
}

type clusterOpts struct {
	nodes            int
	recovery         bool          // connection state recovery on the servers
	recoveryDuration time.Duration // its MaxDisconnectionDuration; 0: the default
	namespaces       []string
	adapter          func(*Options)
	mixed            []config // when set, node i gets the client of mixed[i%len(mixed)] (the options stay cfg's)

	server      func(*socket.ServerOptions) // more server options, if set
	wsTransport bool                        // the servers use this module's websocket transport
}

// startCluster starts n servers sharing one Redis, each with its own client and adapter. Every test gets its own
// stream and channel names, so tests never see each other's traffic.
func startCluster(t *testing.T, cfg config, co clusterOpts) []*node {
	t.Helper()
	return startClusterWith(t, cfg, co, nil)
}

// startClusterWith is startCluster with adapters on clients from newClient (go-redis), or when it is nil, from
// the configuration (cfg.newAdapter).
func startClusterWith(t *testing.T, cfg config, co clusterOpts, newClient func(testing.TB) redis.UniversalClient) []*node {
	t.Helper()
	if co.nodes == 0 {
		co.nodes = 3
	}
	co.wsTransport = co.wsTransport || cfg.wsTransport
	prefix := "t" + randomID()
	adapters := make([]*Adapter, co.nodes)
	for i := range adapters {
		opts := cfg.opts
		opts.StreamName = prefix
		opts.ChannelPrefix = prefix
		opts.SessionKeyPrefix = prefix + ":session:"
		opts.ReadCount = 1
		opts.BlockTime = time.Second
		opts.RequestsTimeout = 2 * time.Second
		opts.Logger = testLogger(t)
		if co.adapter != nil {
			co.adapter(&opts)
		}
		var a *Adapter
		var err error
		switch {
		case newClient != nil:
			a, err = New(t.Context(), goredisbackend.New(newClient(t)), opts)
		case len(co.mixed) > 0:
			a, err = co.mixed[i%len(co.mixed)].newAdapter(t, opts)
		default:
			a, err = cfg.newAdapter(t, opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		adapters[i] = a
	}
	return startClusterWithAdapters(t, adapters, co)
}

// startClusterWithAdapters starts one server per adapter, on real loopback ports. Cleanup closes the servers,
// then the adapters.
func startClusterWithAdapters(t *testing.T, adapters []*Adapter, cos ...clusterOpts) []*node {
	t.Helper()
	var co clusterOpts
	if len(cos) > 0 {
		co = cos[0]
	}
	nodes := make([]*node, len(adapters))
	for i, a := range adapters {
		so := socket.DefaultServerOptions()
		so.SetAdapter(a)
		if co.server != nil {
			co.server(so)
		}
		var ws *wstransport.Transport
		if co.wsTransport {
			ws = wstransport.Install(so, wstransport.Options{Logger: testLogger(t)})
		}
		if co.recovery {
			csr := socket.DefaultConnectionStateRecovery()
			if co.recoveryDuration != 0 {
				csr.SetMaxDisconnectionDuration(co.recoveryDuration.Milliseconds())
			}
			so.SetConnectionStateRecovery(csr)
		}
		n := &node{adapter: a, ws: ws, sockets: map[string][]*socket.Socket{}, conn: make(chan *socket.Socket, 64)}
		n.io = socket.NewServer(nil, so)
		for _, name := range append([]string{"/"}, co.namespaces...) {
			n.io.Of(name, nil).On("connection", func(args ...any) {
				s := args[0].(*socket.Socket)
				_ = s.On("disconnect", func(args ...any) {
					n.mu.Lock()
					n.disconnects = append(n.disconnects, fmt.Sprintf("%s: %v", s.Id(), args))
					n.mu.Unlock()
				})
				n.mu.Lock()
				n.sockets[name] = append(n.sockets[name], s)
				n.mu.Unlock()
				select {
				case n.conn <- s:
				default:
				}
			})
		}
		srv := httptest.NewServer(n.io.ServeHandler(nil))
		n.url = srv.URL
		t.Cleanup(func() {
			done := make(chan struct{})
			n.io.Close(func(error) { close(done) })
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("server close did not finish within 10s")
			}
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Errorf("adapter close: %v", err)
			}
		})
		nodes[i] = n
	}
	awaitMembership(t, nodes, co.namespaces)
	return nodes
}

// awaitMembership waits, in streams-only mode, until every server has heard from every other one (heartbeats are
// asynchronous, where a PUB/SUB subscription is confirmed before the namespace's Init returns).
func awaitMembership(t testing.TB, nodes []*node, namespaces []string) {
	t.Helper()
	for _, n := range nodes {
		if !n.adapter.opts.StreamsOnly {
			return
		}
	}
	for _, n := range nodes {
		for _, name := range append([]string{"/"}, namespaces...) {
			waitFor(t, "streams-only membership of "+name, func() bool {
				return n.nsp(t, name).ServerCount() == int64(len(nodes))
			})
		}
	}
}

func (n *node) socketsOf(nsp string) []*socket.Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*socket.Socket(nil), n.sockets[nsp]...)
}

func (n *node) nsp(t testing.TB, name string) *nspAdapter {
	t.Helper()
	return n.io.Of(name, nil).Adapter().(*nspAdapter)
}

// testClient is a real Socket.IO client with a record of the events it received.
type testClient struct {
	*client.Socket
	events chan event
	early  []event        // events received before "connect"
	server *socket.Socket // its socket on the server, once connected
}

// next returns the next event (early ones first), or false after timeout.
func (c *testClient) next(timeout time.Duration) (event, bool) {
	if len(c.early) > 0 {
		e := c.early[0]
		c.early = c.early[1:]
		return e, true
	}
	select {
	case e := <-c.events:
		return e, true
	case <-time.After(timeout):
		return event{}, false
	}
}

type event struct {
	name string
	args []any
}

type clientOpts struct {
	nsp   string
	auth  map[string]any
	query map[string]string
}

// connect opens a websocket client to n and waits until the server has its socket. A handshake that stalls is
// retried with a fresh client (siotest.Dial), so that a flaw of the client library cannot pass for one of the
// adapter.
func (n *node) connect(t *testing.T, co clientOpts, events ...string) *testClient {
	t.Helper()
	c := dialTestClient(t, n.url, co, events...)
	var err error
	if c.server, err = siotest.ServerSocket(n.conn, c.Id(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n.ws != nil && n.ws.Stats().Connections == 0 {
		t.Fatal("a client connected over websocket, and the server's wstransport has no connection")
	}
	return c
}

// dialTestClient opens a websocket client to the server at url (see connect), recording events.
func dialTestClient(t *testing.T, url string, co clientOpts, events ...string) *testClient {
	t.Helper()
	if co.nsp == "" {
		co.nsp = "/"
	}
	var c *testClient
	s, err := siotest.Dial(siotest.WithQuery(url+co.nsp, co.query), co.auth, 3*time.Second, 3, func(s *client.Socket) {
		tc := &testClient{Socket: s, events: make(chan event, 1024)}
		// A recovered session's missed packets are sent before the CONNECT packet, and this client passes them on
		// before "connect": they go to early (for next), without blocking, so that any number of them cannot
		// hold up the handshake.
		var mu sync.Mutex
		connected := false
		for _, name := range append([]string{"connect", "disconnect"}, events...) {
			_ = s.On(types.EventName(name), func(args ...any) {
				mu.Lock()
				if !connected {
					if name == "connect" {
						connected = true
					} else {
						tc.early = append(tc.early, event{name, args})
					}
					mu.Unlock()
					return
				}
				mu.Unlock()
				tc.events <- event{name, args}
			})
		}
		c = tc
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Disconnect() })
	return c
}

// expect waits for the next event and fails unless it has that name.
func (c *testClient) expect(t testing.TB, name string) []any {
	t.Helper()
	e, ok := c.next(10 * time.Second)
	if !ok {
		t.Fatalf("client %s: no %q event within 10s", c.Id(), name)
	}
	if e.name != name {
		t.Fatalf("client %s: got event %q %v, want %q", c.Id(), e.name, e.args, name)
	}
	return e.args
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	siotest.WaitFor(t, what, cond)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func rooms(s *socket.Socket) map[string]bool {
	out := map[string]bool{}
	for _, r := range s.Rooms().Keys() {
		out[string(r)] = true
	}
	return out
}

func fmtRooms(s *socket.Socket) string { return fmt.Sprint(rooms(s)) }

func typesEvent(name string) types.EventName { return types.EventName(name) }
