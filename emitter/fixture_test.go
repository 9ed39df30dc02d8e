package emitter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"testing"
	"time"

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
		e, err := emitter.New(s.goRedis(t), opts)
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
	e, err := emitter.NewRueidis(rc, opts)
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
		a, err := redisstreams.New(s.goRedis(t), redisstreams.Options{
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
		hs := httptest.NewServer(srv.io.ServeHandler(nil))
		srv.url = hs.URL
		t.Cleanup(func() {
			done := make(chan struct{})
			srv.io.Close(func(error) { close(done) })
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("server close did not finish within 10s")
			}
			hs.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Errorf("adapter close: %v", err)
			}
		})
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
	for attempt := 1; attempt <= 3; attempt++ {
		s, err := siotest.NewClient(srv.url+nsp, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &testClient{Socket: s, events: make(chan event, 256)}
		for _, name := range append([]string{"connect", "disconnect"}, events...) {
			_ = s.On(types.EventName(name), func(args ...any) { c.events <- event{name, args} })
		}
		t.Cleanup(func() { s.Disconnect() })
		if err := siotest.Connect(s, 3*time.Second); err != nil {
			t.Logf("connect attempt %d: %v", attempt, err)
			continue
		}
		if e, ok := c.next(3 * time.Second); !ok || e.name != "connect" {
			t.Logf("connect attempt %d: got %v", attempt, e)
			s.Disconnect()
			continue
		}
		deadline := time.After(10 * time.Second)
		for c.server == nil {
			select {
			case ss := <-srv.conns:
				if string(ss.Id()) == s.Id() {
					c.server = ss
				} else {
					srv.conns <- ss
					time.Sleep(time.Millisecond)
				}
			case <-deadline:
				t.Fatalf("server never saw client %s", s.Id())
			}
		}
		return c
	}
	t.Fatalf("client could not connect to %s", srv.url)
	return nil
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
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
