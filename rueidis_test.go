package redisstreams

import (
	"slices"
	"testing"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// A go-redis server and a rueidis server in one cluster: broadcasts both ways, fetchSockets, serverSideEmit with
// acknowledgements, and a session persisted by one and restored by the other.
func TestMixedClientFamilies(t *testing.T) {
	for _, pair := range [][2]string{
		{"standalone", "rueidis-standalone"},
		{"cluster", "rueidis-cluster"},
		{"cluster-sharded", "rueidis-cluster-sharded"},
	} {
		cfgs := configsNamed(pair[0], pair[1])
		t.Run(pair[0], func(t *testing.T) {
			requireRedis(t)
			// node 0: go-redis, node 1: rueidis
			nodes := startCluster(t, cfgs[0], clusterOpts{nodes: 2, recovery: true, mixed: cfgs})
			c0 := nodes[0].connect(t, clientOpts{}, "test")
			c1 := nodes[1].connect(t, clientOpts{}, "test")

			for i, n := range nodes {
				if got := n.nsp(t, "/").ServerCount(); got != 2 {
					t.Fatalf("node %d: server count %d", i, got)
				}
			}
			nodes[0].io.Emit("test", "from go-redis", []byte{1, 2})
			nodes[1].io.Emit("test", "from rueidis")
			for _, c := range []*testClient{c0, c1} {
				// Two servers' writes to the stream have no order between them.
				got := []string{c.expect(t, "test")[0].(string), c.expect(t, "test")[0].(string)}
				slices.Sort(got)
				if got[0] != "from go-redis" || got[1] != "from rueidis" {
					t.Fatalf("client %s: %v", c.Id(), got)
				}
			}
			nodes[1].io.To(socket.Room(c0.Id())).Emit("test", "to c0 only")
			if args := c0.expect(t, "test"); args[0] != "to c0 only" {
				t.Fatalf("got %v", args)
			}

			want := []string{c0.Id(), c1.Id()}
			slices.Sort(want)
			for i, n := range nodes {
				var got []string
				for _, s := range fetch(t, n.io) {
					got = append(got, string(s.Id()))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("node %d fetched %v, want %v", i, got, want)
				}
			}

			serverSideEvents(nodes, "hello", func(i int) any { return []any{"go-redis", "rueidis"}[i] })
			for i, n := range nodes {
				r := serverSideEmitWithAck(n.io, "hello")
				if r.err != nil || len(r.args) != 1 || r.args[0] != []string{"rueidis", "go-redis"}[i] {
					t.Fatalf("node %d: serverSideEmitWithAck: %v %v", i, r.args, r.err)
				}
			}

			// Persisted through go-redis, restored through rueidis, with the packet missed meanwhile.
			oldID := c0.server.Id()
			c0.server.Join("room1")
			nodes[1].io.To("room1").Emit("test", "init")
			offset := offsetOf(t, c0.expect(t, "test"))
			pid := drop(t, cfgs[0], nodes[0], c0)
			nodes[0].io.To("room1").Emit("test", "missed")
			c2 := reconnect(t, nodes[1], pid, offset, "test")
			if !c2.server.Recovered() || c2.server.Id() != oldID {
				t.Fatalf("recovered=%v id %s, want %s", c2.server.Recovered(), c2.server.Id(), oldID)
			}
			if args := c2.expect(t, "test"); args[0] != "missed" {
				t.Fatalf("got %v", args)
			}
		})
	}
}
