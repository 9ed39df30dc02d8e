package redisstreams

import (
	"context"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// layout is what differs between the two ways the servers of a cluster can share Redis (Options.StreamsOnly): how a
// namespace's servers find each other, how many they are, and how requests and responses travel. Broadcasts and
// room changes are stream entries in both. An Adapter holds one layout, chosen by New; no other code asks which.
//
//   - pubsubLayout (layout_pubsub.go), the Node adapter 0.3.x's and the default: requests and responses are
//     PUB/SUB messages, a namespace's servers are the subscribers of its public channel.
//   - streamsLayout (layout_streams.go), the Node adapter 0.2.x's: requests and responses are stream entries too,
//     and the servers know each other from heartbeats.
type layout interface {
	// join makes a namespace that already follows its stream known to the other servers.
	join(ctx context.Context, n *nspAdapter) error
	// leave makes it unknown again (the caller does it once, before the namespace stops reading).
	leave(ctx context.Context, n *nspAdapter) error
	// serverCount is the number of the namespace's servers, this one included.
	serverCount(ctx context.Context, n *nspAdapter) (int64, error)
	// send writes a request (to "": every other server) or a response (to: the requester's uid); with wait, it
	// returns once Redis has it.
	send(ctx context.Context, n *nspAdapter, to string, msg *wire.Message, wait bool) error
	// wrote tells that the namespace queued a stream write.
	wrote(n *nspAdapter)
	// heard tells that a message of another server (uid) was read for the namespace. It returns true when the
	// message was the layout's own business (a heartbeat, ADAPTER_CLOSE), with nothing left to do.
	heard(n *nspAdapter, uid string, typ wire.MessageType) bool
	// awaited is whom a request of the namespace sent now waits for, given the responses the server count
	// implies. The caller holds n.reqMu, so that a server that leaves is either in the answer or sees the request.
	awaited(n *nspAdapter, responses int) awaited
	// close stops what the layout runs by itself (the subscriber, the heartbeat loop).
	close() error
}

// awaited is whom a request waits for: a number of responses (the PUB/SUB layout, where the servers are counted but
// not known), or the servers themselves (the streams-only layout), which it then stops waiting for when they leave.
// It is guarded by the namespace's reqMu.
type awaited struct {
	count   int                 // responses expected when the request was sent
	servers map[string]struct{} // nil, or the servers still awaited
}

// answered records uid's first response, the responders'th; it returns true once none is awaited any more.
func (w *awaited) answered(uid string, responders int) bool {
	if w.servers == nil {
		return responders >= w.count
	}
	delete(w.servers, uid)
	return len(w.servers) == 0
}

// left records that server uid is gone; it returns true if it was awaited.
func (w *awaited) left(uid string) bool {
	if _, ok := w.servers[uid]; !ok {
		return false
	}
	delete(w.servers, uid)
	return true
}

// none reports whether a request waits for nobody (no server was alive to answer it).
func (w *awaited) none() bool { return w.servers != nil && len(w.servers) == 0 }

// missing is the number of known servers still awaited.
func (w *awaited) missing() int { return len(w.servers) }
