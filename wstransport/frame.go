package wstransport

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Websocket opcodes (RFC 6455 section 5.2).
const (
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPong   byte = 0xA
)

const (
	finBit  byte = 0x80
	rsv1Bit byte = 0x40 // per-message deflate: the message is compressed (RFC 7692 section 6)

	maxHeaderLen = 10 // a server frame: 2 bytes, then 2 or 8 bytes of extended length, no mask
)

// headerLen is the length of the header of an unmasked frame with an n-byte payload.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// appendHeader appends the header of one final, unmasked frame with an n-byte payload. Server frames are never
// masked, so the bytes of a frame are the same for every connection.
func appendHeader(dst []byte, op byte, compressed bool, n int) []byte {
	b0 := finBit | op
	if compressed {
		b0 |= rsv1Bit
	}
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
}

// newFrame returns a whole frame (header and payload) in one slice, ready to be written.
func newFrame(op byte, payload []byte) []byte {
	f := make([]byte, 0, headerLen(len(payload))+len(payload))
	return append(appendHeader(f, op, false, len(payload)), payload...)
}

// deflateTail ends every flushed deflate stream; RFC 7692 section 7.2.1 leaves it out of the frame.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// flateWriters reuses compressors: a flate.Writer holds several hundred KB of state.
var flateWriters sync.Pool

// newDeflatedFrame returns a frame holding payload compressed as one message without context takeover (the only
// mode the engine's websocket upgrader negotiates: server_no_context_takeover), so that it can be shared by every
// connection that negotiated per-message deflate.
func newDeflatedFrame(op byte, payload []byte) []byte {
	var out bytes.Buffer
	out.Grow(maxHeaderLen + len(payload)/2 + 16)
	out.Write(make([]byte, maxHeaderLen)) // room for the header, filled in below
	w, _ := flateWriters.Get().(*flate.Writer)
	if w == nil {
		w, _ = flate.NewWriter(&out, flate.BestSpeed) // the level is valid: no error
	} else {
		w.Reset(&out)
	}
	_, _ = w.Write(payload) // writes to a bytes.Buffer cannot fail
	_ = w.Flush()
	w.Reset(nil)
	flateWriters.Put(w)
	b := out.Bytes()
	if bytes.HasSuffix(b, deflateTail) {
		b = b[:len(b)-len(deflateTail)]
	}
	n := len(b) - maxHeaderLen
	h := headerLen(n)
	appendHeader(b[maxHeaderLen-h:maxHeaderLen-h], op, true, n)
	return b[maxHeaderLen-h:]
}

// sharedFrame is the frame of one broadcast, built at its first socket-send and written as is to every other
// connection: a broadcast's packets carry the same pre-encoded Engine.IO message (packet.Options.
// WsPreEncodedFrame) to every socket, and that buffer is the key.
type sharedFrame struct {
	key     types.BufferInterface
	op      byte
	frame   []byte // header and payload
	payload int    // payload length, for the deflate threshold

	deflateOnce sync.Once
	deflated    []byte // the compressed frame, built at the first connection that wants it
}

// compressed returns the compressed frame, building it (and counting it in built) at the first call.
func (f *sharedFrame) compressed(built *atomic.Int64) []byte {
	f.deflateOnce.Do(func() {
		f.deflated = newDeflatedFrame(f.op, f.frame[len(f.frame)-f.payload:])
		built.Add(1)
	})
	return f.deflated
}

// frameCache maps the pre-encoded message of the broadcasts being delivered to their frames. A slot holds the
// latest broadcast whose buffer hashes to it: broadcasts are delivered one after the other, so a handful of
// slots covers the few delivered at once. An entry keeps its key alive, so a key's address cannot be reused by
// another buffer while the entry holds it.
type frameCache struct {
	slots    [frameSlots]atomic.Pointer[sharedFrame]
	built    atomic.Int64 // shared frames built
	deflated atomic.Int64 // compressed frames built, shared or not
}

const (
	frameBits  = 6
	frameSlots = 1 << frameBits
)

// get returns the shared frame of key, building it on the first call for this key. ok is false for a key that
// cannot be cached (a buffer type the cache does not know); the caller builds the frame itself.
func (c *frameCache) get(key types.BufferInterface) (f *sharedFrame, ok bool) {
	var addr uintptr
	op := opBinary
	switch b := key.(type) {
	case *types.StringBuffer:
		addr, op = uintptr(unsafe.Pointer(b)), opText
	case *types.BytesBuffer:
		addr = uintptr(unsafe.Pointer(b))
	default:
		return nil, false
	}
	slot := &c.slots[uint64(addr>>4)*0x9E3779B97F4A7C15>>(64-frameBits)] // Fibonacci hashing of the address
	if f := slot.Load(); f != nil && f.key == key {
		return f, true
	}
	payload := key.Bytes()
	f = &sharedFrame{key: key, op: op, frame: newFrame(op, payload), payload: len(payload)}
	slot.Store(f)
	c.built.Add(1)
	return f, true
}
