package redisstreamsprom_test

import (
	"context"
	"log"
	"net/http"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/redisstreamsprom"
)

// The Metrics goes into the adapter's Options (it is the Observer), then its collector is registered once the
// adapter exists. The "server" label tells apart several adapters registered in one registry.
func Example() {
	m := redisstreamsprom.New(redisstreamsprom.Options{ConstLabels: prometheus.Labels{"server": "chat-1"}})
	rc := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	adapter, err := redisstreams.New(context.Background(), goredisbackend.New(rc), redisstreams.Options{Observer: m})
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector(adapter))

	opts := socket.DefaultServerOptions()
	opts.SetAdapter(adapter)
	io := socket.NewServer(nil, opts)

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io.ServeHandler(nil))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe(":3000", mux))
}
