package redisstreams

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// The least-privilege Redis ACLs documented in docs/operations.md. Each line there is one of these sets; TestACL
// proves each against a redis-server whose adapter user has exactly that set: conformance-style traffic
// (broadcast, fetchSockets, serverSideEmit with acks, server count, a recovery restore, close) runs, and ACL LOG
// must hold no denial for that user.
const (
	// aclStreams: the stream(s), with the default StreamName (StreamCount streams are "socket.io-<i>"). XRANGE:
	// a reader that is behind measures its lag and its losses with it.
	aclStreams = "~socket.io* +xadd +xread +xinfo|stream +xrange +set"
	// aclPubSub: requests and responses on PUB/SUB channels, with the default ChannelPrefix.
	aclPubSub        = "&socket.io#* +publish +subscribe +unsubscribe +pubsub|numsub"
	aclShardedPubSub = "&socket.io#* +spublish +ssubscribe +sunsubscribe +pubsub|shardnumsub"
	// rueidis leaves sharded channels by closing the connection, without SUNSUBSCRIBE.
	aclShardedPubSubRueidis = "&socket.io#* +spublish +ssubscribe +pubsub|shardnumsub"
	// aclRecovery: sessions (default SessionKeyPrefix) and the replay of missed packets. Sessions of connected
	// sockets (SessionsLive, the default) are written and claimed by scripts (EVALSHA, and EVAL when Redis does not
	// have them cached), which run GET, SET and DEL with the user's rights.
	aclRecovery = "~sio:session:* +evalsha +eval +get +set +del +xrange +xrevrange"
	// aclRecoveryOnDisconnect: the same with Options.Sessions = SessionsOnDisconnect (Node's commands).
	aclRecoveryOnDisconnect = "~sio:session:* +getdel +xrange +xrevrange"
	// aclPing: go-redis pings an idle subscription (every few seconds), rueidis pings idle connections, and
	// Adapter.Ping is a readiness check.
	aclPing = "+ping"
	// Client families: go-redis's cluster client asks for the slot map and the command table; rueidis (standalone
	// too) asks whether the server is a cluster and turns on client-side caching.
	aclGoRedisCluster = "+cluster|slots +command"
	aclRueidis        = "+client|tracking +cluster|slots"
)

type aclMode struct {
	name     string
	family   string
	cluster  bool
	opts     Options
	recovery bool
	rules    string
}

func (m aclMode) user() string { return "app-" + m.name }

const aclPassword = "acl-test-password"

func aclRules(parts ...string) string { return strings.Join(parts, " ") }

var aclModes = []aclMode{
	{name: "go-redis-standalone", rules: aclRules(aclPing, aclStreams, aclPubSub)},
	{name: "go-redis-standalone-recovery", recovery: true, rules: aclRules(aclPing, aclStreams, aclPubSub, aclRecovery)},
	{name: "go-redis-cluster-recovery", cluster: true, recovery: true, rules: aclRules(aclPing, aclGoRedisCluster, aclStreams, aclPubSub, aclRecovery)},
	{name: "go-redis-sharded-recovery", cluster: true, recovery: true, opts: Options{UseShardedPubSub: true}, rules: aclRules(aclPing, aclGoRedisCluster, aclStreams, aclShardedPubSub, aclRecovery)},
	{name: "go-redis-standalone-recovery-ondisconnect", recovery: true, opts: Options{Sessions: SessionsOnDisconnect}, rules: aclRules(aclPing, aclStreams, aclPubSub, aclRecoveryOnDisconnect)},
	{name: "go-redis-streamsonly-recovery", recovery: true, opts: Options{StreamsOnly: true}, rules: aclRules(aclPing, aclStreams, aclRecovery)},
	{name: "rueidis-standalone", family: familyRueidis, rules: aclRules(aclPing, aclRueidis, aclStreams, aclPubSub)},
	{name: "rueidis-standalone-recovery", family: familyRueidis, recovery: true, rules: aclRules(aclPing, aclRueidis, aclStreams, aclPubSub, aclRecovery)},
	{name: "rueidis-cluster-recovery", family: familyRueidis, cluster: true, recovery: true, rules: aclRules(aclPing, aclRueidis, aclStreams, aclPubSub, aclRecovery)},
	{name: "rueidis-sharded-recovery", family: familyRueidis, cluster: true, recovery: true, opts: Options{UseShardedPubSub: true}, rules: aclRules(aclPing, aclRueidis, aclStreams, aclShardedPubSubRueidis, aclRecovery)},
	{name: "rueidis-streamsonly-recovery", family: familyRueidis, recovery: true, opts: Options{StreamsOnly: true}, rules: aclRules(aclPing, aclRueidis, aclStreams, aclRecovery)},
}

// newAdapter builds an adapter whose client logs in as the mode's user, with the client options docs/operations.md shows.
func (m aclMode) newAdapter(t *testing.T, addrs []string) *Adapter {
	t.Helper()
	opts := m.opts
	opts.Logger = testLogger(t)
	var a *Adapter
	var err error
	switch m.family {
	case familyRueidis:
		rc, cerr := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, Username: m.user(), Password: aclPassword})
		if cerr != nil {
			t.Fatalf("rueidis client: %v", cerr)
		}
		t.Cleanup(rc.Close)
		a, err = New(t.Context(), rueidisbackend.New(rc), opts)
	default:
		var rc redis.UniversalClient
		if m.cluster {
			rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: m.user(), Password: aclPassword})
		} else {
			rc = redis.NewClient(&redis.Options{Addr: addrs[0], Username: m.user(), Password: aclPassword})
		}
		t.Cleanup(func() { _ = rc.Close() })
		a, err = New(t.Context(), goredisbackend.New(rc), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestACL(t *testing.T) {
	requireRedis(t)
	var conf strings.Builder
	for _, m := range aclModes {
		fmt.Fprintf(&conf, "user %s on >%s resetkeys resetchannels -@all %s\n", m.user(), aclPassword, m.rules)
	}
	srv := redistest.StartServerT(t, redistest.ServerOptions{Config: conf.String()})
	cl := redistest.StartClusterT(t, redistest.ClusterOptions{Node: redistest.ServerOptions{Config: conf.String()}})

	for _, m := range aclModes {
		t.Run(m.name, func(t *testing.T) {
			addrs := []string{srv.Addr()}
			var admin redis.UniversalClient = redis.NewClient(&redis.Options{Addr: srv.Addr()})
			if m.cluster {
				addrs = cl.Addrs()
				admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
			}
			defer admin.Close()
			forEachNode(t, admin, func(ctx context.Context, c *redis.Client) error {
				return c.Do(ctx, "ACL", "LOG", "RESET").Err()
			})
			t.Run("traffic", func(t *testing.T) { aclTraffic(t, m, addrs, admin) })
			// The adapters are closed (unsubscribed) by now.
			denied := aclDenialsEverywhere(t, admin, m.user())
			if len(denied) > 0 {
				t.Errorf("ACL LOG for %s with %q:\n%s", m.user(), m.rules, strings.Join(denied, "\n"))
			}
		})
	}
}

// aclTraffic runs what an application does through the adapter: two servers, a client on each.
func aclTraffic(t *testing.T, m aclMode, addrs []string, admin redis.UniversalClient) {
	opsTraffic(t, []*Adapter{m.newAdapter(t, addrs), m.newAdapter(t, addrs)}, m.recovery, admin)
}

// opsTraffic runs, on two servers with these adapters, what an application does: broadcasts, fetchSockets,
// socketsJoin, serverSideEmit with acks, server count, and with recovery, a session restored with the packet it
// missed. admin is a client of the same Redis with every right (to find the persisted session).
func opsTraffic(t *testing.T, adapters []*Adapter, recovery bool, admin redis.UniversalClient) {
	t.Helper()
	nodes := startClusterWithAdapters(t, adapters, clusterOpts{recovery: recovery})
	c0 := nodes[0].connect(t, clientOpts{}, "test")
	c1 := nodes[1].connect(t, clientOpts{}, "test")

	nodes[0].io.To("room").Except("other").Emit("test", "nobody") // a room broadcast, to nobody
	nodes[0].io.Emit("test", "all")
	args := c0.expect(t, "test")
	if args[0] != "all" {
		t.Fatalf("client 0 got %v", args)
	}
	if args := c1.expect(t, "test"); args[0] != "all" {
		t.Fatalf("client 1 got %v", args)
	}
	if n := len(fetch(t, nodes[0].io)); n != 2 {
		t.Fatalf("fetchSockets: %d sockets, want 2", n)
	}
	nodes[0].io.In("room").SocketsJoin("room2")
	serverSideEvents(nodes, "hello", func(i int) any { return i })
	if r := serverSideEmitWithAck(nodes[0].io, "hello"); r.err != nil || len(r.args) != 1 {
		t.Fatalf("serverSideEmitWithAck: %v %v", r.args, r.err)
	}
	if n := nodes[1].nsp(t, "/").ServerCount(); n != 2 {
		t.Fatalf("server count %d, want 2", n)
	}
	if !recovery {
		return
	}
	offset := offsetOf(t, args)
	sid := c0.server.Id()
	c0.Io().Engine().Close()
	var pid string
	waitFor(t, "persisted session", func() bool {
		pid = findSession(t, admin, nodes[0].adapter.opts.SessionKeyPrefix, sid)
		return pid != ""
	})
	nodes[1].io.Emit("test", "missed")
	c1.expect(t, "test")
	c2 := reconnect(t, nodes[0], pid, offset, "test")
	if !c2.server.Recovered() {
		t.Fatal("session not recovered")
	}
	if args := c2.expect(t, "test"); args[0] != "missed" {
		t.Fatalf("recovered client got %v, want the missed packet", args)
	}
	// A socket that leaves for good takes its session with it (SessionsLive: a DEL). The client is a raw one that
	// does not close its connection on DISCONNECT: a client that does races the server's own close
	// (servers/socket v3.0.6 then runs a "transport close" that persists the session, as it may).
	if nodes[1].adapter.opts.Sessions != SessionsLive {
		return
	}
	before := len(nodes[1].socketsOf("/"))
	dialCounter(t, nodes[1].url, "test")
	waitFor(t, "the raw client's socket", func() bool { return len(nodes[1].socketsOf("/")) > before })
	s := nodes[1].socketsOf("/")[before]
	var livePid string
	waitFor(t, "the session of a connected socket", func() bool {
		livePid = findSession(t, admin, nodes[1].adapter.opts.SessionKeyPrefix, s.Id())
		return livePid != ""
	})
	s.Disconnect(false)
	waitFor(t, "the session of a socket that left to be deleted", func() bool {
		return admin.Exists(t.Context(), nodes[1].adapter.opts.SessionKeyPrefix+livePid).Val() == 0
	})
}

func forEachNode(t *testing.T, rc redis.UniversalClient, f func(context.Context, *redis.Client) error) {
	t.Helper()
	var err error
	switch c := rc.(type) {
	case *redis.ClusterClient:
		err = c.ForEachShard(t.Context(), f)
	case *redis.Client:
		err = f(t.Context(), c)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// aclDenials returns the ACL LOG entries of user, one line each.
func aclDenials(ctx context.Context, c *redis.Client, user string) ([]string, error) {
	entries, err := c.Do(ctx, "ACL", "LOG", "128").Slice()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		fields := map[string]any{}
		switch v := e.(type) {
		case map[any]any:
			for k, x := range v {
				fields[fmt.Sprint(k)] = x
			}
		case []any:
			for i := 0; i+1 < len(v); i += 2 {
				fields[fmt.Sprint(v[i])] = v[i+1]
			}
		}
		if fields["username"] != user {
			continue
		}
		out = append(out, fmt.Sprintf("  %s: reason=%v context=%v object=%v count=%v",
			c.Options().Addr, fields["reason"], fields["context"], fields["object"], fields["count"]))
	}
	return out, nil
}

// TestACLAblation (ACL_ABLATION=1 only; it takes about 15 minutes) derives the sets above: for each mode, it takes
// out one rule at a time and reports whether the traffic then fails or ACL LOG shows a denial (the rule is needed)
// or not, in "ABLATION <mode>: not needed: [...]" lines. The subtests without a needed rule fail: that is expected.
func TestACLAblation(t *testing.T) {
	if os.Getenv("ACL_ABLATION") != "1" {
		t.Skip("set ACL_ABLATION=1 to run")
	}
	requireRedis(t)
	srv := redistest.StartServerT(t, redistest.ServerOptions{})
	cl := redistest.StartClusterT(t, redistest.ClusterOptions{})
	for _, m := range aclModes {
		addrs := []string{srv.Addr()}
		var admin redis.UniversalClient = redis.NewClient(&redis.Options{Addr: srv.Addr()})
		if m.cluster {
			addrs = cl.Addrs()
			admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		}
		rules := strings.Fields(m.rules)
		var unneeded []string
		for i, r := range rules {
			without := slices.Delete(slices.Clone(rules), i, i+1)
			forEachNode(t, admin, func(ctx context.Context, c *redis.Client) error {
				args := []any{"ACL", "SETUSER", m.user(), "reset", "on", ">" + aclPassword}
				for _, w := range without {
					args = append(args, w)
				}
				if err := c.Do(ctx, args...).Err(); err != nil {
					return err
				}
				return c.Do(ctx, "ACL", "LOG", "RESET").Err()
			})
			ok := t.Run(m.name+"/without "+r, func(t *testing.T) { aclTraffic(t, m, addrs, admin) })
			denied := aclDenialsEverywhere(t, admin, m.user())
			if ok && len(denied) == 0 {
				unneeded = append(unneeded, r)
			}
		}
		t.Logf("ABLATION %s: not needed: %v", m.name, unneeded)
		_ = admin.Close()
	}
}

// TestACLDocumented fails when docs/operations.md does not show, for each mode, the exact set TestACL proves.
func TestACLDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range aclModes {
		row := "(`" + m.name + "`) | `" + strings.ReplaceAll(m.rules, "|", `\|`) + "` |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/operations.md lacks the row %s", row)
		}
	}
}

// aclDenialsEverywhere collects the ACL LOG denials of user from every node.
func aclDenialsEverywhere(t *testing.T, admin redis.UniversalClient, user string) []string {
	t.Helper()
	var mu sync.Mutex
	var denied []string
	forEachNode(t, admin, func(ctx context.Context, c *redis.Client) error {
		d, err := aclDenials(ctx, c, user)
		mu.Lock()
		defer mu.Unlock()
		denied = append(denied, d...)
		return err
	})
	return denied
}
