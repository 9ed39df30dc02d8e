package redisstreamsotel_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/redisstreamsotel"
)

type server struct {
	name    string
	io      *socket.Server
	adapter *redisstreams.Adapter
}

// TestCollect runs two Socket.IO servers on a real Redis, both measured by one MeterProvider (told apart by a
// server attribute), sends broadcasts, a fetchSockets and a serverSideEmit with ack from a, and checks what a
// manual reader collects: every Stats counter with its value, the server counts, and histograms that match the
// traffic.
func TestCollect(t *testing.T) {
	rs := redistest.StartServerT(t, redistest.ServerOptions{})
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	prefix := fmt.Sprintf("otel-%d", time.Now().UnixNano())

	var servers []*server
	for _, name := range []string{"a", "b"} {
		m, err := redisstreamsotel.New(redisstreamsotel.Options{MeterProvider: provider, Attributes: []attribute.KeyValue{attribute.String("server", name)}})
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
		t.Cleanup(func() { _ = rc.Close() })
		a, err := redisstreams.New(t.Context(), goredisbackend.New(rc), redisstreams.Options{StreamName: prefix, ChannelPrefix: prefix, Observer: m})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := m.Observe(a)
		if err != nil {
			t.Fatal(err)
		}
		so := socket.DefaultServerOptions()
		so.SetAdapter(a)
		io := socket.NewServer(nil, so)
		io.On("answer", func(args ...any) {
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{name}, nil)
			}
		})
		t.Cleanup(func() {
			done := make(chan struct{})
			io.Close(func(error) { close(done) })
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Errorf("adapter close: %v", err)
			}
			_ = reg.Unregister()
		})
		servers = append(servers, &server{name: name, io: io, adapter: a})
	}
	a := servers[0]

	const broadcasts = 4
	for i := range broadcasts {
		a.io.Emit("news", i)
	}
	done := make(chan error, 1)
	a.io.FetchSockets()(func(_ []*socket.RemoteSocket, err error) { done <- err })
	wait(t, done)
	if err := a.io.ServerSideEmitWithAck("answer")(func(res []any, err error) {
		if err == nil && len(res) != 1 {
			err = fmt.Errorf("serverSideEmit: %d responses", len(res))
		}
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	wait(t, done)

	// b reads a's broadcasts asynchronously; then take a collection during which no counter moved.
	var rm metricdata.ResourceMetrics
	stats := make([]redisstreams.Stats, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, s := range servers {
			stats[i] = s.adapter.Stats()
		}
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		stable := true
		for i, s := range servers {
			stable = stable && reflect.DeepEqual(stats[i], s.adapter.Stats())
		}
		if stable && histogramCount(rm, "redisstreams.delivery.delay", "b") == broadcasts {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stable collection with b's %d deliveries (got %d)", broadcasts, histogramCount(rm, "redisstreams.delivery.delay", "b"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	for i, s := range servers {
		st := reflect.ValueOf(stats[i])
		for f := range reflect.TypeFor[redisstreams.Stats]().Fields() {
			if f.Type.Kind() != reflect.Uint64 {
				continue
			}
			name := "redisstreams." + snake(f.Name)
			if got, ok := sum(rm, name, s.name); !ok || got != int64(st.FieldByName(f.Name).Uint()) {
				t.Errorf("%s{server=%s} = %d (found %v), Stats().%s = %d", name, s.name, got, ok, f.Name, st.FieldByName(f.Name).Uint())
			}
		}
		if got, ok := gauge(rm, "redisstreams.servers", s.name); !ok || got != 2 {
			t.Errorf("%s: servers = %d (found %v), want 2", s.name, got, ok)
		}
		writes := int64(stats[i].Published + stats[i].PublishErrors)
		if got := histogramSum(rm, "redisstreams.write_batch.size", s.name); got != float64(writes) || writes == 0 {
			t.Errorf("%s: batch sizes sum to %v, writes %d", s.name, got, writes)
		}
	}
	if n := histogramCount(rm, "redisstreams.delivery.delay", "a"); n != 0 {
		t.Errorf("a observed %d deliveries of its own broadcasts", n)
	}
	for _, kind := range []string{"fetchSockets", "serverSideEmit"} {
		if n := histogramCount(rm, "redisstreams.request.duration", "a", attribute.String("kind", kind), attribute.String("result", "ok")); n != 1 {
			t.Errorf("request.duration{kind=%s,result=ok} count %d, want 1", kind, n)
		}
	}
}

func wait(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("callback never called")
	}
}

func matches(set attribute.Set, server string, kv []attribute.KeyValue) bool {
	if v, ok := set.Value("server"); !ok || v.AsString() != server {
		return false
	}
	for _, want := range kv {
		if v, ok := set.Value(want.Key); !ok || v != want.Value {
			return false
		}
	}
	return true
}

func find(rm metricdata.ResourceMetrics, name string) any {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data
			}
		}
	}
	return nil
}

func sum(rm metricdata.ResourceMetrics, name, server string) (int64, bool) {
	if s, ok := find(rm, name).(metricdata.Sum[int64]); ok {
		for _, p := range s.DataPoints {
			if matches(p.Attributes, server, nil) {
				return p.Value, true
			}
		}
	}
	return 0, false
}

func gauge(rm metricdata.ResourceMetrics, name, server string) (int64, bool) {
	if g, ok := find(rm, name).(metricdata.Gauge[int64]); ok {
		for _, p := range g.DataPoints {
			if matches(p.Attributes, server, nil) {
				return p.Value, true
			}
		}
	}
	return 0, false
}

func histogramPoint(rm metricdata.ResourceMetrics, name, server string, kv ...attribute.KeyValue) (count uint64, total float64) {
	switch h := find(rm, name).(type) {
	case metricdata.Histogram[float64]:
		for _, p := range h.DataPoints {
			if matches(p.Attributes, server, kv) {
				count, total = count+p.Count, total+p.Sum
			}
		}
	case metricdata.Histogram[int64]:
		for _, p := range h.DataPoints {
			if matches(p.Attributes, server, kv) {
				count, total = count+p.Count, total+float64(p.Sum)
			}
		}
	}
	return count, total
}

func histogramCount(rm metricdata.ResourceMetrics, name, server string, kv ...attribute.KeyValue) uint64 {
	c, _ := histogramPoint(rm, name, server, kv...)
	return c
}

func histogramSum(rm metricdata.ResourceMetrics, name, server string) float64 {
	_, s := histogramPoint(rm, name, server)
	return s
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Options override the histograms' bucket boundaries, as the Prometheus module's do.
func TestBucketOverrides(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	want := map[string][]float64{
		"redisstreams.write_batch.duration": {0.001, 0.01},
		"redisstreams.write_batch.size":     {10, 100},
		"redisstreams.request.duration":     {0.5, 5},
		"redisstreams.delivery.delay":       {1, 2, 3},
	}
	m, err := redisstreamsotel.New(redisstreamsotel.Options{MeterProvider: provider,
		WriteBuckets: want["redisstreams.write_batch.duration"], BatchSizeBuckets: want["redisstreams.write_batch.size"],
		RequestBuckets: want["redisstreams.request.duration"], DelayBuckets: want["redisstreams.delivery.delay"]})
	if err != nil {
		t.Fatal(err)
	}
	m.WriteBatch(3, time.Millisecond, nil)
	m.Request(redisstreams.RequestFetchSockets, time.Millisecond, nil)
	m.Delivered("s", "/", time.Millisecond)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			switch d := x.Data.(type) {
			case metricdata.Histogram[float64]:
				got[x.Name] = d.DataPoints[0].Bounds
			case metricdata.Histogram[int64]:
				got[x.Name] = d.DataPoints[0].Bounds
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bounds %v, want %v", got, want)
	}
}
