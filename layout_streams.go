package redisstreams

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// streamsLayout is the Node adapter 0.2.x's layout (Options.StreamsOnly), as socket.io-adapter's
// ClusterAdapterWithHeartbeat does it: requests and responses are entries of the namespace's stream like everything
// else (responses are matched by request ID), and no PUB/SUB command is sent. The servers know each other from what
// they write: INITIAL_HEARTBEAT when a namespace joins (the others answer with HEARTBEAT), HEARTBEAT after
// HeartbeatInterval without any write, ADAPTER_CLOSE when it leaves; a server not heard from within HeartbeatTimeout
// is gone.
type streamsLayout struct {
	a    *Adapter
	stop chan struct{} // closed by close: ends the heartbeat loop

	mu      sync.Mutex
	beating map[*nspAdapter]struct{} // namespaces that wrote INITIAL_HEARTBEAT and have not left
}

// peers is what a namespace knows of its other servers in the streams-only layout (unused in the other).
type peers struct {
	mu     sync.Mutex
	alive  map[string]time.Time // by uid, with when they were last heard from
	closed map[string]time.Time // servers that sent ADAPTER_CLOSE, with when (kept HeartbeatTimeout)

	lastWrite atomic.Int64 // unix nanoseconds of the namespace's last stream write, for the idle heartbeat
	hbMu      sync.Mutex   // orders heartbeats before ADAPTER_CLOSE
}

func newPeers() peers {
	return peers{alive: map[string]time.Time{}, closed: map[string]time.Time{}}
}

// emitterUID is the uid of the messages of the emitters (ours and @socket.io/redis-streams-emitter), which are
// not servers.
const emitterUID = wire.EmitterUID

func newStreamsLayout(a *Adapter) *streamsLayout {
	l := &streamsLayout{a: a, stop: make(chan struct{}), beating: map[*nspAdapter]struct{}{}}
	a.wg.Go(l.loop)
	return l
}

// join writes INITIAL_HEARTBEAT once the namespace follows its stream, so that the answers are read.
func (l *streamsLayout) join(_ context.Context, n *nspAdapter) error {
	l.beat(n, wire.InitialHeartbeat)
	l.mu.Lock()
	l.beating[n] = struct{}{}
	l.mu.Unlock()
	return nil
}

// leave writes ADAPTER_CLOSE, after which no heartbeat of the namespace follows (the others would count this
// server again): the caller has set n.detached, which beat checks under the same lock.
func (l *streamsLayout) leave(_ context.Context, n *nspAdapter) error {
	l.mu.Lock()
	delete(l.beating, n)
	l.mu.Unlock()
	n.peers.hbMu.Lock()
	defer n.peers.hbMu.Unlock()
	_, err := n.publishStream(context.Background(), &wire.Message{Type: wire.AdapterClose, UID: n.uid, Nsp: n.name}, false)
	return err
}

// serverCount is 1 + the servers heard from within HeartbeatTimeout; no Redis command.
func (l *streamsLayout) serverCount(_ context.Context, n *nspAdapter) (int64, error) {
	return 1 + int64(len(l.live(n, time.Now()))), nil
}

func (l *streamsLayout) send(ctx context.Context, n *nspAdapter, _ string, msg *wire.Message, wait bool) error {
	_, err := n.publishStream(ctx, msg, wait)
	return err
}

// wrote resets the heartbeat timer: any write tells the others this server is alive.
func (l *streamsLayout) wrote(n *nspAdapter) { n.peers.lastWrite.Store(time.Now().UnixNano()) }

func (l *streamsLayout) heard(n *nspAdapter, uid string, typ wire.MessageType) bool {
	switch typ {
	case wire.InitialHeartbeat:
		l.seen(n, uid)
		l.beat(n, wire.Heartbeat)
		return true
	case wire.Heartbeat:
		l.seen(n, uid)
		return true
	case wire.AdapterClose:
		p := &n.peers
		p.mu.Lock()
		p.closed[uid] = time.Now()
		delete(p.alive, uid)
		p.mu.Unlock()
		n.serverLeft(uid)
		return true
	}
	l.seen(n, uid)
	return false
}

func (l *streamsLayout) awaited(n *nspAdapter, _ int) awaited {
	live := l.live(n, time.Now())
	return awaited{count: len(live), servers: live}
}

func (l *streamsLayout) close() error {
	close(l.stop)
	return nil
}

// heartbeatTick is how often the heartbeat loop looks at every namespace: a quarter of the shortest heartbeat
// setting, at most a second (Node sweeps every second).
func heartbeatTick(o *Options) time.Duration {
	return max(min(time.Second, o.HeartbeatInterval/4, o.HeartbeatTimeout/4), 5*time.Millisecond)
}

// loop is the one goroutine per Adapter that writes the idle heartbeats and forgets the servers that went silent.
// It ends when close closes l.stop.
func (l *streamsLayout) loop() {
	t := time.NewTicker(heartbeatTick(&l.a.opts))
	defer t.Stop()
	var all []*nspAdapter
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			all = all[:0]
			l.mu.Lock()
			for n := range l.beating {
				all = append(all, n)
			}
			l.mu.Unlock()
			for _, n := range all {
				l.tick(n, now)
			}
		}
	}
}

// tick writes a HEARTBEAT if nothing was written for HeartbeatInterval, and removes the servers not heard from
// within HeartbeatTimeout.
func (l *streamsLayout) tick(n *nspAdapter, now time.Time) {
	o := &l.a.opts
	p := &n.peers
	if now.Sub(time.Unix(0, p.lastWrite.Load())) >= o.HeartbeatInterval {
		l.beat(n, wire.Heartbeat)
	}
	var gone []string
	p.mu.Lock()
	for uid, seen := range p.alive {
		if now.Sub(seen) > o.HeartbeatTimeout {
			gone = append(gone, uid)
			delete(p.alive, uid)
		}
	}
	for uid, closed := range p.closed {
		if now.Sub(closed) > o.HeartbeatTimeout {
			delete(p.closed, uid)
		}
	}
	p.mu.Unlock()
	for _, uid := range gone {
		l.a.log.Info("redisstreams: server seems down", "nsp", n.name, "uid", uid)
		n.serverLeft(uid)
	}
}

// beat writes an INITIAL_HEARTBEAT or a HEARTBEAT (no data) to the stream, unless the namespace has left the
// cluster.
func (l *streamsLayout) beat(n *nspAdapter, typ wire.MessageType) {
	n.peers.hbMu.Lock()
	defer n.peers.hbMu.Unlock()
	if n.detached.Load() {
		return
	}
	_, _ = n.publishStream(context.Background(), &wire.Message{Type: typ, UID: n.uid, Nsp: n.name}, false)
}

// seen records that a server of the namespace is alive. A server that sent ADAPTER_CLOSE stays gone: a message it
// wrote just before (read after) must not bring it back for HeartbeatTimeout.
func (l *streamsLayout) seen(n *nspAdapter, uid string) {
	if uid == "" || uid == emitterUID || uid == n.uid {
		return
	}
	now := time.Now()
	p := &n.peers
	p.mu.Lock()
	if _, closed := p.closed[uid]; !closed {
		p.alive[uid] = now
	}
	p.mu.Unlock()
}

// live returns the servers heard from within HeartbeatTimeout.
func (l *streamsLayout) live(n *nspAdapter, now time.Time) map[string]struct{} {
	p := &n.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]struct{}, len(p.alive))
	for uid, seen := range p.alive {
		if now.Sub(seen) <= l.a.opts.HeartbeatTimeout {
			out[uid] = struct{}{}
		}
	}
	return out
}
