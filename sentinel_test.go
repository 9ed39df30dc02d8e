package redisstreams

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// TestSentinel runs the adapter on go-redis's failover client (redis.NewFailoverClient), which asks a Sentinel
// (redis-server --sentinel) for the master, as docs/operations.md shows; then Sentinel fails the master over to its
// replica, and broadcasts go on through the new master.
func TestSentinel(t *testing.T) {
	requireRedis(t)
	master := redistest.StartServerT(t, redistest.ServerOptions{})
	replica := redistest.StartServerT(t, redistest.ServerOptions{
		ExtraArgs: []string{"--replicaof", "127.0.0.1", fmt.Sprint(master.Port())},
	})
	sentinel := redistest.StartServerT(t, redistest.ServerOptions{
		ExtraArgs: []string{"--sentinel"},
		Config: fmt.Sprintf("sentinel monitor mymaster 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 10000\n", master.Port()),
	})
	admin := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	defer admin.Close()
	// Sentinel has seen the replica (it asks the master with INFO).
	waitForLong(t, "Sentinel to see the replica", 20*time.Second, func() bool {
		replicas, err := admin.Replicas(t.Context(), "mymaster").Result()
		return err == nil && len(replicas) == 1 && replicas[0]["flags"] == "slave"
	})

	newClient := func(testing.TB) redis.UniversalClient {
		rc := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    "mymaster",
			SentinelAddrs: []string{sentinel.Addr()},
		})
		t.Cleanup(func() { _ = rc.Close() })
		return rc
	}
	nodes := startClusterWith(t, configs[0], clusterOpts{nodes: 2}, newClient)
	clients := []*testClient{nodes[0].connect(t, clientOpts{}, "test"), nodes[1].connect(t, clientOpts{}, "test")}
	broadcast := func(from int, v string) {
		t.Helper()
		nodes[from].io.Emit("test", v)
		for _, c := range clients {
			args := c.expect(t, "test")
			for args[0] == "probe" && v != "probe" { // a probe of the failover loop below that arrived late
				args = c.expect(t, "test")
			}
			if args[0] != v {
				t.Fatalf("client got %v, want %q", args, v)
			}
		}
	}
	broadcast(0, "before failover")
	if n := len(fetch(t, nodes[1].io)); n != 2 {
		t.Fatalf("fetchSockets: %d sockets, want 2", n)
	}

	// Failover: the replica becomes the master.
	if err := admin.Failover(t.Context(), "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitForLong(t, "the replica to be master", 30*time.Second, func() bool {
		addr, err := admin.GetMasterAddrByName(t.Context(), "mymaster").Result()
		return err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(replica.Port())
	})
	promoted := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer promoted.Close()
	waitForLong(t, "the replica to take writes", 30*time.Second, func() bool {
		info, err := promoted.Info(t.Context(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	// After a failover, the adapters' connections move to the new master; a broadcast made while they move can be
	// lost (docs/operations.md, failure modes), so the test waits for one to get through, then checks order.
	for i := 0; ; i++ {
		nodes[1].io.Emit("test", "probe")
		got := 0
		for _, c := range clients {
			if e, ok := c.next(3 * time.Second); ok && e.args[0] == "probe" {
				got++
			}
		}
		if got == len(clients) {
			t.Logf("first broadcast through after the failover: probe %d", i+1)
			break
		}
		if i == 10 {
			t.Fatal("no broadcast got through after the failover")
		}
		for _, c := range clients { // drop late probes
			for len(c.events) > 0 {
				<-c.events
			}
		}
	}
	broadcast(0, "after failover")
	broadcast(1, "after failover, from the other server")
}

func waitForLong(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
