// Package redisstreamsotel exports a redisstreams Adapter's counters, gauges and timings as OpenTelemetry metrics.
//
// A Metrics is created before the Adapter, because it is the Adapter's Options.Observer (the timings, recorded in
// histograms), and observes the Adapter once it exists (its Stats, read at each collection):
//
//	m, err := redisstreamsotel.New(redisstreamsotel.Options{Attributes: []attribute.KeyValue{attribute.String("server", "eu-1")}})
//	adapter, err := redisstreams.New(ctx, goredisbackend.New(client), redisstreams.Options{Observer: m})
//	reg, err := m.Observe(adapter)
//	defer reg.Unregister()
//
// The instruments are those of the redisstreamsprom module, named the OpenTelemetry way (an exporter to Prometheus
// gives them the same names): counters redisstreams.published, redisstreams.lost, ... (one per counter of
// redisstreams.Stats); gauges redisstreams.queued_writes, redisstreams.queued_bytes, redisstreams.held_writes,
// redisstreams.pending_requests, redisstreams.reader.lag_entries and redisstreams.reader.lag (by stream),
// redisstreams.servers (by namespace); histograms redisstreams.write_batch.duration, redisstreams.write_batch.size,
// redisstreams.request.duration (by kind and result) and redisstreams.delivery.delay (by stream and namespace).
package redisstreamsotel

import (
	"context"
	"errors"
	"sync"
	"time"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/socketio-go/redisstreams"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/socketio-go/redisstreams/redisstreamsotel"

// Histogram boundaries, in seconds (writes for the batch size).
var (
	DefaultWriteBuckets     = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	DefaultBatchSizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
	DefaultRequestBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	DefaultDelayBuckets     = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// DefaultServerCountTimeout bounds the server count read at each collection.
const DefaultServerCountTimeout = time.Second

// Options configure a Metrics. The zero value is usable.
type Options struct {
	// MeterProvider provides the meter. Default: the global one (go.opentelemetry.io/otel.GetMeterProvider).
	MeterProvider metric.MeterProvider

	// Attributes are added to every measurement, to tell several adapters of one process apart (for example
	// server=a). Default none.
	Attributes []attribute.KeyValue

	// NamespaceLabel maps a Socket.IO namespace to the value of the namespace attribute (to keep it bounded when
	// namespaces are created dynamically). Default: the namespace itself.
	NamespaceLabel func(nsp string) string

	// Histogram bucket boundaries. Defaults: DefaultWriteBuckets, DefaultBatchSizeBuckets, DefaultRequestBuckets,
	// DefaultDelayBuckets (a View of the MeterProvider can still override them).
	WriteBuckets, BatchSizeBuckets, RequestBuckets, DelayBuckets []float64

	// ServerCountTimeout bounds the Redis calls made at each collection for redisstreams.servers (one PUBSUB NUMSUB
	// per namespace; none in streams-only mode). Default 1s. Negative: the gauge is not observed.
	ServerCountTimeout time.Duration
}

// Metrics is a redisstreams.Observer that records timings in OpenTelemetry histograms, and observes an
// Adapter's Stats (Observe). Its methods are safe for concurrent use.
type Metrics struct {
	opts  Options
	meter metric.Meter
	attrs attribute.Set

	writeDuration   metric.Float64Histogram
	batchSize       metric.Int64Histogram
	requestDuration metric.Float64Histogram
	deliveryDelay   metric.Float64Histogram

	plain     metric.MeasurementOption
	requestMu sync.Mutex
	requests  map[[2]string]metric.MeasurementOption // by kind, result
	delivered sync.Map                               // [2]string{stream, nsp} -> metric.MeasurementOption
}

var _ redisstreams.Observer = (*Metrics)(nil)

// New creates the histograms.
func New(opts Options) (*Metrics, error) {
	if opts.MeterProvider == nil {
		opts.MeterProvider = gotel.GetMeterProvider()
	}
	if opts.ServerCountTimeout == 0 {
		opts.ServerCountTimeout = DefaultServerCountTimeout
	}
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
	m := &Metrics{
		opts:     opts,
		meter:    opts.MeterProvider.Meter(ScopeName),
		attrs:    attribute.NewSet(opts.Attributes...),
		requests: map[[2]string]metric.MeasurementOption{},
	}
	m.plain = metric.WithAttributeSet(m.attrs)
	var errs [4]error
	m.writeDuration, errs[0] = m.meter.Float64Histogram("redisstreams.write_batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Round trip of one pipelined batch of writes (XADD and PUBLISH) to Redis."),
		metric.WithExplicitBucketBoundaries(opts.WriteBuckets...))
	m.batchSize, errs[1] = m.meter.Int64Histogram("redisstreams.write_batch.size", metric.WithUnit("{write}"),
		metric.WithDescription("Writes (XADD and PUBLISH) sent in one pipelined round trip."),
		metric.WithExplicitBucketBoundaries(opts.BatchSizeBuckets...))
	m.requestDuration, errs[2] = m.meter.Float64Histogram("redisstreams.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from sending a request to the other servers to its last response, or to its timeout, by kind and result (ok, timeout, error)."),
		metric.WithExplicitBucketBoundaries(opts.RequestBuckets...))
	m.deliveryDelay, errs[3] = m.meter.Float64Histogram("redisstreams.delivery.delay", metric.WithUnit("s"),
		metric.WithDescription("Time from a broadcast's stream entry ID (its Redis timestamp) to its delivery to this server's clients."),
		metric.WithExplicitBucketBoundaries(opts.DelayBuckets...))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return m, nil
}

// with returns the measurement option of the common attributes plus kv.
func (m *Metrics) with(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(append(m.attrs.ToSlice(), kv...)...))
}

// WriteBatch implements redisstreams.Observer.
func (m *Metrics) WriteBatch(n int, rtt time.Duration, _ error) {
	ctx := context.Background()
	m.writeDuration.Record(ctx, rtt.Seconds(), m.plain)
	m.batchSize.Record(ctx, int64(n), m.plain)
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
	key := [2]string{kind, result}
	m.requestMu.Lock()
	opt, ok := m.requests[key]
	if !ok {
		opt = m.with(attribute.String("kind", kind), attribute.String("result", result))
		m.requests[key] = opt
	}
	m.requestMu.Unlock()
	m.requestDuration.Record(context.Background(), rtt.Seconds(), opt)
}

// Delivered implements redisstreams.Observer.
func (m *Metrics) Delivered(stream, nsp string, delay time.Duration) {
	key := [2]string{stream, nsp}
	opt, ok := m.delivered.Load(key)
	if !ok {
		opt, _ = m.delivered.LoadOrStore(key, m.with(attribute.String("stream", stream), attribute.String("namespace", m.namespace(nsp))))
	}
	m.deliveryDelay.Record(context.Background(), max(delay, 0).Seconds(), opt.(metric.MeasurementOption))
}

func (m *Metrics) namespace(nsp string) string {
	if m.opts.NamespaceLabel != nil {
		return m.opts.NamespaceLabel(nsp)
	}
	return nsp
}

// counter maps one counter field of redisstreams.Stats to its instrument.
type counter struct {
	name, unit, help string
	value            func(*redisstreams.Stats) uint64
}

// counters lists every counter of redisstreams.Stats (a test checks none is missing).
var counters = []counter{
	{"published", "{write}", "Writes (XADD and PUBLISH) that Redis accepted.", func(s *redisstreams.Stats) uint64 { return s.Published }},
	{"publish_errors", "{write}", "Writes (XADD and PUBLISH) that failed.", func(s *redisstreams.Stats) uint64 { return s.PublishErrors }},
	{"received", "{message}", "Stream entries and PUB/SUB messages read.", func(s *redisstreams.Stats) uint64 { return s.Received }},
	{"invalid", "{message}", "Malformed stream entries and PUB/SUB messages, skipped.", func(s *redisstreams.Stats) uint64 { return s.Invalid }},
	{"read_errors", "{error}", "Failed stream reads (XREAD), each retried with backoff.", func(s *redisstreams.Stats) uint64 { return s.ReadErrors }},
	{"timeouts", "{request}", "Requests to the other servers that ended without every response.", func(s *redisstreams.Stats) uint64 { return s.Timeouts }},
	{"session_errors", "{error}", "Connection state recovery reads and writes that failed.", func(s *redisstreams.Stats) uint64 { return s.SessionErrors }},
	{"lost", "{entry}", "Stream entries that vanished before this server read them: trimmed (MaxLen) or deleted while it was behind, or lost with Redis's data set (a restart without persistence, a failover to a replica that was behind). Their messages were lost.", func(s *redisstreams.Stats) uint64 { return s.Lost }},
	{"dropped", "{write}", "Writes given up after the outage bound (their messages were lost).", func(s *redisstreams.Stats) uint64 { return s.Dropped }},
	{"dropped_sent", "{write}", "Of the dropped writes, the stream writes sent once before: they may have reached Redis, and readers may count them lost too.", func(s *redisstreams.Stats) uint64 { return s.DroppedSent }},
	{"duplicates", "{entry}", "Stream entries skipped because they repeat one already delivered (a retried write).", func(s *redisstreams.Stats) uint64 { return s.Duplicates }},
	{"check_errors", "{check}", "Stream checks Redis refused (for example NOPERM): entries lost before this server read them may go uncounted meanwhile.", func(s *redisstreams.Stats) uint64 { return s.CheckErrors }},
	{"restored", "{session}", "Connection state recovery sessions restored by this server.", func(s *redisstreams.Stats) uint64 { return s.Restored }},
	{"restore_no_session", "{restore}", "Restores that gave a fresh session: no session under the client's private id (unknown, expired, already restored or lost with Redis's data).", func(s *redisstreams.Stats) uint64 { return s.RestoreNoSession }},
	{"restore_no_offset", "{restore}", "Restores that gave a fresh session: the client's offset is malformed or no longer in the stream.", func(s *redisstreams.Stats) uint64 { return s.RestoreNoOffset }},
	{"superseded", "{socket}", "Sockets of this server closed because their session was restored elsewhere while they were still connected here.", func(s *redisstreams.Stats) uint64 { return s.Superseded }},
}

// Observe registers the observable instruments of the adapter's Stats and server counts, read at each
// collection. Unregister the returned registration when the adapter is closed. A Metrics serves one Adapter.
func (m *Metrics) Observe(a *redisstreams.Adapter) (metric.Registration, error) {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	ctrs := make([]metric.Int64ObservableCounter, len(counters))
	for i, c := range counters {
		var err error
		ctrs[i], err = m.meter.Int64ObservableCounter("redisstreams."+c.name, metric.WithUnit(c.unit), metric.WithDescription(c.help))
		add(err)
	}
	gauge := func(name, unit, help string) metric.Int64ObservableGauge {
		g, err := m.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(help))
		add(err)
		return g
	}
	queuedWrites := gauge("redisstreams.queued_writes", "{write}", "Writes waiting to be sent to Redis, held ones included.")
	queuedBytes := gauge("redisstreams.queued_bytes", "By", "Size of the writes waiting to be sent to Redis.")
	heldWrites := gauge("redisstreams.held_writes", "{write}", "Writes held because Redis is unreachable (part of queued_writes).")
	pending := gauge("redisstreams.pending_requests", "{request}", "Requests waiting for responses.")
	liveSessions := gauge("redisstreams.live_sessions", "{session}", "Connection state recovery sessions of connected sockets kept in Redis.")
	lagEntries := gauge("redisstreams.reader.lag_entries", "{entry}", "Entries of the stream after the last one this server read, by stream.")
	servers := gauge("redisstreams.servers", "{server}", "Socket.IO servers in the cluster for the namespace, this one included.")
	lagSeconds, err := m.meter.Float64ObservableGauge("redisstreams.reader.lag", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest stream entry this server has not read yet (0 when caught up), by stream."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	observables := []metric.Observable{queuedWrites, queuedBytes, heldWrites, pending, liveSessions, lagEntries, servers, lagSeconds}
	for _, c := range ctrs {
		observables = append(observables, c)
	}
	return m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		s := a.Stats()
		for i, c := range counters {
			o.ObserveInt64(ctrs[i], int64(c.value(&s)), m.plain)
		}
		o.ObserveInt64(queuedWrites, int64(s.QueuedWrites), m.plain)
		o.ObserveInt64(queuedBytes, s.QueuedBytes, m.plain)
		o.ObserveInt64(heldWrites, int64(s.HeldWrites), m.plain)
		o.ObserveInt64(pending, int64(s.PendingRequests), m.plain)
		o.ObserveInt64(liveSessions, int64(s.LiveSessions), m.plain)
		for _, st := range s.Streams {
			opt := m.with(attribute.String("stream", st.Stream))
			o.ObserveInt64(lagEntries, st.LagEntries, opt)
			o.ObserveFloat64(lagSeconds, st.LagSeconds, opt)
		}
		if timeout := m.opts.ServerCountTimeout; timeout > 0 {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			counts, _ := a.ServerCounts(ctx) // a namespace whose count failed is left out of this collection
			cancel()
			byLabel := make(map[string]int64, len(counts))
			for nsp, n := range counts {
				label := m.namespace(nsp)
				byLabel[label] = max(byLabel[label], n)
			}
			for label, n := range byLabel {
				o.ObserveInt64(servers, n, m.with(attribute.String("namespace", label)))
			}
		}
		return nil
	}, observables...)
}
