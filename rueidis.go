package redisstreams

import (
	"fmt"

	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// NewRueidis returns an Adapter that uses a rueidis client (github.com/redis/rueidis), standalone or Redis
// Cluster, as rueidis.NewClient returns it. It behaves exactly like an Adapter made by New, and Adapters of both
// kinds can serve the same cluster.
//
// Writes go out through rueidis' pipelining (DoMulti, one round trip per node). Stream reads are blocking
// commands, which rueidis sends on connections of its blocking pool, never on the pipelined ones; PUB/SUB uses
// dedicated connections (Client.Dedicate) that reconnect and resubscribe on their own. Client-side caching is
// never used, so the client may be created with DisableCache.
//
// The client remains the caller's: the adapter never closes it. Close the Adapter before the client.
func NewRueidis(client rueidis.Client, opts Options) (*Adapter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	c, err := rdb.NewRueidis(client, opts.UseShardedPubSub)
	if err != nil {
		return nil, fmt.Errorf("redisstreams: %w", err)
	}
	a := newAdapter(c, opts)
	if err := a.checkAtStart(); err != nil {
		return nil, err
	}
	return a, nil
}
