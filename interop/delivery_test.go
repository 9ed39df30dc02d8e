package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	redisstreams "github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Stream entries that decode but are no event broadcast (unknown packet type, a DISCONNECT or CONNECT_ERROR
// packet, a reserved or non-string event name, another namespace's packet) are skipped by a Go server: official
// socket.io-client clients stay connected (a Node server passes a packet of type 77 on, and every client closes
// with "parse error") and get the next broadcast.
func TestHostileEntriesKeepNodeClientsConnected(t *testing.T) {
	requireInterop(t)
	prefix := "hostile-" + randomHex(4)
	rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	g := startGoServer(t, "G0", rc, redisstreams.Options{StreamName: prefix, ChannelPrefix: prefix, BlockTime: time.Second}, nil, false)
	nc := startNodeClients(t)
	clients := []*client{nc.connect(t, "node@G0", g.url(), "/", nil, nil, false), nc.connect(t, "node2@G0", g.url(), "/", nil, nil, false),
		connectGo(t, "go@G0", g.url(), "/", nil, nil, false)}
	opts := `"opts":{"rooms":[],"except":[],"flags":{}}`
	hostile := []string{
		`{"packet":{"type":77,"data":["x"],"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":1,"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":4,"data":{"message":"forged"},"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":0,"data":{"sid":"forged"},"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":2,"data":["connect"],"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":2,"data":["disconnect","forged"],"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":2,"data":[7],"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":2,"data":[],"nsp":"/"},` + opts + `}`,
		`{"packet":{"type":2,"data":["x"],"nsp":"/other"},` + opts + `}`,
	}
	for _, data := range hostile {
		if err := rc.XAdd(t.Context(), &redis.XAddArgs{Stream: prefix, Values: []string{"uid", "x", "nsp", "/", "type", "3", "data", data}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	g.emit(t, target{}, "after", 1)
	for _, c := range clients {
		if e := c.next(t, "after", "disconnect", malformedEvent, "x", "connect", "disconnect"); e.name != "after" {
			t.Errorf("client %s: got %s %v before the next broadcast", c, e.name, e.args)
		}
	}
	waitFor(t, "invalid entries counted", func() bool { return g.adapter.Stats().Invalid == uint64(len(hostile)) })
	for _, c := range clients {
		if e, ok := c.nextWithin(500*time.Millisecond, "disconnect"); ok {
			t.Errorf("client %s disconnected: %v", c, e.args)
		}
	}
}

// Go servers number their stream entries in an extra field (wire.SeqField) so that a write applied twice (retried
// after its reply was lost) reaches clients once. Node servers, 0.3.1 and 0.2.3, ignore the field: broadcasts
// between Go and Node servers work as before. Here the entry of one broadcast is written a second time: the Go
// server delivers it once and counts the repeat; the Node server delivers both, as Node always does.
func TestRepeatedEntryDeliveredOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		dir         string
		streamsOnly bool
	}{{"node0.3.1", nodeDir, false}, {"node0.2.3", node02Dir, true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.streamsOnly {
				requireNode02(t)
			} else {
				requireInterop(t)
			}
			prefix := "dup-" + randomHex(4)
			env := []string{"REDIS_URL=redis://" + shared.Standalone.Addr(), "STREAM_NAME=" + prefix, "CHANNEL_PREFIX=" + prefix,
				"BLOCK_TIME_IN_MS=1000"}
			if tc.streamsOnly {
				env = append(env, "HEARTBEAT_INTERVAL=500", "HEARTBEAT_TIMEOUT=2000", "LABEL=N0")
			}
			waitN0 := spawnNodeServer(t, tc.dir, "N0", env)
			opts := redisstreams.Options{StreamName: prefix, ChannelPrefix: prefix, BlockTime: time.Second,
				StreamsOnly: tc.streamsOnly, HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 2 * time.Second}
			var gs []*goServer
			for _, label := range []string{"G0", "G1"} {
				rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
				t.Cleanup(func() { _ = rc.Close() })
				gs = append(gs, startGoServer(t, label, rc, opts, nil, false))
			}
			n0 := waitN0()
			nc := startNodeClients(t)
			onG1 := []*client{connectGo(t, "go@G1", gs[1].url(), "/", nil, nil, false), nc.connect(t, "node@G1", gs[1].url(), "/", nil, nil, false)}
			onN0 := nc.connect(t, "node@N0", n0.url(), "/", nil, nil, false)

			// Node peers read Go entries, extra field and all, and Go servers read Node's entries (no field).
			n0.emit(t, target{}, "from-node", 1)
			for _, c := range append(onG1, onN0) {
				c.expect(t, "from-node", 1)
			}
			gs[0].emit(t, target{}, "dup", "once")
			rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
			t.Cleanup(func() { _ = rc.Close() })
			var original redis.XMessage
			waitFor(t, "the entry of the broadcast", func() bool {
				entries, err := rc.XRevRangeN(t.Context(), prefix, "+", "-", 50).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if d, _ := e.Values["data"].(string); strings.Contains(d, `"dup"`) {
						original = e
						return true
					}
				}
				return false
			})
			if _, ok := original.Values[wire.SeqField]; !ok {
				t.Fatalf("Go entry without %s field: %v", wire.SeqField, original.Values)
			}
			// The same fields again, in the same order, as a retried XADD writes them.
			var fields []string
			for _, k := range []string{"uid", "nsp", "type", "data", wire.SeqField} {
				fields = append(fields, k, original.Values[k].(string))
			}
			if err := rc.XAdd(t.Context(), &redis.XAddArgs{Stream: prefix, Values: fields}).Err(); err != nil {
				t.Fatal(err)
			}
			gs[0].emit(t, target{}, "marker")
			for _, c := range onG1 {
				c.expect(t, "dup", "once")
				if e := c.next(t, "dup", "marker"); e.name != "marker" {
					t.Errorf("client %s: the repeated entry was delivered again", c)
				}
			}
			onN0.expect(t, "dup", "once")
			if e := onN0.next(t, "dup", "marker"); e.name == "dup" {
				t.Logf("Node server delivered the repeated entry again (no deduplication in Node)")
				onN0.next(t, "marker")
			}
			waitFor(t, "repeat counted", func() bool { return gs[1].adapter.Stats().Duplicates == 1 })
		})
	}
}
