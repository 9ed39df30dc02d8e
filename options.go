package redisstreams

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults, equal to the Node adapter's.
const (
	DefaultStreamName       = "socket.io"
	DefaultStreamCount      = 1
	DefaultChannelPrefix    = "socket.io"
	DefaultMaxLen           = 10000
	DefaultReadCount        = 100
	DefaultBlockTime        = 5 * time.Second
	DefaultSessionKeyPrefix = "sio:session:"
	DefaultRequestsTimeout  = 5 * time.Second
	DefaultMaxBatch         = 512
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

	// BlockTime is the BLOCK of each XREAD. Default 5s. Close does not wait for it: the reading connection is
	// closed under the read.
	BlockTime time.Duration

	// SessionKeyPrefix prefixes the connection state recovery session keys. Default "sio:session:".
	SessionKeyPrefix string

	// OnlyPlaintext skips binary detection and always encodes stream data as JSON, as Node's option does (binary
	// arguments then travel as base64 strings). Default false.
	OnlyPlaintext bool

	// RequestsTimeout bounds fetchSockets (unless the operator sets its own timeout), serverSideEmit with an
	// acknowledgement, and the Redis calls made on the caller's behalf. Node hard-codes 5s. Default 5s.
	RequestsTimeout time.Duration

	// MaxBatch caps how many writes share one pipelined round trip. Default 512.
	MaxBatch int

	// Logger receives the adapter's logs. Default: discard.
	Logger *slog.Logger
}

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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch {
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
	case o.MaxBatch < 0:
		return fmt.Errorf("redisstreams: Options.MaxBatch must be >= 1, got %d", o.MaxBatch)
	}
	return nil
}
