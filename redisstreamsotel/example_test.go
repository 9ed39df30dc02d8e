package redisstreamsotel_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/redisstreamsotel"
)

// The Metrics is the adapter's Observer (timings), and observes the adapter's Stats once it exists. Here the
// MeterProvider has a manual reader; a program would give it an exporter (OTLP, Prometheus).
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)

	m, err := redisstreamsotel.New(redisstreamsotel.Options{MeterProvider: provider,
		Attributes: []attribute.KeyValue{attribute.String("server", "eu-1")}})
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: exampleRedis.Addr()}) // your Redis, e.g. "localhost:6379"
	defer rdb.Close()
	adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{Observer: m,
		StreamName: "example-otel"})
	if err != nil {
		log.Fatal(err)
	}
	defer adapter.Close(ctx)
	reg, err := m.Observe(adapter)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()

	opts := socket.DefaultServerOptions()
	opts.SetAdapter(adapter)
	io := socket.NewServer(nil, opts)
	defer io.Close(nil)
	io.Emit("hello", "world")

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			log.Fatal(err)
		}
		if n := counter(rm, "redisstreams.published"); n > 0 {
			fmt.Println("redisstreams.published:", n)
			return
		}
	}
	fmt.Println("no write published")
	// Output: redisstreams.published: 1
}

// counter returns the value of a counter in a collection.
func counter(rm metricdata.ResourceMetrics, name string) int64 {
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			if sum, ok := x.Data.(metricdata.Sum[int64]); ok && x.Name == name && len(sum.DataPoints) > 0 {
				return sum.DataPoints[0].Value
			}
		}
	}
	return 0
}

// exampleRedis is a redis-server for the examples (stopped by TestMain).
var exampleRedis redistest.Lazy

func TestMain(m *testing.M) {
	code := m.Run()
	exampleRedis.Close()
	os.Exit(code)
}
