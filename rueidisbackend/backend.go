// Package rueidisbackend connects redisstreams to Redis through a rueidis client: pass New(client) to
// redisstreams.New (the adapter) or emitter.New. Only programs that import this package link rueidis; the
// goredisbackend package does the same for go-redis.
//
//	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	if err != nil {
//		return err
//	}
//	adapter, err := redisstreams.New(ctx, rueidisbackend.New(rc), redisstreams.Options{})
//
// The client may be standalone, Sentinel or Redis Cluster, as rueidis.NewClient returns it. Writes go out through
// rueidis' pipelining (one round trip per node); stream reads are blocking commands, sent on connections of its
// blocking pool; PUB/SUB uses dedicated connections that reconnect and resubscribe on their own. Client-side
// caching is never used, so the client may be created with DisableCache. The client remains the caller's: nothing
// closes it.
package rueidisbackend

import (
	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// Backend is what redisstreams.New and emitter.New take: the same type as redisstreams.Backend.
type Backend = rdb.Backend

// New returns the Backend of a rueidis client.
func New(client rueidis.Client) Backend { return backend{client} }

type backend struct{ client rueidis.Client }

// Open implements rdb.Backend.
func (b backend) Open(sharded bool) (rdb.Client, error) { return open(b.client, sharded) }
