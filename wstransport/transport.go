// Package wstransport is a websocket transport for the Go Engine.IO server
// (github.com/zishang520/socket.io/servers/engine/v3, v3.0.6), installed per server in place of the engine's own
// with one call, [Install]. It speaks the same protocol to the same clients, and costs less CPU per socket-send:
//
//   - no goroutine per send: a connection that is idle is written to by the goroutine that sends (a non-blocking
//     writev on Linux); only when the client's socket buffer is full does a goroutine take over its backlog, until
//     it has caught up;
//   - a backlog goes out in one writev;
//   - a broadcast's frame is built once and its bytes are shared by every socket it is sent to (server frames are
//     not masked, so they are the same for every connection), compressed once too when per-message deflate is on;
//   - a client that stops reading is disconnected once MaxQueuedBytes are waiting for it ([ErrSlowClient]), so its
//     memory stays bounded and the other clients do not wait for it.
//
// Everything else is the engine's: handshakes, upgrades from long-polling, Engine.IO heartbeats, maxHttpBufferSize
// (reads go through the engine's gorilla/websocket connection, which also negotiates per-message deflate).
//
// A broadcaster that pre-encodes its message (as the Socket.IO server's in-memory adapter and this module's adapter
// do) can also write it to a socket directly with [WriteBroadcast], and defer the writes of several broadcasts to
// one per socket with [Batch].
//
// One constraint the engine's own transport does not have: a send callback of the engine's API (engine.Socket.Send
// with a callback; Socket.IO does not use them) runs when its write completes, which can be inside the engine's
// flush of that socket; such a callback must not send on the same socket.
package wstransport

import (
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/lograte"
)

// Defaults of [Options].
const (
	DefaultMaxQueuedBytes = 1 << 20
	DefaultCloseTimeout   = time.Second
)

// ErrSlowClient is why a client that reads slower than it is written to is disconnected: more than
// Options.MaxQueuedBytes were waiting for it. The engine reports it as a "transport error" whose error wraps it.
var ErrSlowClient = errors.New("wstransport: client too slow: send queue full")

// Options configures a [Transport]. Every zero field means its default.
type Options struct {
	// MaxQueuedBytes bounds the bytes waiting for one client beyond what its socket's kernel buffer holds. A send
	// that would go past it disconnects the client with ErrSlowClient, and counts it (Stats.SlowClients). One
	// message larger than the bound still goes out when nothing else is waiting. Default 1 MiB.
	MaxQueuedBytes int

	// CloseTimeout is how long a connection being closed waits for the client to answer its close frame (and for
	// the queued frames to go out) before its TCP connection is closed anyway. Default 1s.
	CloseTimeout time.Duration

	// Logger receives one warning per slow client disconnected (at most one line per 10 s, with the count of
	// those not logged). Default: discard.
	Logger *slog.Logger
}

// Transport builds the websocket transport of one server's connections and holds what they share: the frames of
// the broadcasts being sent, and counters. It implements the engine's transports.TransportCtor; [Install] puts it
// in a server's options. It is safe for concurrent use.
type Transport struct {
	maxQueued    int
	closeTimeout time.Duration
	log          *slog.Logger
	slowLog      lograte.Limiter

	frames frameCache

	open, opened, slow, backlogs, writes atomic.Int64

	noRaw  bool // tests: use the writer goroutine even where non-blocking writes are possible
	noPull bool // tests: a backlogged connection does not take in what the engine buffered until it has caught up
}

var _ transports.TransportCtor = (*Transport)(nil)

// New returns a Transport with these options. Most programs call [Install] instead.
func New(o Options) *Transport {
	t := &Transport{maxQueued: o.MaxQueuedBytes, closeTimeout: o.CloseTimeout, log: o.Logger}
	if t.maxQueued <= 0 {
		t.maxQueued = DefaultMaxQueuedBytes
	}
	if t.closeTimeout <= 0 {
		t.closeTimeout = DefaultCloseTimeout
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Install makes the servers built from opts (socket.ServerOptions or the engine's ServerOptions) use a new
// Transport for their websocket connections, and returns it. Call it before socket.NewServer:
//
//	opts := socket.DefaultServerOptions()
//	wstransport.Install(opts, wstransport.Options{})
//
// The other transports are kept (long-polling by default, which upgrades to this one); a set without a websocket
// transport gets this one added.
func Install(opts config.ServerOptionsInterface, o Options) *Transport {
	t := New(o)
	set := types.NewSet[transports.TransportCtor]()
	if cur := opts.Transports(); cur != nil {
		for _, ctor := range cur.Keys() {
			if ctor.Name() != transports.WEBSOCKET {
				set.Add(ctor)
			}
		}
	} else {
		set.Add(engine.Polling) // the engine's default set: polling and websocket
	}
	set.Add(t)
	opts.SetTransports(set)
	return t
}

// Name implements transports.TransportCtor: "websocket".
func (*Transport) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades implements transports.TransportCtor: a long-polling connection can upgrade to this transport.
func (*Transport) HandlesUpgrades() bool { return true }

// UpgradesTo implements transports.TransportCtor: none.
func (*Transport) UpgradesTo() []string { return nil }

// New implements transports.TransportCtor: the transport of one upgraded connection.
func (t *Transport) New(ctx *types.HttpContext) transports.Transport {
	return newConn(t, ctx)
}

// SharesPreEncodedFrames reports that this transport writes a packet's packet.Options.WsPreEncodedFrame as is and
// builds its frame once for every packet that carries the same buffer, so that a broadcaster can set it on every
// socket-send of a broadcast at no cost (the engine's own transport builds a new message from it per send).
func (*Transport) SharesPreEncodedFrames() bool { return true }

// WriteBroadcast writes a broadcast's packet to one socket without going through the engine's socket, when the
// socket is on this transport: message is the Engine.IO message as the in-memory adapter pre-encodes a broadcast
// for every socket (packet.Options.WsPreEncodedFrame: "4" then the encoded Socket.IO packet, one buffer shared by
// all the sockets of the broadcast), compress the broadcast's compress flag. Its frame is the one shared by every
// socket of the broadcast. This skips the per-socket work of the Socket.IO and Engine.IO layers (a copy of the
// packet, the packet and its options, five events), so the engine's socket emits no "packetCreate", "flush" or
// "drain" for these packets.
//
// It returns false, having done nothing, when the socket is not open or not on this transport, or when the
// engine may hold packets for it (the transport is not writable, or was not since the engine last flushed): the
// caller then writes through the Socket.IO client (Client.WriteToEngine), which keeps the order of the packets
// and drops volatile ones. A client that does not read is disconnected here as in Send (ErrSlowClient).
func WriteBroadcast(s engine.Socket, message types.BufferInterface, compress bool) bool {
	return WriteBroadcastBatch(s, message, compress, nil)
}

// WriteBroadcastBatch is WriteBroadcast, except that when batch is not nil and nobody is writing to the socket,
// the frame is only queued: the socket's writes start at batch.Flush, so that the broadcasts of a batch (a stream
// read) go out to each socket in one writev. Any other write to the socket meanwhile writes them too, in order.
func WriteBroadcastBatch(s engine.Socket, message types.BufferInterface, compress bool, batch *Batch) bool {
	if s == nil || s.ReadyState() != "open" {
		return false
	}
	c, ok := s.Transport().(*conn)
	return ok && c.writeShared(message, compress, batch)
}

// Batch collects the sockets whose writes WriteBroadcastBatch deferred. Its zero value is ready. One goroutine at
// a time uses it, and must call Flush when its batch is done.
type Batch struct {
	conns []*conn
}

// Flush starts the deferred writes, one writev per socket. A large batch (a broadcast to many sockets) is written
// by up to GOMAXPROCS goroutines, each taking a share of the sockets, so that the last socket has it sooner; Flush
// returns when every share is written (or handed to a goroutine of its socket's backlog).
func (b *Batch) Flush() {
	shares := min(runtime.GOMAXPROCS(0), len(b.conns)/flushShare)
	if shares > 1 {
		var wg sync.WaitGroup
		size := (len(b.conns) + shares - 1) / shares
		for part := range slices.Chunk(b.conns[size:], size) {
			wg.Go(func() { flushConns(part) })
		}
		flushConns(b.conns[:size])
		wg.Wait()
	} else {
		flushConns(b.conns)
	}
	clear(b.conns)
	b.conns = b.conns[:0]
}

// flushShare is the fewest sockets Batch.Flush gives a goroutine of its own.
const flushShare = 256

func flushConns(conns []*conn) {
	for _, c := range conns {
		c.mu.Lock()
		c.deferred = false
		if len(c.queue) > 0 {
			c.startLocked()
		} else {
			c.mu.Unlock()
		}
	}
}

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	Connections  int64 `json:"connections"`   // open now
	Opened       int64 `json:"opened"`        // since the Transport was created
	SlowClients  int64 `json:"slow_clients"`  // disconnected with ErrSlowClient
	Backlogs     int64 `json:"backlogs"`      // times a connection's socket buffer was full and a goroutine took over its writes
	Writes       int64 `json:"writes"`        // writes to the sockets (a write takes every frame queued for its socket)
	SharedFrames int64 `json:"shared_frames"` // broadcast frames built, each written to every socket of its broadcast
	Deflated     int64 `json:"deflated"`      // compressed frames built (a broadcast's once, shared by its sockets)
}

// Stats returns the counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Connections:  t.open.Load(),
		Opened:       t.opened.Load(),
		SlowClients:  t.slow.Load(),
		Backlogs:     t.backlogs.Load(),
		Writes:       t.writes.Load(),
		SharedFrames: t.frames.built.Load(),
		Deflated:     t.frames.deflated.Load(),
	}
}
