package redisstreams

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/wire"
)

// request is a fetchSockets or serverSideEmit-with-ack waiting for the other servers. Responses are counted per
// responding server, so a duplicated response cannot complete it early.
type request struct {
	id         string
	typ        wire.MessageType
	wait       awaited // whom it waits for (see layout)
	responders map[string]struct{}
	sockets    []socket.SocketDetails
	responses  []any
	done       chan struct{} // closed on completion, timeout or close
	onDone     func(*request)
	finished   bool
	err        error
	timer      *time.Timer
	start      time.Time // for Options.Observer: when the request was registered (zero without an observer)
}

// ackRequest is a broadcast with acknowledgements: every server reports its client count, then the clients ack.
type ackRequest struct {
	clientCount func(uint64)
	ack         socket.Ack
	counted     map[string]struct{}
	wait        awaited         // the servers whose client count is awaited, when the layout knows them
	obs         *ackObservation // for Options.Observer (nil without one)
}

// FetchSockets implements socket.Adapter. The returned function blocks until every other server answered or the
// timeout (the operator's, else Options.RequestsTimeout) passed; on timeout it returns what it has with an error
// wrapping ErrTimeout.
func (n *nspAdapter) FetchSockets(opts *socket.BroadcastOptions) func(func([]socket.SocketDetails, error)) {
	return func(cb func([]socket.SocketDetails, error)) {
		var local []socket.SocketDetails
		n.Adapter.FetchSockets(opts)(func(s []socket.SocketDetails, _ error) { local = s })
		flags := flagsOf(opts)
		if flags.Local {
			cb(local, nil)
			return
		}
		timeout := n.opts().RequestsTimeout
		if flags.Timeout != nil && *flags.Timeout > 0 {
			timeout = *flags.Timeout
		}
		start := time.Now()
		count, err := n.serverCount()
		if err != nil {
			cb(local, fmt.Errorf("redisstreams: fetchSockets: %w", err))
			return
		}
		expected := int(count) - 1
		if expected <= 0 {
			cb(local, nil)
			return
		}
		id := randomID()
		req := n.addRequest(id, wire.FetchSockets, expected, max(timeout-time.Since(start), time.Millisecond), nil)
		req.sockets = local
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = n.send(ctx, "", &wire.Message{Type: wire.FetchSockets, UID: n.uid, Nsp: n.name,
			RequestID: id, Opts: wireOptions(opts)}, true)
		cancel()
		if err != nil {
			n.finish(id, fmt.Errorf("redisstreams: fetchSockets: publish: %w", err))
		}
		<-req.done
		n.reqMu.Lock()
		sockets, err := req.sockets, req.err
		n.reqMu.Unlock()
		cb(sockets, err)
	}
}

// ServerSideEmit implements socket.Adapter. With an acknowledgement (a socket.Ack as last argument) the ack gets
// one response per other server, or on timeout (Options.RequestsTimeout) the responses so far with an error
// wrapping ErrTimeout.
func (n *nspAdapter) ServerSideEmit(args []any) error {
	if len(args) == 0 {
		return fmt.Errorf("redisstreams: serverSideEmit without an event name")
	}
	ack, withAck := args[len(args)-1].(socket.Ack)
	msg := &wire.Message{Type: wire.ServerSideEmit, UID: n.uid, Nsp: n.name, Args: args}
	if !withAck {
		return n.send(context.Background(), "", msg, false)
	}
	msg.Args = args[:len(args)-1]
	count, err := n.serverCount()
	if err != nil {
		err = fmt.Errorf("redisstreams: serverSideEmit: %w", err)
		ack([]any{}, err)
		return err
	}
	expected := int(count) - 1
	if expected <= 0 {
		ack([]any{}, nil)
		return nil
	}
	id := randomID()
	msg.RequestID = id
	n.addRequest(id, wire.ServerSideEmit, expected, n.opts().RequestsTimeout, func(r *request) {
		responses := r.responses
		if responses == nil {
			responses = []any{}
		}
		ack(responses, r.err)
	})
	ctx, cancel := n.requestCtx()
	defer cancel()
	if err := n.send(ctx, "", msg, true); err != nil {
		err = fmt.Errorf("redisstreams: serverSideEmit: publish: %w", err)
		n.finish(id, err)
		return err
	}
	return nil
}

// addRequest registers a pending request that expects this many responses (the layout may know better, see
// awaited). onDone (if any) runs once it ends, on a callback worker; at once, on this goroutine, if it waits for
// nobody (the streams-only layout knows no server alive).
func (n *nspAdapter) addRequest(id string, typ wire.MessageType, expected int, timeout time.Duration, onDone func(*request)) *request {
	req := &request{id: id, typ: typ, responders: map[string]struct{}{}, done: make(chan struct{}), onDone: onDone}
	if n.opts().Observer != nil {
		req.start = time.Now()
	}
	n.reqMu.Lock()
	req.wait = n.parent.layout.awaited(n, expected)
	n.requests[id] = req
	req.timer = time.AfterFunc(timeout, func() {
		n.reqMu.Lock()
		got := len(req.responders)
		n.reqMu.Unlock()
		n.parent.stats.timeouts.Add(1)
		n.finish(id, &TimeoutError{Got: got, Want: req.wait.count})
	})
	now := req.wait.none() && n.finishLocked(id, nil) != nil
	n.reqMu.Unlock()
	if now && onDone != nil {
		onDone(req)
	}
	return req
}

// finish ends a request (err nil: complete).
func (n *nspAdapter) finish(id string, err error) {
	n.reqMu.Lock()
	req := n.finishLocked(id, err)
	n.reqMu.Unlock()
	n.finished(req)
}

// finishLocked ends a request, and returns it unless it had ended already; the caller then calls finished, once it
// has released reqMu.
func (n *nspAdapter) finishLocked(id string, err error) *request {
	req, ok := n.requests[id]
	if !ok || req.finished {
		return nil
	}
	delete(n.requests, id)
	req.finished = true
	req.err = err
	req.timer.Stop()
	close(req.done)
	if o := n.opts().Observer; o != nil {
		o.Request(requestKind(req), time.Since(req.start), err)
	}
	return req
}

// finished hands the onDone of a request finishLocked ended (if any) to the callback workers: it runs the
// application's ack, which must not run on the goroutine that reads the responses.
func (n *nspAdapter) finished(req *request) {
	if req == nil || req.onDone == nil {
		return
	}
	n.parent.callbacks.submit(req.id, func() { req.onDone(req) })
}

// failPending ends every pending request of a namespace that leaves the cluster. Their callbacks run here, on the
// caller's goroutine: Close is about to refuse new work.
func (n *nspAdapter) failPending() {
	var ended []*request
	n.reqMu.Lock()
	for id := range n.requests {
		if req := n.finishLocked(id, ErrClosed); req != nil && req.onDone != nil {
			ended = append(ended, req)
		}
	}
	clear(n.ackRequests)
	n.reqMu.Unlock()
	for _, req := range ended {
		req.onDone(req)
	}
}

// onResponse records a response to one of this server's requests, on the goroutine that read it: never queued,
// so that a callback that waits for it cannot hold it up.
func (n *nspAdapter) onResponse(msg *wire.Message) {
	n.reqMu.Lock()
	req := n.recordResponse(msg)
	n.reqMu.Unlock()
	n.finished(req)
}

// recordResponse adds a response to its request, and returns the request if that completed it. reqMu is held.
func (n *nspAdapter) recordResponse(msg *wire.Message) *request {
	req, ok := n.requests[msg.RequestID]
	if !ok || req.finished {
		return nil
	}
	if _, dup := req.responders[msg.UID]; dup {
		return nil
	}
	switch {
	case msg.Type == wire.FetchSocketsResponse && req.typ == wire.FetchSockets:
		for _, s := range msg.Sockets {
			req.sockets = append(req.sockets, newRemoteDetails(s))
		}
	case msg.Type == wire.ServerSideEmitResponse && req.typ == wire.ServerSideEmit:
		req.responses = append(req.responses, msg.Response)
	default:
		return nil
	}
	req.responders[msg.UID] = struct{}{}
	if req.wait.answered(msg.UID, len(req.responders)) {
		return n.finishLocked(msg.RequestID, nil)
	}
	return nil
}

// onFetchSockets answers another server's fetchSockets with the matching local sockets.
func (n *nspAdapter) onFetchSockets(msg *wire.Message) {
	var local []socket.SocketDetails
	n.Adapter.FetchSockets(localOptions(msg.Opts))(func(s []socket.SocketDetails, _ error) { local = s })
	resp := &wire.Message{Type: wire.FetchSocketsResponse, UID: n.uid, Nsp: n.name, RequestID: msg.RequestID,
		Sockets: make([]wire.SocketDetails, len(local))}
	for i, s := range local {
		resp.Sockets[i] = wireDetails(s)
	}
	n.respond(msg, resp)
}

// respond queues the response to another server's request without waiting for Redis, so that it can be called
// from any goroutine (an application's ack) and holds no worker; a write that fails later is logged and counted
// like any other (Adapter.onWrite).
func (n *nspAdapter) respond(req, resp *wire.Message) {
	if err := n.send(context.Background(), req.UID, resp, false); err != nil {
		n.parent.logLimited(&n.parent.replyLog, slog.LevelWarn, "redisstreams: response not sent", "nsp", n.name,
			"type", resp.Type, "request", req.RequestID, "err", err)
	}
}

// onServerSideEmit runs the namespace's handlers for another server's serverSideEmit. With a request ID the
// handlers get a socket.Ack as last argument; its first call sends the first argument back.
func (n *nspAdapter) onServerSideEmit(msg *wire.Message) {
	args := msg.Args
	if msg.RequestID != "" {
		var once sync.Once
		ack := socket.Ack(func(res []any, _ error) {
			once.Do(func() {
				var v any
				if len(res) > 0 {
					v = res[0]
				}
				n.respond(msg, &wire.Message{Type: wire.ServerSideEmitResponse, UID: n.uid, Nsp: n.name,
					RequestID: msg.RequestID, Response: v})
			})
		})
		args = append(args[:len(args):len(args)], ack)
	}
	n.Nsp().OnServerSideEmit(args)
}

// BroadcastWithAck implements socket.Adapter. The packet is copied before local delivery: the server's broadcast
// operator reads packet.Id from its timeout goroutine, and writing it here would race (servers/socket v3.0.6).
//
// The operator waits for one clientCount call per server of ServerCount(), which it asks right after this call.
// In streams-only mode, a server that was alive when the broadcast was sent and then closes or stops heartbeating
// gets clientCount(0) called on its behalf, so that the operator still completes (without that server's acks).
// A server lost between this call and the operator's ServerCount() (microseconds) is counted twice, and the
// operator then ends at its timeout.
func (n *nspAdapter) BroadcastWithAck(packet *parser.Packet, opts *socket.BroadcastOptions, clientCount func(uint64), ack socket.Ack) {
	flags := flagsOf(opts)
	if flags.ExpectSingleResponse {
		// The operator takes the first element of its responses as the whole answer, but the server flattens each
		// client's answer into the responses: keep it in one piece, as Socket.EmitWithAck returns it.
		ack = singleResponse(ack)
	}
	timeout := time.Duration(0)
	if flags.Timeout != nil {
		timeout = *flags.Timeout
	}
	if !flags.Local {
		readBinaryArgs(packet)
		id := randomID()
		ar := &ackRequest{clientCount: clientCount, ack: ack, counted: map[string]struct{}{}}
		if n.opts().Observer != nil {
			ar.obs = &ackObservation{start: time.Now(), timeout: timeout}
		}
		n.reqMu.Lock()
		ar.wait = n.parent.layout.awaited(n, 0)
		n.ackRequests[id] = ar
		n.reqMu.Unlock()
		// Drop the request once the operator has stopped listening (Node does the same).
		time.AfterFunc(timeout+time.Second, func() {
			n.reqMu.Lock()
			delete(n.ackRequests, id)
			n.observeAckRequest(ar)
			n.reqMu.Unlock()
		})
		msg := &wire.Message{Type: wire.Broadcast, UID: n.uid, Nsp: n.name, RequestID: id, Packet: wirePacket(packet),
			Opts: wireOptions(opts)}
		_ = n.send(context.Background(), "", msg, false)
	}
	n.localBroadcastWithAck(packet, opts, timeout, clientCount, ack)
}

// localBroadcastWithAck delivers to local clients on a copy of the packet, and removes the clients' pending acks
// once the operator's timeout has passed.
func (n *nspAdapter) localBroadcastWithAck(packet *parser.Packet, opts *socket.BroadcastOptions, timeout time.Duration, clientCount func(uint64), ack socket.Ack) {
	p := *packet
	n.Adapter.BroadcastWithAck(&p, opts, clientCount, ack)
	if p.Id == nil {
		return
	}
	id := *p.Id
	time.AfterFunc(timeout, func() {
		n.Nsp().Sockets().Range(func(_ socket.SocketId, s *socket.Socket) bool {
			s.Acks().Delete(id)
			return true
		})
	})
}

// onBroadcastWithAck serves another server's broadcast with acknowledgements: the local client count first, then
// one BROADCAST_ACK per client answer.
func (n *nspAdapter) onBroadcastWithAck(msg *wire.Message) {
	opts := localOptions(msg.Opts)
	timeout := time.Duration(0)
	if opts.Flags.Timeout != nil {
		timeout = *opts.Flags.Timeout
	}
	reply := func(m *wire.Message) {
		_ = n.send(context.Background(), msg.UID, m, false)
	}
	n.localBroadcastWithAck(localPacket(msg.Packet), opts, timeout, func(count uint64) {
		reply(&wire.Message{Type: wire.BroadcastClientCount, UID: n.uid, Nsp: n.name, RequestID: msg.RequestID, ClientCount: count})
	}, func(args []any, _ error) {
		var v any
		if len(args) > 0 {
			v = args[0]
		}
		reply(&wire.Message{Type: wire.BroadcastAck, UID: n.uid, Nsp: n.name, RequestID: msg.RequestID, Response: v})
	})
}

func (n *nspAdapter) onAckResponse(msg *wire.Message) {
	n.reqMu.Lock()
	req, ok := n.ackRequests[msg.RequestID]
	if ok && msg.Type == wire.BroadcastClientCount {
		if _, dup := req.counted[msg.UID]; dup {
			ok = false
		} else {
			req.counted[msg.UID] = struct{}{}
			req.wait.answered(msg.UID, len(req.counted))
		}
	}
	if ok && req.obs != nil {
		req.obs.record(msg)
	}
	n.reqMu.Unlock()
	if !ok {
		return
	}
	// The operator's callbacks may run the application's ack callback: never on the goroutine that reads. They go
	// to one worker per request, in the order read.
	if msg.Type == wire.BroadcastClientCount {
		n.parent.callbacks.submit(msg.RequestID, func() { req.clientCount(msg.ClientCount) })
	} else {
		n.parent.callbacks.submit(msg.RequestID, func() { req.ack([]any{msg.Response}, nil) })
	}
}

// serverLeft stops waiting for a server the layout saw leave (it closed, or went silent). A request whose every
// other server has answered completes, and a broadcast with acks gets a client count of 0 on the server's behalf,
// so that the server's broadcast operator (which counts one client count per server) completes. The counts go to
// the callback workers like the ones read: they may run the application's ack, which must not hold up the
// goroutine that reads the stream or writes the heartbeats.
func (n *nspAdapter) serverLeft(uid string) {
	var ended []*request
	type count struct {
		id string
		cb func(uint64)
	}
	var counts []count
	n.reqMu.Lock()
	for id, req := range n.requests {
		if req.wait.left(uid) && req.wait.none() {
			ended = append(ended, n.finishLocked(id, nil))
		}
	}
	for id, ar := range n.ackRequests {
		if ar.wait.left(uid) {
			ar.counted[uid] = struct{}{} // a late answer must not count twice
			counts = append(counts, count{id, ar.clientCount})
		}
	}
	n.reqMu.Unlock()
	for _, req := range ended {
		n.finished(req)
	}
	for _, c := range counts {
		n.parent.callbacks.submit(c.id, func() { c.cb(0) })
	}
}

func singleResponse(ack socket.Ack) socket.Ack {
	return func(args []any, err error) { ack([]any{args}, err) }
}

// remoteDetails is a socket of another server, as fetchSockets returns it.
type remoteDetails struct {
	id        socket.SocketId
	handshake *socket.Handshake
	rooms     *types.Set[socket.Room]
	data      any
}

func (r *remoteDetails) Id() socket.SocketId            { return r.id }
func (r *remoteDetails) Handshake() *socket.Handshake   { return r.handshake }
func (r *remoteDetails) Rooms() *types.Set[socket.Room] { return r.rooms }
func (r *remoteDetails) Data() any                      { return r.data }

func newRemoteDetails(s wire.SocketDetails) *remoteDetails {
	return &remoteDetails{
		id:        socket.SocketId(s.ID),
		handshake: handshakeFromWire(s.Handshake),
		rooms:     types.NewSet(toRooms(s.Rooms)...),
		data:      s.Data,
	}
}

func wireDetails(s socket.SocketDetails) wire.SocketDetails {
	var rooms []string
	if r := s.Rooms(); r != nil {
		for _, room := range r.Keys() {
			rooms = append(rooms, string(room))
		}
	}
	return wire.SocketDetails{ID: string(s.Id()), Handshake: handshakeToWire(s.Handshake()), Rooms: rooms, Data: s.Data()}
}

// handshakeToWire gives the handshake Node's shape: header and query values are strings unless repeated.
func handshakeToWire(h *socket.Handshake) map[string]any {
	if h == nil {
		return map[string]any{}
	}
	auth := any(h.Auth)
	if h.Auth == nil {
		auth = map[string]any{}
	}
	headers := flattenValues(h.Headers)
	for k, v := range headers { // Node's header names are lower case
		if lk := strings.ToLower(k); lk != k {
			delete(headers, k)
			headers[lk] = v
		}
	}
	return map[string]any{
		"headers": headers,
		"time":    h.Time,
		"address": h.Address,
		"xdomain": h.Xdomain,
		"secure":  h.Secure,
		"issued":  h.Issued,
		"url":     h.Url,
		"query":   flattenValues(h.Query),
		"auth":    auth,
	}
}

func flattenValues[M ~map[string]any](m M) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if s, ok := v.([]string); ok {
			if len(s) == 1 {
				out[k] = s[0]
				continue
			}
			list := make([]any, len(s))
			for i, e := range s {
				list[i] = e
			}
			out[k] = list
			continue
		}
		out[k] = v
	}
	return out
}

func handshakeFromWire(m map[string]any) *socket.Handshake {
	h := &socket.Handshake{}
	if m == nil {
		return h
	}
	if v, ok := m["headers"].(map[string]any); ok {
		h.Headers = make(map[string]any, len(v))
		for k, val := range v { // as Go's servers spell them locally
			h.Headers[http.CanonicalHeaderKey(k)] = val
		}
	}
	h.Time, _ = m["time"].(string)
	h.Address, _ = m["address"].(string)
	h.Xdomain, _ = m["xdomain"].(bool)
	h.Secure, _ = m["secure"].(bool)
	switch v := m["issued"].(type) {
	case int64:
		h.Issued = v
	case float64:
		h.Issued = int64(v)
	}
	h.Url, _ = m["url"].(string)
	if v, ok := m["query"].(map[string]any); ok {
		h.Query = v
	}
	if v, ok := m["auth"].(map[string]any); ok {
		h.Auth = v
	}
	return h
}
