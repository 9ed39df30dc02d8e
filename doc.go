// Package redisstreams is a cluster adapter for the Go Socket.IO server
// (github.com/zishang520/socket.io/servers/socket/v3): several servers sharing one Redis act as one, broadcasts,
// room management, fetchSockets, serverSideEmit and acknowledgements included.
//
// Durable operations (broadcasts, socketsJoin, socketsLeave, disconnectSockets) are appended to a Redis stream
// that every server reads; requests and their replies (fetchSockets, serverSideEmit, broadcasts with
// acknowledgements) travel over PUB/SUB. The format on Redis is the one of the Node package
// @socket.io/redis-streams-adapter 0.3.1, so Go and Node servers can be mixed.
//
// Create one [Adapter] per Socket.IO server with [New], pass it to ServerOptions.SetAdapter, and [Adapter.Close]
// it after the server. The Adapter is safe for concurrent use; it never closes the Redis client it is given.
//
// With connection state recovery enabled on the server, sessions are stored in Redis and a reconnecting client,
// on any server, receives the packets it missed, read back from the stream.
package redisstreams
