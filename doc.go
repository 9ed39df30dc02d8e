// Package redisstreams lets several Go Socket.IO servers (github.com/zishang520/socket.io/servers/socket/v3) act as
// one: an emit on any server reaches the clients of every server sharing a Redis, and room management,
// fetchSockets, serverSideEmit and acknowledgements work across servers too.
//
// Create one [Adapter] per Socket.IO server with [New], from a Redis client wrapped in a [Backend]: the
// goredisbackend package for go-redis v9, the rueidisbackend package for rueidis (a program links only the one it
// imports). Pass the Adapter to ServerOptions.SetAdapter, and [Adapter.Close] it after the server:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	adapter, err := redisstreams.New(ctx, goredisbackend.New(rdb), redisstreams.Options{})
//	if err != nil {
//		return err // Redis refused the adapter (credentials, ACL, TLS)
//	}
//	opts := socket.DefaultServerOptions()
//	opts.SetAdapter(adapter)
//	io := socket.NewServer(nil, opts)
//	...
//	io.Close(nil)
//	err = adapter.Close(ctx)
//
// The Adapter is safe for concurrent use; it never closes the Redis client it is given.
//
// Durable operations (broadcasts, socketsJoin, socketsLeave, disconnectSockets) are appended to a Redis stream that
// every server reads; requests and their replies (fetchSockets, serverSideEmit, broadcasts with acknowledgements)
// travel over PUB/SUB, or over the stream too with [Options.StreamsOnly]. The format on Redis is the one of the Node
// package @socket.io/redis-streams-adapter 0.3.1 (0.2.x with StreamsOnly), so Go and Node servers can be mixed.
//
// Writes are held through Redis outages (bounded by [Options.MaxOutage] and [Options.MaxHeldBytes]), and a
// broadcast either reaches every client once or its loss is counted in [Adapter.Stats] and told to an [Observer]
// that implements [LossObserver] or [DropObserver]. [Adapter.Ping] is a readiness check. Errors wrap [ErrClosed],
// [ErrTimeout] (as a [*TimeoutError]), [ErrUnavailable] or [ErrDropped].
//
// With connection state recovery enabled on the server, sessions are stored in Redis and a reconnecting client,
// on any server, receives the packets it missed, read back from the stream.
//
// The adapter changes no process-wide state: go-redis's own log lines stay with go-redis's global logger unless
// the program routes them (redis.SetLogger(goredisbackend.Logger(logger))).
//
// The repository's README and docs/ hold the guides: delivery guarantees, operations, metrics.
package redisstreams
