package redisstreams

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/siotest"
)

// The pool itself: the tasks of one key run one at a time in the order submitted, work is refused once close was
// called, a submitter waiting for room is let go by close, and what was queued runs before the workers end.
func TestWorkers(t *testing.T) {
	var wg sync.WaitGroup
	w := newWorkers(4, &wg)
	const keys, per = 8, 200
	var mu sync.Mutex
	got := map[string][]int{}
	var running [keys]atomic.Int32
	for i := range per {
		for k := range keys {
			key := string(rune('a' + k))
			if !w.submit(key, func() {
				if running[k].Add(1) != 1 {
					t.Errorf("two tasks of key %s at once", key)
				}
				mu.Lock()
				got[key] = append(got[key], i)
				mu.Unlock()
				running[k].Add(-1)
			}) {
				t.Fatal("submit refused before close")
			}
		}
	}

	// Fill one worker (blocked in its first task), so that the next submit waits for room.
	gate := make(chan struct{})
	blocked := make(chan struct{})
	w.submit("x", func() { close(blocked); <-gate })
	<-blocked
	for range workerQueue {
		w.submit("x", func() {})
	}
	waiting := make(chan bool)
	go func() { waiting <- w.submit("x", func() { t.Error("a task refused by close ran") }) }()
	w.close()
	if <-waiting {
		t.Error("a submit waiting for room was accepted after close")
	}
	if w.submit("a", func() { t.Error("a task submitted after close ran") }) {
		t.Error("submit accepted after close")
	}
	close(gate)
	wg.Wait() // the workers end once the queued tasks ran
	for k := range keys {
		key := string(rune('a' + k))
		if len(got[key]) != per {
			t.Fatalf("key %s: %d tasks ran, want %d", key, len(got[key]), per)
		}
		for i, v := range got[key] {
			if v != i {
				t.Fatalf("key %s: task %d ran in place %d", key, v, i)
			}
		}
	}
}

// A broadcast with acknowledgements to many real clients of another server: their acknowledgements reach the
// sending server one message each, and none gets a goroutine of its own. The application's ack callback is held
// until every acknowledgement has been read, so that a goroutine per acknowledgement would show (they would all
// be waiting in it); then they run, one at a time and all of them.
func TestBroadcastWithAckBoundedGoroutines(t *testing.T) {
	const clients = 1000
	for _, cfg := range configsNamed("standalone", "standalone-streamsonly") {
		t.Run(cfg.name, func(t *testing.T) {
			rec := newRecorder()
			nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) { o.Observer = rec }})
			connectMany(t, nodes[1], clients, "ask")
			n := nodes[0].nsp(t, "/")
			before := runtime.NumGoroutine()

			gate := make(chan struct{})
			var acks, inCallback, overlaps atomic.Int32
			var counts sync.Map
			timeout := time.Minute
			n.BroadcastWithAck(&parser.Packet{Type: parser.EVENT, Data: []any{"ask"}},
				&socket.BroadcastOptions{Flags: &socket.BroadcastFlags{Timeout: &timeout}},
				func(c uint64) { counts.Store(c, true) },
				func([]any, error) {
					if inCallback.Add(1) != 1 {
						overlaps.Add(1)
					}
					<-gate
					acks.Add(1)
					inCallback.Add(-1)
				})
			waitFor(t, "every acknowledgement read", func() bool {
				n.reqMu.Lock()
				defer n.reqMu.Unlock()
				for _, ar := range n.ackRequests {
					return ar.obs.acks == clients
				}
				return false
			})
			during := runtime.NumGoroutine()
			close(gate)
			waitFor(t, "every acknowledgement delivered", func() bool { return acks.Load() == clients })
			t.Logf("goroutines: %d before the broadcast, %d with %d acknowledgements read and the callback held",
				before, during, clients)
			if during-before > DefaultReceiveWorkers {
				t.Errorf("%d more goroutines while %d acknowledgements waited for the callback (pool size %d)",
					during-before, clients, DefaultReceiveWorkers)
			}
			if overlaps.Load() != 0 {
				t.Errorf("the acknowledgements of one broadcast ran %d times alongside another", overlaps.Load())
			}
			if _, ok := counts.Load(uint64(clients)); !ok {
				t.Errorf("no client count of %d from the other server", clients)
			}
		})
	}
}

// connectMany connects count real clients to nd (several at a time), each acknowledging event with its index,
// and waits until the server has them all.
func connectMany(t *testing.T, nd *node, count int, event string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				s, err := siotest.Dial(nd.url+"/", nil, 5*time.Second, 3, func(s *client.Socket) {
					_ = s.On(typesEvent(event), func(args ...any) {
						if ack, ok := args[len(args)-1].(socket.Ack); ok {
							ack([]any{i}, nil)
						}
					})
				})
				if err != nil {
					errs <- err
					continue
				}
				t.Cleanup(func() { s.Disconnect() })
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "every client connected", func() bool { return len(nd.socketsOf("/")) == count })
}

// An acknowledgement the application calls after Close (here of a serverSideEmit from another server) starts no
// goroutine: the adapter has refused new work before it waited for its goroutines, and the response is refused on
// the caller's goroutine.
func TestCloseRefusesLateWork(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "standalone-streamsonly") {
		t.Run(cfg.name, func(t *testing.T) {
			logs := &stackLog{records: make(chan stackRecord, 1024)}
			nodes := startCluster(t, cfg, clusterOpts{nodes: 2, adapter: func(o *Options) {
				o.Logger = slog.New(logs)
			}})
			saved := make(chan socket.Ack, 1)
			nodes[0].io.On("late", func(args ...any) {
				if ack, ok := args[len(args)-1].(socket.Ack); ok {
					saved <- ack
				}
			})
			go serverSideEmitWithAck(nodes[1].io, "late")
			var ack socket.Ack
			select {
			case ack = <-saved:
			case <-time.After(10 * time.Second):
				t.Fatal("the serverSideEmit never reached the handler")
			}
			a := nodes[0].adapter
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			ack([]any{"late"}, nil)
			var rec stackRecord
			for rec.msg != "redisstreams: response not sent" {
				select {
				case rec = <-logs.records:
				case <-time.After(10 * time.Second):
					t.Fatal("the late response was neither refused nor logged")
				}
			}
			if !strings.Contains(rec.stack, "TestCloseRefusesLateWork") {
				t.Fatalf("the late response was handled on a goroutine started after Close:\n%s", rec.stack)
			}
		})
	}
}

// stackLog is a slog.Handler that passes on every record with the stack of the goroutine that logged it.
type stackLog struct{ records chan stackRecord }

type stackRecord struct{ msg, stack string }

func (h *stackLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *stackLog) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	select {
	case h.records <- stackRecord{r.Message, string(buf)}:
	default:
	}
	return nil
}

func (h *stackLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stackLog) WithGroup(string) slog.Handler      { return h }
