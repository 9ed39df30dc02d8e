// Package emitter sends Socket.IO broadcasts and cluster operations to servers that use the redisstreams adapter
// (or the Node package @socket.io/redis-streams-adapter), from a process that is not a Socket.IO server: a worker,
// a cron job, the HTTP handler of another service.
//
// Create one with [New] from a Backend (goredisbackend for go-redis, rueidisbackend for rueidis; either family
// reaches servers of both), with the servers' naming options:
//
//	io, err := emitter.New(goredisbackend.New(rdb), emitter.Options{})
//	if err != nil {
//		return err
//	}
//	id, err := io.Of("/chat").To("room-1").Emit("news", "hello") // id: the stream entry, the recovery offset
//	n, err := io.ServerCount()                                   // servers hosting "/"
//
// It writes exactly the stream entries that the Node package @socket.io/redis-streams-emitter 0.1.1 writes (uid
// "emitter", fields uid, nsp, type, data, the same JSON or MessagePack data), with one difference: Options.StreamCount
// is honoured, with the adapter's namespace hash (negative indexes included), so that the entries reach the stream
// the servers read. Node's emitter always writes to the base stream.
//
// Every server delivers an emitted broadcast with the entry ID as its connection state recovery offset, as it does
// its own broadcasts; an emitter is never counted as a server (it neither subscribes nor heartbeats).
//
// # Operators
//
// An *Emitter is an immutable value: Of, To, In, Except, Volatile and Compress return a new Emitter and leave the
// receiver unchanged, so a configured Emitter can be shared and refined by many goroutines at once.
//
// # Contexts
//
// Each operation comes in two forms, in the manner of net.Dialer's Dial and DialContext: the plain one (Emit,
// SocketsJoin, ServerCount, ...) is bounded by Options.RequestsTimeout; the ...Context one (EmitContext,
// SocketsJoinContext, ServerCountContext, ...) takes a context first and is bounded by it alone.
//
// # Delivery
//
// A write returns the ID of its stream entry once Redis has stored it: every server that reads the stream then
// applies it. For a broadcast, the ID is the connection state recovery offset its clients receive with it. An
// error means the entry may or may not have been stored (the reply was lost): retrying can deliver it twice.
// Acknowledgements (emitWithAck, serverSideEmit with ack) and fetchSockets need a server and are not offered.
package emitter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// ErrReservedEvent is returned by Emit for the event names the Socket.IO client reserves ("connect",
// "connect_error", "disconnect", "disconnecting", "newListener", "removeListener").
var ErrReservedEvent = errors.New("emitter: reserved event name")

var reservedEvents = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// Options configure an Emitter. The names, meanings and defaults are the adapter's (redisstreams.Options): an
// emitter must use the same StreamName, StreamCount and ChannelPrefix as the servers it talks to. The zero value of
// every field means its default.
type Options struct {
	// StreamName is the Redis stream key, or the key prefix when StreamCount > 1. Default "socket.io".
	StreamName string

	// StreamCount: namespaces are spread over "<StreamName>-<i>" with the adapter's namespace hash when > 1.
	// Default 1.
	StreamCount int

	// MaxLen bounds each stream with approximate trimming (XADD MAXLEN ~). Default 10000. Negative disables
	// trimming.
	MaxLen int64

	// ChannelPrefix prefixes the PUB/SUB channels; ServerCount counts the subscribers of "<prefix>#<nsp>#".
	// Default "socket.io". Unused with StreamsOnly.
	ChannelPrefix string

	// UseShardedPubSub: ServerCount uses PUBSUB SHARDNUMSUB (the servers use SSUBSCRIBE). Default false.
	UseShardedPubSub bool

	// OnlyPlaintext skips binary detection and always encodes data as JSON ([]byte arguments then travel as
	// base64 strings), as the adapter's option does. Default false.
	OnlyPlaintext bool

	// StreamsOnly: the servers use the streams-only layout (Node 0.2.x). The entries written are the same;
	// ServerCount counts the servers heard from on the stream within HeartbeatTimeout instead of PUB/SUB
	// subscribers. Default false.
	StreamsOnly bool

	// HeartbeatTimeout (StreamsOnly only): how recently a server must have written to the stream to be counted
	// by ServerCount. Default 10s, the adapter's.
	HeartbeatTimeout time.Duration

	// HeartbeatInterval (StreamsOnly only): the servers' Options.HeartbeatInterval, the longest a live server stays
	// silent. Default 5s, the adapter's.
	HeartbeatInterval time.Duration

	// RequestsTimeout bounds each operation of the forms without a context. Default 5s.
	RequestsTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.StreamName == "" {
		o.StreamName = wire.DefaultStreamName
	}
	if o.StreamCount == 0 {
		o.StreamCount = wire.DefaultStreamCount
	}
	if o.MaxLen == 0 {
		o.MaxLen = wire.DefaultMaxLen
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = wire.DefaultChannelPrefix
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = wire.DefaultHeartbeatTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = wire.DefaultHeartbeatInterval
	}
	if o.RequestsTimeout == 0 {
		o.RequestsTimeout = wire.DefaultRequestsTimeout
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.StreamCount < 0:
		return fmt.Errorf("emitter: Options.StreamCount must be >= 1, got %d", o.StreamCount)
	case strings.ContainsAny(o.ChannelPrefix, "*?[]"):
		return fmt.Errorf("emitter: Options.ChannelPrefix %q must not contain glob characters", o.ChannelPrefix)
	case o.HeartbeatTimeout < 0:
		return fmt.Errorf("emitter: Options.HeartbeatTimeout must be > 0, got %v", o.HeartbeatTimeout)
	case o.HeartbeatInterval < 0:
		return fmt.Errorf("emitter: Options.HeartbeatInterval must be > 0, got %v", o.HeartbeatInterval)
	case o.RequestsTimeout < 0:
		return fmt.Errorf("emitter: Options.RequestsTimeout must be > 0, got %v", o.RequestsTimeout)
	}
	return nil
}

// Emitter targets one namespace, with rooms, exceptions and flags. Its zero value is not usable: make one with New.
// It is immutable and safe for concurrent use.
type Emitter struct {
	client rdb.Client
	opts   *Options
	nsp    string
	rooms  []string     // in order, without duplicates
	except []string     // in order, without duplicates
	flags  []wire.Field // "volatile" / "compress", in the order first set, as Node's Object.assign keeps them
}

// Backend is the Redis client an Emitter writes through: goredisbackend.New(client) for go-redis v9,
// rueidisbackend.New(client) for rueidis (the same type as redisstreams.Backend).
type Backend = rdb.Backend

// New returns an Emitter for the main namespace "/" that writes through backend. The Redis client behind it remains
// the caller's; the Emitter starts no goroutine and holds no connection of its own, so it has no Close.
func New(backend Backend, opts Options) (*Emitter, error) {
	if backend == nil {
		return nil, errors.New("emitter: nil Backend")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c, err := backend.Open(opts.UseShardedPubSub)
	if err != nil {
		return nil, fmt.Errorf("emitter: %w", err)
	}
	return newEmitter(c, opts), nil
}

func newEmitter(c rdb.Client, opts Options) *Emitter {
	o := opts.withDefaults()
	return &Emitter{client: c, opts: &o, nsp: "/"}
}

// Namespace returns the namespace the Emitter targets.
func (e *Emitter) Namespace() string { return e.nsp }

// Stream returns the stream the Emitter's entries are written to.
func (e *Emitter) Stream() string {
	return wire.StreamName(e.opts.StreamName, e.opts.StreamCount, e.nsp)
}

// Of returns an Emitter for namespace nsp, without rooms, exceptions or flags. A name without its leading "/" gets
// one, as the Socket.IO server's Of does.
func (e *Emitter) Of(nsp string) *Emitter {
	if !strings.HasPrefix(nsp, "/") {
		nsp = "/" + nsp
	}
	return &Emitter{client: e.client, opts: e.opts, nsp: nsp}
}

// To returns an Emitter that also targets these rooms: a socket receives the operation if it is in any of them.
func (e *Emitter) To(rooms ...string) *Emitter {
	c := *e
	c.rooms = addRooms(e.rooms, rooms)
	return &c
}

// In is To.
func (e *Emitter) In(rooms ...string) *Emitter { return e.To(rooms...) }

// Except returns an Emitter that excludes the sockets in any of these rooms.
func (e *Emitter) Except(rooms ...string) *Emitter {
	c := *e
	c.except = addRooms(e.except, rooms)
	return &c
}

// Volatile returns an Emitter whose broadcasts may be dropped for clients that are not ready to receive them.
// Volatile broadcasts carry no recovery offset.
func (e *Emitter) Volatile() *Emitter { return e.withFlag("volatile", true) }

// Compress returns an Emitter whose broadcasts the servers send with this compression flag.
func (e *Emitter) Compress(compress bool) *Emitter { return e.withFlag("compress", compress) }

func (e *Emitter) withFlag(name string, v bool) *Emitter {
	c := *e
	c.flags = slices.Clone(e.flags)
	if i := slices.IndexFunc(c.flags, func(f wire.Field) bool { return f.Key == name }); i >= 0 {
		c.flags[i].Value = v
	} else {
		c.flags = append(c.flags, wire.Field{Key: name, Value: v})
	}
	return &c
}

func addRooms(have, add []string) []string {
	out := slices.Clip(have)
	for _, r := range add {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Emit broadcasts an event to the targeted clients of every server. Arguments are encoded as the adapter encodes
// them: []byte (at any depth) is binary, other values as JSON. See EmitContext.
func (e *Emitter) Emit(event string, args ...any) (id string, err error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.EmitContext(ctx, event, args...)
}

// EmitContext is Emit bounded by ctx.
func (e *Emitter) EmitContext(ctx context.Context, event string, args ...any) (id string, err error) {
	if slices.Contains(reservedEvents, event) {
		return "", fmt.Errorf("%w: %q", ErrReservedEvent, event)
	}
	data := make([]any, 0, 1+len(args))
	data = append(data, event)
	data = append(data, args...)
	flags := wire.Object(e.flags)
	if flags == nil {
		flags = wire.Object{}
	}
	return e.write(ctx, wire.Broadcast, wire.Object{
		{Key: "packet", Value: wire.Object{{Key: "type", Value: 2}, {Key: "data", Value: data}, {Key: "nsp", Value: e.nsp}}},
		{Key: "opts", Value: wire.Object{{Key: "rooms", Value: e.roomList()}, {Key: "flags", Value: flags}, {Key: "except", Value: e.exceptList()}}},
	})
}

// SocketsJoin makes the targeted sockets of every server join rooms. See SocketsJoinContext.
func (e *Emitter) SocketsJoin(rooms ...string) (id string, err error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.SocketsJoinContext(ctx, rooms...)
}

// SocketsJoinContext is SocketsJoin bounded by ctx.
func (e *Emitter) SocketsJoinContext(ctx context.Context, rooms ...string) (id string, err error) {
	return e.write(ctx, wire.SocketsJoin, wire.Object{{Key: "opts", Value: e.socketsOpts()}, {Key: "rooms", Value: nonNil(rooms)}})
}

// SocketsLeave makes the targeted sockets of every server leave rooms. See SocketsLeaveContext.
func (e *Emitter) SocketsLeave(rooms ...string) (id string, err error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.SocketsLeaveContext(ctx, rooms...)
}

// SocketsLeaveContext is SocketsLeave bounded by ctx.
func (e *Emitter) SocketsLeaveContext(ctx context.Context, rooms ...string) (id string, err error) {
	return e.write(ctx, wire.SocketsLeave, wire.Object{{Key: "opts", Value: e.socketsOpts()}, {Key: "rooms", Value: nonNil(rooms)}})
}

// DisconnectSockets disconnects the targeted sockets of every server; with close, their underlying connections
// are closed too. See DisconnectSocketsContext.
func (e *Emitter) DisconnectSockets(close bool) (id string, err error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.DisconnectSocketsContext(ctx, close)
}

// DisconnectSocketsContext is DisconnectSockets bounded by ctx.
func (e *Emitter) DisconnectSocketsContext(ctx context.Context, close bool) (id string, err error) {
	return e.write(ctx, wire.DisconnectSockets, wire.Object{{Key: "opts", Value: e.socketsOpts()}, {Key: "close", Value: close}})
}

// ServerSideEmit emits an event to the namespace of every server (their serverSideEmit handlers). Rooms,
// exceptions and flags do not apply. Acknowledgements are not supported: a server that calls the acknowledgement
// function is not heard. See ServerSideEmitContext.
func (e *Emitter) ServerSideEmit(event string, args ...any) (id string, err error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.ServerSideEmitContext(ctx, event, args...)
}

// ServerSideEmitContext is ServerSideEmit bounded by ctx.
func (e *Emitter) ServerSideEmitContext(ctx context.Context, event string, args ...any) (id string, err error) {
	packet := make([]any, 0, 1+len(args))
	packet = append(packet, event)
	packet = append(packet, args...)
	return e.write(ctx, wire.ServerSideEmit, wire.Object{{Key: "packet", Value: packet}})
}

// ServerCount returns the number of servers that host the Emitter's namespace. See ServerCountContext.
func (e *Emitter) ServerCount() (int64, error) {
	ctx, cancel := e.timeout()
	defer cancel()
	return e.ServerCountContext(ctx)
}

// ServerCountContext is ServerCount bounded by ctx. It counts the subscribers of the namespace's public PUB/SUB
// channel, or with StreamsOnly the servers heard from on its stream within HeartbeatTimeout (the newest entries
// first, 100,000 at most). The emitter itself is never counted.
//
// With StreamsOnly, when those entries cover less than HeartbeatInterval (above about 20,000 writes a second with
// the defaults) a server that wrote nothing in them may be missed: the count is returned with an error wrapping
// ErrIncompleteCount.
func (e *Emitter) ServerCountContext(ctx context.Context) (int64, error) {
	if e.opts.StreamsOnly {
		now := time.Now()
		members, oldest, err := rdb.Members(ctx, e.client, e.Stream(), now.Add(-e.opts.HeartbeatTimeout), maxMemberScan)
		if err != nil {
			return 0, fmt.Errorf("emitter: server count: %w", err)
		}
		n := int64(len(members[e.nsp]))
		if !oldest.IsZero() && now.Sub(oldest) < e.opts.HeartbeatInterval {
			return n, fmt.Errorf("emitter: server count: %w: the last %d entries go back %v only", ErrIncompleteCount,
				maxMemberScan, now.Sub(oldest).Round(time.Millisecond))
		}
		return n, nil
	}
	n, err := e.client.NumSub(ctx, wire.ChannelName(e.opts.ChannelPrefix, e.nsp, ""))
	if err != nil {
		return 0, fmt.Errorf("emitter: server count: %w", err)
	}
	return n, nil
}

// ErrIncompleteCount: a streams-only server count may have missed servers (see ServerCountContext).
var ErrIncompleteCount = errors.New("emitter: incomplete server count")

// maxMemberScan bounds the entries ServerCount reads in streams-only mode.
const maxMemberScan = 100_000

func (e *Emitter) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.opts.RequestsTimeout)
}

func (e *Emitter) roomList() []string   { return nonNil(e.rooms) }
func (e *Emitter) exceptList() []string { return nonNil(e.except) }

// socketsOpts is the opts of SOCKETS_JOIN, SOCKETS_LEAVE and DISCONNECT_SOCKETS: flags are always empty there.
func (e *Emitter) socketsOpts() wire.Object {
	return wire.Object{{Key: "rooms", Value: e.roomList()}, {Key: "except", Value: e.exceptList()}, {Key: "flags", Value: wire.Object{}}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (e *Emitter) write(ctx context.Context, t wire.MessageType, data wire.Object) (string, error) {
	fields, err := wire.OrderedStreamFields(t, wire.EmitterUID, e.nsp, data, e.opts.OnlyPlaintext)
	if err != nil {
		return "", fmt.Errorf("emitter: %w", err)
	}
	op := &rdb.Op{Stream: e.Stream(), MaxLen: max(e.opts.MaxLen, 0), Fields: fields}
	e.client.Batch(ctx, []*rdb.Op{op})
	if op.Err != nil {
		return "", fmt.Errorf("emitter: %v to %s (namespace %s): %w", t, op.Stream, e.nsp, op.Err)
	}
	return op.ID, nil
}
