// A program that uses the adapter and the emitter through rueidis only (see TestEachClientFamilyLinksAlone).
package main

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/rueidisbackend"
)

func main() {
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
	if err != nil {
		return
	}
	backend := rueidisbackend.New(client)
	_, _ = redisstreams.New(context.Background(), backend, redisstreams.Options{})
	_, _ = emitter.New(backend, emitter.Options{})
}
