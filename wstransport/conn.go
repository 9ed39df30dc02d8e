package wstransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// pullInterval is how often a connection being written to by a goroutine (a backlog) takes in what the engine
// has buffered for it meanwhile (the engine holds packets while a transport is not writable), so that
// MaxQueuedBytes bounds those too.
const pullInterval = 100 * time.Millisecond

// item is one frame waiting to be written.
type item struct {
	b     []byte
	drain bool // the last frame of a Send: "drain" is emitted once it is written
	close bool // the close frame: nothing is written after it
}

// conn is the transport of one websocket connection.
//
// Writing: frames go into queue; the goroutine that finds nobody writing becomes the writer (busy). With raw
// access (Linux, TCP) it writes at once without waiting, in the caller's goroutine; when the socket's send buffer
// is full, the transport stops being writable and a goroutine (writeQueued) takes over the backlog, with blocking
// writev calls, until it has caught up: then the transport is writable again and emits "ready", so the engine
// flushes what it buffered meanwhile. Without raw access (TLS, other systems) a writer goroutine per connection
// does every write, and the transport is not writable while it writes, as the engine's own transport.
//
// Reading goes through the engine's gorilla/websocket connection, with the ping and close handlers replaced so
// that their answers go through the queue too. The reader goroutine is the one that reports the end of the
// connection ("error", then "close"), whatever ended it.
type conn struct {
	transports.Transport

	t       *Transport
	ws      *types.WebSocketConn
	nc      net.Conn
	raw     syscall.RawConn // nil: writes by the writer goroutine
	idle    time.Duration
	offered bool // the client offered per-message deflate

	mu       sync.Mutex
	queue    []item
	queued   int  // bytes not written yet: the queue and the batch being written
	busy     bool // a goroutine is writing
	closing  bool // the close frame is queued: nothing else is
	dead     bool // failed or torn down: nothing is written any more
	failure  error
	closed   chan struct{} // closed once the close frame is written or the connection is dead (made on demand)
	isClosed bool
	linger   *time.Timer
	deferred bool   // in a Batch: its writes start at Batch.Flush (or at any other write)
	held     bool   // the transport was made not writable, and the engine may still hold packets (see holdLocked)
	heldGen  uint64 // counts holdLocked calls

	pullTimer *time.Timer // see pullTick
	pullArmed bool

	wake chan struct{} // writer goroutine only: there is something to write
	gone chan struct{} // writer goroutine only: closed when the connection ends

	torn atomic.Bool
}

func newConn(t *Transport, ctx *types.HttpContext) *conn {
	c := &conn{Transport: transports.MakeTransport(), t: t, ws: ctx.Websocket, idle: ctx.IdleTimeout}
	c.Prototype(c)
	c.Construct(ctx)
	c.nc = c.ws.NetConn()
	if !t.noRaw {
		c.raw = rawConnOf(c.nc)
	}
	if r := ctx.Request(); r != nil {
		c.offered = offersDeflate(r.Header)
	}
	c.ws.SetPingHandler(c.onPing)
	c.ws.SetCloseHandler(c.onCloseFrame)
	_ = c.ws.Once("close", func(...any) { c.finish(nil) })
	c.SetWritable(true)
	t.open.Add(1)
	t.opened.Add(1)
	if c.raw == nil {
		c.wake, c.gone = make(chan struct{}, 1), make(chan struct{})
		go c.writeLoop()
	}
	transports.StartReader(c, ctx.TransportReadPermission(), c.read)
	return c
}

// Name implements transports.Transport.
func (*conn) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades implements transports.Transport.
func (*conn) HandlesUpgrades() bool { return true }

// Send implements transports.Transport: it queues the packets' frames and writes them, at once if it can. The
// engine calls it from one goroutine at a time per socket (under its flush lock), except for the upgrade probe.
func (c *conn) Send(packets []*packet.Packet) {
	var local [4]item
	items := local[:0]
	for _, p := range packets {
		b, err := c.frameOf(p)
		if err != nil {
			c.fail(fmt.Errorf("wstransport: encode %s packet: %w", p.Type, err))
			return
		}
		items = append(items, item{b: b})
	}
	if len(items) == 0 {
		c.Emit("drain")
		return
	}
	items[len(items)-1].drain = true
	c.submit(items)
}

// frameOf returns the frame of one packet: the shared frame of its broadcast when it has one, else a new one.
func (c *conn) frameOf(p *packet.Packet) ([]byte, error) {
	threshold, compress := 0, false
	if pmd := c.PerMessageDeflate(); pmd != nil && c.offered {
		threshold, compress = pmd.Threshold, true
	}
	if o := p.Options; o != nil {
		if o.Compress != nil && !*o.Compress {
			compress = false
		}
		if key := o.WsPreEncodedFrame; key != nil {
			if f, ok := c.t.frames.get(key); ok {
				if compress && f.payload >= threshold {
					return f.compressed(&c.t.frames.deflated), nil
				}
				return f.frame, nil
			}
		}
	}
	data, err := c.Parser().EncodePacket(p, c.SupportsBinary())
	if err != nil {
		return nil, err
	}
	op := opBinary
	if _, ok := data.(*types.StringBuffer); ok {
		op = opText
	}
	payload := data.Bytes()
	if compress && len(payload) >= threshold {
		c.t.frames.deflated.Add(1)
		return newDeflatedFrame(op, payload), nil
	}
	return newFrame(op, payload), nil
}

// submit queues data frames, unless that would put more than MaxQueuedBytes in the queue: then the client is
// disconnected.
func (c *conn) submit(items []item) {
	n := 0
	for _, it := range items {
		n += len(it.b)
	}
	c.mu.Lock()
	if c.closing || c.dead || c.overflowLocked(n) {
		c.mu.Unlock()
		return
	}
	c.queued += n
	c.queue = append(c.queue, items...)
	c.startLocked()
}

// overflowLocked reports whether n more bytes would put more than MaxQueuedBytes in the queue; then the client is
// disconnected (the connection is dead, the reader reports ErrSlowClient). Called with c.mu held.
func (c *conn) overflowLocked(n int) bool {
	if c.queued == 0 || c.queued+n <= c.t.maxQueued {
		return false
	}
	queued := c.queued
	c.dieLocked(fmt.Errorf("%w: %d bytes waiting, %d more to send, MaxQueuedBytes %d", ErrSlowClient, queued, n, c.t.maxQueued))
	c.t.slow.Add(1)
	if ok, suppressed := c.t.slowLog.Allow(); ok {
		c.t.log.LogAttrs(context.Background(), slog.LevelWarn, "wstransport: disconnecting a client that does not read",
			slog.String("sid", c.Sid()), slog.String("remote", c.nc.RemoteAddr().String()),
			slog.Int("queued_bytes", queued), slog.Int("max_queued_bytes", c.t.maxQueued),
			slog.Int("unlogged_before", suppressed))
	}
	_ = c.nc.Close() // the reader reports the failure
	return true
}

// writeShared queues the shared frame of a broadcast's pre-encoded message and writes it (or leaves that to
// batch.Flush), unless the engine may hold packets for this socket (then it returns false, having done nothing).
// See WriteBroadcastBatch.
func (c *conn) writeShared(message types.BufferInterface, compress bool, batch *Batch) bool {
	f, ok := c.t.frames.get(message)
	if !ok {
		return false
	}
	b := f.frame
	if pmd := c.PerMessageDeflate(); compress && pmd != nil && c.offered && f.payload >= pmd.Threshold {
		b = f.compressed(&c.t.frames.deflated)
	}
	c.mu.Lock()
	if c.held || c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	if c.overflowLocked(len(b)) {
		c.mu.Unlock()
		return true // dropped with the client
	}
	c.queued += len(b)
	c.queue = append(c.queue, item{b: b})
	if batch != nil && !c.busy {
		if !c.deferred {
			c.deferred = true
			batch.conns = append(batch.conns, c)
		}
		c.mu.Unlock()
		return true
	}
	c.startLocked()
	return true
}

// submitControl queues a control frame (pong, close), not subject to MaxQueuedBytes.
func (c *conn) submitControl(op byte, payload []byte) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	b := newFrame(op, payload)
	if op == opClose {
		c.closing = true
	}
	c.queued += len(b)
	c.queue = append(c.queue, item{b: b, close: op == opClose})
	c.startLocked()
}

// startLocked makes sure somebody writes what is queued: nothing to do when a writer is busy; else this goroutine
// writes (raw access) or it wakes the writer goroutine. Called with c.mu held, returns with it released.
func (c *conn) startLocked() {
	if c.busy {
		c.mu.Unlock()
		return
	}
	c.busy = true
	if c.raw == nil {
		c.holdLocked()
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	c.writeNowLocked()
}

// holdLocked makes the transport not writable: the engine holds the packets sent to the socket until "ready", and
// the adapter's broadcasts go through it too (see WriteBroadcast), so that nothing overtakes what it holds.
func (c *conn) holdLocked() {
	c.SetWritable(false)
	c.held = true
	c.heldGen++
}

// writeNowLocked writes the queue without waiting, as long as the socket takes it. When it does not, a goroutine
// takes over (writeQueued). Called by the writer (busy) with c.mu held; returns with it released.
func (c *conn) writeNowLocked() {
	for {
		batch := c.queue
		if c.dead || len(batch) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		c.queue = nil
		c.mu.Unlock()
		c.t.writes.Add(1)
		written, blocked, err := tryWrite(c.raw, batch)
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		drains, rest := c.writtenLocked(batch, written)
		if blocked {
			c.queue = append(rest[:len(rest):len(rest)], c.queue...)
			c.holdLocked()
			c.armPullLocked()
			c.mu.Unlock()
			c.t.backlogs.Add(1)
			go c.writeQueued()
			c.emitDrains(drains)
			return
		}
		if c.queue == nil { // nothing came meanwhile: keep the array for the next batch
			clear(batch)
			c.queue = batch[:0]
		}
		if drains > 0 {
			c.mu.Unlock()
			c.emitDrains(drains)
			c.mu.Lock()
		}
	}
}

// writeQueued writes the queue with blocking writes until it is empty, then makes the transport writable again
// and emits "ready". It returns false when the connection is dead. Called by the writer (busy).
func (c *conn) writeQueued() bool {
	for {
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return false
		}
		batch := c.queue
		if len(batch) == 0 {
			c.busy = false
			c.SetWritable(true)
			gen := c.heldGen
			c.mu.Unlock()
			c.Emit("ready") // the engine flushes what it held, synchronously
			c.mu.Lock()
			if c.heldGen == gen { // not held again meanwhile: the engine holds nothing
				c.held = false
			}
			c.mu.Unlock()
			return true
		}
		c.queue = nil
		c.armPullLocked()
		c.mu.Unlock()
		bufs := make(net.Buffers, len(batch))
		for i, it := range batch {
			bufs[i] = it.b
		}
		c.t.writes.Add(1)
		n, err := bufs.WriteTo(c.nc)
		if err != nil {
			c.fail(err)
			return false
		}
		c.mu.Lock()
		drains, _ := c.writtenLocked(batch, int(n))
		c.mu.Unlock()
		c.emitDrains(drains)
	}
}

// armPullLocked makes sure the pull timer runs while a write is under way. Called with c.mu held.
func (c *conn) armPullLocked() {
	if c.pullArmed || c.t.noPull {
		return
	}
	c.pullArmed = true
	if c.pullTimer == nil {
		c.pullTimer = time.AfterFunc(pullInterval, c.pullTick)
	} else {
		c.pullTimer.Reset(pullInterval)
	}
}

// pullTick runs every pullInterval while a goroutine writes (a backlog, or the writer goroutine's writes): while
// the transport is not writable the engine holds the packets sent to this socket, and the tick lets the engine
// flush them into the queue, where MaxQueuedBytes applies. A writer blocked by a client that stops reading is
// thus still bounded: the queue overflows, and closing the connection unblocks the writer.
func (c *conn) pullTick() {
	c.mu.Lock()
	if c.dead || !c.busy {
		c.pullArmed = false
		c.mu.Unlock()
		return
	}
	c.pullTimer.Reset(pullInterval)
	if c.closing || c.Writable() {
		c.mu.Unlock()
		return
	}
	c.SetWritable(true)
	c.mu.Unlock()
	c.Emit("ready")
	c.mu.Lock()
	if c.busy {
		c.SetWritable(false)
	}
	c.mu.Unlock()
}

// writeLoop is the writer goroutine of a connection without raw access.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
			if !c.writeQueued() {
				return
			}
		case <-c.gone:
			return
		}
	}
}

// writtenLocked accounts for the first n bytes of batch having been written: it returns how many Sends are
// complete (their "drain" is due) and the items not written yet (the first one cut to what remains of it).
// Called with c.mu held.
func (c *conn) writtenLocked(batch []item, n int) (drains int, rest []item) {
	c.queued -= n
	for i := range batch {
		it := &batch[i]
		if n < len(it.b) {
			it.b = it.b[n:]
			return drains, batch[i:]
		}
		n -= len(it.b)
		if it.drain {
			drains++
		}
		if it.close {
			c.closedLocked()
		}
	}
	return drains, nil
}

func (c *conn) emitDrains(n int) {
	for range n {
		c.Emit("drain")
	}
}

// fail ends the connection after a write error: it closes the socket, and the reader reports err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed here, on purpose
	}
	c.dieLocked(err)
	c.mu.Unlock()
	_ = c.nc.Close()
}

// dieLocked marks the connection dead, with the error the reader will report (if any), and drops the queue.
func (c *conn) dieLocked(err error) {
	c.dead = true
	if c.failure == nil {
		c.failure = err
	}
	clear(c.queue)
	c.queue, c.queued = nil, 0
	c.closedLocked()
}

// closedLocked records that the close frame is out (or never will be).
func (c *conn) closedLocked() {
	if !c.isClosed {
		c.isClosed = true
		if c.closed != nil {
			close(c.closed)
		}
	}
}

// waitClosed waits, at most CloseTimeout, until the close frame is out or the connection is dead.
func (c *conn) waitClosed() {
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return
	}
	if c.closed == nil {
		c.closed = make(chan struct{})
	}
	ch := c.closed
	c.mu.Unlock()
	t := time.NewTimer(c.t.closeTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// onPing answers a client's ping control frame with a pong holding the same data, through the queue.
func (c *conn) onPing(data string) error {
	c.submitControl(opPong, []byte(data))
	return nil
}

// onCloseFrame answers a client's close frame with the same status code, through the queue. The reader then
// ends (gorilla/websocket returns a *websocket.CloseError), once the answer is out.
func (c *conn) onCloseFrame(code int, _ string) error {
	c.submitControl(opClose, websocket.FormatCloseMessage(code, ""))
	return nil
}

// DoClose implements transports.Transport: the engine closes the connection. The queued frames go out, then a
// close frame (1000); the TCP connection is closed when the client answers it, or after CloseTimeout.
func (c *conn) DoClose(fn types.Callable) {
	if fn != nil {
		fn()
	}
	c.submitControl(opClose, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.mu.Lock()
	if !c.dead && c.linger == nil {
		c.linger = time.AfterFunc(c.t.closeTimeout, func() { _ = c.nc.Close() })
	}
	c.mu.Unlock()
}

// read is the reader goroutine: it passes every message to the engine until the connection ends, then reports
// the end.
func (c *conn) read() {
	var err error
	for {
		if c.idle > 0 {
			_ = c.ws.SetReadDeadline(time.Now().Add(c.idle))
		}
		var mt int
		var r io.Reader
		if mt, r, err = c.ws.NextReader(); err != nil {
			break
		}
		var data types.BufferInterface
		if mt == websocket.BinaryMessage {
			data = types.NewBytesBuffer(nil)
		} else {
			data = types.NewStringBuffer(nil)
		}
		if _, err = data.ReadFrom(r); err != nil {
			break
		}
		c.OnData(data)
	}
	if _, ok := errors.AsType[*websocket.CloseError](err); ok {
		c.waitClosed() // the client's close handshake: our answer goes out first
	}
	c.finish(err)
}

// finish ends the transport once: it closes the connection, and emits "error" when the connection failed (a
// slow client, a write or read error), then "close".
func (c *conn) finish(readErr error) {
	if !c.torn.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.dieLocked(nil)
	failure := c.failure
	if c.linger != nil {
		c.linger.Stop()
	}
	if c.pullTimer != nil {
		c.pullTimer.Stop()
	}
	c.mu.Unlock()
	if c.gone != nil {
		close(c.gone)
	}
	_ = c.ws.Close() // emits the connection's "close" for the engine's listeners
	c.t.open.Add(-1)
	if failure == nil && readErr != nil && !closedByPeer(readErr) {
		failure = readErr
	}
	if failure != nil {
		c.OnError("websocket error", failure)
	}
	c.OnClose()
}

// closedByPeer reports a read error that ends a connection normally, as the engine's transport sees it: a close
// frame (or its absence: gorilla/websocket reports an abrupt end as close code 1006), or a socket closed here.
func closedByPeer(err error) bool {
	_, ok := errors.AsType[*websocket.CloseError](err)
	return ok || errors.Is(err, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
