package redisstreams

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
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
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*redistest.Server{master, replica, sentinel} {
				b, _ := os.ReadFile(s.LogFile())
				t.Logf("log of %s:\n%s", s.Addr(), b)
			}
		}
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
	var dataSetLost atomic.Int64 // readers that declared Redis's data set lost
	nodes := startClusterWith(t, configs[0], clusterOpts{nodes: 2, adapter: func(o *Options) {
		o.Logger = slog.New(&countingHandler{Handler: o.Logger.Handler(), match: "Redis lost the stream's data", n: &dataSetLost})
	}}, newClient)
	clients := []*testClient{nodes[0].connect(t, clientOpts{}, "test"), nodes[1].connect(t, clientOpts{}, "test")}
	// broadcast checks that the next event of every client is v: a broadcast delivered twice, or lost, fails the
	// broadcast after it (or this one).
	broadcast := func(from int, v string) {
		t.Helper()
		nodes[from].io.Emit("test", v)
		for _, c := range clients {
			if args := c.expect(t, "test"); args[0] != v {
				t.Fatalf("client got %v, want %q", args, v)
			}
		}
	}
	broadcast(0, "before failover")
	if n := len(fetch(t, nodes[1].io)); n != 2 {
		t.Fatalf("fetchSockets: %d sockets, want 2", n)
	}

	// The replica must hold everything the master has: Sentinel would promote a replica whose first (full) sync
	// has not even started (Redis delays it for a diskless sync), and the data set would be lost for real.
	oldMaster := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer oldMaster.Close()
	promoted := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer promoted.Close()
	inSync := func() bool {
		m, err1 := oldMaster.Info(t.Context(), "replication").Result()
		r, err2 := promoted.Info(t.Context(), "replication").Result()
		return err1 == nil && err2 == nil && strings.Contains(r, "master_link_status:up") &&
			infoField(r, "slave_repl_offset") != "" && infoField(r, "slave_repl_offset") == infoField(m, "master_repl_offset")
	}
	waitForLong(t, "the replica to be in sync", 30*time.Second, inSync)
	// Sentinel promotes the replica a second or so before the clients hear of it: what is written to the old master
	// meanwhile is lost with it (Sentinel's own window, no fault of the adapter). Pausing writes on the old master
	// closes that window: a write sent there waits until go-redis moves its client, and is then sent again.
	if err := oldMaster.Do(t.Context(), "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	waitForLong(t, "the replica to be in sync", 30*time.Second, inSync)

	// Failover: the replica becomes the master.
	if err := admin.Failover(t.Context(), "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitForLong(t, "the replica to be master", 30*time.Second, func() bool {
		addr, err := admin.GetMasterAddrByName(t.Context(), "mymaster").Result()
		return err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(replica.Port())
	})
	waitForLong(t, "the replica to take writes", 30*time.Second, func() bool {
		info, err := promoted.Info(t.Context(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	// Every broadcast from now on arrives, once: the adapters' clients, readers included, move to the new master.
	for i := range 4 {
		broadcast(i%2, fmt.Sprintf("after failover %d", i))
	}
	for i, n := range nodes {
		if st := n.adapter.Stats(); st.Lost != 0 {
			t.Errorf("server %d: Stats().Lost = %d, want 0 (nothing was lost)", i, st.Lost)
		}
	}
	if n := dataSetLost.Load(); n != 0 {
		t.Errorf("%d readers declared Redis's data set lost, want none (the replica was in sync)", n)
	}
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// countingHandler counts the log records whose message contains match.
type countingHandler struct {
	slog.Handler
	match string
	n     *atomic.Int64
}

// Enabled is true for every level: the records are counted whether or not the wrapped handler shows them.
func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.n.Add(1)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(attrs), match: h.match, n: h.n}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithGroup(name), match: h.match, n: h.n}
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
