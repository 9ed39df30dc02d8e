package emitter_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/emitter"
)

// A worker that is not a Socket.IO server notifies the clients of a cluster. The options must name the same
// streams as the servers' (here the defaults). The example is compiled, not run: it needs a Redis and servers.
func Example() {
	rc := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rc.Close()

	io, err := emitter.New(rc, emitter.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// To every client of the main namespace: "time" with one argument.
	if err := io.Emit("time", time.Now().UnixMilli()); err != nil {
		log.Printf("emit: %v", err)
	}

	// Operators return new values: a configured one can be kept and shared between goroutines.
	admins := io.Of("/admin").To("room-1", "room-2").Except("muted")
	if err := admins.Emit("report", map[string]any{"ok": true}, []byte{0xca, 0xfe}); err != nil {
		log.Printf("emit: %v", err)
	}

	// With a context: bounded by it instead of Options.RequestsTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := io.In("user:42").SocketsJoinContext(ctx, "premium"); err != nil {
		log.Printf("join: %v", err)
	}
	if err := io.In("banned").DisconnectSockets(true); err != nil {
		log.Printf("disconnect: %v", err)
	}
	if err := io.ServerSideEmit("config-changed", "v2"); err != nil {
		log.Printf("serverSideEmit: %v", err)
	}
}
