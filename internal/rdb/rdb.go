// Package rdb is the small set of Redis operations the adapter needs, behind an interface so that more than one
// client library can serve it.
package rdb

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by readers and subscribers used after Close.
var ErrClosed = errors.New("rdb: closed")

// Entry is one stream entry.
type Entry struct {
	ID     string
	Fields map[string]string
	// Skipped: the reader's skip function matched the entry's uid and nsp fields, so its fields were not
	// converted (Fields is nil). The entry still counts as read.
	Skipped bool
}

// SkipFunc tells a Reader which entries need not be converted: those whose uid and nsp fields have values for
// which it returns true (a server's own entries). A reader may look for them only as the entry's first two fields,
// where this package's writers and Node's put them. nil skips nothing.
type SkipFunc func(uid, nsp string) bool

// Op is one write of a batch: an XADD (Stream set) or a PUBLISH (Channel set). After the call it holds the entry
// ID (XADD) or the error.
type Op struct {
	Stream string
	MaxLen int64 // XADD: approximate trimming (MAXLEN ~); 0 disables trimming
	Fields []string

	Channel string // PUBLISH (SPUBLISH in sharded mode)
	Payload []byte

	ID  string
	Err error
}

// StreamInfo is what XINFO STREAM says of a stream at one instant.
type StreamInfo struct {
	LastID  string // last-generated-id
	FirstID string // the oldest entry still present ("0-0" when empty)
	Length  int64  // entries present
	Added   int64  // entries-added: every entry ever added (Redis 7); -1 when Redis does not say
}

// Backend is one Redis client library's way to the operations of Client: the adapter and the emitter take one,
// from the goredisbackend or rueidisbackend package.
type Backend interface {
	// Open returns the Client; sharded selects sharded PUB/SUB (SPUBLISH, SSUBSCRIBE, PUBSUB SHARDNUMSUB).
	Open(sharded bool) (Client, error)
}

// Advisor is a Backend with advice about its client's configuration, which the adapter logs once when it starts.
type Advisor interface {
	Advice() []string
}

// Client is what the adapter asks of Redis. Implementations must be safe for concurrent use.
type Client interface {
	// Batch sends every operation of the batch in one round trip where the client allows it (one per cluster
	// node), in order per node (so per stream), and fills in each operation's ID or Err.
	Batch(ctx context.Context, batch []*Op)
	// XRange returns at most count entries between start and end (Redis range syntax, "(" for exclusive).
	XRange(ctx context.Context, stream, start, end string, count int64) ([]Entry, error)
	// XRevRange returns at most count entries between end and start, newest first (Redis range syntax).
	XRevRange(ctx context.Context, stream, end, start string, count int64) ([]Entry, error)
	// LastID returns the ID of the newest entry of a stream, or "0-0" when the stream is empty or missing.
	LastID(ctx context.Context, stream string) (string, error)
	// StreamInfo returns XINFO STREAM's counters, read in one command. A missing stream is all zero ("0-0").
	StreamInfo(ctx context.Context, stream string) (StreamInfo, error)
	// Publish sends a PUB/SUB message (SPUBLISH in sharded mode).
	Publish(ctx context.Context, channel string, payload []byte) error
	// NumSub returns the number of subscribers of a channel, summed over every node of a cluster.
	NumSub(ctx context.Context, channel string) (int64, error)
	// Set stores a value with an expiry (SET key value PX ttl).
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	// Epoch returns the value of key, first setting it to value when it does not exist (SET key value NX GET,
	// Redis 7). A key that no expiry removes tells a reader whether Redis still has the data set it had: a
	// restarted or replaced server has lost it, and the key with it.
	Epoch(ctx context.Context, key, value string) (string, error)
	// GetDel atomically reads and deletes a key. ok is false when the key does not exist.
	GetDel(ctx context.Context, key string) (value string, ok bool, err error)
	// WriteSessions sends fenced session writes (see SessionWrite) in one round trip per node, and fills in each
	// one's Applied or Err.
	WriteSessions(ctx context.Context, writes []*SessionWrite)
	// ClaimSession atomically takes the session stored under key, leaving marker in its place for ttl. ok is false
	// when the key holds no session (missing, or a marker). A claim that a client library sends again after its
	// reply was lost fails with ErrClaimRepeated.
	ClaimSession(ctx context.Context, key, marker string, ttl time.Duration) (value string, ok bool, err error)
	// NewReader returns a reader with connections of its own, so that its blocking reads never delay other commands.
	// Entries that skip matches are returned as Skipped, without their fields.
	NewReader(skip SkipFunc) (Reader, error)
	// NewSubscriber returns a subscriber whose messages are passed to handle, from one goroutine per connection.
	NewSubscriber(handle func(channel string, payload []byte)) Subscriber
}

// Reader does blocking stream reads on a connection of its own.
type Reader interface {
	// Read blocks up to block for entries after lastID (XREAD COUNT count BLOCK block). No entries is not an error.
	Read(ctx context.Context, stream, lastID string, count int64, block time.Duration) ([]Entry, error)
	// Close releases the connections; a Read in progress returns promptly with an error.
	Close() error
}

// Subscriber holds PUB/SUB subscriptions.
type Subscriber interface {
	// Subscribe subscribes to channels and returns once Redis has confirmed every subscription (or ctx ends).
	Subscribe(ctx context.Context, channels ...string) error
	// Unsubscribe drops subscriptions.
	Unsubscribe(ctx context.Context, channels ...string) error
	// Close drops every subscription and stops the delivery goroutines.
	Close() error
}
