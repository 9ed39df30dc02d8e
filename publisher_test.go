package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// flakyRedis is an rdb.Client whose writes fail with err while down, and are recorded in order once up. Only Batch
// is implemented: the publisher uses nothing else.
type flakyRedis struct {
	rdb.Client
	mu      sync.Mutex
	err     error // nil: up
	applied []rdb.Op
	calls   int
	sent    map[uint64]bool // the sequence numbers of every stream write sent, applied or not
}

func (f *flakyRedis) Batch(_ context.Context, ops []*rdb.Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	for i, op := range ops {
		for j := 0; j+1 < len(op.Fields); j += 2 {
			if op.Fields[j] == wire.SeqField {
				_, n, _ := wire.ParseSeq(op.Fields[j+1])
				if f.sent == nil {
					f.sent = map[uint64]bool{}
				}
				f.sent[n] = true
			}
		}
		if f.err != nil {
			op.Err = f.err
			continue
		}
		op.ID = fmt.Sprintf("%d-%d", f.calls, i)
		f.applied = append(f.applied, *op)
	}
}

func (f *flakyRedis) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *flakyRedis) seqs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, op := range f.applied {
		for i := 0; i+1 < len(op.Fields); i += 2 {
			if op.Fields[i] == wire.SeqField {
				_, n, _ := wire.ParseSeq(op.Fields[i+1])
				out = append(out, n)
			}
		}
	}
	return out
}

type outcomes struct {
	mu                  sync.Mutex
	ok, dropped, failed int
	droppedSent         int
}

func (o *outcomes) report(op *rdb.Op, _ bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case op.Err == nil:
		o.ok++
	case errors.Is(op.Err, ErrDropped):
		o.dropped++
		if op.Err == errDroppedSent {
			o.droppedSent++
		}
	default:
		o.failed++
	}
}

func (o *outcomes) get() (ok, dropped, failed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok, o.dropped, o.failed
}

func newTestPublisher(t *testing.T, f *flakyRedis, o *outcomes, maxOutage time.Duration, maxHeld int64) *publisher {
	p := newPublisher(f, publisherOptions{maxBatch: 8, timeout: time.Second, maxOutage: maxOutage, maxHeld: maxHeld,
		log: slog.New(slog.DiscardHandler)}, o.report)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.close(ctx)
	})
	return p
}

func streamOp(i int) rdb.Op {
	return rdb.Op{Stream: "s", Fields: []string{"uid", "u", "nsp", "/", "type", "3", "data", fmt.Sprint(i)}}
}

// Writes that fail for want of Redis are held, then all applied once, in order, when it answers again.
func TestPublisherHoldsWritesThroughAnOutage(t *testing.T) {
	f := &flakyRedis{err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}
	var o outcomes
	p := newTestPublisher(t, f, &o, time.Minute, 1<<20)
	for i := range 100 {
		if err := p.fire(streamOp(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "writes held", func() bool { _, _, held := p.gauges(); return held == 100 })
	if !p.unavailable() {
		t.Error("publisher does not say Redis is unavailable")
	}
	f.set(nil)
	waitFor(t, "writes applied", func() bool { ok, _, _ := o.get(); return ok == 100 })
	seqs := f.seqs()
	if len(seqs) != 100 {
		t.Fatalf("%d writes applied, want 100", len(seqs))
	}
	for i, n := range seqs {
		if n != uint64(i+1) {
			t.Fatalf("write %d applied with sequence %d: out of order", i, n)
		}
	}
	if q, b, h := p.gauges(); q != 0 || b != 0 || h != 0 || p.unavailable() {
		t.Errorf("after the outage: queued %d, bytes %d, held %d, unavailable %v", q, b, h, p.unavailable())
	}
}

// Past MaxOutage every held write is dropped and counted, one by one; a waiting caller gets ErrDropped.
func TestPublisherDropsPastMaxOutage(t *testing.T) {
	f := &flakyRedis{err: errors.New("LOADING Redis is loading the dataset in memory")}
	var o outcomes
	p := newTestPublisher(t, f, &o, 300*time.Millisecond, 1<<20)
	for i := range 20 {
		_ = p.fire(streamOp(i))
	}
	_, err := p.do(t.Context(), streamOp(20))
	if !errors.Is(err, ErrDropped) {
		t.Errorf("do: %v, want ErrDropped", err)
	}
	waitFor(t, "writes dropped", func() bool { _, dropped, _ := o.get(); return dropped == 21 })
	if ok, _, failed := o.get(); ok != 0 || failed != 0 {
		t.Errorf("ok %d, failed %d", ok, failed)
	}
}

// A dropped write is told apart by whether it was sent before (Stats.DroppedSent): exactly the dropped writes that
// had a sequence number, which readers may count lost; the others left no gap in the numbering.
func TestPublisherCountsDroppedSent(t *testing.T) {
	f := &flakyRedis{err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}
	var o outcomes
	op := streamOp(0)
	size := int64(64 + len(wire.SeqField) + 16 + 8)
	for _, s := range op.Fields {
		size += int64(len(s))
	}
	p := newTestPublisher(t, f, &o, 300*time.Millisecond, 10*size)
	_ = p.fire(streamOp(0))
	waitFor(t, "outage", func() bool { return p.unavailable() })
	for i := 1; i < 50; i++ {
		_ = p.fire(streamOp(i)) // past MaxHeldBytes: the oldest queued go, unsent
	}
	waitFor(t, "every write dropped", func() bool { _, dropped, _ := o.get(); return dropped == 50 })
	o.mu.Lock()
	droppedSent := o.droppedSent
	o.mu.Unlock()
	f.mu.Lock()
	numbered := len(f.sent)
	f.mu.Unlock()
	if droppedSent != numbered || droppedSent == 0 || 50-droppedSent < 40 {
		t.Errorf("dropped 50, %d of them counted as sent; %d sequence numbers sent", droppedSent, numbered)
	}
}

// The queue never holds more than MaxHeldBytes: the oldest writes go first, each counted.
func TestPublisherBoundsHeldBytes(t *testing.T) {
	f := &flakyRedis{err: context.DeadlineExceeded}
	var o outcomes
	op := streamOp(0)
	size := int64(64 + len(wire.SeqField) + 16 + 8)
	for _, s := range op.Fields {
		size += int64(len(s))
	}
	p := newTestPublisher(t, f, &o, time.Minute, 10*size)
	waitForOutage := func() bool { return p.unavailable() }
	_ = p.fire(streamOp(0))
	waitFor(t, "outage", waitForOutage)
	for i := 1; i < 50; i++ {
		_ = p.fire(streamOp(i))
	}
	if _, b, _ := p.gauges(); b > 10*size {
		t.Errorf("queued %d bytes, bound %d", b, 10*size)
	}
	f.set(nil)
	waitFor(t, "drained", func() bool { q, _, _ := p.gauges(); return q == 0 })
	ok, dropped, failed := o.get()
	if ok+dropped != 50 || dropped == 0 || failed != 0 {
		t.Errorf("ok %d + dropped %d != 50 (failed %d)", ok, dropped, failed)
	}
	// What was kept is the newest, in order; writes dropped before they were sent leave no gap in the numbering
	// (readers would count one as lost).
	seqs := f.seqs()
	for i, n := range seqs {
		if n != uint64(i+1) {
			t.Fatalf("applied sequence numbers %v, want 1..%d", seqs, len(seqs))
		}
	}
	f.mu.Lock()
	last := f.applied[len(f.applied)-1].Fields[7]
	f.mu.Unlock()
	if last != "49" {
		t.Errorf("newest write not kept: the last applied is %s", last)
	}
}

// failFirst refuses the first write of its first batch with a passing server error (LOADING), and applies the
// rest: the refused write, sent again after the later ones, must not look like a repeat of an older write.
type failFirst struct {
	flakyRedis
	failed bool
}

func (f *failFirst) Batch(ctx context.Context, ops []*rdb.Op) {
	f.mu.Lock()
	up := f.err == nil
	f.mu.Unlock()
	if up && !f.failed && len(ops) > 1 {
		f.failed = true
		ops[0].Err = errors.New("LOADING Redis is loading the dataset in memory")
		f.flakyRedis.Batch(ctx, ops[1:])
		return
	}
	f.flakyRedis.Batch(ctx, ops)
}

func TestPublisherRenumbersARefusedWrite(t *testing.T) {
	f := &failFirst{}
	var o outcomes
	p := newTestPublisher(t, &f.flakyRedis, &o, time.Minute, 1<<20)
	p.client = f
	f.flakyRedis.set(context.DeadlineExceeded) // hold the first writes so that they share one batch
	for i := range 5 {
		_ = p.fire(streamOp(i))
	}
	waitFor(t, "held", func() bool { return p.unavailable() })
	f.flakyRedis.set(nil)
	waitFor(t, "applied", func() bool { ok, _, _ := o.get(); return ok == 5 })
	seqs := f.seqs()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence numbers in stream order %v: a reader would drop one as a repeat", seqs)
		}
	}
}

// An error that retrying cannot fix is reported at once, never held.
func TestPublisherDoesNotHoldRefusedWrites(t *testing.T) {
	f := &flakyRedis{err: errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")}
	var o outcomes
	p := newTestPublisher(t, f, &o, time.Minute, 1<<20)
	if _, err := p.do(t.Context(), streamOp(0)); err == nil || errors.Is(err, ErrDropped) {
		t.Errorf("do: %v, want Redis's error", err)
	}
	if p.unavailable() {
		t.Error("a refused write was taken for an outage")
	}
}

// A PUB/SUB message (a request or a response) is not held beyond one timeout: nobody waits for it any more.
func TestPublisherDropsStalePubSub(t *testing.T) {
	f := &flakyRedis{err: syscall.ECONNRESET}
	var o outcomes
	p := newPublisher(f, publisherOptions{maxBatch: 8, timeout: 200 * time.Millisecond, maxOutage: time.Minute,
		maxHeld: 1 << 20, log: slog.New(slog.DiscardHandler)}, o.report)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.close(ctx)
	}()
	_ = p.fire(rdb.Op{Channel: "c", Payload: []byte("x")})
	waitFor(t, "message dropped", func() bool { _, dropped, _ := o.get(); return dropped == 1 })
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED), true},
		{syscall.ECONNRESET, true},
		{context.DeadlineExceeded, true},
		{errors.New("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("MOVED 3999 127.0.0.1:6381"), true},
		{errors.New("CLUSTERDOWN The cluster is down"), true},
		{errors.New("READONLY You can't write against a read only replica."), true},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout"), true},
		{errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{errors.New("WRONGPASS invalid username-password pair or user is disabled."), false},
		{errors.New("NOPERM this user has no permissions to run the 'xadd' command"), false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := rdb.Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// stuckRedis never answers a batch until its context ends: Redis reachable but not keeping up.
type stuckRedis struct {
	rdb.Client
	batches chan int
}

func (s *stuckRedis) Batch(ctx context.Context, ops []*rdb.Op) {
	s.batches <- len(ops)
	<-ctx.Done()
	for _, op := range ops {
		op.Err = ctx.Err()
	}
}

// A sender waits for room in a full queue only so long (min(timeout, maxSendWait)), then queues past the soft cap;
// every waiting sender is bounded, including those that start waiting after others were let go.
func TestPublisherBoundsTheWaitForRoom(t *testing.T) {
	s := &stuckRedis{batches: make(chan int, 100)}
	p := newPublisher(s, publisherOptions{maxBatch: 2, timeout: time.Minute, maxOutage: time.Hour, maxHeld: 1 << 30,
		log: slog.New(slog.DiscardHandler)}, func(*rdb.Op, bool) {})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.close(ctx)
	})
	_ = p.fire(streamOp(0))
	<-s.batches // the writer goroutine is stuck in this round trip from now on
	for i := range p.softCap {
		if err := p.fire(streamOp(1 + i)); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range round + 1 {
			wg.Go(func() { _ = p.fire(streamOp(1000*round + i)) })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: senders still waiting for room while Redis does not answer", round)
		}
	}
	if queued, _, _ := p.gauges(); queued != 1+p.softCap+1+2+3 {
		t.Errorf("queued %d, want %d", queued, 1+p.softCap+6)
	}
	if len(s.batches) != 0 {
		t.Error("the writer goroutine took another batch: the test did not fill the queue")
	}
}
