package redisstreams

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Defaults, equal to the Node adapter's.
const (
	DefaultStreamName       = wire.DefaultStreamName
	DefaultStreamCount      = wire.DefaultStreamCount
	DefaultChannelPrefix    = wire.DefaultChannelPrefix
	DefaultMaxLen           = wire.DefaultMaxLen
	DefaultReadCount        = 100
	DefaultBlockTime        = 5 * time.Second
	DefaultSessionKeyPrefix = wire.DefaultSessionKeyPrefix
	DefaultRequestsTimeout  = wire.DefaultRequestsTimeout
	DefaultMaxBatch         = 512
	DefaultSessionRefresh   = 30 * time.Second
	// Outage holding (not in Node, which drops every write Redis refuses): enough for 60 s at 1,000
	// broadcasts/s of 1 KiB.
	DefaultMaxOutage    = 60 * time.Second
	DefaultMaxHeldBytes = 64 << 20
	// Streams-only layout (Options.StreamsOnly), equal to the 0.2.x adapter's.
	DefaultHeartbeatInterval = wire.DefaultHeartbeatInterval
	DefaultHeartbeatTimeout  = wire.DefaultHeartbeatTimeout
	// Receive path (not in Node, which runs it all on its one thread).
	DefaultReceiveWorkers = 16
)

// Options configure an Adapter. The zero value of every field means its documented default, so Options{} is
// Node's configuration.
type Options struct {
	// StreamName is the Redis stream key, or the key prefix when StreamCount > 1. Default "socket.io".
	StreamName string

	// StreamCount spreads namespaces over several streams ("<StreamName>-<i>"), with the Node adapter's
	// namespace hash, negative indexes included. Default 1.
	StreamCount int

	// ChannelPrefix prefixes the PUB/SUB channels used for requests and responses: "<prefix>#<nsp>#" and
	// "<prefix>#<nsp>#<uid>#". Default "socket.io".
	ChannelPrefix string

	// UseShardedPubSub selects SPUBLISH/SSUBSCRIBE/PUBSUB SHARDNUMSUB (Redis 7+). Default false.
	UseShardedPubSub bool

	// MaxLen bounds each stream with approximate trimming (XADD MAXLEN ~). Default 10000. Negative disables
	// trimming.
	MaxLen int64

	// ReadCount is the COUNT of each XREAD. Default 100.
	ReadCount int64

	// BlockTime is the BLOCK of each XREAD (1s at most for the reads that follow a check that found the reader
	// behind, so that what it jumped over is counted soon). Default 5s. Close does not wait for it: the reading
	// connection is closed under the read.
	BlockTime time.Duration

	// SessionKeyPrefix prefixes the connection state recovery session keys. Default "sio:session:".
	SessionKeyPrefix string

	// Sessions selects when connection state recovery sessions are written to Redis. Default SessionsLive: while a
	// socket is connected its session is in Redis, so that its client recovers on another server after its own
	// server crashed. SessionsOnDisconnect writes it only when the socket disconnects, as Node does. See the
	// README, Connection state recovery, for the cost of each.
	Sessions SessionMode

	// SessionRefresh (SessionsLive only) is how often the session of a connected socket is written again, with its
	// data as it is then; the key's TTL is the recovery window + SessionRefresh + RequestsTimeout, so that after
	// a crash it lasts at least the recovery window. Default 30s.
	SessionRefresh time.Duration

	// OnlyPlaintext skips binary detection and always encodes stream data as JSON, as Node's option does (binary
	// arguments then travel as base64 strings). Default false.
	OnlyPlaintext bool

	// RequestsTimeout bounds fetchSockets (unless the operator sets its own timeout), serverSideEmit with an
	// acknowledgement, and the Redis calls made on the caller's behalf. Node hard-codes 5s. Default 5s.
	RequestsTimeout time.Duration

	// MaxBatch caps how many writes share one pipelined round trip. Default 512.
	MaxBatch int

	// MaxOutage is how long a write may wait to reach Redis. A write that fails because Redis is unreachable
	// (connection refused, reset or timed out, LOADING, failover, cluster reconfiguration) is held and sent again,
	// in order, with jittered backoff; once it has waited MaxOutage it is dropped, counted in Stats.Dropped and
	// reported (one log line per outage). While writes are held, io.Emit never blocks; broadcasts that need an
	// offset (connection state recovery) are delivered locally without one after RequestsTimeout, and requests
	// (fetchSockets, serverSideEmit with ack) fail at once with ErrUnavailable. PUB/SUB messages are held at most
	// RequestsTimeout (nobody waits for them longer). Default 60s.
	MaxOutage time.Duration

	// MaxHeldBytes bounds the memory of queued writes (their fields and payloads). When a new write would exceed
	// it, the oldest queued writes are dropped and counted in Stats.Dropped. Default 64 MiB.
	MaxHeldBytes int64

	// StreamsOnly selects the original layout of the Node adapter (0.2.x, up to 0.2.3): every message, requests and
	// responses included, is an entry of the namespace's stream, and no PUB/SUB command is ever sent (SUBSCRIBE,
	// PUBLISH, PUBSUB NUMSUB), so it works where PUB/SUB is disabled. The servers find each other with heartbeats:
	// INITIAL_HEARTBEAT when a namespace joins (the others answer with HEARTBEAT), HEARTBEAT after
	// HeartbeatInterval without any write, ADAPTER_CLOSE when it leaves. The server count is 1 + the servers heard
	// from (any message, the emitter's excepted) within HeartbeatTimeout. Requests (fetchSockets, serverSideEmit
	// with ack, broadcasts with acks) wait for the servers alive when they were sent, and stop waiting for one that
	// closes or stops heartbeating; for a broadcast with acks the adapter then reports a client count of 0 on its
	// behalf, so that the operator completes. Node 0.2.x servers can share the cluster. ChannelPrefix and
	// UseShardedPubSub are unused in this mode.
	//
	// Default false: the 0.3.x layout (broadcasts on the stream, requests and responses over PUB/SUB, server count
	// by PUBSUB NUMSUB). The two layouts do not see each other's requests: a cluster must use one.
	StreamsOnly bool

	// HeartbeatInterval (StreamsOnly only): a HEARTBEAT is written after this long without any write. Default 5s.
	HeartbeatInterval time.Duration

	// HeartbeatTimeout (StreamsOnly only): a server not heard from for this long is considered gone. Must be
	// greater than HeartbeatInterval. Default 10s.
	HeartbeatTimeout time.Duration

	// ReceiveWorkers is the size of each of the two fixed sets of goroutines that run the receive path's work
	// off the goroutine that reads it: one answers the other servers' requests (fetchSockets, broadcasts with
	// acks), the other runs the application's callbacks (serverSideEmit handlers, acknowledgements of broadcasts
	// and of serverSideEmit). Work is routed by key and runs in order within a key: a server's serverSideEmit
	// events and broadcasts with acks in the order it sent them, a request's acknowledgements in the order they
	// were read. However many messages arrive (a broadcast with acks to 100,000 clients brings 100,000
	// acknowledgements), the adapter runs no more goroutines for them.
	//
	// Each worker queues up to 1024 tasks. When a queue is full, the reader that hands it work waits for room:
	// stream entries wait in Redis, PUB/SUB messages in the client's buffer, nothing is dropped. So a callback
	// that blocks holds up its worker, and once that worker's queue is full, the reading too. A callback may call
	// fetchSockets or serverSideEmit with ack: the responses it waits for are handled by the reader itself, never
	// queued, and the other servers answer from their own answer workers; but if its worker's queue fills up
	// meanwhile, the reader waits for it, and the request ends at its timeout. Default 16.
	ReceiveWorkers int

	// Logger receives the adapter's logs. Default: discard. Repeating lines (bad entries, failed writes) are
	// rate-limited; an outage logs when it begins and when it ends, with counts. The go-redis client's own log
	// lines go to go-redis's process-wide logger, which the adapter leaves alone; a program that wants them here
	// installs goredisbackend.Logger itself (redis.SetLogger(goredisbackend.Logger(logger))).
	Logger *slog.Logger

	// Observer receives timings for metrics (write batches, requests, delivery delay) and, when it implements
	// OutageObserver, LossObserver or DropObserver, those events as they happen. Default: none. The
	// redisstreamsprom and redisstreamsotel modules provide one; Callbacks makes one from functions.
	Observer Observer
}

// SessionMode selects when connection state recovery sessions are written (Options.Sessions).
type SessionMode int

const (
	// SessionsLive keeps the session of every connected socket in Redis: written when it connects, again after a
	// burst of room changes and every SessionRefresh, and a last time when it disconnects (removed when it leaves
	// for good). Writes are fenced (Lua scripts, EVALSHA): a server whose client recovered elsewhere cannot write
	// the session back. A client of a crashed server recovers on any other server.
	SessionsLive SessionMode = iota
	// SessionsOnDisconnect writes a session only when its socket disconnects (SET PX) and restores it with GETDEL,
	// the commands Node uses: no write per connect or room change, no script, but the clients of a server that
	// crashed get fresh sessions.
	SessionsOnDisconnect
)

func (m SessionMode) String() string {
	switch m {
	case SessionsLive:
		return "SessionsLive"
	case SessionsOnDisconnect:
		return "SessionsOnDisconnect"
	}
	return fmt.Sprintf("SessionMode(%d)", int(m))
}

var discardLogger = slog.New(slog.DiscardHandler)

func (o Options) withDefaults() Options {
	if o.StreamName == "" {
		o.StreamName = DefaultStreamName
	}
	if o.StreamCount == 0 {
		o.StreamCount = DefaultStreamCount
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = DefaultChannelPrefix
	}
	if o.MaxLen == 0 {
		o.MaxLen = DefaultMaxLen
	}
	if o.ReadCount == 0 {
		o.ReadCount = DefaultReadCount
	}
	if o.BlockTime == 0 {
		o.BlockTime = DefaultBlockTime
	}
	if o.SessionKeyPrefix == "" {
		o.SessionKeyPrefix = DefaultSessionKeyPrefix
	}
	if o.RequestsTimeout == 0 {
		o.RequestsTimeout = DefaultRequestsTimeout
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.SessionRefresh == 0 {
		o.SessionRefresh = DefaultSessionRefresh
	}
	if o.MaxOutage == 0 {
		o.MaxOutage = DefaultMaxOutage
	}
	if o.MaxHeldBytes == 0 {
		o.MaxHeldBytes = DefaultMaxHeldBytes
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.ReceiveWorkers == 0 {
		o.ReceiveWorkers = DefaultReceiveWorkers
	}
	if o.Logger == nil {
		o.Logger = discardLogger
	}
	return o
}

func (o Options) validate() error {
	interval, timeout := o.HeartbeatInterval, o.HeartbeatTimeout
	if interval == 0 {
		interval = DefaultHeartbeatInterval
	}
	if timeout == 0 {
		timeout = DefaultHeartbeatTimeout
	}
	switch {
	case o.HeartbeatInterval < 0:
		return fmt.Errorf("redisstreams: Options.HeartbeatInterval must be > 0, got %v", o.HeartbeatInterval)
	case o.HeartbeatTimeout < 0:
		return fmt.Errorf("redisstreams: Options.HeartbeatTimeout must be > 0, got %v", o.HeartbeatTimeout)
	case interval < time.Millisecond:
		return fmt.Errorf("redisstreams: Options.HeartbeatInterval must be at least 1ms, got %v", interval)
	case timeout <= interval:
		return fmt.Errorf("redisstreams: Options.HeartbeatTimeout (%v) must be greater than HeartbeatInterval (%v)", timeout, interval)
	case o.StreamCount < 0:
		return fmt.Errorf("redisstreams: Options.StreamCount must be >= 1, got %d", o.StreamCount)
	case strings.ContainsAny(o.ChannelPrefix, "*?[]"):
		return fmt.Errorf("redisstreams: Options.ChannelPrefix %q must not contain glob characters", o.ChannelPrefix)
	case o.ReadCount < 0:
		return fmt.Errorf("redisstreams: Options.ReadCount must be >= 1, got %d", o.ReadCount)
	case o.BlockTime < 0:
		return fmt.Errorf("redisstreams: Options.BlockTime must be > 0, got %v", o.BlockTime)
	case o.BlockTime > 0 && o.BlockTime < time.Millisecond:
		return fmt.Errorf("redisstreams: Options.BlockTime must be at least 1ms, got %v", o.BlockTime)
	case o.RequestsTimeout < 0:
		return fmt.Errorf("redisstreams: Options.RequestsTimeout must be > 0, got %v", o.RequestsTimeout)
	case o.MaxOutage < 0:
		return fmt.Errorf("redisstreams: Options.MaxOutage must be > 0, got %v", o.MaxOutage)
	case o.MaxHeldBytes < 0:
		return fmt.Errorf("redisstreams: Options.MaxHeldBytes must be > 0, got %d", o.MaxHeldBytes)
	case o.MaxBatch < 0:
		return fmt.Errorf("redisstreams: Options.MaxBatch must be >= 1, got %d", o.MaxBatch)
	case o.ReceiveWorkers < 0:
		return fmt.Errorf("redisstreams: Options.ReceiveWorkers must be >= 1, got %d", o.ReceiveWorkers)
	case o.Sessions != SessionsLive && o.Sessions != SessionsOnDisconnect:
		return fmt.Errorf("redisstreams: Options.Sessions: unknown mode %d", o.Sessions)
	case o.SessionRefresh < 0 || o.SessionRefresh > 0 && o.SessionRefresh < 100*time.Millisecond:
		return fmt.Errorf("redisstreams: Options.SessionRefresh must be at least 100ms, got %v", o.SessionRefresh)
	}
	return nil
}
