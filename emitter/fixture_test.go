package emitter_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/siotest"
)

// shared is the standalone Redis and the cluster that the package's tests share.
var shared redistest.Shared

func TestMain(m *testing.M) { os.Exit(shared.Main(m, redistest.MainOptions{})) }

// setup is one Redis configuration: the emitter's client family, the topology and the layout.
type setup struct {
	name    string
	rueidis bool // the emitter's client family (the servers use go-redis)
	cluster bool
	opts    emitter.Options
}

func (s setup) addrs() []string {
	if s.cluster {
		return shared.Cluster.Addrs()
	}
	return []string{shared.Standalone.Addr()}
}

// goRedis returns a go-redis client on the setup's Redis, closed at the end of the test.
func (s setup) goRedis(t testing.TB) redis.UniversalClient {
	t.Helper()
	shared.Require(t)
	var rc redis.UniversalClient
	if s.cluster {
		rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.addrs()})
	} else {
		rc = redis.NewClient(&redis.Options{Addr: s.addrs()[0]})
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// newEmitter returns an emitter of the setup's client family with these options.
func (s setup) newEmitter(t testing.TB, opts emitter.Options) *emitter.Emitter {
	t.Helper()
	shared.Require(t)
	if !s.rueidis {
		e, err := emitter.New(goredisbackend.New(s.goRedis(t)), opts)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: s.addrs(), DisableCache: true, ForceSingleClient: !s.cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	e, err := emitter.New(rueidisbackend.New(rc), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// uniqueOptions gives each test its own stream, channel and session names.
func uniqueOptions(base emitter.Options) emitter.Options {
	p := "e" + randomID()
	base.StreamName = p
	base.ChannelPrefix = p
	return base
}

// server is one Socket.IO server with the redisstreams adapter, on a real loopback port.
type server struct {
	io      *socket.Server
	adapter *redisstreams.Adapter
	url     string
	conns   chan *socket.Socket
	sse     chan []any // serverSideEmit "sse" events received on "/"
}

// startServers starts n servers on the setup's Redis, with the emitter's naming options and connection state
// recovery on, hosting "/" and the extra namespaces.
func startServers(t *testing.T, s setup, opts emitter.Options, n int, namespaces ...string) []*server {
	t.Helper()
	out := make([]*server, n)
	for i := range out {
		a, err := redisstreams.New(t.Context(), goredisbackend.New(s.goRedis(t)), redisstreams.Options{
			StreamName: opts.StreamName, StreamCount: opts.StreamCount, ChannelPrefix: opts.ChannelPrefix,
			SessionKeyPrefix: opts.StreamName + ":session:", UseShardedPubSub: opts.UseShardedPubSub,
			StreamsOnly: opts.StreamsOnly, ReadCount: 10, BlockTime: time.Second,
			HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		so := socket.DefaultServerOptions()
		so.SetAdapter(a)
		so.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery())
		srv := &server{adapter: a, conns: make(chan *socket.Socket, 16), sse: make(chan []any, 16)}
		srv.io = socket.NewServer(nil, so)
		for _, name := range append([]string{"/"}, namespaces...) {
			srv.io.Of(name, nil).On("connection", func(args ...any) { srv.conns <- args[0].(*socket.Socket) })
		}
		srv.io.On("sse", func(args ...any) { srv.sse <- args })
		srv.url = siotest.Serve(t, srv.io, a.Close)
		out[i] = srv
	}
	return out
}

// testClient is a real Socket.IO client that records its events.
type testClient struct {
	*client.Socket
	server *socket.Socket
	events chan event
}

type event struct {
	name string
	args []any
}

// connect opens a websocket client on namespace nsp of srv and waits until the server has its socket.
func (srv *server) connect(t *testing.T, nsp string, events ...string) *testClient {
	t.Helper()
	var c *testClient
	s, err := siotest.Dial(srv.url+nsp, nil, 3*time.Second, 3, func(s *client.Socket) {
		tc := &testClient{Socket: s, events: make(chan event, 256)}
		for _, name := range append([]string{"disconnect"}, events...) {
			_ = s.On(types.EventName(name), func(args ...any) { tc.events <- event{name, args} })
		}
		c = tc
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Disconnect() })
	if c.server, err = siotest.ServerSocket(srv.conns, s.Id(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *testClient) next(timeout time.Duration) (event, bool) {
	select {
	case e := <-c.events:
		return e, true
	case <-time.After(timeout):
		return event{}, false
	}
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

func (c *testClient) inRoom(room string) bool { return c.server.Rooms().Has(socket.Room(room)) }

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	siotest.WaitFor(t, what, cond)
}
