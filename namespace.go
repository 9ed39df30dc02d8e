package redisstreams

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// nspAdapter is the adapter of one namespace. It embeds the server's in-memory adapter, which does all local
// work; every operation the server calls is overridden to also reach the other servers.
type nspAdapter struct {
	socket.Adapter // in-memory

	parent         *Adapter
	name           string
	uid            string
	stream         string
	publicChannel  string
	privateChannel string
	recovery       bool // connection state recovery enabled on the server
	ttl            time.Duration

	pending pendingSet // sockets being restored

	reqMu       sync.Mutex
	requests    map[string]*request    // fetchSockets and serverSideEmit with ack
	ackRequests map[string]*ackRequest // broadcasts with acknowledgements

	peers peers // the other servers, as the streams-only layout knows them

	attached atomic.Bool
	detached atomic.Bool

	rawBroadcasts atomic.Uint64 // remote broadcasts delivered as the JSON text they arrived as (deliver.go)

	sharedFrames bool // the server's websocket transport shares pre-encoded frames (deliver.go)
}

var _ socket.Adapter = (*nspAdapter)(nil)

// Construct implements socket.Adapter.
func (n *nspAdapter) Construct(nsp socket.Namespace) {
	n.Adapter.Construct(nsp)
	o := n.parent.opts
	n.name = nsp.Name()
	n.stream = wire.StreamName(o.StreamName, o.StreamCount, n.name)
	n.publicChannel = channelName(o.ChannelPrefix, n.name, "")
	n.privateChannel = channelName(o.ChannelPrefix, n.name, n.uid)
	n.requests = map[string]*request{}
	n.ackRequests = map[string]*ackRequest{}
	n.peers = newPeers()
	n.sharedFrames = sharesPreEncodedFrames(nsp.Server().Opts().Transports())
	if csr := nsp.Server().Opts().ConnectionStateRecovery(); csr != nil {
		// The server applies these defaults only to its own adapters; Node applies them whatever the adapter.
		if csr.GetRawMaxDisconnectionDuration() == nil {
			csr.SetMaxDisconnectionDuration(int64(socket.DefaultMaxDisconnectionDuration))
		}
		if csr.GetRawSkipMiddlewares() == nil {
			csr.SetSkipMiddlewares(true)
		}
		n.recovery = true
		n.ttl = time.Duration(csr.MaxDisconnectionDuration()) * time.Millisecond
	}
}

// Init implements socket.Adapter: it joins the cluster (follows the stream, subscribes to the channels).
func (n *nspAdapter) Init() {
	if n.attached.Swap(true) {
		return
	}
	if err := n.parent.register(n); err != nil {
		n.parent.log.Error("redisstreams: namespace could not join the cluster fully", "nsp", n.name, "err", err)
	}
}

// Close implements socket.Adapter: the namespace leaves the cluster (unsubscribes), so the other servers stop
// waiting for it.
func (n *nspAdapter) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), n.parent.opts.RequestsTimeout)
	defer cancel()
	n.detach(ctx)
}

func (n *nspAdapter) detach(ctx context.Context) {
	if !n.attached.Load() || n.detached.Swap(true) {
		return
	}
	if err := n.parent.layout.leave(ctx, n); err != nil {
		n.parent.log.Warn("redisstreams: leaving the cluster failed", "nsp", n.name, "err", err)
	}
	n.parent.unregister(n)
	n.failPending()
}

func (n *nspAdapter) opts() *Options { return &n.parent.opts }

func (n *nspAdapter) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.opts().RequestsTimeout)
}

// ServerCount implements socket.Adapter: the subscribers of the namespace's public channel, this server included;
// in streams-only mode 1 + the servers heard from within HeartbeatTimeout (see layout). The interface has no error:
// when Redis cannot answer it logs and counts only this server.
func (n *nspAdapter) ServerCount() int64 {
	count, err := n.serverCount()
	if err != nil {
		n.parent.logLimited(&n.parent.countLog, slog.LevelWarn, "redisstreams: server count failed", "nsp", n.name, "err", err)
		return 1
	}
	return count
}

func (n *nspAdapter) serverCount() (int64, error) {
	ctx, cancel := n.requestCtx()
	defer cancel()
	count, err := n.parent.layout.serverCount(ctx, n)
	if err != nil {
		return 0, fmt.Errorf("redisstreams: server count: %w", err)
	}
	return count, nil
}

// Broadcast implements socket.Adapter. The entry is written to the stream before local delivery only when the
// packet needs its offset (connection state recovery); otherwise local clients are served at once and the write
// is queued behind the ones before it.
func (n *nspAdapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	flags := flagsOf(opts)
	if flags.Local {
		n.deliverPacket(packet, opts)
		return
	}
	readBinaryArgs(packet)
	msg := &wire.Message{Type: wire.Broadcast, UID: n.uid, Nsp: n.name, Packet: wirePacket(packet), Opts: wireOptions(opts)}
	if n.recovery && recoverable(int(packet.Type), packet.Id, flags.Volatile) {
		ctx, cancel := n.requestCtx()
		offset, err := n.publishStream(ctx, msg, true)
		cancel()
		if data, ok := packet.Data.([]any); ok && err == nil {
			data = append(data, offset)
			packet.Data = data
			if routed := n.routePending(offset, false, data, msg.Opts, opts); routed != opts {
				n.deliverPacketAt(packet, routed, offset)
				return
			}
		}
	} else {
		_, _ = n.publishStream(context.Background(), msg, false)
	}
	// The room lists were read into msg.Opts already.
	n.deliverOwn(packet, msg, flags)
}

// publishStream encodes msg at once (the caller's packet may change afterwards) and queues the XADD; with wait it
// returns the entry ID.
func (n *nspAdapter) publishStream(ctx context.Context, msg *wire.Message, wait bool) (string, error) {
	fields, err := msg.StreamFields(n.opts().OnlyPlaintext)
	if err != nil {
		n.parent.log.Error("redisstreams: cannot encode message", "nsp", n.name, "type", msg.Type, "err", err)
		return "", err
	}
	op := rdb.Op{Stream: n.stream, MaxLen: max(n.opts().MaxLen, 0), Fields: fields}
	n.parent.layout.wrote(n)
	if !wait {
		return "", n.parent.pub.fire(op)
	}
	if n.parent.pub.unavailable() {
		// Writes are held: the entry goes out when Redis is back, and the caller does not wait for its ID.
		if err := n.parent.pub.fire(op); err != nil {
			return "", err
		}
		return "", ErrUnavailable
	}
	id, err := n.parent.pub.do(ctx, op)
	if err != nil {
		n.parent.logWriteError("redisstreams: stream write failed", "nsp", n.name, "stream", n.stream, "err", err)
	}
	return id, err
}

// send writes a request (to "": every other server) or a response (to: the requester's uid) the way the layout
// carries them; with wait it returns once Redis accepted it.
func (n *nspAdapter) send(ctx context.Context, to string, msg *wire.Message, wait bool) error {
	return n.parent.layout.send(ctx, n, to, msg, wait)
}

// AddSockets implements socket.Adapter.
func (n *nspAdapter) AddSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	if !flagsOf(opts).Local {
		n.publishStream(context.Background(), &wire.Message{Type: wire.SocketsJoin, UID: n.uid, Nsp: n.name,
			Opts: wireOptions(opts), Rooms: roomStrings(rooms)}, false)
	}
	n.Adapter.AddSockets(opts, rooms)
}

// DelSockets implements socket.Adapter.
func (n *nspAdapter) DelSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	if !flagsOf(opts).Local {
		n.publishStream(context.Background(), &wire.Message{Type: wire.SocketsLeave, UID: n.uid, Nsp: n.name,
			Opts: wireOptions(opts), Rooms: roomStrings(rooms)}, false)
	}
	n.Adapter.DelSockets(opts, rooms)
}

// DisconnectSockets implements socket.Adapter.
func (n *nspAdapter) DisconnectSockets(opts *socket.BroadcastOptions, close bool) {
	if !flagsOf(opts).Local {
		n.publishStream(context.Background(), &wire.Message{Type: wire.DisconnectSockets, UID: n.uid, Nsp: n.name,
			Opts: wireOptions(opts), Close: close}, false)
	}
	n.disconnectLocal(opts, close)
}

// disconnectLocal disconnects the matching local sockets. With close, the server's own Disconnect(true) closes the
// websocket before its queued writes are out (servers/engine v3.0.6 drops them), so the client loses the DISCONNECT
// packet and whatever was emitted just before. Instead the socket is disconnected, and the connection closed after
// the write callback of a packet queued behind everything else (all of it has reached the client) and a grace
// period for the client to close it first.
func (n *nspAdapter) disconnectLocal(opts *socket.BroadcastOptions, close bool) {
	if !close {
		n.Adapter.DisconnectSockets(opts, false)
		return
	}
	var matched []*socket.Socket
	n.Adapter.FetchSockets(opts)(func(list []socket.SocketDetails, _ error) {
		for _, d := range list {
			if s, ok := d.(*socket.Socket); ok {
				matched = append(matched, s)
			}
		}
	})
	if len(matched) == 0 {
		return
	}
	// A second DISCONNECT for a namespace the client has already left is ignored by clients.
	encoded := n.Nsp().Server().Encoder().Encode(&parser.Packet{Type: parser.DISCONNECT, Nsp: n.name})
	for _, s := range matched {
		conn := s.Conn()
		s.Disconnect(false)
		if len(encoded) != 1 || conn.ReadyState() != "open" {
			conn.Close(false)
			continue
		}
		conn.Write(encoded[0].Clone(), nil, func(transports.Transport) {
			// A client whose last namespace was disconnected closes the connection itself; closing it from here
			// at once can overtake the DISCONNECT it is still processing (it then reports "transport close").
			time.AfterFunc(disconnectGrace, func() { conn.Close(false) })
		})
	}
}

// disconnectGrace is how long disconnectSockets(close) leaves a client to close its connection by itself.
const disconnectGrace = time.Second

// onMessage handles a message from another server, read from the stream or a channel. What may take long or run
// the application's code goes to the workers (workers.go): answers to requests keyed by request or sender, the
// application's serverSideEmit handlers keyed by sender (so that one server's events run in the order sent).
// Responses to this server's requests are handled here at once: they must never wait behind a callback that waits
// for them.
func (n *nspAdapter) onMessage(msg *wire.Message) {
	if n.parent.layout.heard(n, msg.UID, msg.Type) {
		return
	}
	switch msg.Type {
	case wire.Broadcast:
		if msg.RequestID != "" {
			n.parent.answers.submit(msg.UID, func() { n.onBroadcastWithAck(msg) })
			return
		}
		n.onBroadcast(msg)
	case wire.SocketsJoin:
		n.Adapter.AddSockets(localOptions(msg.Opts), toRooms(msg.Rooms))
	case wire.SocketsLeave:
		n.Adapter.DelSockets(localOptions(msg.Opts), toRooms(msg.Rooms))
	case wire.DisconnectSockets:
		n.disconnectLocal(localOptions(msg.Opts), msg.Close)
	case wire.FetchSockets:
		n.parent.answers.submit(msg.RequestID, func() { n.onFetchSockets(msg) })
	case wire.ServerSideEmit:
		n.parent.callbacks.submit(msg.UID, func() { n.onServerSideEmit(msg) })
	case wire.FetchSocketsResponse, wire.ServerSideEmitResponse:
		n.onResponse(msg)
	case wire.BroadcastClientCount, wire.BroadcastAck:
		n.onAckResponse(msg)
	default:
		// Heartbeats and ADAPTER_CLOSE belong to the streams-only layout; Node 0.3 ignores them too.
	}
}

func (n *nspAdapter) onBroadcast(msg *wire.Message) {
	packet := localPacket(msg.Packet)
	opts := localOptions(msg.Opts)
	var offset string
	if n.recovery && msg.Offset != "" && recoverable(msg.Packet.Type, msg.Packet.ID, msg.Opts.Flags.Volatile) {
		offset = msg.Offset
		data := append(packet.Data.([]any), offset)
		packet.Data = data
		opts = n.routePending(offset, true, data, msg.Opts, opts)
	}
	n.deliverPacketAt(packet, opts, offset)
}

// readBinaryArgs replaces top-level io.Reader arguments with their bytes, so that the same bytes go to Redis and
// to local clients.
func readBinaryArgs(packet *parser.Packet) {
	data, ok := packet.Data.([]any)
	if !ok {
		return
	}
	for i, v := range data {
		if r, ok := v.(io.Reader); ok {
			if _, isBuffer := v.(types.BufferInterface); isBuffer {
				continue // read without consuming by the codec
			}
			if b, err := io.ReadAll(r); err == nil {
				data[i] = b
			}
		}
	}
}

func flagsOf(opts *socket.BroadcastOptions) *socket.BroadcastFlags {
	if opts != nil && opts.Flags != nil {
		return opts.Flags
	}
	return &socket.BroadcastFlags{}
}

func wirePacket(p *parser.Packet) *wire.Packet {
	out := &wire.Packet{Type: int(p.Type), ID: p.Id}
	switch d := p.Data.(type) {
	case []any:
		out.Data = d
	case nil:
	default:
		out.Data = []any{d}
	}
	return out
}

// localPacket is the packet to deliver to local clients: values only msgpack can carry are shown as Node shows
// them (wire.ForClients).
func localPacket(p *wire.Packet) *parser.Packet {
	data := p.Data
	if data == nil {
		data = []any{}
	}
	wire.ForClients(data)
	return &parser.Packet{Type: parser.PacketType(p.Type), Data: data, Id: p.ID}
}

func wireOptions(opts *socket.BroadcastOptions) *wire.Options {
	out := &wire.Options{Rooms: []string{}, Except: []string{}}
	if opts == nil {
		return out
	}
	if opts.Rooms != nil {
		for _, r := range opts.Rooms.Keys() {
			out.Rooms = append(out.Rooms, string(r))
		}
	}
	if opts.Except != nil {
		for _, r := range opts.Except.Keys() {
			out.Except = append(out.Except, string(r))
		}
	}
	if f := opts.Flags; f != nil {
		out.Flags.Volatile = f.Volatile
		out.Flags.Compress = f.Compress
		out.Flags.ExpectSingleResponse = f.ExpectSingleResponse
		if f.Timeout != nil {
			ms := f.Timeout.Milliseconds()
			out.Flags.Timeout = &ms
		}
	}
	return out
}

func localOptions(o *wire.Options) *socket.BroadcastOptions {
	if o == nil {
		o = &wire.Options{}
	}
	flags := &socket.BroadcastFlags{}
	flags.Volatile = o.Flags.Volatile
	flags.Compress = o.Flags.Compress
	flags.ExpectSingleResponse = o.Flags.ExpectSingleResponse
	if o.Flags.Timeout != nil {
		d := time.Duration(*o.Flags.Timeout) * time.Millisecond
		flags.Timeout = &d
	}
	return &socket.BroadcastOptions{
		Rooms:  types.NewSet(toRooms(o.Rooms)...),
		Except: types.NewSet(toRooms(o.Except)...),
		Flags:  flags,
	}
}

func toRooms(s []string) []socket.Room {
	out := make([]socket.Room, len(s))
	for i, r := range s {
		out[i] = socket.Room(r)
	}
	return out
}

func roomStrings(rooms []socket.Room) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = string(r)
	}
	return out
}

func (n *nspAdapter) String() string { return fmt.Sprintf("redisstreams(%s, uid %s)", n.name, n.uid) }
