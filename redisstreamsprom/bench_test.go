package redisstreamsprom_test

import (
	"testing"
	"time"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/redisstreamsprom"
)

// The Observer's methods run inline on the adapter's paths: one call per write batch, per request, and per
// broadcast read from a stream.
func BenchmarkObserver(b *testing.B) {
	m := redisstreamsprom.New(redisstreamsprom.Options{})
	b.Run("WriteBatch", func(b *testing.B) {
		for b.Loop() {
			m.WriteBatch(8, time.Millisecond, nil)
		}
	})
	b.Run("Request", func(b *testing.B) {
		for b.Loop() {
			m.Request(redisstreams.RequestFetchSockets, time.Millisecond, nil)
		}
	})
	b.Run("Delivered", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Delivered("socket.io", "/", time.Millisecond)
			}
		})
	})
}
