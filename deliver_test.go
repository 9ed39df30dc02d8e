package redisstreams

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/socketio-go/redisstreams/internal/wire"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The raw delivery path (deliver.go) bypasses the server's in-memory Broadcast for plain remote broadcasts. These
// tests check, with real clients, each semantic that path must keep; rawBroadcasts proves the path was taken.

func rawCount(t *testing.T, n *node, nsp string) uint64 { return n.nsp(t, nsp).rawBroadcasts.Load() }

func TestRawDeliveryTransportsRoomsNamespaces(t *testing.T) {
	cfg := configs[0]
	nodes := startCluster(t, cfg, clusterOpts{nodes: 2, namespaces: []string{"/custom"}})
	ws := nodes[1].connect(t, clientOpts{}, "test", "marker")
	poll := connectPolling(t, nodes[1].url)
	inRoom := nodes[1].connect(t, clientOpts{}, "test", "marker")
	excluded := nodes[1].connect(t, clientOpts{}, "test", "marker")
	custom := nodes[1].connect(t, clientOpts{nsp: "/custom"}, "test")
	inRoom.server.Join("room1")
	excluded.server.Join("room1", "room2")
	payload := map[string]any{"text": `quote " backslash \ <html> & é €`, "n": 1.5, "list": []any{true, nil}}

	nodes[0].io.Emit("test", "all", payload)
	for _, c := range []*testClient{ws, inRoom, excluded} {
		if args := c.expect(t, "test"); !reflect.DeepEqual(args, []any{"all", payload}) {
			t.Fatalf("client got %#v", args)
		}
	}
	if args := poll.expect(t, "test"); !reflect.DeepEqual(args, []any{"all", payload}) {
		t.Fatalf("polling client got %#v", args)
	}
	nodes[0].io.To("room1").Except("room2").Emit("test", "room")
	if args := inRoom.expect(t, "test"); args[0] != "room" {
		t.Fatalf("got %v", args)
	}
	nodes[0].io.Of("/custom", nil).Emit("test", "custom")
	if args := custom.expect(t, "test"); args[0] != "custom" {
		t.Fatalf("got %v", args)
	}
	nodes[0].io.Emit("marker")
	for _, c := range []*testClient{ws, inRoom, excluded} {
		c.expect(t, "marker") // and nothing else
	}
	poll.expect(t, "marker")
	if got := rawCount(t, nodes[1], "/"); got != 3 {
		t.Fatalf("%d broadcasts took the raw path, want 3", got)
	}
	if got := rawCount(t, nodes[1], "/custom"); got != 1 {
		t.Fatalf("%d broadcasts took the raw path in /custom, want 1", got)
	}
}

// Binary attachments travel as msgpack and take the decoded path; acks take the in-memory adapter's.
func TestRawDeliveryBinaryAndAcksTakeDecodedPath(t *testing.T) {
	nodes := startCluster(t, configs[0], clusterOpts{nodes: 2})
	c := nodes[1].connect(t, clientOpts{}, "test")
	answer(c, "ask", "yes")
	nodes[0].io.Emit("test", []byte{1, 2, 3})
	if args := c.expect(t, "test"); !reflect.DeepEqual(asBytes(args[0]), []byte{1, 2, 3}) {
		t.Fatalf("got %#v", args)
	}
	r := emitWithAck(nodes[0].io.Timeout(5*time.Second), "ask")
	if r.err != nil || !reflect.DeepEqual(r.args, []any{"yes"}) {
		t.Fatalf("ack: %v %v", r.args, r.err)
	}
	if got := rawCount(t, nodes[1], "/"); got != 0 {
		t.Fatalf("%d broadcasts took the raw path", got)
	}
}

// The recovery offset is the last argument, both for the client and for outgoing-packet listeners; volatile
// broadcasts get none.
func TestRawDeliveryOffsetAndOutgoingListeners(t *testing.T) {
	nodes := startCluster(t, configs[0], clusterOpts{nodes: 2, recovery: true})
	c := nodes[1].connect(t, clientOpts{}, "test")
	outgoing := make(chan []any, 4)
	c.server.OnAnyOutgoing(func(args ...any) { outgoing <- args })

	nodes[0].io.Emit("test", "x")
	args := c.expect(t, "test")
	if len(args) != 2 || args[0] != "x" {
		t.Fatalf("client got %#v", args)
	}
	offset, _ := args[1].(string)
	rc := configs[0].newClient(t)
	entries, err := rc.XRevRangeN(t.Context(), nodes[0].nsp(t, "/").stream, "+", "-", 1).Result()
	if err != nil || len(entries) != 1 || entries[0].ID != offset {
		t.Fatalf("offset %q, newest entry %v (%v)", offset, entries, err)
	}
	select {
	case got := <-outgoing:
		if !reflect.DeepEqual(got, []any{"test", "x", offset}) {
			t.Fatalf("outgoing listener got %#v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("outgoing listener not called")
	}

	nodes[0].io.Volatile().Emit("test", "v")
	if args := c.expect(t, "test"); !reflect.DeepEqual(args, []any{"v"}) {
		t.Fatalf("volatile: client got %#v", args)
	}
	if got := rawCount(t, nodes[1], "/"); got != 2 {
		t.Fatalf("%d broadcasts took the raw path, want 2", got)
	}
}

// A volatile broadcast is dropped for a client whose transport is busy; the compress flag reaches the engine.
func TestRawDeliveryVolatileAndCompress(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		name := "no-deflate"
		if deflate {
			name = "per-message-deflate"
		}
		t.Run(name, func(t *testing.T) {
			co := clusterOpts{nodes: 2}
			if deflate {
				co.server = func(so *socket.ServerOptions) {
					so.SetPerMessageDeflate(&types.PerMessageDeflate{Threshold: 0})
				}
			}
			nodes := startCluster(t, configs[0], co)
			c := nodes[1].connect(t, clientOpts{}, "test")
			var mu sync.Mutex
			var compress []*bool
			c.server.Conn().On("packetCreate", func(args ...any) {
				if p, ok := args[0].(*packet.Packet); ok && p.Type == packet.MESSAGE && p.Options != nil {
					mu.Lock()
					compress = append(compress, p.Options.Compress)
					mu.Unlock()
				}
			})
			nsp := nodes[1].nsp(t, "/")

			transport := c.server.Conn().Transport()
			// The CONNECT packet's write marks the transport writable again once done: wait for that first.
			waitFor(t, "an idle transport", transport.Writable)
			transport.SetWritable(false)
			nodes[0].io.Volatile().Emit("test", "dropped")
			waitFor(t, "the volatile broadcast", func() bool { return nsp.rawBroadcasts.Load() == 1 })
			transport.SetWritable(true)

			nodes[0].io.Compress(false).Emit("test", "uncompressed")
			if args := c.expect(t, "test"); !reflect.DeepEqual(args, []any{"uncompressed"}) {
				t.Fatalf("client got %#v", args) // not "dropped"
			}
			nodes[0].io.Emit("test", strings.Repeat("z", 2000))
			if args := c.expect(t, "test"); args[0] != strings.Repeat("z", 2000) {
				t.Fatalf("client got %d bytes", len(args[0].(string)))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(compress) != 2 || compress[0] == nil || *compress[0] || (compress[1] != nil && !*compress[1]) {
				var show []any
				for _, c := range compress {
					if c == nil {
						show = append(show, nil)
					} else {
						show = append(show, *c)
					}
				}
				t.Fatalf("compress options %v", show)
			}
		})
	}
}

// Entries the raw path must not deliver as they are: each one is left to the decoded path (DecodeStreamEntry and
// the broadcast validation of issue 10), which rejects or converts it.
func TestRawDeliveryRefusesHostileEntries(t *testing.T) {
	nodes := startCluster(t, configs[0], clusterOpts{nodes: 2})
	nodes[1].connect(t, clientOpts{}, "test", "marker")
	rc := configs[0].newClient(t)
	stream := nodes[1].nsp(t, "/").stream
	opts := `"opts":{"rooms":[],"except":[],"flags":{}}`
	hostile := []string{
		`{"packet":{"type":2,"data":["test","unterminated]},` + opts + `}`,
		`{"packet":{"type":2,"data":["test"]},` + opts + `}trailing`,
		`{"packet":{"type":2,"data":"test"},` + opts + `}`,
		`{"packet":{"type":2,"data":[42,"test"]},` + opts + `}`,
		`{"packet":{"type":2,"data":["test"],"nsp":"/other"},` + opts + `}`,
		`{"packet":{"type":2,"data":["test",` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]},` + opts + `}`,
		`{"packet":{"type":0,"data":["test"]},` + opts + `}`,
	}
	for _, data := range hostile {
		if err := rc.XAdd(t.Context(), &redis.XAddArgs{Stream: stream, Values: []string{"uid", "intruder", "nsp", "/", "type", "3", "data", data}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Entries are dispatched in stream order: once the marker went the raw way, every hostile entry was handled.
	// (Some of them reach the decoded path's delivery, and can break the client: that validation is issue 10's.)
	nodes[0].io.Emit("marker")
	waitFor(t, "the marker", func() bool { return rawCount(t, nodes[1], "/") >= 1 })
	if n := rawCount(t, nodes[1], "/"); n != 1 { // the marker only
		t.Fatalf("%d broadcasts took the raw path, want 1", n)
	}
}

// pollingClient is a bare Engine.IO v4 long-polling client on the main namespace (the Go client library's
// polling transport does not complete the handshake in these tests). events receives each Socket.IO packet text.
type pollingClient struct {
	url    string
	sid    string
	events chan string
}

func connectPolling(t *testing.T, base string) *pollingClient {
	t.Helper()
	c := &pollingClient{url: base + "/socket.io/?EIO=4&transport=polling", events: make(chan string, 64)}
	body := httpDo(t, http.MethodGet, c.url, "")
	var open struct{ Sid string }
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		t.Fatalf("open: %q", body)
	}
	c.sid = open.Sid
	c.url += "&sid=" + open.Sid
	httpDo(t, http.MethodPost, c.url, "40")
	if body := httpDo(t, http.MethodGet, c.url, ""); !strings.HasPrefix(body, "40") {
		t.Fatalf("connect: %q", body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			for _, p := range strings.Split(string(b), "\x1e") {
				switch {
				case p == "2":
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader("3"))
					if res, err := http.DefaultClient.Do(req); err == nil {
						res.Body.Close()
					}
				case strings.HasPrefix(p, "4"):
					c.events <- p[1:]
				}
			}
		}
	}()
	return c
}

func httpDo(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", method, res.StatusCode, err)
	}
	return string(b)
}

// expect returns the arguments of the next EVENT packet, which must be event name.
func (c *pollingClient) expect(t *testing.T, name string) []any {
	t.Helper()
	select {
	case p := <-c.events:
		var args []any
		if !strings.HasPrefix(p, "2") || json.Unmarshal([]byte(p[1:]), &args) != nil || len(args) == 0 || args[0] != name {
			t.Fatalf("polling client got %q, want %q", p, name)
		}
		return args[1:]
	case <-time.After(10 * time.Second):
		t.Fatalf("polling client: no %q", name)
	}
	return nil
}

// A server's own broadcast reaches its local clients as the JSON text written to the stream; outgoing-packet
// listeners get the packet as emitted, and the offset is the last argument.
func TestOwnBroadcastLocalClients(t *testing.T) {
	nodes := startCluster(t, configs[0], clusterOpts{nodes: 1, recovery: true, namespaces: []string{"/custom"}})
	c := nodes[0].connect(t, clientOpts{}, "test")
	custom := nodes[0].connect(t, clientOpts{nsp: "/custom"}, "test")
	outgoing := make(chan []any, 4)
	c.server.OnAnyOutgoing(func(args ...any) { outgoing <- args })
	payload := map[string]any{"n": 7, "s": "<é>"}

	nodes[0].io.Emit("test", payload)
	args := c.expect(t, "test")
	if len(args) != 2 || !reflect.DeepEqual(args[0], map[string]any{"n": float64(7), "s": "<é>"}) {
		t.Fatalf("client got %#v", args)
	}
	offset, _ := args[1].(string)
	if !wire.IsStreamID(offset) {
		t.Fatalf("offset %#v", args[1])
	}
	select {
	case got := <-outgoing:
		if !reflect.DeepEqual(got, []any{"test", payload, offset}) { // the int stays an int: not decoded JSON
			t.Fatalf("outgoing listener got %#v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("outgoing listener not called")
	}
	nodes[0].io.Of("/custom", nil).Emit("test", "c")
	if args := custom.expect(t, "test"); len(args) != 2 || args[0] != "c" {
		t.Fatalf("custom client got %#v", args)
	}
	nodes[0].io.Emit("test", []byte{9})
	if args := c.expect(t, "test"); !reflect.DeepEqual(asBytes(args[0]), []byte{9}) {
		t.Fatalf("binary: client got %#v", args)
	}
	// A volatile packet is dropped while the transport is busy (the binary frames above may still be draining on
	// the server side), so emit until one arrives; it must come without an offset.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes[0].io.Volatile().Emit("test", "v")
		if e, ok := c.next(200 * time.Millisecond); ok {
			if e.name != "test" || !reflect.DeepEqual(e.args, []any{"v"}) {
				t.Fatalf("volatile: client got %q %#v", e.name, e.args)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("volatile: no broadcast arrived within 10s")
		}
	}
}

// A server's reader skips its own entries unconverted (Adapter.ownEntry) only while each namespace has one local
// adapter: two servers sharing one Adapter still get each other's broadcasts, in order, once each.
func TestOwnEntriesSkippedUnlessShared(t *testing.T) {
	a, err := configs[0].newAdapter(t, Options{})
	if err != nil {
		t.Fatal(err)
	}
	single := startClusterWithAdapters(t, []*Adapter{a})
	n := single[0].nsp(t, "/")
	if !a.ownEntry(n.uid, "/") || a.ownEntry("someone else", "/") || a.ownEntry(n.uid, "/other") {
		t.Fatal("ownEntry with one server on the Adapter")
	}
	received := a.Stats().Received
	single[0].io.Emit("test", 1)
	waitFor(t, "own entry read", func() bool { return a.Stats().Received > received })

	// A second server on the same Adapter: the namespace is shared, nothing of this writer is skipped.
	second := startClusterWithAdapters(t, []*Adapter{a})
	if a.ownEntry(n.uid, "/") {
		t.Fatal("ownEntry while a namespace has two local adapters")
	}
	c := second[0].connect(t, clientOpts{}, "test")
	for i := range 5 {
		single[0].io.Emit("test", i)
	}
	for i := range 5 {
		if args := c.expect(t, "test"); len(args) != 1 || args[0] != float64(i) {
			t.Fatalf("broadcast %d: got %#v", i, args)
		}
	}
	if st := a.Stats(); st.Duplicates != 0 || st.Lost != 0 || st.Invalid != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// With this module's websocket transport, a broadcast's frame is built once for all the sockets of a server,
// whether the broadcast comes from the stream (raw path) or from the server itself, and polling clients still get
// it; with the engine's transport, the adapter passes no pre-encoded frame (that transport would build a message
// per socket from it).
func TestDeliverySharesFramesWithWSTransport(t *testing.T) {
	if n := startCluster(t, configs[0], clusterOpts{nodes: 1})[0]; n.nsp(t, "/").sharedFrames {
		t.Fatal("the engine's websocket transport: the adapter would pass pre-encoded frames")
	}
	nodes := startCluster(t, configsNamed("standalone-wstransport")[0], clusterOpts{nodes: 2})
	if !nodes[1].nsp(t, "/").sharedFrames {
		t.Fatal("wstransport: the adapter does not pass pre-encoded frames")
	}
	var clients []*testClient
	for range 3 {
		clients = append(clients, nodes[1].connect(t, clientOpts{}, "test"))
	}
	poll := connectPolling(t, nodes[1].url)
	ws := nodes[1].ws
	for _, from := range []int{0, 1} {
		built := ws.Stats().SharedFrames
		nodes[from].io.Emit("test", "from", from)
		for _, c := range clients {
			if args := c.expect(t, "test"); !reflect.DeepEqual(args, []any{"from", float64(from)}) {
				t.Fatalf("client got %#v", args)
			}
		}
		if args := poll.expect(t, "test"); !reflect.DeepEqual(args, []any{"from", float64(from)}) {
			t.Fatalf("polling client got %#v", args)
		}
		if got := ws.Stats().SharedFrames - built; got != 1 {
			t.Errorf("a broadcast from server %d to 3 websocket clients built %d frames, want 1", from, got)
		}
	}
	if got := rawCount(t, nodes[1], "/"); got != 1 {
		t.Errorf("%d broadcasts took the raw path, want 1 (the one from the stream)", got)
	}
}
