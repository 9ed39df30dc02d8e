// Command quickstart is a Socket.IO chat server whose messages reach the clients of every server sharing its Redis.
package main

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/wstransport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// ContextTimeoutEnabled: a Redis that stops answering is noticed within RequestsTimeout (docs/delivery.md).
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true}) // or NewClusterClient
	defer rdb.Close()
	adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{Logger: slog.Default()})
	if err != nil {
		log.Fatal(err) // Redis refused the adapter (credentials, ACL, TLS); an unreachable Redis is not an error
	}

	opts := socket.DefaultServerOptions()
	opts.SetAdapter(adapter)
	opts.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery()) // optional
	wstransport.Install(opts, wstransport.Options{})                         // optional: websocket writes cheaper in CPU
	io := socket.NewServer(nil, opts)

	io.On("connection", func(args ...any) {
		client := args[0].(*socket.Socket)
		client.On("chat", func(msg ...any) {
			io.Emit("chat", msg...) // to every client of every server
		})
	})

	http.Handle("/socket.io/", io.ServeHandler(nil))
	srv := &http.Server{Addr: ":3000"}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()

	// On shutdown: close the server first, then the adapter. The adapter never closes rdb.
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	io.Close(nil)
	_ = srv.Shutdown(shutdown)
	if err := adapter.Close(shutdown); err != nil {
		log.Print(err)
	}
}
