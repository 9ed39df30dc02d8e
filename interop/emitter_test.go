package interop

import (
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/emitter"
)

// emitterOrigin is the Go emitter (package emitter) as an origin of the interop cases: it drives Go and Node
// servers with the operations an emitter has (broadcasts, socketsJoin/Leave, disconnectSockets, serverSideEmit).
// It is not a server: it hosts no client, receives nothing, and no server counts it.
type emitterOrigin struct {
	em *emitter.Emitter
}

// newEmitterOrigin makes the topology's emitter: go-redis on standalone and StreamCount 5, rueidis on the other
// cluster configurations, so that both client families drive Node servers.
func newEmitterOrigin(t testing.TB, cfg config, prefix string) *emitterOrigin {
	t.Helper()
	opts := emitter.Options{StreamName: prefix, ChannelPrefix: prefix, StreamCount: cfg.streamCount, UseShardedPubSub: cfg.sharded}
	var em *emitter.Emitter
	var err error
	if cfg.cluster && cfg.streamCount <= 1 {
		rc, rerr := rueidis.NewClient(rueidis.ClientOption{InitAddress: shared.Cluster.Addrs(), DisableCache: true})
		if rerr != nil {
			t.Fatal(rerr)
		}
		t.Cleanup(rc.Close)
		em, err = emitter.New(rueidisbackend.New(rc), opts)
	} else {
		em, err = emitter.New(goredisbackend.New(cfg.newRedis(t)), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &emitterOrigin{em: em}
}

func (e *emitterOrigin) name() string { return "E" }
func (e *emitterOrigin) lang() string { return "emitter" }
func (e *emitterOrigin) url() string  { return "" }

func (e *emitterOrigin) op(tg target) *emitter.Emitter {
	op := e.em.Of(tg.namespace())
	if len(tg.to) > 0 {
		op = op.To(tg.to...)
	}
	if len(tg.except) > 0 {
		op = op.Except(tg.except...)
	}
	return op
}

func (e *emitterOrigin) emit(t testing.TB, tg target, event string, args ...any) {
	t.Helper()
	if _, err := e.op(tg).Emit(event, args...); err != nil {
		t.Fatal(err)
	}
}

func (e *emitterOrigin) join(t testing.TB, tg target, rooms ...string) {
	t.Helper()
	if _, err := e.op(tg).SocketsJoin(rooms...); err != nil {
		t.Fatal(err)
	}
}

func (e *emitterOrigin) leave(t testing.TB, tg target, rooms ...string) {
	t.Helper()
	if _, err := e.op(tg).SocketsLeave(rooms...); err != nil {
		t.Fatal(err)
	}
}

func (e *emitterOrigin) disconnect(t testing.TB, tg target, close bool) {
	t.Helper()
	if _, err := e.op(tg).DisconnectSockets(close); err != nil {
		t.Fatal(err)
	}
}

func (e *emitterOrigin) sse(t testing.TB, nsp, event string, args ...any) {
	t.Helper()
	if _, err := e.em.Of(nsp).ServerSideEmit(event, args...); err != nil {
		t.Fatal(err)
	}
}

func (e *emitterOrigin) unsupported(t testing.TB, what string) {
	t.Helper()
	t.Fatalf("the emitter has no %s", what)
}

func (e *emitterOrigin) emitAck(t testing.TB, _ target, _ time.Duration, _ string, _ ...any) ackResult {
	e.unsupported(t, "emitWithAck")
	return ackResult{}
}
func (e *emitterOrigin) fetch(t testing.TB, _ target) ([]details, string) {
	e.unsupported(t, "fetchSockets")
	return nil, ""
}
func (e *emitterOrigin) count(t testing.TB, _ string) int { e.unsupported(t, "serverCount"); return 0 }
func (e *emitterOrigin) remoteEmit(t testing.TB, _, _, _ string, _ ...any) {
	e.unsupported(t, "remote sockets")
}
func (e *emitterOrigin) remoteEmitAck(t testing.TB, _, _ string, _ time.Duration, _ string, _ ...any) ackResult {
	e.unsupported(t, "remote sockets")
	return ackResult{}
}
func (e *emitterOrigin) remoteJoin(t testing.TB, _, _, _ string)  { e.unsupported(t, "remote sockets") }
func (e *emitterOrigin) remoteLeave(t testing.TB, _, _, _ string) { e.unsupported(t, "remote sockets") }
func (e *emitterOrigin) remoteDisconnect(t testing.TB, _, _ string, _ bool) {
	e.unsupported(t, "remote sockets")
}
func (e *emitterOrigin) sseAck(t testing.TB, _, _ string, _ ...any) ackResult {
	e.unsupported(t, "serverSideEmit with ack")
	return ackResult{}
}
func (e *emitterOrigin) sseReply(t testing.TB, _, _ string, _ any, _ bool) {
	e.unsupported(t, "handlers")
}
func (e *emitterOrigin) nextSSE(t testing.TB, _, _ string) ([]any, bool) {
	e.unsupported(t, "handlers")
	return nil, false
}
func (e *emitterOrigin) local(t testing.TB, _, _ string) (details, bool) {
	e.unsupported(t, "sockets")
	return details{}, false
}
func (e *emitterOrigin) socketJoin(t testing.TB, _, _ string, _ ...string) {
	e.unsupported(t, "sockets")
}
func (e *emitterOrigin) socketSetData(t testing.TB, _, _ string, _ any) { e.unsupported(t, "sockets") }
