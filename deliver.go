package redisstreams

import (
	"reflect"
	"strings"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Local delivery of broadcasts. It does what the server's in-memory adapter does in Broadcast (servers/socket
// v3.0.6 adapter.go: same socket selection, outgoing-packet listeners, Client.WriteToEngine with the same write
// options), with two differences that only change the cost:
//   - the packet is encoded when the first matching socket is found, so a server with no matching client
//     encodes nothing;
//   - the write options carry no WsPreEncodedFrame. servers/engine v3.0.6 turns that frame into a new gorilla
//     PreparedMessage for every socket-send (several KB of garbage each); without it the websocket transport
//     writes the encoded packet straight into the connection's buffer, which is what it does anyway for
//     polling, for per-message deflate, and for binary packets.
// Broadcasts with acknowledgements still go through the in-memory adapter (BroadcastWithAck).

// defaultEncoderType is the type of the Socket.IO parser's own encoder: the raw path writes what it writes.
var defaultEncoderType = reflect.TypeOf(parser.NewEncoder())

// rawEncoding reports whether this namespace's server encodes packets with the default Socket.IO parser, whose
// text encoding the raw path reproduces.
func (n *nspAdapter) rawEncoding() bool {
	return reflect.TypeOf(n.Nsp().Server().Encoder()) == defaultEncoderType
}

// deliverPacket delivers a decoded packet to the matching local sockets.
func (n *nspAdapter) deliverPacket(packet *parser.Packet, opts *socket.BroadcastOptions) {
	packet.Nsp = n.name
	var encoded []types.BufferInterface
	encoder := n.Nsp().Server().Encoder()
	n.deliver(opts, func() *parser.Packet { return packet }, func() []types.BufferInterface {
		if encoded == nil {
			encoded = encoder.Encode(packet)
		}
		return encoded
	})
}

// deliverRaw delivers an EVENT packet whose arguments are the JSON text data (an array, event name first, checked
// by wire.ScanBroadcast), without decoding them unless an outgoing-packet listener needs the packet.
func (n *nspAdapter) deliverRaw(data string, opts *socket.BroadcastOptions) {
	var encoded []types.BufferInterface
	var packet *parser.Packet
	n.deliver(opts, func() *parser.Packet {
		if packet == nil {
			v, err := wire.DecodeJSON([]byte(data))
			if err != nil { // cannot happen: ScanBroadcast validated the text
				v = []any{}
			}
			packet = &parser.Packet{Type: parser.EVENT, Nsp: n.name, Data: wire.ForClients(v)}
		}
		return packet
	}, func() []types.BufferInterface {
		if encoded == nil {
			// The parser's text encoding: <type>[<nsp>,][<id>]<data>.
			var sb strings.Builder
			sb.Grow(len(n.name) + len(data) + 2)
			sb.WriteByte('0' + byte(parser.EVENT))
			if n.name != "/" {
				sb.WriteString(n.name)
				sb.WriteByte(',')
			}
			sb.WriteString(data)
			encoded = []types.BufferInterface{types.NewStringBufferString(sb.String())}
		}
		return encoded
	})
}

// deliver writes a packet to every matching local socket. packet and encode are called at most once each time
// they are needed (they cache).
func (n *nspAdapter) deliver(opts *socket.BroadcastOptions, packet func() *parser.Packet, encode func() []types.BufferInterface) {
	flags := flagsOf(opts)
	writeOpts := &socket.WriteOptions{}
	writeOpts.PreEncoded = true
	writeOpts.Volatile = flags.Volatile
	writeOpts.Compress = flags.Compress
	n.forEachSocket(opts, func(s *socket.Socket) {
		if notify := s.NotifyOutgoingListeners(); notify != nil {
			notify(packet())
		}
		s.Client().WriteToEngine(encode(), writeOpts)
	})
}

// forEachSocket calls fn for every connected local socket the options select, once each: the in-memory
// adapter's apply (in any room of opts.Rooms, or every socket when there is none, and in no room of opts.Except).
func (n *nspAdapter) forEachSocket(opts *socket.BroadcastOptions, fn func(*socket.Socket)) {
	var rooms, exceptRooms *types.Set[socket.Room]
	if opts != nil {
		rooms, exceptRooms = opts.Rooms, opts.Except
	}
	roomIndex := n.Adapter.Rooms()
	var except map[socket.SocketId]struct{}
	if exceptRooms != nil && exceptRooms.Len() > 0 {
		except = map[socket.SocketId]struct{}{}
		for _, room := range exceptRooms.Keys() {
			if ids, ok := roomIndex.Load(room); ok {
				for _, id := range ids.Keys() {
					except[id] = struct{}{}
				}
			}
		}
	}
	sockets := n.Nsp().Sockets()
	visit := func(id socket.SocketId) bool {
		if _, skip := except[id]; skip {
			return false
		}
		s, ok := sockets.Load(id)
		if !ok {
			return false
		}
		if s.Connected() {
			fn(s)
		}
		return true
	}
	if rooms == nil || rooms.Len() == 0 {
		n.Adapter.Sids().Range(func(id socket.SocketId, _ *types.Set[socket.Room]) bool {
			visit(id)
			return true
		})
		return
	}
	keys := rooms.Keys()
	if len(keys) == 1 { // a room holds each socket once
		if ids, ok := roomIndex.Load(keys[0]); ok {
			for _, id := range ids.Keys() {
				visit(id)
			}
		}
		return
	}
	seen := map[socket.SocketId]struct{}{}
	for _, room := range keys {
		ids, ok := roomIndex.Load(room)
		if !ok {
			continue
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
// arguments. It returns false, having done nothing, when the message needs the decoded path: a server with
// another parser, or a restore in progress that may hold the packet.
func (n *nspAdapter) onRawBroadcast(uid string, rb *wire.RawBroadcast, offset string) bool {
	if !n.rawEncoding() {
		return false
	}
	data := rb.Data
	if n.recovery && offset != "" && !rb.Opts.Flags.Volatile { // an EVENT without id: recoverable
		if n.pending.count.Load() != 0 || !isStreamID(offset) {
			return false
		}
		data = data[:len(data)-1] + `,"` + offset + `"]` // the offset as last argument, as onBroadcast does
	}
	if n.opts().StreamsOnly {
		n.seen(uid)
	}
	n.rawBroadcasts.Add(1)
	n.deliverRaw(data, localOptions(&rb.Opts))
	return true
}

// isStreamID reports whether id has the form of a stream entry ID (digits-digits), safe to write into JSON as is.
func isStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	return ok && allDigits(ms) && allDigits(seq)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
