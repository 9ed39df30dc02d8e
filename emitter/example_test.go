package emitter_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/internal/siotest"
)

// A worker that is not a Socket.IO server notifies the clients of a cluster. The options must name the same
// streams as the servers' (here the defaults). The example is compiled, not run: it needs a Redis and servers.
func Example() {
	rc := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rc.Close()

	io, err := emitter.New(goredisbackend.New(rc), emitter.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// To every client of the main namespace: "time" with one argument.
	if _, err := io.Emit("time", time.Now().UnixMilli()); err != nil {
		log.Printf("emit: %v", err)
	}

	// Operators return new values: a configured one can be kept and shared between goroutines.
	admins := io.Of("/admin").To("room-1", "room-2").Except("muted")
	if _, err := admins.Emit("report", map[string]any{"ok": true}, []byte{0xca, 0xfe}); err != nil {
		log.Printf("emit: %v", err)
	}

	// With a context: bounded by it instead of Options.RequestsTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := io.In("user:42").SocketsJoinContext(ctx, "premium"); err != nil {
		log.Printf("join: %v", err)
	}
	if _, err := io.In("banned").DisconnectSockets(true); err != nil {
		log.Printf("disconnect: %v", err)
	}
	if _, err := io.ServerSideEmit("config-changed", "v2"); err != nil {
		log.Printf("serverSideEmit: %v", err)
	}
}

// The emitter reaches the clients of a Socket.IO server that uses the adapter: here one server and one client in
// the same program, so that the example can show what arrives. The example runs in the test suite against a real
// redis-server.
func Example_delivered() {
	addr := redisAddrForExamples() // your Redis, e.g. "localhost:6379"

	// A Socket.IO server of the cluster, with one client.
	srvRedis := redis.NewClient(&redis.Options{Addr: addr})
	defer srvRedis.Close()
	adapter, err := redisstreams.New(context.Background(), goredisbackend.New(srvRedis), redisstreams.Options{})
	if err != nil {
		log.Fatal(err)
	}
	opts := socket.DefaultServerOptions()
	opts.SetAdapter(adapter)
	io := socket.NewServer(nil, opts)
	hs := httptest.NewServer(io.ServeHandler(nil))
	defer func() {
		closed := make(chan struct{})
		io.Close(func(error) { close(closed) })
		<-closed
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = adapter.Close(ctx)
	}()
	got := make(chan string, 1)
	cli, err := siotest.Dial(hs.URL, nil, 10*time.Second, 3, func(s *client.Socket) {
		s.On("news", func(args ...any) { got <- fmt.Sprint("client got news: ", args[0]) })
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Disconnect()

	// The worker: an emitter on the same Redis, with the same naming options as the servers (the defaults).
	wRedis := redis.NewClient(&redis.Options{Addr: addr})
	defer wRedis.Close()
	em, err := emitter.New(goredisbackend.New(wRedis), emitter.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := em.Emit("news", "hello from a worker"); err != nil {
		log.Fatal(err)
	}
	select {
	case s := <-got:
		fmt.Println(s)
	case <-time.After(20 * time.Second):
		fmt.Println("timed out")
	}
	// Output: client got news: hello from a worker
}

// redisAddrForExamples is the shared standalone redis-server of the package's tests.
func redisAddrForExamples() string { return shared.Standalone.Addr() }
