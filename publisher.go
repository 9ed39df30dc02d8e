package redisstreams

import (
	"context"
	"sync"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// publisher funnels every write (XADD and PUBLISH) of one Adapter through a single goroutine that sends whatever
// is queued as one pipeline, up to maxBatch writes: under load concurrent emits share round trips, when idle a
// write goes out at once (no timer). Writes leave in the order they were queued.
type publisher struct {
	client   rdb.Client
	maxBatch int
	timeout  time.Duration
	report   func(op *rdb.Op, waited bool) // called for every finished write
	observer Observer                      // Options.Observer, or nil

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *write
	done   chan struct{}
}

type write struct {
	rdb.Op
	done chan struct{} // nil for fire-and-forget writes
}

func newPublisher(client rdb.Client, maxBatch int, timeout time.Duration, report func(*rdb.Op, bool)) *publisher {
	p := &publisher{
		client:   client,
		maxBatch: maxBatch,
		timeout:  timeout,
		report:   report,
		queue:    make(chan *write, 4*maxBatch),
		done:     make(chan struct{}),
	}
	go p.run()
	return p
}

// send queues w. It blocks while the queue is full (backpressure instead of loss) and fails after close.
func (p *publisher) send(w *write) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	p.queue <- w
	return nil
}

// do queues an operation and waits for its result.
func (p *publisher) do(ctx context.Context, op rdb.Op) (string, error) {
	w := &write{Op: op, done: make(chan struct{})}
	if err := p.send(w); err != nil {
		return "", err
	}
	select {
	case <-w.done:
		return w.ID, w.Err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// fire queues an operation without waiting; a failure is only reported (logged and counted).
func (p *publisher) fire(op rdb.Op) error {
	return p.send(&write{Op: op})
}

func (p *publisher) run() {
	defer close(p.done)
	batch := make([]*write, 0, p.maxBatch)
	ops := make([]*rdb.Op, 0, p.maxBatch)
	for first := range p.queue {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < p.maxBatch {
			select {
			case w, ok := <-p.queue:
				if !ok {
					break drain
				}
				batch = append(batch, w)
			default:
				break drain
			}
		}
		ops = ops[:0]
		for _, w := range batch {
			ops = append(ops, &w.Op)
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		var start time.Time
		if p.observer != nil {
			start = time.Now()
		}
		p.client.Batch(ctx, ops)
		if p.observer != nil {
			observeBatch(p.observer, ops, start)
		}
		cancel()
		for _, w := range batch {
			p.report(&w.Op, w.done != nil)
			if w.done != nil {
				close(w.done)
			}
		}
		clear(batch)
	}
}

// close stops accepting writes, lets the queued ones go out, and waits for them (bounded by ctx).
func (p *publisher) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
