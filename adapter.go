package redisstreams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/socketio-go/redisstreams/wstransport"
)

// Errors returned (wrapped) by the adapter.
var (
	// ErrClosed: the Adapter has been closed.
	ErrClosed = errors.New("redisstreams: adapter closed")
	// ErrTimeout: a request to the other servers did not get every response in time.
	ErrTimeout = errors.New("redisstreams: timeout reached")
	// ErrUnavailable: Redis cannot be reached now (writes are being held, see Options.MaxOutage); requests to
	// the other servers fail at once with it instead of waiting for their timeout.
	ErrUnavailable = errors.New("redisstreams: redis unavailable")
)

// Adapter connects the namespaces of one Socket.IO server to the cluster. Give it to the server with
// ServerOptions.SetAdapter; the server then asks it for one namespace adapter per namespace. An Adapter serves
// exactly one server, and is safe for concurrent use.
//
// Close it after closing the server: it stops the readers, unsubscribes, and flushes queued writes. It never closes
// the Redis client it was given.
type Adapter struct {
	opts   Options
	client rdb.Client
	log    *slog.Logger
	pub    *publisher
	sub    rdb.Subscriber
	stats  counters

	mu          sync.Mutex
	closed      bool
	readers     map[string]*streamReader
	nsps        map[string][]*nspAdapter // by namespace name
	shared      int                      // namespaces with more than one adapter in nsps
	channels    map[string]*nspAdapter   // by PUB/SUB channel
	readerMu    sync.Mutex
	readerConns map[string]rdb.Reader

	stop chan struct{} // closed by Close: ends the heartbeat loop (StreamsOnly)

	beforeDispatch func()              // tests only: runs before each batch of stream entries is delivered
	onNewDataSet   func(stream string) // tests only: a reader found that Redis lost the stream's data set

	writeLog, entryLog   rateLimited // failed writes, skipped entries
	pubsubLog, countLog  rateLimited // skipped PUB/SUB messages, failed server counts
	replyLog, sessionLog rateLimited // responses not sent, sessions not persisted or restored
	removeRedisLog       func()      // detaches Options.Logger from go-redis's process-wide logger

	wg sync.WaitGroup // every goroutine the adapter starts
}

var _ socket.AdapterConstructor = (*Adapter)(nil)

// New returns an Adapter that uses a go-redis v9 client, standalone (*redis.Client) or cluster
// (*redis.ClusterClient). The client remains the caller's: the adapter opens its own connections for blocking
// reads, and never closes the client.
func New(client redis.UniversalClient, opts Options) (*Adapter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	c, err := rdb.NewGoRedis(client, opts.UseShardedPubSub)
	if err != nil {
		return nil, fmt.Errorf("redisstreams: %w", err)
	}
	a := newAdapter(c, opts)
	a.removeRedisLog = installRedisLogger(opts.Logger)
	if !contextTimeouts(client) {
		a.log.Info("redisstreams: the go-redis client has ContextTimeoutEnabled false: a Redis that stops answering " +
			"is noticed after go-redis's ReadTimeout and retries (about 5 s by default), not after RequestsTimeout; " +
			"set ContextTimeoutEnabled: true in its options (see README, Delivery)")
	}
	if err := a.checkAtStart(); err != nil {
		return nil, err
	}
	return a, nil
}

// contextTimeouts tells whether a go-redis client applies context deadlines to its socket reads and writes.
func contextTimeouts(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true // unknown implementation: nothing to advise
}

func newAdapter(client rdb.Client, opts Options) *Adapter {
	a := &Adapter{
		opts:        opts,
		client:      client,
		log:         opts.Logger,
		readers:     map[string]*streamReader{},
		nsps:        map[string][]*nspAdapter{},
		channels:    map[string]*nspAdapter{},
		readerConns: map[string]rdb.Reader{},
	}
	a.pub = newPublisher(client, publisherOptions{maxBatch: opts.MaxBatch, timeout: opts.RequestsTimeout,
		maxOutage: opts.MaxOutage, maxHeld: opts.MaxHeldBytes, log: opts.Logger}, a.onWrite)
	a.pub.observer = opts.Observer // read by the publisher's goroutine only after the first write was queued
	a.stop = make(chan struct{})
	if opts.StreamsOnly {
		a.sub = noSubscriber{} // no PUB/SUB command, ever
		a.goSafe(a.heartbeatLoop)
	} else {
		a.sub = client.NewSubscriber(a.onPubSub)
	}
	return a
}

// New implements socket.AdapterConstructor; the server calls it once per namespace.
func (a *Adapter) New(nsp socket.Namespace) socket.Adapter {
	n := &nspAdapter{Adapter: socket.MakeAdapter(), parent: a, uid: randomID()}
	n.Prototype(n)
	n.Construct(nsp)
	return n
}

// Close detaches every namespace from the cluster and stops every goroutine the adapter started, waiting for
// them (bounded by ctx). Queued writes are sent first; writes held for an outage wait for Redis until ctx ends,
// then are dropped (counted in Stats.Dropped). Close is idempotent.
func (a *Adapter) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	var all []*nspAdapter
	for _, list := range a.nsps {
		all = append(all, list...)
	}
	a.mu.Unlock()

	var errs []error
	for _, n := range all {
		n.detach(ctx)
	}
	close(a.stop)
	errs = append(errs, a.pub.close(ctx), a.sub.Close())
	a.mu.Lock()
	for _, r := range a.readers {
		r.cancel()
	}
	a.mu.Unlock()
	a.readerMu.Lock()
	for _, c := range a.readerConns {
		errs = append(errs, c.Close())
	}
	a.readerMu.Unlock()

	if a.removeRedisLog != nil {
		a.removeRedisLog()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("redisstreams: close: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// register attaches a namespace adapter: its stream is followed and its channels subscribed.
func (a *Adapter) register(n *nspAdapter) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	a.nsps[n.name] = append(a.nsps[n.name], n)
	if len(a.nsps[n.name]) == 2 {
		a.shared++
	}
	a.channels[n.publicChannel] = n
	a.channels[n.privateChannel] = n
	_, reading := a.readers[n.stream]
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), a.opts.RequestsTimeout)
	defer cancel()
	if !reading {
		// The reader starts after the newest entry as of now, so that everything written once Init returns is
		// read. If Redis cannot say, the reader finds out itself when it can.
		info, err := a.client.StreamInfo(ctx, n.stream)
		if err != nil {
			a.log.Warn("redisstreams: cannot read the stream position", "stream", n.stream, "err", err)
			info = rdb.StreamInfo{}
		}
		a.mu.Lock()
		if _, ok := a.readers[n.stream]; !ok && !a.closed {
			a.startReader(n.stream, info)
		}
		a.mu.Unlock()
	}
	if a.opts.StreamsOnly {
		// Written once the reader follows the stream, so that the answers are read.
		n.heartbeat(wire.InitialHeartbeat)
		return nil
	}
	if err := a.sub.Subscribe(ctx, n.publicChannel, n.privateChannel); err != nil {
		return err
	}
	return nil
}

func (a *Adapter) unregister(ctx context.Context, n *nspAdapter) error {
	a.mu.Lock()
	list := a.nsps[n.name]
	if len(list) == 2 {
		a.shared--
	}
	for i, x := range list {
		if x == n {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(a.nsps, n.name)
	} else {
		a.nsps[n.name] = list
	}
	delete(a.channels, n.publicChannel)
	delete(a.channels, n.privateChannel)
	a.mu.Unlock()
	return a.sub.Unsubscribe(ctx, n.publicChannel, n.privateChannel)
}

// dispatchEntry hands one stream entry to the namespace adapters it concerns. Bad entries are skipped, counted
// and logged; they never stop the reader. Plain broadcasts' writes to wstransport sockets start at batch.Flush
// (nil: at once).
func (a *Adapter) dispatchEntry(stream string, e *rdb.Entry, batch *wstransport.Batch) {
	a.stats.received.Add(1)
	nspName := e.Fields["nsp"]
	if nspName == "" {
		a.badEntry(stream, e.ID, errors.New("no nsp field"))
		return
	}
	targets := a.targets(nspName, e.Fields["uid"])
	if len(targets) == 0 {
		return
	}
	// A plain broadcast goes to the clients as the JSON text it arrived as (deliver.go): ScanBroadcast validates
	// it as fully as ValidateBroadcastPacket does. Anything else, or a namespace that cannot take it that way, gets
	// the decoded and validated message. Both reach local delivery here (the place for Observer.Delivered).
	var raw *wire.RawBroadcast
	if e.Fields["type"] == "3" {
		if rb, ok := wire.ScanBroadcast(nspName, e.Fields["data"]); ok {
			raw = &rb
		}
	}
	var msg *wire.Message
	for _, n := range targets {
		if raw != nil && n.onRawBroadcast(e.Fields["uid"], raw, e.ID, batch) {
			continue
		}
		if msg == nil {
			var err error
			msg, err = wire.DecodeStreamEntry(e.ID, e.Fields)
			if err == nil && msg.Type == wire.Broadcast {
				err = wire.ValidateBroadcastPacket(msg.Packet, msg.Nsp)
			}
			if err != nil {
				a.badEntry(stream, e.ID, err)
				return
			}
		}
		n.onMessage(msg)
	}
	if o := a.opts.Observer; o != nil && (raw != nil || msg.Type == wire.Broadcast) {
		observeDelivered(o, stream, nspName, e.ID)
	}
}

// ownEntry reports whether a stream entry of namespace nsp written by uid is this server's own and reaches no
// local adapter, so that the reader need not convert it (rdb.SkipFunc). Only while every namespace has one local
// adapter: then no entry of this server's writer is delivered locally, and none is needed for the reader's
// sequence bookkeeping (dedupe, loss counting) either.
func (a *Adapter) ownEntry(uid, nsp string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.nsps[nsp]
	return a.shared == 0 && len(list) == 1 && list[0].uid == uid
}

// targets returns the local adapters of a namespace, except the one that sent the message.
func (a *Adapter) targets(nsp, uid string) []*nspAdapter {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.nsps[nsp]
	if len(list) == 1 && list[0].uid != uid {
		return list
	}
	var out []*nspAdapter
	for _, n := range list {
		if n.uid != uid {
			out = append(out, n)
		}
	}
	return out
}

func (a *Adapter) badEntry(stream, id string, err error) {
	a.stats.invalid.Add(1)
	a.logLimited(&a.entryLog, slog.LevelWarn, "redisstreams: skipping malformed stream entry", "stream", stream, "id", id, "err", err)
}

// onPubSub receives every PUB/SUB message, from the subscriber's goroutine.
func (a *Adapter) onPubSub(channel string, payload []byte) {
	a.stats.received.Add(1)
	a.mu.Lock()
	n := a.channels[channel]
	a.mu.Unlock()
	if n == nil {
		return
	}
	msg, err := wire.DecodePubSub(payload)
	if err == nil && msg.Type == wire.Broadcast {
		err = wire.ValidateBroadcastPacket(msg.Packet, msg.Nsp)
	}
	if err != nil {
		a.stats.invalid.Add(1)
		a.logLimited(&a.pubsubLog, slog.LevelWarn, "redisstreams: skipping malformed PUB/SUB message", "channel", channel,
			"bytes", len(payload), "err", err)
		return
	}
	if msg.UID == n.uid {
		return // our own request, echoed on the public channel
	}
	if msg.Nsp != n.name {
		a.stats.invalid.Add(1)
		a.logLimited(&a.pubsubLog, slog.LevelWarn, "redisstreams: PUB/SUB message for another namespace", "channel", channel,
			"nsp", msg.Nsp)
		return
	}
	n.onMessage(msg)
}

func (a *Adapter) onWrite(op *rdb.Op, waited bool) {
	if op.Err == nil {
		a.stats.published.Add(1)
		return
	}
	if errors.Is(op.Err, ErrDropped) {
		a.stats.dropped.Add(1) // the publisher logs drops per incident
		if op.Err == errDroppedSent {
			a.stats.droppedSent.Add(1) // after dropped: a snapshot (read in the other order) never has more
		}
		return
	}
	a.stats.publishErrors.Add(1)
	if waited {
		return // the caller logs it with more context
	}
	target := op.Stream
	if target == "" {
		target = op.Channel
	}
	a.logWriteError("redisstreams: write failed", "target", target, "err", op.Err)
}

// logWriteError logs a failed write, at most once per ratelimit.Every (with the count of those not logged).
func (a *Adapter) logWriteError(msg string, args ...any) {
	a.logLimited(&a.writeLog, slog.LevelError, msg, args...)
}

// goSafe runs f on a goroutine the adapter waits for in Close.
func (a *Adapter) goSafe(f func()) {
	a.wg.Go(f)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func channelName(prefix, nsp string, uid string) string { return wire.ChannelName(prefix, nsp, uid) }
