// Package wire is the format the Node package @socket.io/redis-streams-adapter (0.3.1, and 0.2.x for the
// streams-only layout) uses on Redis: stream entries with flat string fields, and MessagePack PUB/SUB payloads.
package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tinylib/msgp/msgp"
)

// MessageType is the numeric message type of socket.io-adapter's ClusterAdapter.
type MessageType int

// The message types, with their wire values.
const (
	InitialHeartbeat       MessageType = 1
	Heartbeat              MessageType = 2
	Broadcast              MessageType = 3
	SocketsJoin            MessageType = 4
	SocketsLeave           MessageType = 5
	DisconnectSockets      MessageType = 6
	FetchSockets           MessageType = 7
	FetchSocketsResponse   MessageType = 8
	ServerSideEmit         MessageType = 9
	ServerSideEmitResponse MessageType = 10
	BroadcastClientCount   MessageType = 11
	BroadcastAck           MessageType = 12
	AdapterClose           MessageType = 13
)

var typeNames = [...]string{"", "INITIAL_HEARTBEAT", "HEARTBEAT", "BROADCAST", "SOCKETS_JOIN", "SOCKETS_LEAVE",
	"DISCONNECT_SOCKETS", "FETCH_SOCKETS", "FETCH_SOCKETS_RESPONSE", "SERVER_SIDE_EMIT", "SERVER_SIDE_EMIT_RESPONSE",
	"BROADCAST_CLIENT_COUNT", "BROADCAST_ACK", "ADAPTER_CLOSE"}

func (t MessageType) String() string {
	if t > 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// mayCarryBinary reports whether Node encodes this type's data as msgpack when it holds binary.
func (t MessageType) mayCarryBinary() bool {
	switch t {
	case Broadcast, FetchSocketsResponse, ServerSideEmit, ServerSideEmitResponse, BroadcastAck:
		return true
	}
	return false
}

// ErrInvalid wraps every decoding failure.
var ErrInvalid = errors.New("wire: invalid message")

// Flags are the broadcast flags that travel between servers. Absent flags are omitted on the wire.
type Flags struct {
	Volatile             bool
	Compress             *bool
	Timeout              *int64 // milliseconds
	ExpectSingleResponse bool
}

// Options are the encoded BroadcastOptions: rooms and except are always sent as arrays.
type Options struct {
	Rooms  []string
	Except []string
	Flags  Flags
}

// Packet is a Socket.IO packet as Node publishes it: {type, data, nsp?, id?}.
type Packet struct {
	Type int
	Data []any
	Nsp  string
	ID   *uint64
}

// SocketDetails is one socket in a FETCH_SOCKETS_RESPONSE.
type SocketDetails struct {
	ID        string
	Handshake map[string]any
	Rooms     []string
	Data      any
}

// Message is one cluster message. Which fields are meaningful depends on Type.
type Message struct {
	Type MessageType
	UID  string
	Nsp  string

	RequestID   string          // 3 (with ack), 7, 8, 9 (with ack), 10, 11, 12; "" means absent
	Packet      *Packet         // 3
	Opts        *Options        // 3, 4, 5, 6, 7
	Rooms       []string        // 4, 5
	Close       bool            // 6
	Sockets     []SocketDetails // 8
	Args        []any           // 9: event name then arguments
	Response    any             // 10, 12: a single value
	ClientCount uint64          // 11

	// Offset is the stream entry ID the message was read from; empty for PUB/SUB messages.
	Offset string

	plainArgs string // set by StreamFields, see PlainArgs
}

// PlainArgs returns, after StreamFields has encoded a BROADCAST as JSON, the JSON text of its packet's arguments
// when they are only plain values (nil, bool, string, numbers, []any, []string, map[string]any): the text a
// Socket.IO encoder would write for them, up to HTML escaping. Otherwise it returns "".
func (m *Message) PlainArgs() string { return m.plainArgs }

// hasData reports whether a message of this type carries a data field (heartbeats do not).
func (m *Message) hasData() bool {
	switch m.Type {
	case InitialHeartbeat, Heartbeat, AdapterClose:
		return false
	}
	return true
}

func (o *Options) toMap() map[string]any {
	rooms, except := o.Rooms, o.Except
	if rooms == nil {
		rooms = []string{}
	}
	if except == nil {
		except = []string{}
	}
	flags := map[string]any{}
	if o.Flags.Volatile {
		flags["volatile"] = true
	}
	if o.Flags.Compress != nil {
		flags["compress"] = *o.Flags.Compress
	}
	if o.Flags.Timeout != nil {
		flags["timeout"] = *o.Flags.Timeout
	}
	if o.Flags.ExpectSingleResponse {
		flags["expectSingleResponse"] = true
	}
	return map[string]any{"rooms": rooms, "except": except, "flags": flags}
}

// data returns the dynamic form of the message's data field.
func (m *Message) data() (map[string]any, error) {
	d := map[string]any{}
	if m.RequestID != "" {
		d["requestId"] = m.RequestID
	}
	switch m.Type {
	case Broadcast:
		if m.Packet == nil || m.Opts == nil {
			return nil, fmt.Errorf("%w: BROADCAST without packet or opts", ErrInvalid)
		}
		p := map[string]any{"type": m.Packet.Type, "data": nonNilSlice(m.Packet.Data)}
		if m.Packet.Nsp != "" {
			p["nsp"] = m.Packet.Nsp
		}
		if m.Packet.ID != nil {
			p["id"] = *m.Packet.ID
		}
		d["packet"] = p
		d["opts"] = m.Opts.toMap()
	case SocketsJoin, SocketsLeave:
		d["opts"] = m.optsMap()
		d["rooms"] = nonNilStrings(m.Rooms)
	case DisconnectSockets:
		d["opts"] = m.optsMap()
		d["close"] = m.Close
	case FetchSockets:
		d["opts"] = m.optsMap()
	case FetchSocketsResponse:
		sockets := make([]any, len(m.Sockets))
		for i, s := range m.Sockets {
			hs := s.Handshake
			if hs == nil {
				hs = map[string]any{}
			}
			sockets[i] = map[string]any{"id": s.ID, "handshake": hs, "rooms": nonNilStrings(s.Rooms), "data": s.Data}
		}
		d["sockets"] = sockets
	case ServerSideEmit:
		d["packet"] = nonNilSlice(m.Args)
	case ServerSideEmitResponse, BroadcastAck:
		d["packet"] = m.Response
	case BroadcastClientCount:
		d["clientCount"] = m.ClientCount
	case InitialHeartbeat, Heartbeat, AdapterClose:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: cannot encode type %d", ErrInvalid, m.Type)
	}
	return d, nil
}

func (m *Message) optsMap() map[string]any {
	if m.Opts == nil {
		return (&Options{}).toMap()
	}
	return m.Opts.toMap()
}

func nonNilSlice(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// StreamFields returns the XADD field/value list, in Node's order: uid, nsp, type, data.
func (m *Message) StreamFields(onlyPlaintext bool) ([]string, error) {
	// Room for data and for the publisher's SeqField, so that neither append copies the slice.
	fields := append(make([]string, 0, 10), "uid", m.UID, "nsp", m.Nsp, "type", strconv.Itoa(int(m.Type)))
	if !m.hasData() {
		return fields, nil
	}
	if m.Type == Broadcast && m.Packet != nil && m.Opts != nil && (onlyPlaintext || !HasBinary(m.Packet.Data)) {
		enc, err := m.broadcastJSON()
		if err != nil {
			return nil, fmt.Errorf("wire: encode %v: %w", m.Type, err)
		}
		return append(fields, "data", enc), nil
	}
	d, err := m.data()
	if err != nil {
		return nil, err
	}
	var enc string
	if !onlyPlaintext && m.Type.mayCarryBinary() && HasBinary(d) {
		raw, err := AppendValue(nil, d)
		if err != nil {
			return nil, fmt.Errorf("wire: encode %v: %w", m.Type, err)
		}
		enc = base64.StdEncoding.EncodeToString(raw)
	} else {
		raw, err := EncodeJSON(d)
		if err != nil {
			return nil, fmt.Errorf("wire: encode %v: %w", m.Type, err)
		}
		enc = string(raw)
	}
	return append(fields, "data", enc), nil
}

// PubSubPayload returns the MessagePack PUB/SUB payload {type, data, uid, nsp} (type as an integer).
func (m *Message) PubSubPayload() ([]byte, error) {
	d, err := m.data()
	if err != nil {
		return nil, err
	}
	n := uint32(3)
	if d != nil {
		n = 4
	}
	b := msgp.AppendMapHeader(make([]byte, 0, 128), n)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendInt64(b, int64(m.Type))
	if d != nil {
		b = msgp.AppendString(b, "data")
		if b, err = AppendValue(b, d); err != nil {
			return nil, fmt.Errorf("wire: encode %v: %w", m.Type, err)
		}
	}
	b = msgp.AppendString(b, "uid")
	b = msgp.AppendString(b, m.UID)
	b = msgp.AppendString(b, "nsp")
	b = msgp.AppendString(b, m.Nsp)
	return b, nil
}

// DecodeStreamEntry decodes the fields of one stream entry. A missing nsp or an unknown type is an error; callers
// that want Node's leniency (ignore) can check errors.Is(err, ErrInvalid).
func DecodeStreamEntry(id string, fields map[string]string) (*Message, error) {
	m := &Message{UID: fields["uid"], Nsp: fields["nsp"], Offset: id}
	rawType, ok := fields["type"]
	if !ok {
		return nil, fmt.Errorf("%w: entry %s has no type", ErrInvalid, id)
	}
	t, err := strconv.Atoi(rawType)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %s has type %q", ErrInvalid, id, truncate(rawType))
	}
	m.Type = MessageType(t)
	raw, ok := fields["data"]
	if !ok || raw == "" {
		if m.hasData() {
			return nil, fmt.Errorf("%w: entry %s (%v) has no data", ErrInvalid, id, m.Type)
		}
		return m, nil
	}
	var d any
	if strings.HasPrefix(raw, "{") {
		d, err = DecodeJSON([]byte(raw))
	} else {
		var bin []byte
		if bin, err = base64.StdEncoding.DecodeString(raw); err == nil {
			d, err = DecodeMsgpack(bin)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: entry %s (%v): %w", ErrInvalid, id, m.Type, err)
	}
	if err := m.setData(d); err != nil {
		return nil, fmt.Errorf("%w: entry %s: %w", ErrInvalid, id, err)
	}
	return m, nil
}

// DecodePubSub decodes a PUB/SUB payload.
func DecodePubSub(payload []byte) (*Message, error) {
	v, err := DecodeMsgpack(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: payload is %T, not a map", ErrInvalid, v)
	}
	m := &Message{}
	m.UID, _ = top["uid"].(string)
	m.Nsp, _ = top["nsp"].(string)
	t, ok := toInt(top["type"])
	if !ok {
		return nil, fmt.Errorf("%w: type is %T", ErrInvalid, top["type"])
	}
	m.Type = MessageType(t)
	if d, ok := top["data"]; ok && d != nil {
		if err := m.setData(d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	} else if m.hasData() {
		return nil, fmt.Errorf("%w: %v without data", ErrInvalid, m.Type)
	}
	return m, nil
}

func (m *Message) setData(v any) error {
	d, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%v data is %T, not an object", m.Type, v)
	}
	if rid, present := d["requestId"]; present {
		s, ok := rid.(string)
		if !ok || s == "" {
			return fmt.Errorf("%v requestId is %T", m.Type, rid)
		}
		m.RequestID = s
	}
	var err error
	switch m.Type {
	case Broadcast:
		if m.Packet, err = decodePacket(d["packet"]); err != nil {
			return err
		}
		m.Opts, err = decodeOptions(d["opts"])
	case SocketsJoin, SocketsLeave:
		if m.Opts, err = decodeOptions(d["opts"]); err != nil {
			return err
		}
		m.Rooms, err = decodeStrings(d["rooms"], "rooms")
	case DisconnectSockets:
		if m.Opts, err = decodeOptions(d["opts"]); err != nil {
			return err
		}
		m.Close, _ = d["close"].(bool)
	case FetchSockets:
		if m.RequestID == "" {
			return errors.New("FETCH_SOCKETS without requestId")
		}
		m.Opts, err = decodeOptions(d["opts"])
	case FetchSocketsResponse:
		list, ok := d["sockets"].([]any)
		if !ok {
			return fmt.Errorf("sockets is %T", d["sockets"])
		}
		m.Sockets = make([]SocketDetails, 0, len(list))
		for _, e := range list {
			s, ok := e.(map[string]any)
			if !ok {
				return fmt.Errorf("socket is %T", e)
			}
			var sd SocketDetails
			if sd.ID, ok = s["id"].(string); !ok {
				return fmt.Errorf("socket id is %T", s["id"])
			}
			sd.Handshake, _ = s["handshake"].(map[string]any)
			if sd.Rooms, err = decodeStrings(s["rooms"], "socket rooms"); err != nil {
				return err
			}
			sd.Data = s["data"]
			m.Sockets = append(m.Sockets, sd)
		}
	case ServerSideEmit:
		args, ok := d["packet"].([]any)
		if !ok || len(args) == 0 {
			return fmt.Errorf("SERVER_SIDE_EMIT packet is %T", d["packet"])
		}
		if _, ok := args[0].(string); !ok {
			return fmt.Errorf("SERVER_SIDE_EMIT event name is %T", args[0])
		}
		m.Args = args
	case ServerSideEmitResponse, BroadcastAck:
		m.Response = d["packet"]
	case BroadcastClientCount:
		n, ok := toInt(d["clientCount"])
		if !ok || n < 0 {
			return fmt.Errorf("clientCount is %v", d["clientCount"])
		}
		m.ClientCount = uint64(n)
	case InitialHeartbeat, Heartbeat, AdapterClose:
	default:
		return fmt.Errorf("unknown message type %d", m.Type)
	}
	if err == nil && m.Type >= FetchSocketsResponse && m.Type <= BroadcastAck && m.Type != ServerSideEmit && m.RequestID == "" {
		return fmt.Errorf("%v without requestId", m.Type)
	}
	return err
}

func decodePacket(v any) (*Packet, error) {
	p, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("packet is %T", v)
	}
	t, ok := toInt(p["type"])
	if !ok {
		return nil, fmt.Errorf("packet type is %T", p["type"])
	}
	out := &Packet{Type: int(t)}
	if d, present := p["data"]; present && d != nil {
		if out.Data, ok = d.([]any); !ok {
			return nil, fmt.Errorf("packet data is %T", d)
		}
	}
	out.Nsp, _ = p["nsp"].(string)
	if id, present := p["id"]; present && id != nil {
		n, ok := toInt(id)
		if !ok || n < 0 {
			return nil, fmt.Errorf("packet id is %v", id)
		}
		u := uint64(n)
		out.ID = &u
	}
	return out, nil
}

func decodeOptions(v any) (*Options, error) {
	o := &Options{}
	if v == nil {
		return o, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("opts is %T", v)
	}
	var err error
	if o.Rooms, err = decodeStrings(m["rooms"], "rooms"); err != nil {
		return nil, err
	}
	if o.Except, err = decodeStrings(m["except"], "except"); err != nil {
		return nil, err
	}
	if f, ok := m["flags"].(map[string]any); ok {
		o.Flags.Volatile, _ = f["volatile"].(bool)
		if c, ok := f["compress"].(bool); ok {
			o.Flags.Compress = &c
		}
		if t, ok := toInt(f["timeout"]); ok {
			o.Flags.Timeout = &t
		}
		o.Flags.ExpectSingleResponse, _ = f["expectSingleResponse"].(bool)
	}
	return o, nil
}

func decodeStrings(v any, what string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is %T, not an array", what, v)
	}
	out := make([]string, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is %T", what, i, e)
		}
		out[i] = s
	}
	return out, nil
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		if x <= 1<<62 {
			return int64(x), true
		}
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	}
	return 0, false
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
