package redisstreams

import (
	"reflect"
	"strings"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/socketio-go/redisstreams/wstransport"
)

// Local delivery of broadcasts. It does what the server's in-memory adapter does in Broadcast (servers/socket
// v3.0.6 adapter.go: same socket selection, outgoing-packet listeners, Client.WriteToEngine with the same write
// options), with two differences that only change the cost:
//   - the packet is encoded when the first matching socket is found, so a server with no matching client
//     encodes nothing;
//   - the write options carry a WsPreEncodedFrame only when the server's websocket transport shares it (this
//     module's wstransport builds the broadcast's frame once from it). servers/engine v3.0.6's own transport
//     turns that frame into a new gorilla PreparedMessage for every socket-send (several KB of garbage each);
//     without it, it writes the encoded packet straight into the connection's buffer, which is what it does
//     anyway for polling, for per-message deflate, and for binary packets.
// Broadcasts with acknowledgements still go through the in-memory adapter (BroadcastWithAck).

// defaultEncoderType is the type of the Socket.IO parser's own encoder: the raw path writes what it writes.
var defaultEncoderType = reflect.TypeOf(parser.NewEncoder())

// rawEncoding reports whether this namespace's server encodes packets with the default Socket.IO parser, whose
// text encoding the raw path reproduces.
func (n *nspAdapter) rawEncoding() bool {
	return reflect.TypeOf(n.Nsp().Server().Encoder()) == defaultEncoderType
}

// deliverPacket delivers a decoded packet to the local sockets opts selects.
func (n *nspAdapter) deliverPacket(packet *parser.Packet, opts *socket.BroadcastOptions) {
	n.deliverPacketAt(packet, opts, "")
}

// deliverPacketAt is deliverPacket for a packet that carries the offset of its stream entry ("" when none): a
// restored socket that got that entry in its replay does not get it again (see replayed).
func (n *nspAdapter) deliverPacketAt(packet *parser.Packet, opts *socket.BroadcastOptions, offset string) {
	var rooms, except []socket.Room
	if opts != nil {
		if opts.Rooms != nil {
			rooms = opts.Rooms.Keys()
		}
		if opts.Except != nil {
			except = opts.Except.Keys()
		}
	}
	flags := flagsOf(opts)
	n.deliverPacketTo(packet, rooms, except, flags.Volatile, flags.Compress, offset)
}

// deliverPacketTo delivers a decoded packet (of the stream entry offset, or "") to the local sockets in any of
// rooms (all when empty) and in none of except.
func (n *nspAdapter) deliverPacketTo(packet *parser.Packet, rooms, except []socket.Room, volatile bool, compress *bool, offset string) {
	packet.Nsp = n.name
	d := delivery{n: n, packet: packet, volatile: volatile, compress: compress, offset: offset}
	n.forEachSocket(rooms, except, &d)
}

// deliverOwn delivers a broadcast of this server after its stream entry was encoded: when the entry holds the
// arguments' JSON text (plain values only), local clients get that text, so the packet is not encoded twice.
// Outgoing-packet listeners still get the packet itself.
func (n *nspAdapter) deliverOwn(packet *parser.Packet, msg *wire.Message, flags *socket.BroadcastFlags) {
	rooms, except := toRooms(msg.Opts.Rooms), toRooms(msg.Opts.Except)
	args := msg.PlainArgs()
	_, isArray := packet.Data.([]any)
	var offset string
	if data, ok := packet.Data.([]any); ok && len(data) == len(msg.Packet.Data)+1 { // the offset, appended after XADD
		if o, ok := data[len(data)-1].(string); ok && wire.IsStreamID(o) {
			offset = o
		}
	}
	if len(args) < 3 || !isArray || packet.Type != parser.EVENT || packet.Id != nil || !n.rawEncoding() {
		n.deliverPacketTo(packet, rooms, except, flags.Volatile, flags.Compress, offset)
		return
	}
	if data, ok := packet.Data.([]any); ok && len(data) > len(msg.Packet.Data) {
		if offset == "" {
			n.deliverPacketTo(packet, rooms, except, flags.Volatile, flags.Compress, "")
			return
		}
		args = args[:len(args)-1] + `,"` + offset + `"]`
	}
	packet.Nsp = n.name
	d := delivery{n: n, packet: packet, raw: args, volatile: flags.Volatile, compress: flags.Compress, offset: offset}
	n.forEachSocket(rooms, except, &d)
}

// deliverRaw delivers an EVENT packet whose arguments are the JSON text data (an array, event name first, checked
// by wire.ScanBroadcast), without decoding them unless an outgoing-packet listener needs the packet. The writes to
// wstransport sockets start at batch.Flush.
func (n *nspAdapter) deliverRaw(data string, o *wire.Options, offset string, batch *wstransport.Batch) {
	d := delivery{n: n, raw: data, volatile: o.Flags.Volatile, compress: o.Flags.Compress, offset: offset, batch: batch}
	n.forEachSocket(toRooms(o.Rooms), toRooms(o.Except), &d)
}

// delivery is one broadcast being written to local sockets. What it needs is computed at the first socket that
// needs it: the decoded packet (outgoing-packet listeners), the encoded packet, the write options.
type delivery struct {
	n        *nspAdapter
	packet   *parser.Packet // nil on the raw path until a listener needs it
	raw      string         // raw path: the JSON text of the arguments
	volatile bool
	compress *bool
	offset   string // of the stream entry, when it carries one (connection state recovery)

	encoded   []types.BufferInterface
	writeOpts *socket.WriteOptions
	message   types.BufferInterface // the pre-encoded Engine.IO message, when the transport shares it
	batch     *wstransport.Batch    // the stream read this broadcast came with (raw path); nil: write at once
}

func (d *delivery) decoded() *parser.Packet {
	if d.packet == nil {
		v, err := wire.DecodeJSON([]byte(d.raw))
		if err != nil { // cannot happen: ScanBroadcast validated the text
			v = []any{}
		}
		d.packet = &parser.Packet{Type: parser.EVENT, Nsp: d.n.name, Data: wire.ForClients(v)}
	}
	return d.packet
}

// send does for one socket what the in-memory adapter's Broadcast does.
func (d *delivery) send(s *socket.Socket) {
	// NotifyOutgoingListeners is never nil (a method value): ask whether the socket has listeners first, so that
	// the raw path decodes the packet only for a socket that has some.
	if len(s.ListenersAnyOutgoing()) > 0 {
		s.NotifyOutgoingListeners()(d.decoded())
	}
	if d.encoded == nil {
		if d.raw != "" {
			// The parser's text encoding of an EVENT: 2[<nsp>,]<data>.
			var sb strings.Builder
			sb.Grow(len(d.n.name) + len(d.raw) + 2)
			sb.WriteByte('0' + byte(parser.EVENT))
			if d.n.name != "/" {
				sb.WriteString(d.n.name)
				sb.WriteByte(',')
			}
			sb.WriteString(d.raw)
			d.encoded = []types.BufferInterface{types.NewStringBufferString(sb.String())}
		} else {
			d.encoded = d.n.Nsp().Server().Encoder().Encode(d.packet)
		}
		d.writeOpts = &socket.WriteOptions{}
		d.writeOpts.PreEncoded = true
		d.writeOpts.Volatile = d.volatile
		d.writeOpts.Compress = d.compress
		if sb, ok := d.encoded[0].(*types.StringBuffer); ok && len(d.encoded) == 1 && d.n.sharedFrames {
			// The Engine.IO message as the in-memory adapter pre-encodes it: "4" (MESSAGE), then the packet.
			d.message = types.NewStringBuffer(make([]byte, 0, 1+sb.Len()))
			_ = d.message.WriteByte('4')
			_, _ = d.message.Write(sb.Bytes())
			d.writeOpts.WsPreEncodedFrame = d.message
		}
	}
	// On wstransport, the socket gets the broadcast's shared frame directly, unless the engine may hold packets
	// for it (then WriteToEngine keeps their order); from the stream, its writes start once the batch is done.
	if d.message != nil && wstransport.WriteBroadcastBatch(s.Conn(), d.message, d.compress == nil || *d.compress, d.batch) {
		return
	}
	s.Client().WriteToEngine(d.encoded, d.writeOpts)
}

// sharesPreEncodedFrames reports whether the websocket transport among these (a server's) writes a packet's
// WsPreEncodedFrame once for every socket of a broadcast (wstransport.Transport does).
func sharesPreEncodedFrames(set *types.Set[transports.TransportCtor]) bool {
	if set == nil {
		return false
	}
	for _, ctor := range set.Keys() {
		if s, ok := ctor.(interface{ SharesPreEncodedFrames() bool }); ok && ctor.Name() == transports.WEBSOCKET {
			return s.SharesPreEncodedFrames()
		}
	}
	return false
}

// forEachSocket calls d.send for every connected local socket in any of rooms (every socket when there is none)
// and in none of except, once each: the in-memory adapter's apply. A socket is excluded by its own room even before
// it has joined it (a socket being restored, for which routePending holds the packet), and a restored socket does
// not get an entry its replay held (replayed).
func (n *nspAdapter) forEachSocket(rooms, except []socket.Room, d *delivery) {
	roomIndex := n.Adapter.Rooms()
	var excluded map[socket.SocketId]struct{}
	for _, room := range except {
		if excluded == nil {
			excluded = map[socket.SocketId]struct{}{}
		}
		excluded[socket.SocketId(room)] = struct{}{}
		if ids, ok := roomIndex.Load(room); ok {
			for _, id := range ids.Keys() {
				excluded[id] = struct{}{}
			}
		}
	}
	if h := n.parent.beforeDeliver.Load(); h != nil {
		(*h)(d.offset)
	}
	sockets := n.Nsp().Sockets()
	visit := func(id socket.SocketId) bool {
		if _, skip := excluded[id]; skip {
			return false
		}
		s, ok := sockets.Load(id)
		if !ok {
			return false
		}
		if s.Connected() && !n.replayed(id, d.offset) {
			d.send(s)
		}
		return true
	}
	if len(rooms) == 0 {
		n.Adapter.Sids().Range(func(id socket.SocketId, _ *types.Set[socket.Room]) bool {
			visit(id)
			return true
		})
		return
	}
	if len(rooms) == 1 { // a room holds each socket once
		if ids, ok := roomIndex.Load(rooms[0]); ok {
			for _, id := range ids.Keys() {
				visit(id)
			}
		}
		return
	}
	var seen map[socket.SocketId]struct{}
	for _, room := range rooms {
		ids, ok := roomIndex.Load(room)
		if !ok {
			continue
		}
		if seen == nil {
			seen = map[socket.SocketId]struct{}{}
		}
		for _, id := range ids.Keys() {
			if _, dup := seen[id]; dup {
				continue
			}
			if visit(id) {
				seen[id] = struct{}{}
			}
		}
	}
}

// onRawBroadcast delivers a plain BROADCAST read from the stream (see wire.ScanBroadcast) without decoding its
// arguments; writes to wstransport sockets start at batch.Flush. It returns false, having done nothing, when the
// message needs the decoded path: a server with another parser, or a restore in progress that may hold the packet.
func (n *nspAdapter) onRawBroadcast(uid string, rb *wire.RawBroadcast, offset string, batch *wstransport.Batch) bool {
	if !n.rawEncoding() {
		return false
	}
	data := rb.Data
	if n.recovery && offset != "" && !rb.Opts.Flags.Volatile { // an EVENT without id: recoverable
		if n.pending.count.Load() != 0 || !wire.IsStreamID(offset) {
			return false
		}
		data = data[:len(data)-1] + `,"` + offset + `"]` // the offset as last argument, as onBroadcast does
	}
	n.parent.layout.heard(n, uid, wire.Broadcast)
	n.rawBroadcasts.Add(1)
	n.deliverRaw(data, &rb.Opts, offset, batch)
	return true
}
