package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Request kinds passed to Observer.Request.
const (
	RequestFetchSockets     = "fetchSockets"
	RequestServerSideEmit   = "serverSideEmit"
	RequestBroadcastWithAck = "broadcastWithAck"
)

// ServerCounts returns the number of servers in the cluster for each namespace this server has joined, this server
// included, as Socket.IO's ServerCount reports it: the subscribers of the namespace's public channel (PUBSUB NUMSUB,
// or SHARDNUMSUB with UseShardedPubSub; one round trip per namespace), or in streams-only mode 1 + the servers
// heard from within HeartbeatTimeout (no Redis command). It is meant for metrics and health checks; a namespace
// whose count failed is left out and its error joined to the returned one (ErrUnavailable at once while writes are
// held for an outage, as for ServerCount).
func (a *Adapter) ServerCounts(ctx context.Context) (map[string]int64, error) {
	a.mu.Lock()
	nsps := make([]*nspAdapter, 0, len(a.nsps))
	for _, list := range a.nsps {
		if len(list) > 0 {
			nsps = append(nsps, list[0])
		}
	}
	a.mu.Unlock()
	sort.Slice(nsps, func(i, j int) bool { return nsps[i].name < nsps[j].name })
	out := make(map[string]int64, len(nsps))
	var errs []error
	for _, n := range nsps {
		count, err := a.layout.serverCount(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("redisstreams: server count of %q: %w", n.name, err))
			continue
		}
		out[n.name] = count
	}
	return out, errors.Join(errs...)
}

// observeBatch reports one pipelined write batch to the Observer (the caller checked it is not nil).
func observeBatch(o Observer, ops []*rdb.Op, start time.Time) {
	var err error
	for _, op := range ops {
		if op.Err != nil {
			err = op.Err
			break
		}
	}
	o.WriteBatch(len(ops), time.Since(start), err)
}

// observeDelivered reports a broadcast read from a stream to the Observer (the caller checked it is not nil).
func observeDelivered(o Observer, stream, nsp, id string) {
	if ms, ok := wire.IDMillis(id); ok {
		o.Delivered(stream, nsp, time.Since(time.UnixMilli(ms)))
	}
}

// requestKind names a request type for Observer.Request.
func requestKind(r *request) string {
	if r.typ == wire.FetchSockets {
		return RequestFetchSockets
	}
	return RequestServerSideEmit
}

// ackObservation follows the remote side of a broadcast with acknowledgements for Observer.Request: the client
// counts the other servers reported, and their clients' acks. It is guarded by the namespace's reqMu.
type ackObservation struct {
	start, last time.Time     // sent; last remote response
	timeout     time.Duration // the operator's
	servers     int           // remote client counts received
	clients     uint64        // their sum
	acks        uint64        // remote acks received
}

func (o *ackObservation) record(msg *wire.Message) {
	o.last = time.Now()
	if msg.Type == wire.BroadcastClientCount {
		o.servers++
		o.clients += msg.ClientCount
	} else {
		o.acks++
	}
}

// observeAckRequest reports a broadcast with acknowledgements once the adapter stops listening for its answers
// (the operator's timeout + 1s): complete, its round trip is the time of the last remote answer; with acks or (in
// streams-only mode) servers missing, it is reported as a timeout after the operator's timeout. Without any remote
// answer and no server known missing (a one-server cluster), nothing is reported. In the default layout a server
// that never sent its client count is not noticed here (the server count is not known to the adapter at that
// point); the operator reports it to the application. reqMu must be held.
func (n *nspAdapter) observeAckRequest(ar *ackRequest) {
	o, obs := ar.obs, n.opts().Observer
	if o == nil || obs == nil {
		return
	}
	switch {
	case o.acks < o.clients || ar.wait.missing() > 0:
		waited := o.timeout
		if waited <= 0 {
			waited = time.Since(o.start)
		}
		obs.Request(RequestBroadcastWithAck, waited, fmt.Errorf("%w: %d of %d acknowledgements from %d servers, %d servers silent",
			ErrTimeout, o.acks, o.clients, o.servers, ar.wait.missing()))
	case o.servers > 0:
		obs.Request(RequestBroadcastWithAck, o.last.Sub(o.start), nil)
	}
}
