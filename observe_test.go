package redisstreams

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps every call.
type recorder struct {
	mu        sync.Mutex
	batches   []int // sizes
	batchErrs int
	requests  map[string][]error // by kind
	delivered map[string]int     // by stream + " " + nsp
	negative  int                // negative durations seen
}

func newRecorder() *recorder {
	return &recorder{requests: map[string][]error{}, delivered: map[string]int{}}
}

func (r *recorder) WriteBatch(n int, rtt time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, n)
	if err != nil {
		r.batchErrs++
	}
	if rtt < 0 {
		r.negative++
	}
}

func (r *recorder) Request(kind string, rtt time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[kind] = append(r.requests[kind], err)
	if rtt < 0 {
		r.negative++
	}
}

func (r *recorder) Delivered(stream, nsp string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered[stream+" "+nsp]++
}

func (r *recorder) snapshot() (batches []int, requests map[string][]error, delivered map[string]int, negative int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.batches...), maps.Clone(r.requests), maps.Clone(r.delivered), r.negative
}

// TestObserver checks, in both layouts, that the Observer sees every write in a batch, each request once with its
// outcome (a broadcast with a missing ack as a timeout), and each remote broadcast read from the stream; and that
// ServerCounts counts the servers of every namespace.
func TestObserver(t *testing.T) {
	for _, cfg := range configsNamed("standalone", "rueidis-cluster-sharded", "standalone-streamsonly") {
		t.Run(cfg.name, func(t *testing.T) {
			recs := make([]*recorder, 3)
			i := 0
			nodes, clients := threeClients(t, cfg, clusterOpts{namespaces: []string{"/x"}, adapter: func(o *Options) {
				recs[i] = newRecorder()
				o.Observer = recs[i]
				o.RequestsTimeout = 500 * time.Millisecond
				i++
			}}, "test")
			for i, c := range clients {
				if i < 2 {
					answer(c, "test", i+1)
				} else {
					answer(c, "test", nil) // never acks
				}
			}
			nodes[0].io.Emit("test", 1)
			for _, c := range clients {
				c.expect(t, "test")
			}
			if got := fetch(t, nodes[0].io); len(got) != 3 {
				t.Fatalf("fetchSockets: %d sockets", len(got))
			}
			serverSideEvents(nodes, "hello", func(int) any { return "ok" })
			if r := serverSideEmitWithAck(nodes[0].io, "hello"); r.err != nil {
				t.Fatal(r.err)
			}
			if r := emitWithAck(nodes[0].io.Timeout(200*time.Millisecond), "test"); r.err == nil {
				t.Fatal("broadcast with a silent client: no timeout")
			}
			waitFor(t, "the broadcastWithAck observation", func() bool {
				_, req, _, _ := recs[0].snapshot()
				return len(req[RequestBroadcastWithAck]) > 0
			})

			for i, n := range nodes {
				counts, err := n.adapter.ServerCounts(context.Background())
				if err != nil || !maps.Equal(counts, map[string]int64{"/": 3, "/x": 3}) {
					t.Errorf("node %d: ServerCounts = %v, %v", i, counts, err)
				}
				stats := n.adapter.Stats()
				waitFor(t, "every write observed", func() bool {
					batches, _, _, _ := recs[i].snapshot()
					sum := 0
					for _, b := range batches {
						sum += b
					}
					stats = n.adapter.Stats()
					return uint64(sum) == stats.Published+stats.PublishErrors
				})
				_, requests, delivered, negative := recs[i].snapshot()
				if negative > 0 {
					t.Errorf("node %d: %d negative durations", i, negative)
				}
				stream := nodes[0].nsp(t, "/").stream
				broadcasts := 1
				if cfg.opts.StreamsOnly {
					broadcasts = 2 // the broadcast with acks is a stream entry too
				}
				if want := map[string]int{stream + " /": broadcasts}; i > 0 && !maps.Equal(delivered, want) {
					t.Errorf("node %d: delivered %v, want %v", i, delivered, want)
				} else if i == 0 && len(delivered) != 0 {
					t.Errorf("node 0 observed deliveries of its own broadcast: %v", delivered)
				}
				if i > 0 {
					if len(requests) != 0 {
						t.Errorf("node %d observed requests %v", i, requests)
					}
					continue
				}
				for kind, want := range map[string]error{
					RequestFetchSockets:     nil,
					RequestServerSideEmit:   nil,
					RequestBroadcastWithAck: ErrTimeout,
				} {
					if errs := requests[kind]; len(errs) != 1 || !errors.Is(errs[0], want) || (want == nil) != (errs[0] == nil) {
						t.Errorf("requests %s: %v, want one with %v", kind, errs, want)
					}
				}
			}
		})
	}
}
