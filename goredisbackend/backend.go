// Package goredisbackend connects redisstreams to Redis through a go-redis v9 client: pass New(client) to
// redisstreams.New (the adapter) or emitter.New. Only programs that import this package link go-redis; the
// rueidisbackend package does the same for rueidis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{})
//
// The client may be a *redis.Client (standalone, or Sentinel through redis.NewFailoverClient) or a
// *redis.ClusterClient. It remains the caller's: nothing closes it, and the adapter opens connections of its own
// for blocking reads. Create it with ContextTimeoutEnabled: true, so that a Redis that stops answering is noticed
// after the adapter's RequestsTimeout, not after go-redis's read timeout and retries.
//
// go-redis logs through one process-wide logger, which nothing in this module changes. [Logger] returns one that
// writes to a *slog.Logger, for a program that installs it with redis.SetLogger.
package goredisbackend

import (
	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// Backend is what redisstreams.New and emitter.New take: the same type as redisstreams.Backend.
type Backend = rdb.Backend

// New returns the Backend of a go-redis client.
func New(client redis.UniversalClient) Backend { return backend{client} }

type backend struct{ client redis.UniversalClient }

// Open implements rdb.Backend.
func (b backend) Open(sharded bool) (rdb.Client, error) { return open(b.client, sharded) }

// Advice implements rdb.Advisor.
func (b backend) Advice() []string {
	if contextTimeouts(b.client) {
		return nil
	}
	return []string{"the go-redis client has ContextTimeoutEnabled false: a Redis that stops answering is noticed " +
		"after go-redis's ReadTimeout and retries (about 5 s by default), not after RequestsTimeout; set " +
		"ContextTimeoutEnabled: true in its options (see docs/delivery.md)"}
}

// contextTimeouts tells whether a go-redis client applies context deadlines to its socket reads and writes.
func contextTimeouts(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true // a client Open refuses: nothing to advise
}
