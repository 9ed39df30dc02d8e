package wire

import "fmt"

// Socket.IO packet types a broadcast may carry to clients.
const (
	PacketEvent       = 2 // EVENT
	PacketBinaryEvent = 5 // BINARY_EVENT
)

// reservedEvents are the event names Socket.IO keeps for itself: a server refuses to emit them, and a client that
// received one would treat it as a connection event.
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// ValidateBroadcastPacket checks that a broadcast read from another server (or written to Redis by anyone) is safe
// to hand to clients of namespace nsp: an EVENT or BINARY_EVENT packet of that namespace whose data is an array
// starting with a non-reserved event name. Anything else would make official clients drop the connection ("parse
// error") or see a forged connection event, so it must be skipped. The error wraps ErrInvalid.
func ValidateBroadcastPacket(p *Packet, nsp string) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: broadcast without packet", ErrInvalid)
	case p.Type != PacketEvent && p.Type != PacketBinaryEvent:
		return fmt.Errorf("%w: broadcast packet type %d (want %d or %d)", ErrInvalid, p.Type, PacketEvent, PacketBinaryEvent)
	case p.Nsp != "" && p.Nsp != nsp:
		return fmt.Errorf("%w: broadcast packet for namespace %q in an entry for %q", ErrInvalid, truncate(p.Nsp), truncate(nsp))
	case len(p.Data) == 0:
		return fmt.Errorf("%w: broadcast packet without event name", ErrInvalid)
	}
	name, ok := p.Data[0].(string)
	switch {
	case !ok:
		return fmt.Errorf("%w: broadcast event name is a %T, not a string", ErrInvalid, p.Data[0])
	case reservedEvents[name]:
		return fmt.Errorf("%w: broadcast of reserved event %q", ErrInvalid, name)
	}
	return nil
}
