package interop

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tinylib/msgp/msgp"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// Connection state recovery across languages: a session persisted by a server of one language is restored by a
// server of the other, with the broadcasts both languages made while the client was away.
func TestRecoveryInterop(t *testing.T) {
	requireInterop(t)
	for _, cfg := range []config{
		{name: "standalone", recovery: true},
		{name: "cluster", cluster: true, recovery: true},
		// The Go server on this module's websocket transport, clients on websocket only.
		{name: "standalone-wstransport", recovery: true, wsTransport: true},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			tp := startTopo(t, cfg)
			for _, from := range []string{"G0", "N0"} {
				for _, lang := range []string{"go", "node"} {
					a := tp.server(from)
					b := tp.others(a)[0]
					t.Run(fmt.Sprintf("%s_client_%s_to_%s", lang, a.name(), b.name()), func(t *testing.T) {
						testRecoveryAcross(t, tp, lang, a, b)
					})
				}
			}
		})
	}
}

var offsetRe = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// withOffset splits the offset a recovery-enabled server appends to a broadcast's arguments.
func withOffset(t testing.TB, who string, args []any) ([]any, string) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: event without arguments (no offset)", who)
	}
	off, _ := args[len(args)-1].(string)
	if !offsetRe.MatchString(off) {
		t.Fatalf("%s: last argument %s is not an offset", who, show(args[len(args)-1]))
	}
	return args[:len(args)-1], off
}

type gapBroadcast struct {
	origin    server
	tg        target
	event     string
	args      []any
	witnesses []*client
	missed    bool // the dropped client should get it on recovery
	offset    string
}

func testRecoveryAcross(t *testing.T, tp *topo, lang string, a, b server) {
	room, other := uniq("rec-room"), uniq("rec-other")
	// A room name out of ASCII. With a Go client, one that JSON encoders spell differently (Go escapes <, >, &,
	// U+2028; Node does not); with a Node client, one without escapes, which Go's restore looks for in the raw
	// JSON text of Node's entries (its room prefilter).
	uroom := uniq("rec-ü😀日本") + " Ω"
	if lang == "go" {
		uroom += ` "q" <&> \ / ` + "\u2028"
	}
	c := tp.connectWith(t, lang, a, "/", map[string]string{"rooms": room})
	a.socketJoin(t, "/", c.id, uroom)
	// Witnesses: all four root clients are in room and uroom; those on G0 are also in other.
	root := tp.root()
	onG0, onN0 := []*client{root[0], root[1]}, []*client{root[2], root[3]}
	tp.joinLocally(t, root, room)
	tp.joinLocally(t, root, uroom)
	tp.joinLocally(t, onG0, other)

	pre := uniq("rec-pre")
	a.emit(t, target{to: []string{room}}, pre, "before")
	_, off0 := withOffset(t, c.label, c.next(t, pre).args)
	for _, w := range root {
		w.next(t, pre)
	}
	if c.lang == "node" {
		st := c.stateFn(t)
		if st["pid"] == nil || st["offset"] != off0 {
			t.Fatalf("%s: socket.io-client recovery state %v, want a pid and offset %s (the server's CONNECT "+
				"carries no pid, or the client did not take the offset)", c, st, off0)
		}
	}

	// socket.data travels in the session: numbers, nulls and binary included.
	data := map[string]any{"user": c.label, "numbers": numbers(), "bin": []byte{0, 1, 255}, "list": []any{nil, []byte{9}}}
	a.socketSetData(t, "/", c.id, data)

	sid := c.id
	c.drop(t)
	rc := tp.cfg.newRedis(t)
	var pid string
	waitFor(t, c.label+"'s session persisted by "+a.name(), func() bool {
		pid = findSession(t, rc, tp.prefix+":session:", sid)
		return pid != ""
	})
	if c.lang == "node" {
		if st := c.stateFn(t); st["pid"] != pid {
			t.Errorf("%s: client pid %v, session key pid %s", c, st["pid"], pid)
		}
	}
	waitFor(t, a.name()+" to remove the dropped socket", func() bool { _, ok := a.local(t, "/", sid); return !ok })

	// The gap: from both languages and the Go emitter (whose broadcasts get their offset on every server too), to
	// all, to its room, to a room it is not in, to all but a room it is not in.
	var gap []*gapBroadcast
	for _, o := range []server{tp.server("G0"), tp.server("N0"), tp.server("E")} {
		p := strings.ToLower(o.name())
		gap = append(gap,
			&gapBroadcast{origin: o, tg: target{}, event: uniq("rec-all"), args: []any{p + "-all", 1, map[string]any{"n": nil}},
				witnesses: root, missed: true},
			&gapBroadcast{origin: o, tg: target{to: []string{room}}, event: uniq("rec-room"),
				args: []any{p + "-room", []byte{1, 2}, map[string]any{"b": []byte{3}}}, witnesses: root, missed: true},
			&gapBroadcast{origin: o, tg: target{to: []string{uroom}}, event: uniq("rec-uroom"), args: []any{p + "-uroom"},
				witnesses: root, missed: true},
			&gapBroadcast{origin: o, tg: target{to: []string{other}}, event: uniq("rec-other"), args: []any{p + "-other"},
				witnesses: onG0},
			&gapBroadcast{origin: o, tg: target{except: []string{other}}, event: uniq("rec-except"),
				args: []any{p + "-except", 2.5}, witnesses: onN0, missed: true},
		)
	}
	for _, g := range gap {
		g.origin.emit(t, g.tg, g.event, g.args...)
		// Wait until it is in the stream (and learn its offset) before the next one: the order is then known.
		for _, w := range g.witnesses {
			args, off := withOffset(t, w.label, w.next(t, g.event).args)
			if !equal(args, g.args) {
				t.Errorf("witness %s: %s args %s, want %s", w, g.event, show(args), show(canon(g.args)))
			}
			if g.offset == "" {
				g.offset = off
			} else if off != g.offset {
				t.Errorf("witness %s: %s offset %s, another client got %s", w, g.event, off, g.offset)
			}
		}
	}

	// Reconnect to the server of the other language with the previous session's pid and offset.
	auth := map[string]any{"token": "t-recovered", "pid": pid, "offset": off0}
	var c2 *client
	if lang == "go" {
		c2 = connectGo(t, c.label+"-recovered@"+b.name(), b.url(), "/", map[string]string{"k": "v"}, auth, tp.cfg.polling)
	} else {
		c2 = tp.nc.connect(t, c.label+"-recovered@"+b.name(), b.url(), "/", map[string]string{"k": "v"}, auth, tp.cfg.polling)
	}
	c2.server = b
	if c2.id != sid {
		t.Fatalf("%s reconnected to %s as %s, want the recovered id %s", c, b.name(), c2.id, sid)
	}
	d, ok := b.local(t, "/", sid)
	if !ok {
		t.Fatalf("%s has no socket %s", b.name(), sid)
	}
	if !d.recovered {
		t.Errorf("%s: socket %s not recovered", b.name(), sid)
	}
	if !equal(d.data, data) {
		t.Errorf("%s: recovered socket data %s, want %s", b.name(), show(d.data), show(canon(data)))
	}
	if !hasRoom(d, room) || !hasRoom(d, uroom) || hasRoom(d, other) {
		t.Errorf("%s: recovered socket rooms %q, want %q and %q (restored) and not %s", b.name(), d.rooms, room, uroom, other)
	}

	var names []string
	for _, g := range gap {
		names = append(names, g.event)
	}
	marker := uniq("rec-marker")
	b.emit(t, target{}, marker)
	names = append(names, marker)
	replayed := 0
	for _, g := range gap {
		if !g.missed {
			continue
		}
		replayed++
		e := c2.next(t, names...)
		if e.name != g.event {
			t.Errorf("%s: got %s %s, want the missed %s (from %s) next", c2, e.name, show(e.args), g.event, g.origin.name())
			continue
		}
		args, off := withOffset(t, c2.label, e.args)
		if !equal(args, g.args) || off != g.offset {
			t.Errorf("%s: replayed %s = %s at %s, want %s at %s", c2, g.event, show(args), off, show(canon(g.args)), g.offset)
		}
	}
	t.Logf("%s: %d broadcasts replayed by %s after the drop from %s", c2, replayed, b.name(), a.name())
	e := c2.next(t, names...)
	if e.name != marker {
		t.Fatalf("%s: got %s %s after the missed broadcasts, want the marker", c2, e.name, show(e.args))
	}
	if c2.lang == "node" {
		// The client tracks offsets for its next reconnection. (socket.io-client's own "recovered" is only set on
		// a reconnection of the same Socket object.)
		_, last := withOffset(t, c2.label, e.args)
		if st := c2.stateFn(t); st["pid"] != pid || st["offset"] != last {
			t.Errorf("%s: socket.io-client state %v, want pid %s and offset %s", c2, st, pid, last)
		}
	}
	// The session was consumed. A Go server then keeps the restored socket's session in Redis again (live
	// sessions), under the same private id.
	if b.lang() == "go" {
		waitFor(t, "the live session of the restored socket", func() bool {
			return findSession(t, rc, tp.prefix+":session:", sid) == pid
		})
	} else if n, err := rc.Exists(t.Context(), tp.prefix+":session:"+pid).Result(); err != nil || n != 0 {
		t.Errorf("session key still there after the restore (%d, %v)", n, err)
	}
}

// findSession returns the private id of the persisted session of that socket id, or "". Sessions are
// base64(msgpack{sid, pid, rooms, data}) under <prefix><pid>.
func findSession(t testing.TB, rc redis.UniversalClient, prefix, sid string) string {
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch c := rc.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		_ = scan(ctx, c)
	}
	for _, k := range keys {
		raw, err := rc.Get(ctx, k).Result()
		if err != nil || len(raw) <= wire.OwnerPrefixLen {
			continue // gone, or the marker a Go restore leaves until it writes the session back
		}
		bin, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			t.Errorf("session %s is not base64: %q", k, raw)
			continue
		}
		v, _, err := msgp.ReadIntfBytes(bin)
		m, _ := v.(map[string]any)
		if err != nil || m == nil {
			t.Errorf("session %s is not a msgpack map: %v", k, err)
			continue
		}
		if m["sid"] == sid {
			if m["pid"] != strings.TrimPrefix(k, prefix) {
				t.Errorf("session %s holds pid %v", k, m["pid"])
			}
			if _, ok := m["rooms"].([]any); !ok {
				t.Errorf("session %s: rooms %T", k, m["rooms"])
			}
			return strings.TrimPrefix(k, prefix)
		}
	}
	return ""
}
