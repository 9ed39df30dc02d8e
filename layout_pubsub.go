package redisstreams

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// pubsubLayout is the Node adapter 0.3.x's layout (the default): each namespace subscribes to its public channel
// (requests to every server) and its private one (responses to it), and its servers are the public channel's
// subscribers (PUBSUB NUMSUB, or SHARDNUMSUB).
type pubsubLayout struct {
	a   *Adapter
	sub rdb.Subscriber

	mu       sync.Mutex
	channels map[string]*nspAdapter // by channel, public and private
}

func newPubSubLayout(a *Adapter) *pubsubLayout {
	l := &pubsubLayout{a: a, channels: map[string]*nspAdapter{}}
	l.sub = a.client.NewSubscriber(l.onMessage)
	return l
}

func (l *pubsubLayout) join(ctx context.Context, n *nspAdapter) error {
	l.mu.Lock()
	l.channels[n.publicChannel] = n
	l.channels[n.privateChannel] = n
	l.mu.Unlock()
	return l.sub.Subscribe(ctx, n.publicChannel, n.privateChannel)
}

func (l *pubsubLayout) leave(ctx context.Context, n *nspAdapter) error {
	l.mu.Lock()
	delete(l.channels, n.publicChannel)
	delete(l.channels, n.privateChannel)
	l.mu.Unlock()
	if err := l.sub.Unsubscribe(ctx, n.publicChannel, n.privateChannel); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// serverCount fails at once while writes are held for an outage: the answer would come too late to be of use.
func (l *pubsubLayout) serverCount(ctx context.Context, n *nspAdapter) (int64, error) {
	if l.a.pub.unavailable() {
		return 0, ErrUnavailable
	}
	count, err := l.a.client.NumSub(ctx, n.publicChannel)
	if err != nil {
		return 0, err
	}
	return max(count, 1), nil
}

func (l *pubsubLayout) send(ctx context.Context, n *nspAdapter, to string, msg *wire.Message, wait bool) error {
	payload, err := msg.PubSubPayload()
	if err != nil {
		l.a.log.Error("redisstreams: cannot encode message", "nsp", n.name, "type", msg.Type, "err", err)
		return err
	}
	op := rdb.Op{Channel: channelName(l.a.opts.ChannelPrefix, n.name, to), Payload: payload}
	if !wait {
		return l.a.pub.fire(op)
	}
	_, err = l.a.pub.do(ctx, op)
	return err
}

func (l *pubsubLayout) wrote(*nspAdapter) {}

// heard: the servers are not tracked here (Redis counts the subscriptions). Heartbeats and ADAPTER_CLOSE belong to
// the streams-only layout; Node 0.3.x ignores them too, and so does onMessage.
func (l *pubsubLayout) heard(*nspAdapter, string, wire.MessageType) bool { return false }

func (l *pubsubLayout) awaited(_ *nspAdapter, responses int) awaited {
	return awaited{count: responses}
}

func (l *pubsubLayout) close() error { return l.sub.Close() }

// onMessage receives every PUB/SUB message, from the subscriber's goroutine.
func (l *pubsubLayout) onMessage(channel string, payload []byte) {
	a := l.a
	a.stats.received.Add(1)
	l.mu.Lock()
	n := l.channels[channel]
	l.mu.Unlock()
	if n == nil {
		return
	}
	msg, err := wire.DecodePubSub(payload)
	if err == nil && msg.Type == wire.Broadcast {
		err = wire.ValidateBroadcastPacket(msg.Packet, msg.Nsp)
	}
	if err != nil {
		a.stats.invalid.Add(1)
		a.logLimited(&a.pubsubLog, slog.LevelWarn, "redisstreams: skipping malformed PUB/SUB message", "channel", channel,
			"bytes", len(payload), "err", err)
		return
	}
	if msg.UID == n.uid {
		return // our own request, echoed on the public channel
	}
	if msg.Nsp != n.name {
		a.stats.invalid.Add(1)
		a.logLimited(&a.pubsubLog, slog.LevelWarn, "redisstreams: PUB/SUB message for another namespace", "channel", channel,
			"nsp", msg.Nsp)
		return
	}
	n.onMessage(msg)
}
