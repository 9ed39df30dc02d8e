package redisstreams

import "sync"

// workerQueue is how many tasks each receive worker holds before the goroutine that hands it work waits.
const workerQueue = 1024

// workers is a fixed set of goroutines that run the receive path's work off the goroutine that reads it (a stream's
// dispatch goroutine, the PUB/SUB subscriber, the heartbeat loop, a request's timer). A task is routed by its key to
// one worker, so the tasks of one key run one at a time, in the order they were handed over, and the adapter never
// has more goroutines for this work than workers, however many messages arrive.
//
// When the worker's queue is full, submit waits for room: the reader that hands it work stops reading meanwhile
// (backpressure; stream entries wait in Redis, PUB/SUB messages in the client's buffer). Nothing is dropped.
//
// close refuses new work at once, lets the workers run what was queued, and ends them; the adapter's WaitGroup
// waits for them.
type workers struct {
	queues []chan func()
	quit   chan struct{} // closed by close: submitters waiting for room give up

	mu     sync.RWMutex // held for reading by submitters, so that close can tell when none is sending any more
	closed bool
	once   sync.Once
}

// newWorkers starts n workers (at least one) with wg.
func newWorkers(n int, wg *sync.WaitGroup) *workers {
	w := &workers{queues: make([]chan func(), max(n, 1)), quit: make(chan struct{})}
	for i := range w.queues {
		q := make(chan func(), workerQueue)
		w.queues[i] = q
		wg.Go(func() {
			for task := range q {
				task()
			}
		})
	}
	return w
}

// submit hands task to the worker of key, waiting while its queue is full. It returns false, and task never runs,
// once close has been called.
func (w *workers) submit(key string, task func()) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	q := w.queues[keyIndex(key, len(w.queues))]
	select {
	case <-w.quit:
		return false
	case q <- task:
		return true
	default:
	}
	select {
	case <-w.quit:
		return false
	case q <- task:
		return true
	}
}

// close refuses new work; the workers end once they have run what was queued. It does not wait for them.
func (w *workers) close() {
	w.once.Do(func() {
		close(w.quit) // releases the submitters waiting for room, so that the lock below is not held up
		w.mu.Lock()
		w.closed = true
		for _, q := range w.queues {
			close(q)
		}
		w.mu.Unlock()
	})
}

// keyIndex maps a key to one of n workers (FNV-1a).
func keyIndex(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
