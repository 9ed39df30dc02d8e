package redisstreams_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams"
)

// These examples run in the test suite against real redis-server processes. In your program, the address comes
// from your configuration instead of RedisAddrForExamples / ClusterAddrsForExamples, and each server is usually a
// process of its own.

// newServer is what each of your processes does at start-up: a Socket.IO server whose adapter is a
// redisstreams.Adapter. stop closes the server first, then the adapter.
func newServer(adapter *redisstreams.Adapter, opts *socket.ServerOptions) (io *socket.Server, stop func()) {
	if opts == nil {
		opts = socket.DefaultServerOptions()
	}
	opts.SetAdapter(adapter)
	io = socket.NewServer(nil, opts)
	return io, func() {
		closed := make(chan struct{})
		io.Close(func(error) { close(closed) })
		<-closed
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := adapter.Close(ctx); err != nil {
			log.Print(err)
		}
	}
}

// wait prints what arrives on ch, n times, or gives up after 20 seconds.
func wait(ch <-chan string, n int) {
	for range n {
		select {
		case s := <-ch:
			fmt.Println(s)
		case <-time.After(20 * time.Second):
			fmt.Println("timed out")
			return
		}
	}
}

// Two servers sharing one Redis through go-redis: an event emitted on server A reaches server B.
func Example() {
	ctx := context.Background()
	addr := redisstreams.RedisAddrForExamples() // e.g. "127.0.0.1:6379"

	rdbA := redis.NewClient(&redis.Options{Addr: addr})
	defer rdbA.Close()
	adapterA, err := redisstreams.New(ctx, goredisbackend.New(rdbA), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ioA, stopA := newServer(adapterA, nil)
	defer stopA()

	rdbB := redis.NewClient(&redis.Options{Addr: addr})
	defer rdbB.Close()
	adapterB, err := redisstreams.New(ctx, goredisbackend.New(rdbB), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ioB, stopB := newServer(adapterB, nil)
	defer stopB()

	got := make(chan string, 1)
	ioB.On("hello", func(args ...any) { got <- fmt.Sprint("server B got: ", args[0]) })
	if err := ioA.ServerSideEmit("hello", "world"); err != nil {
		log.Fatal(err)
	}
	wait(got, 1)
	// Output: server B got: world
}

// The same with rueidis. Servers using go-redis and servers using rueidis can share a cluster.
func Example_rueidis() {
	ctx := context.Background()
	addr := redisstreams.RedisAddrForExamples()

	rcA, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	defer rcA.Close()
	adapterA, err := redisstreams.New(ctx, rueidisbackend.New(rcA), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ioA, stopA := newServer(adapterA, nil)
	defer stopA()

	rcB, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	defer rcB.Close()
	adapterB, err := redisstreams.New(ctx, rueidisbackend.New(rcB), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ioB, stopB := newServer(adapterB, nil)
	defer stopB()

	// Server B answers; server A gets one reply per other server.
	ioB.On("ping", func(args ...any) {
		ack := args[len(args)-1].(socket.Ack)
		ack([]any{"pong from B"}, nil)
	})
	replies := make(chan string, 1)
	_ = ioA.ServerSideEmitWithAck("ping")(func(res []any, err error) {
		replies <- fmt.Sprint("replies: ", res, " error: ", err)
	})
	wait(replies, 1)
	// Output: replies: [pong from B] error: <nil>
}

// On a Redis Cluster, give the adapter a *redis.ClusterClient (or a rueidis client with the cluster's
// addresses). The stream and each namespace's channels hash to one slot.
func ExampleNew_cluster() {
	ctx := context.Background()
	seeds := redisstreams.ClusterAddrsForExamples() // e.g. []string{"10.0.0.1:6379", "10.0.0.2:6379"}

	var servers []*socket.Server
	for range 2 {
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
		defer rdb.Close()
		adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{
			UseShardedPubSub: true, // optional: SPUBLISH/SSUBSCRIBE (Redis 7)
		})
		if err != nil {
			log.Fatal(err)
		}
		io, stop := newServer(adapter, nil)
		defer stop()
		servers = append(servers, io)
	}

	fmt.Println("servers in the cluster:", servers[0].Of("/", nil).Adapter().ServerCount())
	got := make(chan string, 1)
	servers[1].On("hello", func(args ...any) { got <- fmt.Sprint("server 2 got: ", args[0]) })
	_ = servers[0].ServerSideEmit("hello", "from server 1")
	wait(got, 1)
	// Output:
	// servers in the cluster: 2
	// server 2 got: from server 1
}

// Connection state recovery: a client that loses its connection gets, when it comes back, the packets emitted
// meanwhile by any server of the cluster (read back from the stream).
func Example_connectionStateRecovery() {
	ctx := context.Background()
	addr := redisstreams.RedisAddrForExamples()
	withRecovery := func() *socket.ServerOptions {
		opts := socket.DefaultServerOptions()
		opts.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery())
		return opts
	}

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	adapterA, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ioA, stopA := newServer(adapterA, withRecovery())
	defer stopA()
	httpA := httptest.NewServer(ioA.ServeHandler(nil)) // your HTTP server
	defer httpA.Close()
	adapterB, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{}) // one client can serve several adapters
	if err != nil {
		log.Fatal(err)
	}
	ioB, stopB := newServer(adapterB, withRecovery())
	defer stopB()

	gone := make(chan string, 1)
	ioA.On("connection", func(args ...any) {
		args[0].(*socket.Socket).On("disconnect", func(...any) {
			select {
			case gone <- "server A: client gone":
			default:
			}
		})
	})

	// A client of server A (github.com/zishang520/socket.io/clients/socket/v3; a browser's socket.io-client
	// recovers the same way).
	events := make(chan string, 8)
	opts := client.DefaultOptions()
	opts.SetTransports(types.NewSet(client.WebSocket))
	opts.SetReconnectionDelay(100)
	opts.SetTimeout(20 * time.Second) // a connection attempt that gets no handshake is given up (and retried) after 20 s
	opts.SetAutoConnect(false)
	c, err := client.Connect(httpA.URL, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()
	c.On("connect", func(...any) { events <- fmt.Sprint("connected, recovered: ", c.Recovered()) })
	c.On("news", func(args ...any) { events <- fmt.Sprint("news: ", args[0]) })
	opened := make(chan error, 1)
	c.Io().Open(func(err error) { opened <- err }) // open the manager first, then connect the socket
	if err := <-opened; err != nil {
		log.Fatal(err)
	}
	c.Connect()

	wait(events, 1)
	ioA.Emit("news", "hello")
	wait(events, 1)

	c.Io().Engine().Close() // the network drops; the client will reconnect by itself
	wait(gone, 1)
	ioB.Emit("news", "sent by B while you were away")
	wait(events, 2)
	// Output:
	// connected, recovered: false
	// news: hello
	// server A: client gone
	// news: sent by B while you were away
	// connected, recovered: true
}
