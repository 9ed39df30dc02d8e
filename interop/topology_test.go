package interop

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	redisstreams "github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// config is one Redis set-up the suite runs against.
type config struct {
	name        string
	cluster     bool
	streamCount int
	sharded     bool
	namespaces  []string // besides "/", each with its own clients
	// recovery: connection state recovery on every server (which then appends offsets to broadcasts), and only
	// two servers, G0 and N0.
	recovery bool
	// wsTransport: the Go servers use this module's websocket transport (wstransport) instead of the engine's.
	wsTransport bool
	// polling: clients of both languages connect over long-polling first, then upgrade to websocket.
	polling bool
	// deflate: the Go servers enable per-message deflate (threshold deflateThreshold); Node clients offer it.
	deflate bool
}

func (cfg config) serverOpts(recovery bool) goServerOpts {
	return goServerOpts{recovery: recovery, wsTransport: cfg.wsTransport, deflate: cfg.deflate}
}

// nodeRecoveryMs is the Node servers' maxDisconnectionDuration when recovery is on.
const nodeRecoveryMs = 60000

// goRequestsTimeout is the Go servers' RequestsTimeout (Node's is fixed at 5 s).
const goRequestsTimeout = 3 * time.Second

// topo is a mixed cluster: servers G0, N0, G1, N1 (Go, Node, Go, Node) and, on every namespace, one Go client
// and one Node client on each server.
type topo struct {
	cfg     config
	prefix  string
	servers []server
	emitter *emitterOrigin       // origin "E": the Go emitter, not a server
	clients map[string][]*client // by namespace: go@G0, node@G0, go@N0, node@N0, go@G1, ...
	nc      *nodeClients
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var uniqSeq atomic.Int64

// uniq returns a name no other check uses (events, rooms).
func uniq(what string) string { return what + "-" + strconv.FormatInt(uniqSeq.Add(1), 10) }

func (cfg config) newRedis(t testing.TB) redis.UniversalClient {
	var rc redis.UniversalClient
	if cfg.cluster {
		rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: shared.Cluster.Addrs()})
	} else {
		rc = redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func (cfg config) nodeEnv(prefix string) []string {
	env := []string{"STREAM_NAME=" + prefix, "CHANNEL_PREFIX=" + prefix, "BLOCK_TIME_IN_MS=1000",
		"NAMESPACES=" + strings.Join(cfg.namespaces, ","), "SESSION_KEY_PREFIX=" + prefix + ":session:"}
	if cfg.recovery {
		env = append(env, "RECOVERY_MS="+strconv.Itoa(nodeRecoveryMs))
	}
	if cfg.cluster {
		env = append(env, "REDIS_CLUSTER="+strings.Join(shared.Cluster.Addrs(), ","))
	} else {
		env = append(env, "REDIS_URL=redis://"+shared.Standalone.Addr())
	}
	if cfg.streamCount > 1 {
		env = append(env, "STREAM_COUNT="+strconv.Itoa(cfg.streamCount))
	}
	if cfg.sharded {
		env = append(env, "USE_SHARDED_PUBSUB=1")
	}
	return env
}

func (cfg config) goOptions(t testing.TB, prefix string) redisstreams.Options {
	return redisstreams.Options{
		StreamName:       prefix,
		ChannelPrefix:    prefix,
		SessionKeyPrefix: prefix + ":session:",
		StreamCount:      cfg.streamCount,
		UseShardedPubSub: cfg.sharded,
		BlockTime:        time.Second,
		RequestsTimeout:  goRequestsTimeout,
	}
}

func startTopo(t *testing.T, cfg config) *topo {
	t.Helper()
	start := time.Now()
	tp := &topo{cfg: cfg, prefix: "interop-" + randomHex(4), clients: map[string][]*client{}}
	// Node processes boot in parallel with everything else.
	waitN0 := spawnNodeServer(t, nodeDir, "N0", cfg.nodeEnv(tp.prefix))
	var waitN1 func() *nodeServer
	if !cfg.recovery {
		waitN1 = spawnNodeServer(t, nodeDir, "N1", cfg.nodeEnv(tp.prefix))
	}
	tp.nc = startNodeClients(t)
	g0 := startGoServerWith(t, "G0", cfg.newRedis(t), cfg.goOptions(t, tp.prefix), cfg.namespaces, cfg.serverOpts(cfg.recovery))
	if cfg.recovery {
		tp.servers = []server{g0, waitN0()}
	} else {
		g1 := startGoServerWith(t, "G1", cfg.newRedis(t), cfg.goOptions(t, tp.prefix), cfg.namespaces, cfg.serverOpts(false))
		tp.servers = []server{g0, waitN0(), g1, waitN1()}
	}
	tp.emitter = newEmitterOrigin(t, cfg, tp.prefix)

	namespaces := append([]string{"/"}, cfg.namespaces...)
	// Every server subscribed on every namespace: the cluster is formed.
	for _, nsp := range namespaces {
		for _, s := range tp.servers {
			waitFor(t, fmt.Sprintf("%s to count %d servers on %s", s.name(), len(tp.servers), nsp), func() bool {
				return s.count(t, nsp) == len(tp.servers)
			})
		}
	}
	for _, nsp := range namespaces {
		for _, s := range tp.servers {
			tp.clients[nsp] = append(tp.clients[nsp], tp.connect(t, "go", s, nsp), tp.connect(t, "node", s, nsp))
		}
	}
	// On this module's websocket transport, every client of a Go server ends up on it (after its upgrade).
	for _, s := range tp.servers {
		if g, ok := s.(*goServer); ok && g.ws != nil {
			want := int64(2 * len(namespaces))
			waitFor(t, fmt.Sprintf("the %d clients of %s on wstransport", want, g.label), func() bool {
				return g.ws.Stats().Connections == want
			})
			if cfg.deflate {
				t.Cleanup(func() {
					if g.ws.Stats().Deflated == 0 {
						t.Errorf("%s: per-message deflate is on, and no message went out compressed", g.label)
					}
				})
			}
		}
	}
	// A Node reader starts at "$" and only holds a position once it read an entry: until then, entries written
	// between two of its XREADs are lost (wire-protocol.md W10). Warm every stream Node reads up.
	for _, nsp := range namespaces {
		if !tp.nodeReads(nsp) {
			continue
		}
		tp.warmUp(t, nsp)
	}
	t.Logf("topology %s up in %v (prefix %s)", cfg.name, time.Since(start).Round(time.Millisecond), tp.prefix)
	return tp
}

// nodeReads reports whether Node servers read the stream of nsp (0.3.1 never reads negative-index streams).
func (tp *topo) nodeReads(nsp string) bool {
	count := max(tp.cfg.streamCount, 1)
	return !strings.HasPrefix(wire.StreamName(tp.prefix, count, nsp), tp.prefix+"--")
}

func (tp *topo) warmUp(t *testing.T, nsp string) {
	t.Helper()
	pending := map[*client]bool{}
	for _, c := range tp.clients[nsp] {
		pending[c] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(pending) > 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("warm-up on %s: %d clients never received a broadcast", nsp, len(pending))
		}
		tp.servers[0].emit(t, target{nsp: nsp}, "warmup", i)
		for until := time.Now().Add(300 * time.Millisecond); len(pending) > 0 && time.Now().Before(until); {
			for c := range pending {
				if c.has("warmup") {
					delete(pending, c)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (c *client) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.name == name {
			return true
		}
	}
	return false
}

// connect adds a client of that language to server s, with query k=v and auth {data: ...}.
func (tp *topo) connect(t testing.TB, lang string, s server, nsp string) *client {
	t.Helper()
	return tp.connectWith(t, lang, s, nsp, nil)
}

func (tp *topo) connectWith(t testing.TB, lang string, s server, nsp string, query map[string]string) *client {
	t.Helper()
	label := lang + "@" + s.name()
	if nsp != "/" {
		label += nsp
	}
	q := map[string]string{"k": "v"}
	for k, v := range query {
		q[k] = v
	}
	auth := map[string]any{"token": "t-" + label}
	var c *client
	if lang == "go" {
		c = connectGo(t, label, s.url(), nsp, q, auth, tp.cfg.polling)
	} else {
		c = tp.nc.connect(t, label, s.url(), nsp, q, auth, tp.cfg.polling)
	}
	c.server = s
	return c
}

func (tp *topo) root() []*client { return tp.clients["/"] }

// pick returns the root namespace clients at those indexes.
func (tp *topo) pick(idx ...int) []*client {
	out := make([]*client, len(idx))
	for i, j := range idx {
		out[i] = tp.root()[j]
	}
	return out
}

// others returns every server but o.
func (tp *topo) others(o server) []server {
	var out []server
	for _, s := range tp.servers {
		if s != o {
			out = append(out, s)
		}
	}
	return out
}

// server returns the server of that name.
func (tp *topo) server(name string) server {
	if name == "E" {
		return tp.emitter
	}
	for _, s := range tp.servers {
		if s.name() == name {
			return s
		}
	}
	panic("no server " + name)
}

// marker broadcasts a marker event from o to everyone in nsp. Stream entries are delivered in order, so a client
// that receives the marker before an event will never receive that event.
func (tp *topo) marker(t testing.TB, o server, nsp string) string {
	m := uniq("marker")
	o.emit(t, target{nsp: nsp}, m)
	return m
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasRoom(d details, room string) bool {
	for _, r := range d.rooms {
		if r == room {
			return true
		}
	}
	return false
}

// roomsOf returns the rooms of a client's socket as its own server sees them.
func roomsOf(t testing.TB, c *client, nsp string) (details, bool) {
	return c.server.local(t, nsp, c.id)
}
