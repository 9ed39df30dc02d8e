package redisstreamsprom_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/redisstreamsprom"
)

// The Metrics goes into the adapter's Options (it is the Observer), then its collector is registered once the
// adapter exists. The "server" label tells apart several adapters registered in one registry. Here one broadcast
// is sent, and the scrape shows it written to Redis.
func Example() {
	ctx := context.Background()
	m := redisstreamsprom.New(redisstreamsprom.Options{ConstLabels: prometheus.Labels{"server": "chat-1"}})
	rdb := redis.NewClient(&redis.Options{Addr: exampleRedis.Addr()}) // your Redis, e.g. "localhost:6379"
	defer rdb.Close()
	adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{Observer: m,
		StreamName: "example-metrics"})
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close(ctx)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector(adapter))

	opts := socket.DefaultServerOptions()
	opts.SetAdapter(adapter)
	io := socket.NewServer(nil, opts)
	defer io.Close(nil)

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io.ServeHandler(nil))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // in a program: http.ListenAndServe(":3000", mux)
	defer srv.Close()

	io.Emit("hello", "world")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if line := scrapeLine(srv.URL+"/metrics", "redisstreams_published_total"); line != "" {
			fmt.Println(line)
			return
		}
	}
	fmt.Println("no write published")
	// Output: redisstreams_published_total{server="chat-1"} 1
}

// scrapeLine returns the line of the metric, once it is not 0.
func scrapeLine(url, metric string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, metric+"{") && !strings.HasSuffix(line, " 0") {
			return line
		}
	}
	return ""
}

// exampleRedis is a redis-server for the examples (stopped by TestMain).
var exampleRedis redistest.Lazy
