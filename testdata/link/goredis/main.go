// A program that uses the adapter and the emitter through go-redis only (see TestEachClientFamilyLinksAlone).
package main

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/goredisbackend"
)

func main() {
	backend := goredisbackend.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}))
	_, _ = redisstreams.New(context.Background(), backend, redisstreams.Options{})
	_, _ = emitter.New(backend, emitter.Options{})
}
