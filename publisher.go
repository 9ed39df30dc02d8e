package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// ErrDropped: a write was given up without reaching Redis (held past Options.MaxOutage or Options.MaxHeldBytes, a
// PUB/SUB message older than RequestsTimeout, or the adapter closed before Redis came back).
var ErrDropped = errors.New("redisstreams: write dropped")

// errDroppedSent is the ErrDropped of a stream write given up after it was sent at least once: it may have reached
// Redis (counted in Stats.DroppedSent too).
var errDroppedSent = fmt.Errorf("%w after it was sent (it may have reached Redis)", ErrDropped)

// publisher funnels every write (XADD and PUBLISH) of one Adapter through a single goroutine that sends whatever
// is queued as one pipeline, up to maxBatch writes: under load concurrent emits share round trips, when idle a
// write goes out at once (no timer). Writes leave in the order they were queued.
//
// A write that fails because Redis is unreachable (rdb.Unavailable) is held and sent again, in order, with
// jittered backoff, until Redis accepts it; it is dropped (counted in Stats.Dropped) only once it has waited
// maxOutage, or to keep the queue under maxHeld bytes. Stream writes carry a per-stream sequence (wire.SeqField),
// given when first sent and kept across retries, so that readers drop the repeat of a write that Redis applied
// before the connection broke.
type publisher struct {
	client    rdb.Client
	maxBatch  int
	softCap   int           // queue length past which senders wait while Redis is reachable (backpressure)
	timeout   time.Duration // one round trip; also the life of a PUB/SUB message
	maxOutage time.Duration
	maxHeld   int64
	log       *slog.Logger
	report    func(op *rdb.Op, waited bool) // called for every finished write
	observer  Observer                      // Options.Observer, or nil

	ctx    context.Context // ended by close past its deadline: held writes are dropped
	cancel context.CancelFunc
	writer string // per process: the writer part of wire.SeqField

	mu       sync.Mutex
	closed   bool
	queue    []*write          // not yet taken by the writer goroutine, oldest first
	inflight int               // taken by the writer goroutine, not finished
	bytes    int64             // size of queue and inflight
	outage   bool              // the last round trip failed for want of Redis: writes are held
	seqs     map[string]uint64 // per stream: the last sequence number given; writer goroutine only
	seqBuf   []byte            // number's scratch; writer goroutine only
	seqEnds  []int
	wake     chan struct{} // capacity 1: the writer goroutine has work
	space    *gate         // what senders waiting for room wait on; replaced when released
	done     chan struct{}

	// The bound on a sender's wait for room: one timer for every waiting sender, armed for the earliest
	// deadline of the senders waiting on the current gate (timerAt, zero when not armed).
	spaceTimer *time.Timer
	timerAt    time.Time

	// Incident accounting. outageStart and dropped are guarded by mu (send drops too); the others belong to the
	// writer goroutine.
	outageStart time.Time
	dropped     int
	outageErr   error
	heldMax     int
	dropLog     rateLimited
}

type write struct {
	rdb.Op
	numbered bool            // its Fields end with wire.SeqField
	sent     bool            // went out in a round trip at least once (a stream write then has had a number)
	ctx      context.Context // do: the caller's; a PUB/SUB message whose caller gave up is not sent
	queued   time.Time
	size     int64
	done     chan struct{} // nil for fire-and-forget writes
}

type publisherOptions struct {
	maxBatch  int
	timeout   time.Duration
	maxOutage time.Duration
	maxHeld   int64
	log       *slog.Logger
}

func newPublisher(client rdb.Client, o publisherOptions, report func(*rdb.Op, bool)) *publisher {
	p := &publisher{
		client:    client,
		maxBatch:  o.maxBatch,
		softCap:   4 * o.maxBatch,
		timeout:   o.timeout,
		maxOutage: o.maxOutage,
		maxHeld:   o.maxHeld,
		log:       o.log,
		report:    report,
		writer:    randomID(),
		seqs:      map[string]uint64{},
		wake:      make(chan struct{}, 1),
		space:     newGate(),
		done:      make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.spaceTimer = time.AfterFunc(time.Hour, p.waitBound)
	p.spaceTimer.Stop()
	go p.run()
	return p
}

// gate is what senders waiting for room in the queue wait on. It is closed, and replaced, when they may go on:
// because the writer goroutine took writes (they check for room again), or because one of them has waited its
// bound (forced: they all go on past softCap).
type gate struct {
	ch     chan struct{}
	since  time.Time // when the earliest of the sends waiting on it began; zero while nobody waits
	forced bool
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

// maxSendWait bounds how long send waits for room in the queue.
const maxSendWait = 500 * time.Millisecond

// send queues w. While Redis is reachable and the queue is long it waits for room (backpressure), at most
// maxSendWait (then the queue grows, bounded by maxHeld); while writes are held for an outage it never waits. It
// fails after close.
func (p *publisher) send(w *write) error {
	w.queued = time.Now()
	w.size = int64(len(w.Payload)) + 64
	for _, f := range w.Fields {
		w.size += int64(len(f))
	}
	p.mu.Lock()
	for !p.closed && !p.outage && len(p.queue) >= p.softCap {
		g := p.waitLocked(w.queued)
		p.mu.Unlock()
		<-g.ch
		p.mu.Lock()
		if g.forced {
			break
		}
	}
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if w.Stream != "" {
		w.size += int64(len(wire.SeqField) + len(p.writer) + 8) // numbered when first sent
	}
	p.queue = append(p.queue, w)
	p.bytes += w.size
	var over []*write
	for p.bytes > p.maxHeld && len(p.queue) > 0 {
		old := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.bytes -= old.size
		over = append(over, old)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if len(over) > 0 {
		p.drop(over, "MaxHeldBytes", false)
	}
	return nil
}

// do queues an operation and waits for its result. A stream write stays queued when ctx ends first (the other
// servers still get it); a PUB/SUB message is then not sent.
func (p *publisher) do(ctx context.Context, op rdb.Op) (string, error) {
	w := &write{Op: op, ctx: ctx, done: make(chan struct{})}
	if err := p.send(w); err != nil {
		return "", err
	}
	select {
	case <-w.done:
		return w.ID, w.Err
	case <-ctx.Done():
		if p.unavailable() {
			return "", fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		return "", ctx.Err()
	}
}

// fire queues an operation without waiting; a failure is only reported (logged and counted).
func (p *publisher) fire(op rdb.Op) error {
	return p.send(&write{Op: op})
}

// unavailable tells whether writes are held because Redis is unreachable.
func (p *publisher) unavailable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outage
}

// gauges returns the queued writes, their size, and how many of them are held by an outage.
func (p *publisher) gauges() (queued int, bytes int64, held int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	queued = len(p.queue) + p.inflight
	if p.outage {
		held = queued
	}
	return queued, p.bytes, held
}

// take waits for queued writes and moves up to maxBatch of them to batch; nil once closed and empty.
func (p *publisher) take(batch []*write) []*write {
	p.mu.Lock()
	for len(p.queue) == 0 {
		if p.closed {
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
		if p.ctx.Err() != nil && len(p.queue) == 0 {
			p.mu.Unlock()
			return nil
		}
	}
	n := min(len(p.queue), p.maxBatch)
	batch = append(batch, p.queue[:n]...)
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil // let the backing array go
	}
	p.inflight += n
	if len(p.queue) < p.softCap {
		p.releaseLocked()
	}
	p.mu.Unlock()
	return batch
}

// waitLocked registers a send that began at start and waits for room: it returns the gate to wait on, and makes
// sure that the gate is forced open once the send has waited min(timeout, maxSendWait). One timer serves every
// waiting send (a timer per send costs more than the rest of the wait under steady backpressure).
func (p *publisher) waitLocked(start time.Time) *gate {
	g := p.space
	if g.since.IsZero() || start.Before(g.since) {
		g.since = start
	}
	if deadline := start.Add(min(p.timeout, maxSendWait)); p.timerAt.IsZero() || deadline.Before(p.timerAt) {
		p.timerAt = deadline
		p.spaceTimer.Reset(time.Until(deadline))
	}
	return g
}

// waitBound runs when the earliest waiting send may have waited its bound: the current gate is forced open if it
// has, and the timer armed again for the rest of its wait if not.
func (p *publisher) waitBound() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timerAt = time.Time{}
	g := p.space
	if g.since.IsZero() {
		return // nobody waits; the next waiting send arms the timer again
	}
	deadline := g.since.Add(min(p.timeout, maxSendWait))
	if d := time.Until(deadline); d > 0 {
		p.timerAt = deadline
		p.spaceTimer.Reset(d)
		return
	}
	g.forced = true
	p.releaseLocked()
}

// releaseLocked lets the senders waiting for room go on.
func (p *publisher) releaseLocked() {
	close(p.space.ch)
	p.space = newGate()
}

func (p *publisher) run() {
	defer close(p.done)
	var batch, keep []*write
	ops := make([]*rdb.Op, 0, p.maxBatch)
	failures := 0
	for {
		if len(batch) == 0 {
			if batch = p.take(batch[:0]); batch == nil {
				return
			}
		}
		batch = p.expire(batch)
		if len(batch) == 0 {
			continue
		}
		if p.ctx.Err() != nil {
			p.drop(batch, "Close", true)
			batch = batch[:0]
			continue
		}
		ops = ops[:0]
		p.number(batch)
		for _, w := range batch {
			w.ID, w.Err = "", nil
			w.sent = true
			ops = append(ops, &w.Op)
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
		var start time.Time
		if p.observer != nil {
			start = time.Now()
		}
		p.client.Batch(ctx, ops)
		if p.observer != nil {
			observeBatch(p.observer, ops, start)
		}
		cancel()
		keep = keep[:0]
		var finished []*write
		var cause error
		for _, w := range batch {
			// Close cut the round trip short (its context ended): held too, so dropped with the rest below.
			if w.Err != nil && (rdb.Unavailable(w.Err) || p.ctx.Err() != nil && errors.Is(w.Err, context.Canceled)) {
				keep = append(keep, w)
				cause = w.Err
				continue
			}
			finished = append(finished, w)
		}
		p.renumber(keep, finished)
		p.finish(finished)
		if len(keep) == 0 {
			if failures > 0 {
				p.endOutage()
			}
			failures = 0
			batch = batch[:0]
			continue
		}
		// Held: the failed writes go again, ahead of everything queued since, after a pause.
		failures++
		if failures == 1 {
			p.beginOutage(cause)
		}
		batch, keep = append(batch[:0], keep...), batch
		if queued, _, _ := p.gauges(); queued > p.heldMax {
			p.heldMax = queued
		}
		rdb.Sleep(p.ctx, rdb.Backoff(failures, 50*time.Millisecond, 2*time.Second))
	}
}

// number gives the stream writes of batch that have none their sequence number: in the order of the stream, so
// that a repeat never has a higher number than what followed it. Writes dropped before they were sent leave no gap.
// The numbers' text is built in one buffer and made one string, which every write's value is a part of.
func (p *publisher) number(batch []*write) {
	buf, ends := p.seqBuf[:0], p.seqEnds[:0]
	for _, w := range batch {
		if w.Stream == "" || w.numbered {
			continue
		}
		n := p.seqs[w.Stream] + 1
		p.seqs[w.Stream] = n
		buf = wire.AppendSeq(buf, p.writer, n)
		ends = append(ends, len(buf))
	}
	p.seqBuf, p.seqEnds = buf, ends
	if len(ends) == 0 {
		return
	}
	text, i, start := string(buf), 0, 0
	for _, w := range batch {
		if w.Stream == "" || w.numbered {
			continue
		}
		w.Fields = append(w.Fields, wire.SeqField, text[start:ends[i]])
		w.numbered = true
		start = ends[i]
		i++
	}
}

// renumber takes its number back from a held write when a later write of the same stream in the same round trip
// succeeded: Redis answered it with an error (it runs one connection's commands in order), so it was not applied,
// and under its old number readers would take it for a repeat once it lands after the later one.
func (p *publisher) renumber(held, finished []*write) {
	if len(held) == 0 || len(finished) == 0 {
		return
	}
	for _, h := range held {
		if h.Stream == "" || !h.numbered {
			continue
		}
		for _, f := range finished {
			if f.Stream == h.Stream && f.Err == nil && f.numbered && writeSeq(f) > writeSeq(h) {
				h.Fields = h.Fields[:len(h.Fields)-2]
				h.numbered = false
				break
			}
		}
	}
}

func writeSeq(w *write) uint64 {
	_, n, _ := wire.ParseSeq(w.Fields[len(w.Fields)-1])
	return n
}

// expire removes from batch the writes that must not be sent any more, and drops them: any write queued longer
// than maxOutage ago, a PUB/SUB message whose caller stopped waiting or older than one timeout (a request or a
// response nobody waits for any more).
func (p *publisher) expire(batch []*write) []*write {
	now := time.Now()
	var old []*write
	kept := batch[:0]
	for _, w := range batch {
		pubsub := w.Channel != ""
		if now.Sub(w.queued) > p.maxOutage || pubsub && (now.Sub(w.queued) > p.timeout || w.ctx != nil && w.ctx.Err() != nil) {
			old = append(old, w)
			continue
		}
		kept = append(kept, w)
	}
	clear(batch[len(kept):])
	if len(old) > 0 {
		p.drop(old, "MaxOutage", true)
	}
	return kept
}

// drop gives writes up: each is counted in Stats.Dropped and its caller gets ErrDropped (a stream write that was
// sent before, errDroppedSent: readers may have its number, see Stats.DroppedSent). The log says so once per
// outage, and at most every few seconds otherwise.
func (p *publisher) drop(ws []*write, bound string, inflight bool) {
	for _, w := range ws {
		w.Err = ErrDropped
		if w.sent && w.Stream != "" {
			w.Err = errDroppedSent
		}
	}
	p.mu.Lock()
	outage, first, since := p.outage, p.dropped == 0, p.outageStart
	if outage {
		p.dropped += len(ws)
	}
	p.mu.Unlock()
	if outage {
		if first {
			p.log.Error("redisstreams: dropping writes held too long while Redis is unavailable (see Options.MaxOutage, Options.MaxHeldBytes)",
				"bound", bound, "dropped", len(ws), "since", since.Format(time.RFC3339Nano))
		}
	} else if ok, suppressed := p.dropLog.Allow(); ok {
		p.log.Error("redisstreams: dropping writes (see Options.MaxOutage, Options.MaxHeldBytes)",
			"bound", bound, "dropped", len(ws), "dropped_before_unlogged", suppressed)
	} else {
		p.dropLog.Add(len(ws))
	}
	p.finishWrites(ws, inflight)
}

// finish reports finished writes and releases their callers.
func (p *publisher) finish(ws []*write) { p.finishWrites(ws, true) }

// finishWrites reports writes and releases their callers; inflight ones (taken by the writer goroutine) leave the
// gauges here, the others already left them.
func (p *publisher) finishWrites(ws []*write, inflight bool) {
	if len(ws) == 0 {
		return
	}
	var size int64
	for _, w := range ws {
		size += w.size
	}
	if inflight {
		p.mu.Lock()
		p.inflight -= len(ws)
		p.bytes -= size
		p.mu.Unlock()
	}
	for _, w := range ws {
		p.report(&w.Op, w.done != nil)
		if w.done != nil {
			close(w.done)
		}
	}
}

func (p *publisher) beginOutage(err error) {
	p.mu.Lock()
	p.outage = true
	p.releaseLocked() // nobody waits for room while writes are held
	queued := len(p.queue) + p.inflight
	p.outageStart, p.dropped = time.Now(), 0
	p.mu.Unlock()
	p.outageErr, p.heldMax = err, queued
	p.log.Warn("redisstreams: Redis unavailable, holding writes until it answers",
		"err", err, "held", queued, "max_outage", p.maxOutage, "max_held_bytes", p.maxHeld)
}

func (p *publisher) endOutage() {
	p.mu.Lock()
	p.outage = false
	dropped, since := p.dropped, p.outageStart
	p.mu.Unlock()
	level := slog.LevelInfo
	if dropped > 0 {
		level = slog.LevelError
	}
	p.log.Log(context.Background(), level, "redisstreams: Redis available again, held writes sent",
		"outage", time.Since(since).Round(time.Millisecond), "held_max", p.heldMax, "dropped", dropped,
		"first_err", p.outageErr)
}

// close stops accepting writes and lets the queued ones go out, waiting for them up to ctx's end; what is still
// held then is dropped (and counted).
func (p *publisher) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.releaseLocked()
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = fmt.Errorf("redisstreams: close: writes still held: %w", ctx.Err())
	}
	p.cancel()
	<-p.done // prompt: round trips and pauses end with p.ctx
	p.spaceTimer.Stop()
	return err
}
