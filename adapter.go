package redisstreams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/socketio-go/redisstreams/wstransport"
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
	layout layout // how the servers find each other and exchange requests (Options.StreamsOnly)
	stats  counters

	// The receive path's work that must not run on the goroutine that reads: answers to the other servers'
	// requests in one set, the application's callbacks in the other, so that an answer never waits behind a
	// callback (which may itself wait for the other servers' answers).
	answers, callbacks *workers

	mu          sync.Mutex
	closed      bool
	readers     map[string]*streamReader
	nsps        map[string][]*nspAdapter // by namespace name
	shared      int                      // namespaces with more than one adapter in nsps
	readerMu    sync.Mutex
	readerConns map[string]rdb.Reader

	stop chan struct{} // closed by Close: ends the session writer

	sessions   *sessionStore // connection state recovery sessions of connected sockets (SessionsLive)
	pidMissing struct {      // sockets' private session ids cannot be read (see socketPid)
		once sync.Once
		seen atomic.Bool
	}

	beforeDispatch func()                              // tests only: runs before each batch of stream entries is delivered
	beforeDeliver  atomic.Pointer[func(offset string)] // tests only: runs in each local delivery, before the sockets are visited
	onNewDataSet   func(stream string)                 // tests only: a reader found that Redis lost the stream's data set

	writeLog, entryLog   rateLimited // failed writes, skipped entries
	pubsubLog, countLog  rateLimited // skipped PUB/SUB messages, failed server counts
	replyLog, sessionLog rateLimited // responses not sent, sessions not persisted or restored

	wg sync.WaitGroup // every goroutine the adapter starts
}

var _ socket.AdapterConstructor = (*Adapter)(nil)

// Backend is the Redis client an Adapter works through: goredisbackend.New(client) for go-redis v9,
// rueidisbackend.New(client) for rueidis, standalone, Sentinel or Redis Cluster. Adapters of both kinds can serve
// the same cluster. Each family lives in its own package, so that a program links only the client it uses.
type Backend = rdb.Backend

// New returns an Adapter that works through backend. It checks, within ctx, that Redis accepts the adapter: wrong
// credentials, missing permissions or a wrong server are returned as errors. A Redis that cannot be reached now is
// not an error: it is logged, the adapter holds writes and reconnects on its own, and Ping reports it until then.
//
// The Redis client behind backend remains the caller's: the adapter opens its own connections for blocking reads,
// and never closes the client. Close the Adapter before the client.
func New(ctx context.Context, backend Backend, opts Options) (*Adapter, error) {
	if backend == nil {
		return nil, errors.New("redisstreams: nil Backend")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	c, err := backend.Open(opts.UseShardedPubSub)
	if err != nil {
		return nil, fmt.Errorf("redisstreams: %w", err)
	}
	a := newAdapter(c, opts)
	if advisor, ok := backend.(rdb.Advisor); ok {
		for _, advice := range advisor.Advice() {
			a.log.Info("redisstreams: " + advice)
		}
	}
	if err := a.checkAtStart(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func newAdapter(client rdb.Client, opts Options) *Adapter {
	a := &Adapter{
		opts:        opts,
		client:      client,
		log:         opts.Logger,
		readers:     map[string]*streamReader{},
		nsps:        map[string][]*nspAdapter{},
		readerConns: map[string]rdb.Reader{},
	}
	a.pub = newPublisher(client, publisherOptions{maxBatch: opts.MaxBatch, timeout: opts.RequestsTimeout,
		maxOutage: opts.MaxOutage, maxHeld: opts.MaxHeldBytes, log: opts.Logger}, a.onWrite)
	a.pub.observer = opts.Observer // read by the publisher's goroutine only after the first write was queued
	a.answers = newWorkers(opts.ReceiveWorkers, &a.wg)
	a.callbacks = newWorkers(opts.ReceiveWorkers, &a.wg)
	a.stop = make(chan struct{})
	a.sessions = newSessionStore(a)
	a.wg.Go(func() { a.sessions.run(a.stop) })
	if opts.StreamsOnly {
		a.layout = newStreamsLayout(a)
	} else {
		a.layout = newPubSubLayout(a)
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
// then are dropped (counted in Stats.Dropped). Once the namespaces are detached (their pending requests end with
// ErrClosed), the receive workers refuse new work before Close waits: what a message read, an acknowledgement or
// a timeout after that would start is not run, a response the application acknowledges late is not sent (and
// logged), and the work queued before runs before Close returns. Close is idempotent.
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
		n.detach(ctx) // their pending requests end here, with ErrClosed
	}
	// Refuse new work before waiting for the goroutines: nothing can be added to what Close waits for.
	a.answers.close()
	a.callbacks.close()
	close(a.stop) // the session writer writes what it holds, then ends
	errs = append(errs, a.layout.close(), a.pub.close(ctx))
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

	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("redisstreams: close: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// register attaches a namespace adapter: its stream is followed, then the layout makes it known to the others.
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
	return a.layout.join(ctx, n)
}

// unregister forgets a namespace adapter that has left the cluster: no message is dispatched to it any more.
func (a *Adapter) unregister(n *nspAdapter) {
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
	a.mu.Unlock()
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

// logWriteError logs a failed write, at most once per lograte.Every (with the count of those not logged).
func (a *Adapter) logWriteError(msg string, args ...any) {
	a.logLimited(&a.writeLog, slog.LevelError, msg, args...)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func channelName(prefix, nsp string, uid string) string { return wire.ChannelName(prefix, nsp, uid) }

// goSafe runs f on a goroutine that Close waits for, unless Close has begun: then f does not run, and goSafe
// returns false. Nothing can be added to what Close waits for once it waits.
func (a *Adapter) goSafe(f func()) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.wg.Go(f)
	return true
}
