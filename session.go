package redisstreams

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// restorePageSize is how many stream entries one XRANGE of a restore reads.
const restorePageSize = 1000

// pendingLifetime bounds how long a restored socket's record is kept (the socket normally connects within
// milliseconds of its restore; the record then only filters duplicates until the reader has passed the scan).
const pendingLifetime = 30 * time.Second

// PersistSession implements socket.Adapter; the server calls it when a socket disconnects for a reason its client
// may come back from. The write is synchronous (bounded by RequestsTimeout) so that a reconnection to another
// server finds it.
//
// SessionsOnDisconnect: SET <prefix><pid> base64(msgpack{sid,pid,rooms,data}) PX <window>, byte-compatible with
// Node. SessionsLive: the same with the socket's owner in front, fenced (see livesession.go): a socket whose
// session was restored elsewhere meanwhile writes nothing.
func (n *nspAdapter) PersistSession(session *socket.SessionToPersist) {
	if session == nil {
		return
	}
	rooms := []string{}
	if session.Rooms != nil {
		rooms = roomStrings(session.Rooms.Keys())
	}
	stored := wire.Session{Sid: string(session.Sid), Pid: string(session.Pid), Rooms: rooms, Data: session.Data}
	var ls *liveSession
	if n.liveMode() {
		if ls = n.takeLive(session.Sid); ls == nil {
			if !n.parent.pidMissing.seen.Load() {
				// Every socket is registered when it connects, so its session was finished already: this is a
				// second close of the socket (servers/socket v3.0.6 runs a transport close that overlaps a
				// server-side disconnect), which would write back, without rooms, the session of a socket that
				// left for good.
				return
			}
			ls = n.newLiveSession(session.Sid, string(session.Pid), false) // never registered (see touch)
		}
		if ls.superseded {
			return // restored elsewhere: the session is no longer this socket's
		}
		stored.Owner = ls.owner
	}
	value, err := wire.EncodeSession(stored)
	if err != nil {
		n.parent.stats.sessionErrors.Add(1)
		n.parent.log.Error("redisstreams: cannot encode session", "nsp", n.name, "sid", session.Sid, "err", err)
		return
	}
	if ls != nil {
		n.finishSession(ls, value, n.sessionTTL(), true)
		return
	}
	ctx, cancel := n.requestCtx()
	defer cancel()
	key := n.opts().SessionKeyPrefix + string(session.Pid)
	if err := n.parent.client.Set(ctx, key, value, n.sessionTTL()); err != nil {
		n.parent.stats.sessionErrors.Add(1)
		n.parent.logLimited(&n.parent.sessionLog, slog.LevelError, "redisstreams: cannot persist session", "nsp", n.name,
			"sid", session.Sid, "err", err)
	}
}

// RestoreSession implements socket.Adapter. Any reason not to restore (unknown, expired or already restored
// session, trimmed or malformed offset) gives (nil, nil): the client gets a fresh session and nothing else is
// affected.
func (n *nspAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	log := n.parent.log.With("nsp", n.name, "offset", offset)
	if !wire.IsStreamID(offset) {
		n.parent.stats.restoreNoOffset.Add(1)
		log.Debug("redisstreams: not restoring: malformed offset")
		return nil, nil
	}
	ctx, cancel := n.requestCtx()
	defer cancel()
	// The offset first, so that a session whose offset is gone is not consumed (Node deletes it anyway).
	found, err := n.parent.client.XRange(ctx, n.stream, offset, offset, 1)
	if err != nil {
		return nil, n.restoreError(fmt.Errorf("check offset: %w", err))
	}
	if len(found) == 0 {
		n.parent.stats.restoreNoOffset.Add(1)
		log.Debug("redisstreams: not restoring: offset no longer in the stream")
		return nil, nil
	}
	key := n.opts().SessionKeyPrefix + string(pid)
	var ls *liveSession
	var raw string
	var ok bool
	if n.liveMode() {
		ls = n.newLiveSession("", string(pid), true)
		raw, ok, err = n.parent.client.ClaimSession(ctx, key, ls.prefix, n.liveTTL())
	} else {
		raw, ok, err = n.parent.client.GetDel(ctx, key)
	}
	if err != nil {
		return nil, n.restoreError(fmt.Errorf("read session: %w", err))
	}
	if !ok {
		n.parent.stats.restoreNoSession.Add(1)
		log.Debug("redisstreams: not restoring: unknown, expired or already restored session")
		return nil, nil
	}
	stored, err := wire.DecodeSession(raw)
	if err != nil {
		n.parent.stats.invalid.Add(1)
		log.Warn("redisstreams: not restoring: malformed session", "err", err)
		return nil, nil
	}
	stored.Owner = ""
	session := &socket.Session{
		SessionToPersist: &socket.SessionToPersist{Sid: socket.SocketId(stored.Sid), Pid: socket.PrivateSessionId(stored.Pid),
			Rooms: roomSet(stored.Rooms), Data: stored.Data},
		MissedPackets: []any{},
	}
	if ls != nil {
		ls.sid, ls.pid, ls.key, ls.initial = session.Sid, stored.Pid, n.opts().SessionKeyPrefix+stored.Pid, stored
		n.adopt(ls)
	}

	// Broadcasts processed from now on, until the socket can be reached, are held for it (see pendingRestore).
	p := n.addPending(session)
	end, err := n.parent.client.LastID(ctx, n.stream)
	if err == nil {
		session.MissedPackets, err = n.missedPackets(ctx, session, offset, end)
	}
	if err != nil {
		n.removePending(p)
		if ls != nil {
			n.giveBack(ls)
		}
		return nil, n.restoreError(err)
	}
	n.setFloor(session.Sid, end)
	p.setEnd(end)
	n.parent.stats.restored.Add(1)
	return session, nil
}

func (n *nspAdapter) restoreError(err error) error {
	n.parent.stats.sessionErrors.Add(1)
	err = fmt.Errorf("redisstreams: restore session: %w", err)
	n.parent.logLimited(&n.parent.sessionLog, slog.LevelWarn, "redisstreams: session not restored", "nsp", n.name, "err", err)
	return err
}

// missedPackets reads the stream after offset up to end (inclusive), in pages, and keeps this namespace's
// broadcasts the session would have received, each with its offset appended.
func (n *nspAdapter) missedPackets(ctx context.Context, session *socket.Session, offset, end string) ([]any, error) {
	rooms := roomStrings(session.Rooms.Keys())
	filter := newRoomFilter(rooms)
	missed := []any{}
	cursor := offset
	seqs := map[string]uint64{} // the repeats of retried writes are replayed once
	for wire.CompareIDs(cursor, end) < 0 {
		page, err := n.parent.client.XRange(ctx, n.stream, "("+cursor, end, restorePageSize)
		if err != nil {
			return nil, fmt.Errorf("read missed packets: %w", err)
		}
		if len(page) == 0 {
			break // trimmed behind us: nothing more up to end
		}
		for i := range page {
			if w, seq, ok := wire.ParseSeq(page[i].Fields[wire.SeqField]); ok {
				if seq <= seqs[w] {
					continue
				}
				seqs[w] = seq
			}
			if !filter.mayMatch(page[i].Fields["data"]) {
				continue
			}
			if data, ok := n.replayable(&page[i], rooms); ok {
				missed = append(missed, data)
			}
		}
		cursor = page[len(page)-1].ID
	}
	return missed, nil
}

// replayable decodes an entry and tells whether a socket in rooms should get it on recovery.
func (n *nspAdapter) replayable(e *rdb.Entry, rooms []string) ([]any, bool) {
	if e.Fields["nsp"] != n.name || e.Fields["type"] != "3" {
		return nil, false
	}
	msg, err := wire.DecodeStreamEntry(e.ID, e.Fields)
	if err == nil {
		err = wire.ValidateBroadcastPacket(msg.Packet, msg.Nsp)
	}
	if err != nil {
		n.parent.badEntry(n.stream, e.ID, err)
		return nil, false
	}
	if !recoverable(msg.Packet.Type, msg.Packet.ID, msg.Opts.Flags.Volatile) || msg.RequestID != "" ||
		!matchesRooms(rooms, msg.Opts.Rooms, msg.Opts.Except) {
		return nil, false
	}
	data := append(append(make([]any, 0, len(msg.Packet.Data)+1), wire.ForClients(msg.Packet.Data).([]any)...), e.ID)
	return data, true
}

// roomFilter rejects, from its JSON text alone, stream entries that cannot concern a session: a broadcast to
// rooms that names none of the session's rooms. Anything it is not sure about (msgpack data, rooms it cannot
// spell exactly as both Node and Go encode them) goes on to a full decode.
type roomFilter struct {
	quoted []string // `"room"` for each session room; nil: filter disabled
}

func newRoomFilter(rooms []string) roomFilter {
	quoted := make([]string, 0, len(rooms))
	for _, r := range rooms {
		q, err := wire.EncodeJSON(r)
		if err != nil || strings.ContainsRune(string(q), '\\') {
			return roomFilter{} // escaped characters: encoders may differ
		}
		quoted = append(quoted, string(q))
	}
	return roomFilter{quoted: quoted}
}

// mayMatch cannot miss: a broadcast the session gets has either no rooms (its opts hold the text "rooms":[]) or
// one of the session's rooms (its quoted name is in the text). Where those appear does not matter, so user data
// that happens to contain them only costs a decode.
func (f roomFilter) mayMatch(data string) bool {
	if f.quoted == nil || !strings.HasPrefix(data, "{") || strings.Contains(data, `"rooms":[]`) {
		return true
	}
	for _, q := range f.quoted {
		if strings.Contains(data, q) {
			return true
		}
	}
	return false
}

// recoverable reports whether a packet carries an offset and is replayed: events without ack, not volatile.
func recoverable(packetType int, id *uint64, volatile bool) bool {
	return packetType == int(parser.EVENT) && id == nil && !volatile
}

// matchesRooms is Node's shouldIncludePacket: included when the broadcast has no rooms or shares one with the
// session, unless one of the session's rooms is excluded.
func matchesRooms(session, rooms, except []string) bool {
	included := len(rooms) == 0
	for _, r := range session {
		for _, x := range except {
			if r == x {
				return false
			}
		}
		if !included {
			for _, x := range rooms {
				if r == x {
					included = true
					break
				}
			}
		}
	}
	return included
}

// pendingRestore closes the gap Node leaves open (its W9): between the restore's scan and the moment the restored
// socket is connected and in its rooms, broadcasts reach nobody. From the start of the restore, every broadcast
// this server delivers that the session would receive is either held here (then flushed, in order, as soon as
// the socket can be reached) or, if the scan already covers it (offset <= end), kept from the socket, which gets
// it from the replay.
type pendingRestore struct {
	sid     socket.SocketId
	rooms   []string
	created time.Time

	mu        sync.Mutex
	end       string  // last entry covered by the scan; "" until known
	held      [][]any // packets with their offset appended
	heldIDs   []string
	connected bool // flushed: from now on the socket gets broadcasts directly
}

func (p *pendingRestore) setEnd(end string) {
	p.mu.Lock()
	p.end = end
	p.mu.Unlock()
}

type pendingSet struct {
	count atomic.Int32 // fast path: no restore in progress
	mu    sync.Mutex
	bySid map[socket.SocketId]*pendingRestore

	// The last entry of each recent restore's replay, by socket, kept pendingLifetime: a broadcast of an entry the
	// replay held, routed before the restore began (so not excluded) but delivered once the socket is connected (its
	// delivery was late), is not delivered to that socket again.
	floors     sync.Map // socket.SocketId -> replayFloor
	floorCount atomic.Int32
}

type replayFloor struct {
	end   string
	until time.Time
}

// setFloor records the end of a restored socket's replay, and forgets the floors of restores long past.
func (n *nspAdapter) setFloor(sid socket.SocketId, end string) {
	ps := &n.pending
	now := time.Now()
	ps.floors.Range(func(k, v any) bool {
		if now.After(v.(replayFloor).until) {
			if ps.floors.CompareAndDelete(k, v) {
				ps.floorCount.Add(-1)
			}
		}
		return true
	})
	if _, loaded := ps.floors.Swap(sid, replayFloor{end: end, until: now.Add(pendingLifetime)}); !loaded {
		ps.floorCount.Add(1)
	}
}

func (n *nspAdapter) dropFloor(sid socket.SocketId) {
	if n.pending.floorCount.Load() > 0 {
		if _, loaded := n.pending.floors.LoadAndDelete(sid); loaded {
			n.pending.floorCount.Add(-1)
		}
	}
}

// replayed reports whether the socket id got the stream entry offset in the replay of its restore.
func (n *nspAdapter) replayed(id socket.SocketId, offset string) bool {
	if offset == "" || n.pending.floorCount.Load() == 0 {
		return false
	}
	v, ok := n.pending.floors.Load(id)
	return ok && wire.CompareIDs(offset, v.(replayFloor).end) <= 0
}

func (n *nspAdapter) addPending(session *socket.Session) *pendingRestore {
	p := &pendingRestore{sid: session.Sid, rooms: roomStrings(session.Rooms.Keys()), created: time.Now()}
	ps := &n.pending
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.bySid == nil {
		ps.bySid = map[socket.SocketId]*pendingRestore{}
	}
	for sid, old := range ps.bySid { // drop records whose socket never came (client gone after the restore)
		if time.Since(old.created) > pendingLifetime {
			delete(ps.bySid, sid)
		}
	}
	ps.bySid[p.sid] = p
	ps.count.Store(int32(len(ps.bySid)))
	return p
}

func (n *nspAdapter) removePending(p *pendingRestore) {
	ps := &n.pending
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.bySid[p.sid] == p {
		delete(ps.bySid, p.sid)
		ps.count.Store(int32(len(ps.bySid)))
	}
}

// routePending is called with every broadcast that carries an offset, before local delivery. It returns the
// options to deliver with: the given ones, or a copy excluding restored sockets that must not get it directly.
// fromReader tells that offset comes from the stream reader, whose offsets only grow: once it passes a connected
// record's end, that record has nothing left to filter.
func (n *nspAdapter) routePending(offset string, fromReader bool, data []any, wopts *wire.Options, opts *socket.BroadcastOptions) *socket.BroadcastOptions {
	if n.pending.count.Load() == 0 {
		return opts
	}
	n.pending.mu.Lock()
	list := make([]*pendingRestore, 0, len(n.pending.bySid))
	for _, p := range n.pending.bySid {
		list = append(list, p)
	}
	n.pending.mu.Unlock()

	var exclude []socket.Room
	for _, p := range list {
		p.mu.Lock()
		done := fromReader && p.connected && p.end != "" && wire.CompareIDs(offset, p.end) > 0
		p.mu.Unlock()
		if done {
			n.removePending(p)
			continue
		}
		if !matchesRooms(p.rooms, wopts.Rooms, wopts.Except) {
			continue
		}
		p.mu.Lock()
		switch {
		case p.end != "" && wire.CompareIDs(offset, p.end) <= 0:
			exclude = append(exclude, socket.Room(p.sid)) // in the replay
		case !p.connected:
			p.held = append(p.held, data)
			p.heldIDs = append(p.heldIDs, offset)
			exclude = append(exclude, socket.Room(p.sid))
		}
		p.mu.Unlock()
	}
	if len(exclude) == 0 {
		return opts
	}
	out := &socket.BroadcastOptions{Rooms: opts.Rooms, Flags: opts.Flags, Except: types.NewSet(exclude...)}
	if opts.Except != nil {
		out.Except.Add(opts.Except.Keys()...)
	}
	return out
}

// AddAll implements socket.Adapter. A restored socket joins its own room once it is connected: that is when the
// broadcasts held for it are delivered. Every room change is one of the socket's session (SessionsLive).
func (n *nspAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	n.Adapter.AddAll(id, rooms)
	if n.liveMode() {
		n.touch(id, rooms)
	}
	if n.pending.count.Load() == 0 {
		return
	}
	n.pending.mu.Lock()
	p := n.pending.bySid[id]
	n.pending.mu.Unlock()
	if p == nil {
		return
	}
	s, ok := n.Nsp().Sockets().Load(id)
	if !ok || !s.Connected() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected {
		return
	}
	p.connected = true
	target := &socket.BroadcastOptions{Rooms: types.NewSet(socket.Room(id)), Except: types.NewSet[socket.Room]()}
	for i, data := range p.held {
		if p.end != "" && wire.CompareIDs(p.heldIDs[i], p.end) <= 0 {
			continue // in the replay
		}
		n.Adapter.Broadcast(&parser.Packet{Type: parser.EVENT, Data: data}, target)
	}
	p.held, p.heldIDs = nil, nil
}

// DelAll implements socket.Adapter: a socket that leaves no longer needs its restore record. The server calls it
// after PersistSession when the client may come back; otherwise the socket left for good, and so does its session
// (SessionsLive).
func (n *nspAdapter) DelAll(id socket.SocketId) {
	n.Adapter.DelAll(id)
	n.dropFloor(id)
	if n.liveMode() {
		if ls := n.takeLive(id); ls != nil {
			n.left(ls)
		}
	}
	if n.pending.count.Load() == 0 {
		return
	}
	n.pending.mu.Lock()
	p := n.pending.bySid[id]
	n.pending.mu.Unlock()
	if p != nil {
		n.removePending(p)
	}
}
