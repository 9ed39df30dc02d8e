package goredisbackend

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// A client without context deadlines on its socket reads gets advice, which the adapter logs once.
func TestAdviceOnContextTimeouts(t *testing.T) {
	for _, c := range []struct {
		client redis.UniversalClient
		advice bool
	}{
		{redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), true},
		{redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true}), false},
		{redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), true},
		{redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), false},
	} {
		advice := New(c.client).(rdb.Advisor).Advice()
		if (len(advice) > 0) != c.advice || (c.advice && !strings.Contains(advice[0], "ContextTimeoutEnabled")) {
			t.Errorf("%T: advice %q, want some: %v", c.client, advice, c.advice)
		}
		_ = c.client.Close()
	}
}

// Only *redis.Client and *redis.ClusterClient are served.
func TestOpenRefusesOtherClients(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{})
	defer ring.Close()
	if _, err := New(ring).Open(false); err == nil {
		t.Fatal("a Ring was accepted")
	}
}
