package redisstreamsprom_test

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/siotest"
	"github.com/socketio-go/redisstreams/redisstreamsprom"
)

// The tests start their own Redis (some stop it); only go-redis's chatter is a package-wide concern.
func TestMain(m *testing.M) {
	flag.Parse()
	redistest.QuietGoRedis()
	code := m.Run()
	exampleRedis.Close()
	os.Exit(code)
}

// server is one Socket.IO server with its adapter and metrics, on a real loopback port.
type server struct {
	name    string
	io      *socket.Server
	adapter *redisstreams.Adapter
	metrics *redisstreamsprom.Metrics
	url     string
}

func startServers(t *testing.T, addr string, names ...string) []*server {
	t.Helper()
	prefix := fmt.Sprintf("metrics-%d", time.Now().UnixNano())
	var out []*server
	for _, name := range names {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = rc.Close() })
		m := redisstreamsprom.New(redisstreamsprom.Options{ConstLabels: prometheus.Labels{"server": name}})
		a, err := redisstreams.New(t.Context(), goredisbackend.New(rc), redisstreams.Options{StreamName: prefix, ChannelPrefix: prefix,
			RequestsTimeout: time.Second, Observer: m})
		if err != nil {
			t.Fatal(err)
		}
		so := socket.DefaultServerOptions()
		so.SetAdapter(a)
		io := socket.NewServer(nil, so)
		io.Of("/", nil) // joins the cluster now
		out = append(out, &server{name: name, io: io, adapter: a, metrics: m, url: siotest.Serve(t, io, a.Close)})
	}
	return out
}

// connect opens a real websocket client on s that records "news" events and acks "ping" with the server's name. A
// handshake that stalls (a flaw of the client library under load) is retried with a fresh client (siotest.Dial).
func connect(t *testing.T, s *server, news chan<- string) {
	t.Helper()
	c, err := siotest.Dial(s.url+"/", nil, 3*time.Second, 3, func(c *client.Socket) {
		_ = c.On("news", func(args ...any) { news <- s.name })
		_ = c.On("ping", func(args ...any) {
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{s.name}, nil)
			}
		})
	})
	if err != nil {
		t.Fatalf("client of %s: %v", s.name, err)
	}
	t.Cleanup(func() { c.Disconnect() })
	waitFor(t, "the server to see its client", func() bool { return s.io.Of("/", nil).Sockets().Len() == 1 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	siotest.WaitFor(t, what, cond)
}

// TestScrape runs a three-server cluster on a real Redis with a real client on each server, sends broadcasts,
// fetchSockets, serverSideEmit (answered and timed out) and a broadcast with acks from server a, then scrapes one
// registry holding the three collectors over HTTP and checks the values.
func TestScrape(t *testing.T) {
	rs := redistest.StartServerT(t, redistest.ServerOptions{})
	servers := startServers(t, rs.Addr(), "a", "b", "c")
	news := make(chan string, 64)
	for _, s := range servers {
		connect(t, s, news)
		s.io.On("answer", func(args ...any) {
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{s.name}, nil)
			}
		})
		s.io.On("silent", func(...any) {}) // never acks: the request times out
	}
	a := servers[0]

	const broadcasts = 5
	for i := range broadcasts {
		a.io.Emit("news", i)
	}
	for range 3 * broadcasts {
		select {
		case <-news:
		case <-time.After(10 * time.Second):
			t.Fatal("a broadcast did not reach every client")
		}
	}

	done := make(chan error, 1)
	a.io.FetchSockets()(func(s []*socket.RemoteSocket, err error) {
		if err == nil && len(s) != 3 {
			err = fmt.Errorf("fetchSockets: %d sockets", len(s))
		}
		done <- err
	})
	mustDone(t, "fetchSockets", done)
	if err := a.io.ServerSideEmitWithAck("answer")(func(res []any, err error) {
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("serverSideEmit: %d responses", len(res))
		}
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	mustDone(t, "serverSideEmit", done)
	if err := a.io.ServerSideEmitWithAck("silent")(func(_ []any, err error) {
		if !errors.Is(err, redisstreams.ErrTimeout) {
			err = fmt.Errorf("silent serverSideEmit: err %v, want a timeout", err)
		} else {
			err = nil
		}
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	mustDone(t, "silent serverSideEmit", done)
	a.io.Timeout(300 * time.Millisecond).EmitWithAck("ping")(func(res []any, err error) {
		if err == nil && len(res) != 3 {
			err = fmt.Errorf("broadcastWithAck: %d acks", len(res))
		}
		done <- err
	})
	mustDone(t, "broadcastWithAck", done)

	reg := prometheus.NewPedanticRegistry()
	for _, s := range servers {
		reg.MustRegister(s.metrics.Collector(s.adapter))
	}
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer hs.Close()

	// The broadcast with acks is reported when the adapter stops listening for it (its timeout + 1s): wait for it,
	// then take a scrape during which no counter moved.
	var families map[string]*dto.MetricFamily
	waitFor(t, "the broadcastWithAck observation", func() bool {
		families = scrape(t, hs.URL)
		return value(families, "redisstreams_requests_total", "a", "kind", "broadcastWithAck", "result", "ok") == 1
	})
	stats := make([]redisstreams.Stats, len(servers))
	waitFor(t, "a scrape with stable counters", func() bool {
		for i, s := range servers {
			stats[i] = s.adapter.Stats()
		}
		families = scrape(t, hs.URL)
		for i, s := range servers {
			if !reflect.DeepEqual(stats[i], s.adapter.Stats()) {
				return false
			}
		}
		return true
	})

	statsType := reflect.TypeFor[redisstreams.Stats]()
	for i, s := range servers {
		st := reflect.ValueOf(stats[i])
		// Every counter field of Stats, with the value Stats returns.
		for f := range statsType.Fields() {
			if f.Type.Kind() != reflect.Uint64 {
				continue
			}
			name := "redisstreams_" + snake(f.Name) + "_total"
			if got, want := value(families, name, s.name), float64(st.FieldByName(f.Name).Uint()); got != want {
				t.Errorf("%s{server=%q} = %v, Stats().%s = %v", name, s.name, got, f.Name, want)
			}
		}
		gauges := map[string]float64{
			"redisstreams_queued_writes":    float64(stats[i].QueuedWrites),
			"redisstreams_queued_bytes":     float64(stats[i].QueuedBytes),
			"redisstreams_held_writes":      float64(stats[i].HeldWrites),
			"redisstreams_pending_requests": float64(stats[i].PendingRequests),
			"redisstreams_servers":          3,
		}
		for _, ss := range stats[i].Streams {
			gauges[fmt.Sprintf("redisstreams_reader_lag_entries{stream=%q}", ss.Stream)] = float64(ss.LagEntries)
			gauges[fmt.Sprintf("redisstreams_reader_lag_seconds{stream=%q}", ss.Stream)] = ss.LagSeconds
		}
		for g, want := range gauges {
			name, labels := g, []string(nil)
			if j := strings.IndexByte(g, '{'); j > 0 {
				name, labels = g[:j], []string{"stream", strings.Trim(g[j+len(`{stream=`):len(g)-1], `"`)}
			}
			if name == "redisstreams_servers" {
				labels = []string{"namespace", "/"}
			}
			if got := value(families, name, s.name, labels...); got != want {
				t.Errorf("%s{server=%q} = %v, want %v", g, s.name, got, want)
			}
		}
		// Every write went out in an observed batch: the batch sizes add up to the writes.
		writes := float64(stats[i].Published + stats[i].PublishErrors)
		if got := histogram(families, "redisstreams_write_batch_size", s.name).GetSampleSum(); got != writes || writes == 0 {
			t.Errorf("%s: batch sizes sum to %v, writes %v", s.name, got, writes)
		}
		if h := histogram(families, "redisstreams_write_batch_duration_seconds", s.name); h.GetSampleCount() == 0 ||
			h.GetSampleCount() != histogram(families, "redisstreams_write_batch_size", s.name).GetSampleCount() {
			t.Errorf("%s: write batch duration count %d", s.name, h.GetSampleCount())
		}
	}

	// Server a's broadcasts were read from the stream by b and c, each delivery observed once; a reads none.
	for _, s := range servers {
		want := uint64(broadcasts)
		if s.name == "a" {
			want = 0
		}
		h := histogram(families, "redisstreams_delivery_delay_seconds", s.name, "namespace", "/")
		if h.GetSampleCount() != want {
			t.Errorf("%s: %d deliveries observed, want %d", s.name, h.GetSampleCount(), want)
		}
		if want > 0 && h.GetSampleSum() > 60*float64(want) {
			t.Errorf("%s: delivery delays sum to %vs", s.name, h.GetSampleSum())
		}
	}

	// Server a's requests, by kind and result.
	for _, r := range []struct {
		kind, result string
		count        float64
	}{
		{"fetchSockets", "ok", 1},
		{"serverSideEmit", "ok", 1},
		{"serverSideEmit", "timeout", 1},
		{"broadcastWithAck", "ok", 1},
	} {
		if got := value(families, "redisstreams_requests_total", "a", "kind", r.kind, "result", r.result); got != r.count {
			t.Errorf("requests_total{kind=%s,result=%s} = %v, want %v", r.kind, r.result, got, r.count)
		}
	}
	for kind, want := range map[string]uint64{"fetchSockets": 1, "serverSideEmit": 2, "broadcastWithAck": 1} {
		if got := histogram(families, "redisstreams_request_duration_seconds", "a", "kind", kind).GetSampleCount(); got != want {
			t.Errorf("request_duration_seconds{kind=%s} count = %d, want %d", kind, got, want)
		}
	}
	if stats[0].Timeouts != 1 {
		t.Errorf("a: Stats().Timeouts = %d, want 1", stats[0].Timeouts)
	}
	// b and c sent no request.
	for _, s := range servers[1:] {
		if f := families["redisstreams_requests_total"]; f != nil {
			for _, m := range f.GetMetric() {
				if label(m, "server") == s.name {
					t.Errorf("%s: unexpected request metric %v", s.name, m)
				}
			}
		}
	}
}

func mustDone(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: callback never called", what)
	}
}

// TestLint checks the collector's metrics against Prometheus's naming and help conventions, with traffic recorded
// in every histogram.
func TestLint(t *testing.T) {
	rs := redistest.StartServerT(t, redistest.ServerOptions{})
	s := startServers(t, rs.Addr(), "lint")[0]
	s.metrics.WriteBatch(3, time.Millisecond, nil)
	s.metrics.Request(redisstreams.RequestFetchSockets, time.Millisecond, nil)
	s.metrics.Delivered("stream", "/", time.Millisecond)
	c := s.metrics.Collector(s.adapter)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(c); n < 20 {
		t.Errorf("only %d metrics collected", n)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// find returns the metric of a family with server label server and the other label pairs, or nil.
func find(families map[string]*dto.MetricFamily, name, server string, labels ...string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		if label(m, "server") != server {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if label(m, labels[i]) != labels[i+1] {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns a counter's or gauge's value, or -1 when the metric is missing.
func value(families map[string]*dto.MetricFamily, name, server string, labels ...string) float64 {
	m := find(families, name, server, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

func histogram(families map[string]*dto.MetricFamily, name, server string, labels ...string) *dto.Histogram {
	if m := find(families, name, server, labels...); m != nil && m.Histogram != nil {
		return m.Histogram
	}
	return &dto.Histogram{}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// snake turns a Go field name into a metric name part: PublishErrors -> publish_errors.
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

// TestScrapeRedisDown: with Redis stopped, a scrape still answers with the counters and gauges, without the server
// counts it could not read.
func TestScrapeRedisDown(t *testing.T) {
	rs := redistest.StartServerT(t, redistest.ServerOptions{})
	s := startServers(t, rs.Addr(), "down")[0]
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.metrics.Collector(s.adapter))
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer hs.Close()

	if got := value(scrape(t, hs.URL), "redisstreams_servers", "down", "namespace", "/"); got != 1 {
		t.Fatalf("servers = %v before the outage, want 1", got)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	families := scrape(t, hs.URL)
	if _, ok := families["redisstreams_servers"]; ok {
		t.Errorf("server count exported while Redis is down")
	}
	if got, want := value(families, "redisstreams_published_total", "down"), float64(s.adapter.Stats().Published); got != want {
		t.Errorf("published_total = %v, Stats().Published = %v", got, want)
	}
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server count after the restart", func() bool {
		return value(scrape(t, hs.URL), "redisstreams_servers", "down", "namespace", "/") == 1
	})
}
