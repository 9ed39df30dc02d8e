package redisstreams

import (
	"context"
	"time"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// The streams-only layout (Options.StreamsOnly): membership by heartbeats, as the Node adapter 0.2.x and
// socket.io-adapter's ClusterAdapterWithHeartbeat do it.

// emitterUID is the uid of the messages of the emitters (ours and @socket.io/redis-streams-emitter), which are
// not servers.
const emitterUID = wire.EmitterUID

// noSubscriber stands in for the PUB/SUB subscriber in streams-only mode: nothing is ever subscribed.
type noSubscriber struct{}

func (noSubscriber) Subscribe(context.Context, ...string) error   { return nil }
func (noSubscriber) Unsubscribe(context.Context, ...string) error { return nil }
func (noSubscriber) Close() error                                 { return nil }

// heartbeatTick is how often the heartbeat loop looks at every namespace: a quarter of the shortest heartbeat
// setting, at most a second (Node sweeps every second).
func heartbeatTick(o *Options) time.Duration {
	return max(min(time.Second, o.HeartbeatInterval/4, o.HeartbeatTimeout/4), 5*time.Millisecond)
}

// heartbeatLoop is the one goroutine per Adapter that writes the idle heartbeats and forgets the servers that
// went silent. It ends when Close closes a.stop.
func (a *Adapter) heartbeatLoop() {
	t := time.NewTicker(heartbeatTick(&a.opts))
	defer t.Stop()
	var all []*nspAdapter
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			all = all[:0]
			a.mu.Lock()
			for _, list := range a.nsps {
				all = append(all, list...)
			}
			a.mu.Unlock()
			for _, n := range all {
				n.tick(now)
			}
		}
	}
}

// tick writes a HEARTBEAT if nothing was written for HeartbeatInterval, and removes the servers not heard from
// within HeartbeatTimeout.
func (n *nspAdapter) tick(now time.Time) {
	if !n.beating.Load() || n.detached.Load() {
		return
	}
	o := n.opts()
	if now.Sub(time.Unix(0, n.lastWrite.Load())) >= o.HeartbeatInterval {
		n.heartbeat(wire.Heartbeat)
	}
	var gone []string
	n.reqMu.Lock()
	for uid, seen := range n.members {
		if now.Sub(seen) > o.HeartbeatTimeout {
			gone = append(gone, uid)
		}
	}
	for uid, closed := range n.closedUIDs {
		if now.Sub(closed) > o.HeartbeatTimeout {
			delete(n.closedUIDs, uid)
		}
	}
	n.reqMu.Unlock()
	for _, uid := range gone {
		n.parent.log.Info("redisstreams: server seems down", "nsp", n.name, "uid", uid)
		n.removeMember(uid)
	}
}

// heartbeat writes an INITIAL_HEARTBEAT or a HEARTBEAT (no data) to the stream, unless the namespace has left
// the cluster.
func (n *nspAdapter) heartbeat(typ wire.MessageType) {
	n.hbMu.Lock()
	defer n.hbMu.Unlock()
	if n.detached.Load() {
		return
	}
	_, _ = n.publishStream(context.Background(), &wire.Message{Type: typ, UID: n.uid, Nsp: n.name}, false)
	if typ == wire.InitialHeartbeat {
		n.beating.Store(true)
	}
}

// seen records that a server of the namespace is alive. A server that sent ADAPTER_CLOSE stays gone: a message it
// wrote just before (read after) must not bring it back for HeartbeatTimeout.
func (n *nspAdapter) seen(uid string) {
	if uid == "" || uid == emitterUID || uid == n.uid {
		return
	}
	now := time.Now()
	n.reqMu.Lock()
	if _, closed := n.closedUIDs[uid]; !closed {
		n.members[uid] = now
	}
	n.reqMu.Unlock()
}

// liveLocked returns the servers heard from within HeartbeatTimeout. reqMu must be held.
func (n *nspAdapter) liveLocked(now time.Time) map[string]struct{} {
	out := make(map[string]struct{}, len(n.members))
	for uid, seen := range n.members {
		if now.Sub(seen) <= n.opts().HeartbeatTimeout {
			out[uid] = struct{}{}
		}
	}
	return out
}

// memberCount is the number of other servers alive, for ServerCount.
func (n *nspAdapter) memberCount() int {
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	return len(n.liveLocked(time.Now()))
}

// removeMember forgets a server that closed or went silent. The requests waiting for it stop waiting: a request
// whose every other server has answered completes, and a broadcast with acks gets a client count of 0 on the
// server's behalf, so that the server's broadcast operator (which counts one client count per server) completes.
func (n *nspAdapter) removeMember(uid string) {
	var counts []func(uint64)
	n.reqMu.Lock()
	delete(n.members, uid)
	for id, req := range n.requests {
		if _, ok := req.missing[uid]; ok {
			delete(req.missing, uid)
			if len(req.missing) == 0 {
				n.finishLocked(id, nil)
			}
		}
	}
	for _, ar := range n.ackRequests {
		if _, ok := ar.missing[uid]; ok {
			delete(ar.missing, uid)
			ar.counted[uid] = struct{}{} // a late answer must not count twice
			counts = append(counts, ar.clientCount)
		}
	}
	n.reqMu.Unlock()
	for _, cb := range counts {
		cb(0)
	}
}
