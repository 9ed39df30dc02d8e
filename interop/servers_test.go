package interop

import (
	"context"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	redisstreams "github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/wstransport"
)

// target selects sockets, as a broadcast operator does.
type target struct {
	nsp    string
	to     []string
	except []string
}

func (tg target) namespace() string {
	if tg.nsp == "" {
		return "/"
	}
	return tg.nsp
}

// details is a fetched socket in canonical form.
type details struct {
	id        string
	rooms     []string // sorted
	data      any
	handshake map[string]any
	recovered bool // local sockets only: connection state recovered
}

// ackResult is the outcome of an operation with acknowledgements.
type ackResult struct {
	responses []any
	err       string // "" when none
}

// server is a Socket.IO server of either language, seen through the operations the tests need.
type server interface {
	name() string // "G0", "N1", ...
	lang() string
	url() string

	emit(t testing.TB, tg target, event string, args ...any)
	emitAck(t testing.TB, tg target, timeout time.Duration, event string, args ...any) ackResult
	join(t testing.TB, tg target, rooms ...string)
	leave(t testing.TB, tg target, rooms ...string)
	disconnect(t testing.TB, tg target, close bool)
	fetch(t testing.TB, tg target) ([]details, string)
	count(t testing.TB, nsp string) int

	// Operations on one socket fetched from the cluster (a RemoteSocket when it lives elsewhere).
	remoteEmit(t testing.TB, nsp, id, event string, args ...any)
	remoteEmitAck(t testing.TB, nsp, id string, timeout time.Duration, event string, args ...any) ackResult
	remoteJoin(t testing.TB, nsp, id, room string)
	remoteLeave(t testing.TB, nsp, id, room string)
	remoteDisconnect(t testing.TB, nsp, id string, close bool)

	sse(t testing.TB, nsp, event string, args ...any)
	sseAck(t testing.TB, nsp, event string, args ...any) ackResult
	// sseReply sets how this server acknowledges a serverSideEmit of that event (ack false: it does not).
	sseReply(t testing.TB, nsp, event string, value any, ack bool)
	// nextSSE returns the next serverSideEmit of that event received here (without the ack callback).
	nextSSE(t testing.TB, nsp, event string) ([]any, bool)

	// Local socket state.
	local(t testing.TB, nsp, id string) (details, bool)
	socketJoin(t testing.TB, nsp, id string, rooms ...string)
	socketSetData(t testing.TB, nsp, id string, data any)
}

// ----- Go server -----

type goServer struct {
	label   string
	io      *socket.Server
	adapter *redisstreams.Adapter
	ws      *wstransport.Transport // nil: the engine's websocket transport
	baseURL string

	mu       sync.Mutex
	sseChans map[string]chan []any // nsp + " " + event
	replies  map[string]*sseReplyCfg
}

type sseReplyCfg struct {
	value any
	ack   bool
}

func startGoServer(t testing.TB, label string, rc redis.UniversalClient, opts redisstreams.Options, namespaces []string, recovery bool) *goServer {
	t.Helper()
	return startGoServerWith(t, label, rc, opts, namespaces, goServerOpts{recovery: recovery})
}

// startGoServerWindow is startGoServer with connection state recovery on when window (its
// MaxDisconnectionDuration) is not 0.
func startGoServerWindow(t testing.TB, label string, rc redis.UniversalClient, opts redisstreams.Options, namespaces []string, window time.Duration) *goServer {
	t.Helper()
	return startGoServerWith(t, label, rc, opts, namespaces, goServerOpts{recovery: window != 0, window: window})
}

// goServerOpts are the Socket.IO server's own options of a Go server.
type goServerOpts struct {
	recovery    bool          // connection state recovery
	window      time.Duration // its MaxDisconnectionDuration; 0: Socket.IO's default
	wsTransport bool          // this module's websocket transport instead of the engine's
	deflate     bool          // per-message deflate, for messages of deflateThreshold bytes or more
}

// deflateThreshold is the Go servers' per-message deflate threshold when it is on: low, so that most messages of
// the suite go out compressed, and some do not.
const deflateThreshold = 64

func startGoServerWith(t testing.TB, label string, rc redis.UniversalClient, opts redisstreams.Options, namespaces []string, gso goServerOpts) *goServer {
	t.Helper()
	a, err := redisstreams.New(t.Context(), goredisbackend.New(rc), opts)
	if err != nil {
		t.Fatal(err)
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(a)
	var ws *wstransport.Transport
	if gso.wsTransport {
		ws = wstransport.Install(so, wstransport.Options{})
	}
	if gso.deflate {
		so.SetPerMessageDeflate(&types.PerMessageDeflate{Threshold: deflateThreshold})
	}
	if gso.recovery {
		csr := socket.DefaultConnectionStateRecovery()
		if gso.window != 0 {
			csr.SetMaxDisconnectionDuration(gso.window.Milliseconds())
		}
		so.SetConnectionStateRecovery(csr)
	}
	g := &goServer{label: label, adapter: a, ws: ws, io: socket.NewServer(nil, so), sseChans: map[string]chan []any{}, replies: map[string]*sseReplyCfg{}}
	for _, n := range append([]string{"/"}, namespaces...) {
		g.setupNamespace(n)
	}
	srv := httptest.NewServer(g.io.ServeHandler(nil))
	g.baseURL = srv.URL
	t.Cleanup(func() {
		done := make(chan struct{})
		g.io.Close(func(error) { close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: server close timed out", label)
		}
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("%s: adapter close: %v", label, err)
		}
	})
	return g
}

func (g *goServer) setupNamespace(name string) socket.Namespace {
	ns := g.io.Of(name, nil)
	_ = ns.On("connection", func(args ...any) {
		s := args[0].(*socket.Socket)
		if r := firstString(s.Handshake().Query["rooms"]); r != "" {
			for _, room := range strings.Split(r, ",") {
				s.Join(socket.Room(room))
			}
		}
		if d, ok := s.Handshake().Auth["data"]; ok {
			s.SetData(untag(d))
		}
	})
	return ns
}

func (g *goServer) name() string { return g.label }
func (g *goServer) lang() string { return "go" }
func (g *goServer) url() string  { return g.baseURL }

func (g *goServer) op(tg target) *socket.BroadcastOperator {
	ns := g.io.Of(tg.namespace(), nil)
	return ns.To(rooms(tg.to)...).Except(rooms(tg.except)...)
}

func (g *goServer) emit(t testing.TB, tg target, ev string, args ...any) {
	if err := g.op(tg).Emit(ev, args...); err != nil {
		t.Fatalf("%s emit: %v", g.label, err)
	}
}

func (g *goServer) emitAck(t testing.TB, tg target, timeout time.Duration, ev string, args ...any) ackResult {
	ch := make(chan ackResult, 1)
	g.op(tg).Timeout(timeout).EmitWithAck(ev, args...)(func(res []any, err error) {
		ch <- goAckResult(res, err)
	})
	return waitAck(t, g.label, ch, timeout)
}

func goAckResult(res []any, err error) ackResult {
	r := ackResult{responses: canon(res).([]any)}
	if r.responses == nil {
		r.responses = []any{}
	}
	if err != nil {
		r.err = err.Error()
	}
	return r
}

func waitAck(t testing.TB, who string, ch chan ackResult, timeout time.Duration) ackResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout + eventWait):
		t.Fatalf("%s: acknowledgement callback never called", who)
	}
	return ackResult{}
}

func (g *goServer) join(t testing.TB, tg target, rs ...string)  { g.op(tg).SocketsJoin(rooms(rs)...) }
func (g *goServer) leave(t testing.TB, tg target, rs ...string) { g.op(tg).SocketsLeave(rooms(rs)...) }
func (g *goServer) disconnect(t testing.TB, tg target, close bool) {
	g.op(tg).DisconnectSockets(close)
}

func (g *goServer) fetchRemote(t testing.TB, tg target) ([]*socket.RemoteSocket, error) {
	ch := make(chan struct {
		s   []*socket.RemoteSocket
		err error
	}, 1)
	go g.op(tg).FetchSockets()(func(s []*socket.RemoteSocket, err error) {
		ch <- struct {
			s   []*socket.RemoteSocket
			err error
		}{s, err}
	})
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: fetchSockets never returned", g.label)
	}
	return nil, nil
}

func (g *goServer) fetch(t testing.TB, tg target) ([]details, string) {
	list, err := g.fetchRemote(t, tg)
	out := make([]details, len(list))
	for i, s := range list {
		out[i] = goDetails(s.Id(), s.Rooms().Keys(), s.Data(), s.Handshake())
	}
	if err != nil {
		return out, err.Error()
	}
	return out, ""
}

func goDetails(id socket.SocketId, rs []socket.Room, data any, h *socket.Handshake) details {
	d := details{id: string(id), data: canon(data)}
	for _, r := range rs {
		d.rooms = append(d.rooms, string(r))
	}
	sort.Strings(d.rooms)
	if h != nil {
		d.handshake = map[string]any{
			"headers": canon(h.Headers), "time": h.Time, "address": h.Address, "xdomain": h.Xdomain,
			"secure": h.Secure, "issued": canon(h.Issued), "url": h.Url, "query": canon(h.Query), "auth": canon(h.Auth),
		}
	}
	return d
}

func (g *goServer) count(t testing.TB, nsp string) int {
	return int(g.io.Of(nsp, nil).Adapter().ServerCount())
}

func (g *goServer) remote(t testing.TB, nsp, id string) *socket.RemoteSocket {
	t.Helper()
	list, err := g.fetchRemote(t, target{nsp: nsp, to: []string{id}})
	if err != nil || len(list) != 1 {
		t.Fatalf("%s: fetchSockets(in %s) = %d sockets, %v", g.label, id, len(list), err)
	}
	return list[0]
}

func (g *goServer) remoteEmit(t testing.TB, nsp, id, ev string, args ...any) {
	if err := g.remote(t, nsp, id).Emit(ev, args...); err != nil {
		t.Fatal(err)
	}
}

func (g *goServer) remoteEmitAck(t testing.TB, nsp, id string, timeout time.Duration, ev string, args ...any) ackResult {
	ch := make(chan ackResult, 1)
	g.remote(t, nsp, id).Timeout(timeout).EmitWithAck(ev, args...)(func(res []any, err error) {
		ch <- goAckResult(res, err)
	})
	return waitAck(t, g.label, ch, timeout)
}

func (g *goServer) remoteJoin(t testing.TB, nsp, id, room string) {
	g.remote(t, nsp, id).Join(socket.Room(room))
}

func (g *goServer) remoteLeave(t testing.TB, nsp, id, room string) {
	g.remote(t, nsp, id).Leave(socket.Room(room))
}

func (g *goServer) remoteDisconnect(t testing.TB, nsp, id string, close bool) {
	g.remote(t, nsp, id).Disconnect(close)
}

func (g *goServer) sse(t testing.TB, nsp, ev string, args ...any) {
	if err := g.io.Of(nsp, nil).ServerSideEmit(ev, args...); err != nil {
		t.Fatalf("%s serverSideEmit: %v", g.label, err)
	}
}

func (g *goServer) sseAck(t testing.TB, nsp, ev string, args ...any) ackResult {
	ch := make(chan ackResult, 1)
	err := g.io.Of(nsp, nil).ServerSideEmitWithAck(ev, args...)(func(res []any, err error) {
		ch <- goAckResult(res, err)
	})
	if err != nil {
		return ackResult{responses: []any{}, err: err.Error()}
	}
	return waitAck(t, g.label, ch, 10*time.Second)
}

// sseChan returns the channel recording serverSideEmit events of that name, registering the handler once.
func (g *goServer) sseChan(nsp, ev string) chan []any {
	key := nsp + " " + ev
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.sseChans[key]; ok {
		return ch
	}
	ch := make(chan []any, 64)
	g.sseChans[key] = ch
	_ = g.io.Of(nsp, nil).On(ev, func(args ...any) {
		var ack socket.Ack
		if len(args) > 0 {
			if a, ok := args[len(args)-1].(socket.Ack); ok {
				ack, args = a, args[:len(args)-1]
			}
		}
		ch <- canon(args).([]any)
		if ack != nil {
			g.mu.Lock()
			r := g.replies[key]
			g.mu.Unlock()
			if r != nil && r.ack {
				ack([]any{r.value}, nil)
			}
		}
	})
	return ch
}

func (g *goServer) sseReply(t testing.TB, nsp, ev string, value any, ack bool) {
	g.sseChan(nsp, ev)
	g.mu.Lock()
	g.replies[nsp+" "+ev] = &sseReplyCfg{value: value, ack: ack}
	g.mu.Unlock()
}

func (g *goServer) nextSSE(t testing.TB, nsp, ev string) ([]any, bool) {
	select {
	case args := <-g.sseChan(nsp, ev):
		return args, true
	case <-time.After(eventWait):
		return nil, false
	}
}

func (g *goServer) socket(nsp, id string) *socket.Socket {
	s, _ := g.io.Of(nsp, nil).Sockets().Load(socket.SocketId(id))
	return s
}

func (g *goServer) local(t testing.TB, nsp, id string) (details, bool) {
	s := g.socket(nsp, id)
	if s == nil {
		return details{}, false
	}
	d := goDetails(s.Id(), s.Rooms().Keys(), s.Data(), s.Handshake())
	d.recovered = s.Recovered()
	return d, true
}

func (g *goServer) socketJoin(t testing.TB, nsp, id string, rs ...string) {
	s := g.socket(nsp, id)
	if s == nil {
		t.Fatalf("%s: no local socket %s", g.label, id)
	}
	s.Join(rooms(rs)...)
}

func (g *goServer) socketSetData(t testing.TB, nsp, id string, data any) {
	s := g.socket(nsp, id)
	if s == nil {
		t.Fatalf("%s: no local socket %s", g.label, id)
	}
	s.SetData(data)
}

// ----- Node server -----

func (n *nodeServer) name() string { return n.label }
func (n *nodeServer) lang() string { return "node" }
func (n *nodeServer) url() string  { return n.baseURL }

func (n *nodeServer) body(tg target, extra map[string]any) map[string]any {
	b := map[string]any{"nsp": tg.namespace(), "to": nonNil(tg.to), "except": nonNil(tg.except)}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func (n *nodeServer) emit(t testing.TB, tg target, ev string, args ...any) {
	n.ctl(t, "emit", n.body(tg, map[string]any{"event": ev, "args": tag(canon(args))}), nil)
}

type nodeAck struct {
	Err       *string `json:"err"`
	Responses any     `json:"responses"`
	Response  any     `json:"response"`
	Found     *bool   `json:"found"`
}

func (a nodeAck) result() ackResult {
	r := ackResult{}
	if a.Err != nil {
		r.err = *a.Err
	}
	if l, ok := untag(a.Responses).([]any); ok {
		r.responses = l
	} else if a.Response != nil {
		r.responses = []any{untag(a.Response)}
	} else {
		r.responses = []any{}
	}
	return r
}

func (n *nodeServer) emitAck(t testing.TB, tg target, timeout time.Duration, ev string, args ...any) ackResult {
	var out nodeAck
	n.ctl(t, "emit-ack", n.body(tg, map[string]any{"event": ev, "args": tag(canon(args)), "timeout": timeout.Milliseconds()}), &out)
	return out.result()
}

func (n *nodeServer) join(t testing.TB, tg target, rs ...string) {
	n.ctl(t, "join", n.body(tg, map[string]any{"rooms": rs}), nil)
}

func (n *nodeServer) leave(t testing.TB, tg target, rs ...string) {
	n.ctl(t, "leave", n.body(tg, map[string]any{"rooms": rs}), nil)
}

func (n *nodeServer) disconnect(t testing.TB, tg target, close bool) {
	n.ctl(t, "disconnect", n.body(tg, map[string]any{"close": close}), nil)
}

type nodeDetails struct {
	ID        string         `json:"id"`
	Handshake map[string]any `json:"handshake"`
	Rooms     []string       `json:"rooms"`
	Data      any            `json:"data"`
	Recovered bool           `json:"recovered"`
}

func (d nodeDetails) details() details {
	out := details{id: d.ID, rooms: slices.Sorted(slices.Values(d.Rooms)), data: untag(d.Data), recovered: d.Recovered}
	if h, ok := untag(d.Handshake).(map[string]any); ok {
		out.handshake = h
	}
	return out
}

func (n *nodeServer) fetch(t testing.TB, tg target) ([]details, string) {
	var out struct {
		Sockets []nodeDetails `json:"sockets"`
		Err     string        `json:"err"`
	}
	n.ctl(t, "fetch", n.body(tg, nil), &out)
	list := make([]details, len(out.Sockets))
	for i, d := range out.Sockets {
		list[i] = d.details()
	}
	return list, out.Err
}

func (n *nodeServer) count(t testing.TB, nsp string) int {
	var out struct{ Count int }
	n.ctl(t, "count", map[string]any{"nsp": nsp}, &out)
	return out.Count
}

func (n *nodeServer) remoteOp(t testing.TB, body map[string]any) nodeAck {
	t.Helper()
	var out nodeAck
	n.ctl(t, "remote", body, &out)
	if out.Found == nil || !*out.Found {
		t.Fatalf("%s: fetchSockets(in %v) found nothing", n.label, body["id"])
	}
	return out
}

func (n *nodeServer) remoteEmit(t testing.TB, nsp, id, ev string, args ...any) {
	n.remoteOp(t, map[string]any{"nsp": nsp, "id": id, "op": "emit", "event": ev, "args": tag(canon(args))})
}

func (n *nodeServer) remoteEmitAck(t testing.TB, nsp, id string, timeout time.Duration, ev string, args ...any) ackResult {
	return n.remoteOp(t, map[string]any{"nsp": nsp, "id": id, "op": "emit-ack", "event": ev, "args": tag(canon(args)),
		"timeout": timeout.Milliseconds()}).result()
}

func (n *nodeServer) remoteJoin(t testing.TB, nsp, id, room string) {
	n.remoteOp(t, map[string]any{"nsp": nsp, "id": id, "op": "join", "rooms": []string{room}})
}

func (n *nodeServer) remoteLeave(t testing.TB, nsp, id, room string) {
	n.remoteOp(t, map[string]any{"nsp": nsp, "id": id, "op": "leave", "rooms": []string{room}})
}

func (n *nodeServer) remoteDisconnect(t testing.TB, nsp, id string, close bool) {
	n.remoteOp(t, map[string]any{"nsp": nsp, "id": id, "op": "disconnect", "close": close})
}

func (n *nodeServer) sse(t testing.TB, nsp, ev string, args ...any) {
	n.ctl(t, "sse", map[string]any{"nsp": nsp, "event": ev, "args": tag(canon(args))}, nil)
}

func (n *nodeServer) sseAck(t testing.TB, nsp, ev string, args ...any) ackResult {
	var out nodeAck
	n.ctl(t, "sse-ack", map[string]any{"nsp": nsp, "event": ev, "args": tag(canon(args))}, &out)
	return out.result()
}

func (n *nodeServer) sseReply(t testing.TB, nsp, ev string, value any, ack bool) {
	body := map[string]any{"nsp": nsp, "event": ev}
	if ack {
		body["value"] = tag(canon(value))
	} else {
		body["noAck"] = true
	}
	n.ctl(t, "sse-reply", body, nil)
}

func (n *nodeServer) nextSSE(t testing.TB, nsp, ev string) ([]any, bool) {
	var out struct {
		Timeout bool `json:"timeout"`
		Args    any  `json:"args"`
	}
	n.ctl(t, "next-event", map[string]any{"nsp": nsp, "event": ev, "timeout": eventWait.Milliseconds()}, &out)
	if out.Timeout {
		return nil, false
	}
	args, _ := untag(out.Args).([]any)
	return args, true
}

func (n *nodeServer) local(t testing.TB, nsp, id string) (details, bool) {
	var out struct {
		Sockets []nodeDetails `json:"sockets"`
	}
	n.ctl(t, "sockets", map[string]any{"nsp": nsp}, &out)
	for _, d := range out.Sockets {
		if d.ID == id {
			return d.details(), true
		}
	}
	return details{}, false
}

func (n *nodeServer) socketJoin(t testing.TB, nsp, id string, rs ...string) {
	var out struct{ Found bool }
	n.ctl(t, "socket", map[string]any{"nsp": nsp, "id": id, "rooms": rs}, &out)
	if !out.Found {
		t.Fatalf("%s: no local socket %s", n.label, id)
	}
}

func (n *nodeServer) socketSetData(t testing.TB, nsp, id string, data any) {
	var out struct{ Found bool }
	n.ctl(t, "socket", map[string]any{"nsp": nsp, "id": id, "data": tag(canon(data))}, &out)
	if !out.Found {
		t.Fatalf("%s: no local socket %s", n.label, id)
	}
}

// ----- helpers -----

func rooms(s []string) []socket.Room {
	out := make([]socket.Room, len(s))
	for i, r := range s {
		out[i] = socket.Room(r)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func firstString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []string:
		if len(x) > 0 {
			return x[0]
		}
	case []any:
		if len(x) > 0 {
			s, _ := x[0].(string)
			return s
		}
	}
	return ""
}
