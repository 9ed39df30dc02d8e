// Package redisstreamsprom exports a redisstreams Adapter's counters, gauges and timings as Prometheus metrics.
//
// A Metrics is created before the Adapter, because it is the Adapter's Options.Observer (the timings), and is
// registered once the Adapter exists (the counters and gauges, read from Adapter.Stats at scrape time):
//
//	m := redisstreamsprom.New(redisstreamsprom.Options{ConstLabels: prometheus.Labels{"server": "eu-1"}})
//	adapter, err := redisstreams.New(ctx, goredisbackend.New(client), redisstreams.Options{Observer: m})
//	...
//	prometheus.MustRegister(m.Collector(adapter))
//	http.Handle("/metrics", promhttp.Handler())
//
// Every metric name starts with "redisstreams_". Labels are few and bounded: stream (a stream key), namespace (a
// Socket.IO namespace, see Options.NamespaceLabel), kind (a request kind), result; never a socket ID or a room.
// Several adapters in one process (one per Socket.IO server) share a registry when each Metrics has its own
// ConstLabels value (for example "server").
package redisstreamsprom

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socketio-go/redisstreams"
)

const prefix = "redisstreams_"

// Default histogram buckets, in seconds (sizes for BatchSizeBuckets).
var (
	// DefaultWriteBuckets: a pipelined round trip to Redis, 100µs to 2.5s.
	DefaultWriteBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	// DefaultBatchSizeBuckets: writes per pipelined round trip, 1 to 512 (Options.MaxBatch's default).
	DefaultBatchSizeBuckets = prometheus.ExponentialBuckets(1, 2, 10)
	// DefaultRequestBuckets: a request to the other servers, 500µs to 10s (the default timeout is 5s).
	DefaultRequestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// DefaultDelayBuckets: from a broadcast's entry ID timestamp to its local delivery, 1ms to 60s. The entry ID
	// is Redis's clock and the delay is measured with this server's: clock skew between the two shifts it.
	DefaultDelayBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// DefaultServerCountTimeout bounds the server count read at each scrape.
const DefaultServerCountTimeout = time.Second

// Options configure a Metrics. The zero value is usable.
type Options struct {
	// ConstLabels are added to every metric, to tell several adapters of one process apart (for example
	// {"server": "a"}). Default none.
	ConstLabels prometheus.Labels

	// NamespaceLabel maps a Socket.IO namespace to the value of the namespace label. Set it when namespaces are
	// created dynamically (a parent namespace with a regular expression), so that the label stays bounded, for
	// example by returning the parent's name. Default: the namespace itself.
	NamespaceLabel func(nsp string) string

	// Histogram buckets. Defaults: DefaultWriteBuckets, DefaultBatchSizeBuckets, DefaultRequestBuckets,
	// DefaultDelayBuckets.
	WriteBuckets, BatchSizeBuckets, RequestBuckets, DelayBuckets []float64

	// ServerCountTimeout bounds the Redis calls made at each scrape for redisstreams_servers (one PUBSUB NUMSUB per
	// namespace; none in streams-only mode). Default DefaultServerCountTimeout (1s). Negative: the gauge is not
	// exported and no Redis call is made at scrape time.
	ServerCountTimeout time.Duration
}

// Metrics is both a redisstreams.Observer (set it as Options.Observer: it records write, request and delivery
// timings in histograms) and, through Collector, the prometheus.Collector of one Adapter. Its methods are safe for
// concurrent use.
type Metrics struct {
	opts Options

	writeDuration  prometheus.Histogram
	batchSize      prometheus.Histogram
	requestLatency *prometheus.HistogramVec
	requests       *prometheus.CounterVec
	deliveryDelay  *prometheus.HistogramVec
}

var _ redisstreams.Observer = (*Metrics)(nil)

// New returns a Metrics. It records timings as soon as it is an Adapter's Observer; register Collector(adapter)
// to export them with the adapter's counters and gauges.
func New(opts Options) *Metrics {
	if opts.WriteBuckets == nil {
		opts.WriteBuckets = DefaultWriteBuckets
	}
	if opts.BatchSizeBuckets == nil {
		opts.BatchSizeBuckets = DefaultBatchSizeBuckets
	}
	if opts.RequestBuckets == nil {
		opts.RequestBuckets = DefaultRequestBuckets
	}
	if opts.DelayBuckets == nil {
		opts.DelayBuckets = DefaultDelayBuckets
	}
	if opts.ServerCountTimeout == 0 {
		opts.ServerCountTimeout = DefaultServerCountTimeout
	}
	cl := opts.ConstLabels
	return &Metrics{
		opts: opts,
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        prefix + "write_batch_duration_seconds",
			Help:        "Round trip of one pipelined batch of writes (XADD and PUBLISH) to Redis.",
			ConstLabels: cl, Buckets: opts.WriteBuckets,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        prefix + "write_batch_size",
			Help:        "Writes (XADD and PUBLISH) sent in one pipelined round trip.",
			ConstLabels: cl, Buckets: opts.BatchSizeBuckets,
		}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        prefix + "request_duration_seconds",
			Help:        "Time from sending a request to the other servers (fetchSockets, serverSideEmit with ack, broadcastWithAck) to its last response, or to its timeout.",
			ConstLabels: cl, Buckets: opts.RequestBuckets,
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        prefix + "requests_total",
			Help:        "Requests to the other servers, by kind and result (ok, timeout: some responses missing, error).",
			ConstLabels: cl,
		}, []string{"kind", "result"}),
		deliveryDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        prefix + "delivery_delay_seconds",
			Help:        "Time from a broadcast's stream entry ID (its Redis timestamp) to its delivery to this server's clients.",
			ConstLabels: cl, Buckets: opts.DelayBuckets,
		}, []string{"stream", "namespace"}),
	}
}

// WriteBatch implements redisstreams.Observer.
func (m *Metrics) WriteBatch(n int, rtt time.Duration, _ error) {
	m.writeDuration.Observe(rtt.Seconds())
	m.batchSize.Observe(float64(n))
}

// Request implements redisstreams.Observer.
func (m *Metrics) Request(kind string, rtt time.Duration, err error) {
	result := "ok"
	switch {
	case errors.Is(err, redisstreams.ErrTimeout):
		result = "timeout"
	case err != nil:
		result = "error"
	}
	m.requestLatency.WithLabelValues(kind).Observe(rtt.Seconds())
	m.requests.WithLabelValues(kind, result).Inc()
}

// Delivered implements redisstreams.Observer.
func (m *Metrics) Delivered(stream, nsp string, delay time.Duration) {
	m.deliveryDelay.WithLabelValues(stream, m.namespace(nsp)).Observe(max(delay, 0).Seconds())
}

func (m *Metrics) namespace(nsp string) string {
	if m.opts.NamespaceLabel != nil {
		return m.opts.NamespaceLabel(nsp)
	}
	return nsp
}

// Collector returns the prometheus.Collector of the adapter: its Stats (read at each scrape), its server counts,
// and this Metrics' histograms. Register it once; a Metrics serves one Adapter.
func (m *Metrics) Collector(a *redisstreams.Adapter) prometheus.Collector {
	return &collector{m: m, a: a, descs: newDescs(m.opts.ConstLabels)}
}

// counter maps one counter field of redisstreams.Stats to its metric.
type counter struct {
	name, help string
	value      func(*redisstreams.Stats) uint64
}

// counters lists every counter of redisstreams.Stats (a test checks none is missing).
var counters = []counter{
	{"published_total", "Writes (XADD and PUBLISH) that Redis accepted.", func(s *redisstreams.Stats) uint64 { return s.Published }},
	{"publish_errors_total", "Writes (XADD and PUBLISH) that failed.", func(s *redisstreams.Stats) uint64 { return s.PublishErrors }},
	{"received_total", "Stream entries and PUB/SUB messages read.", func(s *redisstreams.Stats) uint64 { return s.Received }},
	{"invalid_total", "Malformed stream entries and PUB/SUB messages, skipped.", func(s *redisstreams.Stats) uint64 { return s.Invalid }},
	{"read_errors_total", "Failed stream reads (XREAD), each retried with backoff.", func(s *redisstreams.Stats) uint64 { return s.ReadErrors }},
	{"timeouts_total", "Requests to the other servers that ended without every response.", func(s *redisstreams.Stats) uint64 { return s.Timeouts }},
	{"session_errors_total", "Connection state recovery reads and writes that failed.", func(s *redisstreams.Stats) uint64 { return s.SessionErrors }},
	{"lost_total", "Stream entries that vanished before this server read them: trimmed (MaxLen) or deleted while it was behind, or lost with Redis's data set (a restart without persistence, a failover to a replica that was behind). Their messages were lost.", func(s *redisstreams.Stats) uint64 { return s.Lost }},
	{"dropped_total", "Writes given up after the outage bound (their messages were lost).", func(s *redisstreams.Stats) uint64 { return s.Dropped }},
	{"dropped_sent_total", "Of the dropped writes, the stream writes sent once before: they may have reached Redis, and readers may count them lost too.", func(s *redisstreams.Stats) uint64 { return s.DroppedSent }},
	{"duplicates_total", "Stream entries skipped because they repeat one already delivered (a retried write).", func(s *redisstreams.Stats) uint64 { return s.Duplicates }},
	{"check_errors_total", "Stream checks Redis refused (for example NOPERM): entries lost before this server read them may go uncounted meanwhile.", func(s *redisstreams.Stats) uint64 { return s.CheckErrors }},
	{"restored_total", "Connection state recovery sessions restored by this server.", func(s *redisstreams.Stats) uint64 { return s.Restored }},
	{"restore_no_session_total", "Restores that gave a fresh session: no session under the client's private id (unknown, expired, already restored or lost with Redis's data).", func(s *redisstreams.Stats) uint64 { return s.RestoreNoSession }},
	{"restore_no_offset_total", "Restores that gave a fresh session: the client's offset is malformed or no longer in the stream.", func(s *redisstreams.Stats) uint64 { return s.RestoreNoOffset }},
	{"superseded_total", "Sockets of this server closed because their session was restored elsewhere while they were still connected here.", func(s *redisstreams.Stats) uint64 { return s.Superseded }},
}

type descs struct {
	counters                                []*prometheus.Desc
	queuedWrites, queuedBytes, heldWrites   *prometheus.Desc
	pendingRequests, lagEntries, lagSeconds *prometheus.Desc
	servers, liveSessions                   *prometheus.Desc
}

func newDescs(cl prometheus.Labels) *descs {
	d := &descs{
		queuedWrites:    prometheus.NewDesc(prefix+"queued_writes", "Writes waiting to be sent to Redis, held ones included.", nil, cl),
		queuedBytes:     prometheus.NewDesc(prefix+"queued_bytes", "Size of the writes waiting to be sent to Redis.", nil, cl),
		heldWrites:      prometheus.NewDesc(prefix+"held_writes", "Writes held because Redis is unreachable (part of queued_writes).", nil, cl),
		pendingRequests: prometheus.NewDesc(prefix+"pending_requests", "Requests (fetchSockets, serverSideEmit, broadcast acks) waiting for responses.", nil, cl),
		lagEntries:      prometheus.NewDesc(prefix+"reader_lag_entries", "Entries of the stream after the last one this server read, as of the last check.", []string{"stream"}, cl),
		lagSeconds:      prometheus.NewDesc(prefix+"reader_lag_seconds", "Age of the oldest stream entry this server has not read yet (0 when caught up).", []string{"stream"}, cl),
		servers:         prometheus.NewDesc(prefix+"servers", "Socket.IO servers in the cluster for the namespace, this one included.", []string{"namespace"}, cl),
		liveSessions:    prometheus.NewDesc(prefix+"live_sessions", "Connection state recovery sessions of connected sockets kept in Redis.", nil, cl),
	}
	for _, c := range counters {
		d.counters = append(d.counters, prometheus.NewDesc(prefix+c.name, c.help, nil, cl))
	}
	return d
}

type collector struct {
	m     *Metrics
	a     *redisstreams.Adapter
	descs *descs
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, desc := range d.counters {
		ch <- desc
	}
	ch <- d.queuedWrites
	ch <- d.queuedBytes
	ch <- d.heldWrites
	ch <- d.pendingRequests
	ch <- d.liveSessions
	ch <- d.lagEntries
	ch <- d.lagSeconds
	if c.m.opts.ServerCountTimeout > 0 {
		ch <- d.servers
	}
	c.m.writeDuration.Describe(ch)
	c.m.batchSize.Describe(ch)
	c.m.requestLatency.Describe(ch)
	c.m.requests.Describe(ch)
	c.m.deliveryDelay.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs
	s := c.a.Stats()
	for i, ctr := range counters {
		ch <- prometheus.MustNewConstMetric(d.counters[i], prometheus.CounterValue, float64(ctr.value(&s)))
	}
	ch <- prometheus.MustNewConstMetric(d.queuedWrites, prometheus.GaugeValue, float64(s.QueuedWrites))
	ch <- prometheus.MustNewConstMetric(d.queuedBytes, prometheus.GaugeValue, float64(s.QueuedBytes))
	ch <- prometheus.MustNewConstMetric(d.heldWrites, prometheus.GaugeValue, float64(s.HeldWrites))
	ch <- prometheus.MustNewConstMetric(d.pendingRequests, prometheus.GaugeValue, float64(s.PendingRequests))
	ch <- prometheus.MustNewConstMetric(d.liveSessions, prometheus.GaugeValue, float64(s.LiveSessions))
	for _, st := range s.Streams {
		ch <- prometheus.MustNewConstMetric(d.lagEntries, prometheus.GaugeValue, float64(st.LagEntries), st.Stream)
		ch <- prometheus.MustNewConstMetric(d.lagSeconds, prometheus.GaugeValue, st.LagSeconds, st.Stream)
	}
	if timeout := c.m.opts.ServerCountTimeout; timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		// A namespace whose count failed (Redis unreachable) is left out of this scrape.
		counts, _ := c.a.ServerCounts(ctx)
		cancel()
		byLabel := make(map[string]int64, len(counts))
		for nsp, n := range counts {
			label := c.m.namespace(nsp)
			byLabel[label] = max(byLabel[label], n) // namespaces mapped to one label: the largest count
		}
		for label, n := range byLabel {
			ch <- prometheus.MustNewConstMetric(d.servers, prometheus.GaugeValue, float64(n), label)
		}
	}
	c.m.writeDuration.Collect(ch)
	c.m.batchSize.Collect(ch)
	c.m.requestLatency.Collect(ch)
	c.m.requests.Collect(ch)
	c.m.deliveryDelay.Collect(ch)
}
