package redisstreams

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Sessions that outlive their server (Options.Sessions = SessionsLive).
//
// While a socket is connected, its session (sid, pid, rooms, data) is stored under "<SessionKeyPrefix><pid>" in
// Node's format with one more key in front, "owner": a random name of this incarnation of the socket, so that a
// stored value tells who wrote it without being decoded (wire.OwnerPrefix). Every write is a one-key script that
// applies only when the key is missing or holds the writer's own prefix (rdb.SessionWrite). A restore takes the
// session and leaves the restorer's prefix in its place (rdb.ClaimSession); from then on, the server that held the
// socket before cannot write the session back, whether it noticed the disconnection or not: its writes find
// another owner, and when a refresh finds that, it closes its socket (the client is elsewhere).
//
// Writes: when the socket connects (after a short delay, so that the rooms joined and the data set by the
// connection handler go with it), after room changes (a burst of them is one write), every SessionRefresh (with
// the data as it is then), and when it disconnects: the server's final view with the recovery window's TTL, or, when
// it left for good, a DEL. A socket that was itself restored leaves a marker instead of the DEL, for the time a
// stale owner could still write (see end). All of them are queued, coalesced per socket and sent by one goroutine
// per Adapter in pipelined batches (one round trip per cluster node).

// sessionCoalesce is how long the session writer waits after a socket asked for a write, so that a burst of room
// changes (or a connection handler's joins) goes out as one write.
const sessionCoalesce = 5 * time.Millisecond

// endedOwner owns the marker a restored socket leaves when it leaves for good: a prefix no incarnation has (they are
// hex), so that every other writer's write is refused until it expires.
const endedOwner = "-ended----------"

var endedMarker, _ = wire.OwnerPrefix(endedOwner)

// liveSession is the stored session of one socket incarnation.
type liveSession struct {
	n        *nspAdapter
	sid      socket.SocketId
	pid      string
	key      string
	owner    string // wire.Session.Owner of its writes
	prefix   string // wire.OwnerPrefix(owner)
	restored bool   // taken from a stored session: another incarnation may still be about (see end)

	// Guarded by sessionStore.mu.
	sock       *socket.Socket // once connected
	initial    wire.Session   // restored: the session as the claim returned it, written until the socket connects
	dirty      bool           // queued for a write
	written    time.Time      // when a write last applied (zero: none yet)
	superseded bool           // restored elsewhere: nothing more is written for it
}

type liveKey struct {
	n   *nspAdapter
	sid socket.SocketId
}

// finalWrite is a last write of a session (its socket disconnected), sent even though the session left the store.
type finalWrite struct {
	w      rdb.SessionWrite
	queued time.Time
	done   chan struct{} // closed once sent or given up; nil when nobody waits
}

// sessionStore keeps the live sessions of an Adapter and writes them.
type sessionStore struct {
	a    *Adapter
	wake chan struct{} // capacity 1

	beforeBatch atomic.Pointer[chan struct{}] // tests only: each batch waits until it is closed

	mu       sync.Mutex
	sessions map[liveKey]*liveSession
	dirty    []*liveSession
	finals   []*finalWrite
	stopped  bool
}

func newSessionStore(a *Adapter) *sessionStore {
	return &sessionStore{a: a, wake: make(chan struct{}, 1), sessions: map[liveKey]*liveSession{}}
}

func (n *nspAdapter) liveMode() bool { return n.recovery && n.opts().Sessions == SessionsLive }

// liveTTL is the TTL of the session of a connected socket: after a crash, the last write that applied keeps it
// for the recovery window at least.
func (n *nspAdapter) liveTTL() time.Duration {
	return n.sessionTTL() + n.opts().SessionRefresh + n.opts().RequestsTimeout
}

// sessionTTL is the recovery window (the server's MaxDisconnectionDuration).
func (n *nspAdapter) sessionTTL() time.Duration {
	if n.ttl > 0 {
		return n.ttl
	}
	return time.Duration(socket.DefaultMaxDisconnectionDuration) * time.Millisecond
}

// socketPid returns a socket's private session id. servers/socket v3.0.6 has no accessor for it before the socket
// disconnects (SessionToPersist); it is read from the unexported field. "" when that fails (another version).
func socketPid(s *socket.Socket) string {
	v := reflect.ValueOf(s).Elem().FieldByName("pid")
	if !v.IsValid() || v.Kind() != reflect.String {
		return ""
	}
	return v.String()
}

// touch is called for every room change of a socket (the first one, its own room, when it connects): its
// session is queued for a write, and a socket seen for the first time is registered. joined is the rooms of a
// join, nil for a leave. A restored socket joins the rooms of its session before it connects, then its own: those
// joins are in the session written at its restore already.
func (n *nspAdapter) touch(id socket.SocketId, joined *types.Set[socket.Room]) {
	st := n.parent.sessions
	k := liveKey{n, id}
	st.mu.Lock()
	ls := st.sessions[k]
	if ls != nil {
		restoring := ls.sock == nil
		known := restoring && joined != nil && inSession(joined, ls.initial.Rooms)
		if restoring { // connected once it is in the namespace
			if s, ok := n.Nsp().Sockets().Load(id); ok && s.Connected() {
				ls.sock, ls.initial = s, wire.Session{} // written from the socket from now on
				if ls.superseded {                      // restored again elsewhere before it connected here
					st.mu.Unlock()
					n.parent.goSafe(func() { s.Disconnect(false) })
					return
				}
			}
		}
		if !ls.superseded && !known {
			st.markLocked(ls)
		}
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	s, ok := n.Nsp().Sockets().Load(id)
	if !ok || !s.Connected() {
		return // not connected yet (a restored socket's rooms are registered with its restore)
	}
	pid := socketPid(s)
	if pid == "" {
		n.parent.pidMissing.once.Do(func() {
			n.parent.pidMissing.seen.Store(true)
			n.parent.log.Error("redisstreams: cannot read the private session id of sockets (servers/socket is not v3.0.6?): " +
				"sessions are written only when sockets disconnect")
		})
		return
	}
	ls = n.newLiveSession(id, pid, false)
	ls.sock = s
	st.mu.Lock()
	if _, dup := st.sessions[k]; !dup && !st.stopped {
		st.sessions[k] = ls
		st.markLocked(ls)
	}
	st.mu.Unlock()
}

func (n *nspAdapter) newLiveSession(sid socket.SocketId, pid string, restored bool) *liveSession {
	owner := randomID()
	prefix, _ := wire.OwnerPrefix(owner) // randomID is OwnerLen hex characters
	return &liveSession{n: n, sid: sid, pid: pid, key: n.opts().SessionKeyPrefix + pid, owner: owner, prefix: prefix,
		restored: restored}
}

// markLocked queues ls for a write.
func (st *sessionStore) markLocked(ls *liveSession) {
	if ls.dirty || st.stopped {
		return
	}
	ls.dirty = true
	st.dirty = append(st.dirty, ls)
	st.signal()
}

func (st *sessionStore) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// take removes a socket's session from the store; nil when it has none.
func (n *nspAdapter) takeLive(id socket.SocketId) *liveSession {
	st := n.parent.sessions
	st.mu.Lock()
	defer st.mu.Unlock()
	k := liveKey{n, id}
	ls := st.sessions[k]
	if ls != nil {
		delete(st.sessions, k)
		ls.dirty = false // its place in st.dirty is skipped
	}
	return ls
}

// finishSession queues the last write of a session whose socket disconnected; with wait it returns once the write was
// sent (or RequestsTimeout passed) and reports whether it applied.
func (n *nspAdapter) finishSession(ls *liveSession, value string, ttl time.Duration, wait bool) bool {
	f := &finalWrite{w: rdb.SessionWrite{Key: ls.key, Owner: ls.prefix, Value: value, TTL: ttl}, queued: time.Now()}
	if wait {
		f.done = make(chan struct{})
	}
	st := n.parent.sessions
	st.mu.Lock()
	if st.stopped {
		st.mu.Unlock()
		n.parent.stats.sessionErrors.Add(1)
		return false
	}
	st.finals = append(st.finals, f)
	st.signal()
	st.mu.Unlock()
	if !wait {
		return false
	}
	t := time.NewTimer(n.opts().RequestsTimeout)
	defer t.Stop()
	select {
	case <-f.done:
		return f.w.Err == nil && f.w.Applied
	case <-t.C:
		return false // still queued: it goes out when Redis answers
	}
}

// end is the write for a socket that left for good. A fresh socket's session is deleted. A restored one leaves a
// marker for the life of a live session: the incarnation it was restored from may be on a server that has not
// noticed its client left, and would otherwise write the session back into a missing key; the marker refuses
// that write (and makes that server close the socket).
func (n *nspAdapter) end(ls *liveSession) {
	if ls.restored {
		n.finishSession(ls, endedMarker, n.liveTTL(), false)
		return
	}
	n.finishSession(ls, "", 0, false)
}

// inSession reports whether every room of joined is in rooms.
func inSession(joined *types.Set[socket.Room], rooms []string) bool {
	for _, r := range joined.Keys() {
		if !slices.Contains(rooms, string(r)) {
			return false
		}
	}
	return true
}

// Del implements socket.Adapter: a room left is a room change of the session.
func (n *nspAdapter) Del(id socket.SocketId, room socket.Room) {
	n.Adapter.Del(id, room)
	if n.liveMode() {
		n.touch(id, nil)
	}
}

// runSessions is the session writer's goroutine: it sends what is queued after sessionCoalesce, and marks the
// sessions due for a refresh every SessionRefresh/8.
func (st *sessionStore) run(stop <-chan struct{}) {
	refresh := st.a.opts.SessionRefresh
	tick := time.NewTicker(refresh / 8)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-stop:
			st.stop()
			return
		case <-tick.C:
			st.markDue(time.Now().Add(-refresh + refresh/8))
		case <-st.wake:
			if !st.awaited() {
				select {
				case <-stop:
					st.stop()
					return
				case <-time.After(sessionCoalesce):
				}
			}
		}
		for {
			if h := st.beforeBatch.Load(); h != nil {
				select {
				case <-*h:
				case <-stop:
					st.stop()
					return
				}
			}
			lives, finals := st.takeBatch()
			if len(lives)+len(finals) == 0 {
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), st.a.opts.RequestsTimeout)
			held := st.send(ctx, lives, finals)
			cancel()
			if !held {
				failures = 0
				continue
			}
			failures++
			select {
			case <-stop:
				st.stop()
				return
			case <-time.After(rdb.Backoff(failures, 50*time.Millisecond, 2*time.Second)):
			}
		}
	}
}

// awaited reports whether a caller waits for a queued write (PersistSession): then nothing is coalesced, as a
// server closing thousands of sockets one after the other would wait sessionCoalesce for each.
func (st *sessionStore) awaited() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, f := range st.finals {
		if f.done != nil {
			return true
		}
	}
	return false
}

// markDue queues the connected sessions last written before since.
func (st *sessionStore) markDue(since time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, ls := range st.sessions {
		if ls.sock != nil && !ls.superseded && ls.written.Before(since) {
			st.markLocked(ls)
		}
	}
}

// takeBatch takes up to MaxBatch queued writes: sessions to write (with what to write), then last writes.
func (st *sessionStore) takeBatch() ([]liveWrite, []*finalWrite) {
	max := st.a.opts.MaxBatch
	st.mu.Lock()
	var lives []liveWrite
	i := 0
	for ; i < len(st.dirty) && len(lives) < max; i++ {
		ls := st.dirty[i]
		if !ls.dirty {
			continue // finished or superseded since
		}
		ls.dirty = false
		lives = append(lives, liveWrite{ls: ls, sock: ls.sock, initial: ls.initial})
	}
	st.dirty = slices.Delete(st.dirty, 0, i)
	n := min(len(st.finals), max-len(lives))
	finals := slices.Clone(st.finals[:n])
	st.finals = slices.Delete(st.finals, 0, n)
	st.mu.Unlock()
	return lives, finals
}

type liveWrite struct {
	ls      *liveSession
	sock    *socket.Socket
	initial wire.Session
	w       rdb.SessionWrite
}

// value is what to store for a session now: the connected socket's rooms and data, or the restored session.
func (lw *liveWrite) value() (string, bool) {
	ls := lw.ls
	s := lw.initial
	if lw.sock != nil {
		rooms := ls.n.Adapter.SocketRooms(ls.sid)
		if rooms == nil {
			return "", false // left meanwhile: its last write follows
		}
		s = wire.Session{Sid: string(ls.sid), Pid: ls.pid, Rooms: roomStrings(rooms.Keys()), Data: lw.sock.Data()}
	}
	s.Owner = ls.owner
	v, err := wire.EncodeSession(s)
	if err != nil {
		ls.n.parent.stats.sessionErrors.Add(1)
		ls.n.parent.logLimited(&ls.n.parent.sessionLog, slog.LevelError, "redisstreams: cannot encode session",
			"nsp", ls.n.name, "sid", ls.sid, "err", err)
		return "", false
	}
	return v, true
}

// send writes one batch and reports whether some of it is held for want of Redis (then retried after a pause).
func (st *sessionStore) send(ctx context.Context, lives []liveWrite, finals []*finalWrite) (held bool) {
	writes := make([]*rdb.SessionWrite, 0, len(lives)+len(finals))
	sent := lives[:0]
	for _, lw := range lives {
		v, ok := lw.value()
		if !ok {
			continue
		}
		lw.w = rdb.SessionWrite{Key: lw.ls.key, Owner: lw.ls.prefix, Value: v, TTL: lw.ls.n.liveTTL()}
		sent = append(sent, lw)
	}
	for i := range sent {
		writes = append(writes, &sent[i].w)
	}
	for _, f := range finals {
		writes = append(writes, &f.w)
	}
	if len(writes) > 0 {
		st.a.client.WriteSessions(ctx, writes)
	}
	now := time.Now()
	var retry []*finalWrite
	var closing []*socket.Socket
	st.mu.Lock()
	for _, lw := range sent {
		ls := lw.ls
		switch err := lw.w.Err; {
		case err == nil && lw.w.Applied:
			ls.written = now
		case err == nil:
			if !ls.superseded {
				ls.superseded = true
				st.a.stats.superseded.Add(1)
				if ls.sock != nil {
					closing = append(closing, ls.sock)
				}
			}
		default:
			st.a.stats.sessionErrors.Add(1)
			st.a.logLimited(&st.a.sessionLog, slog.LevelWarn, "redisstreams: session write failed", "nsp", ls.n.name,
				"err", err)
			if rdb.Unavailable(err) {
				held = true
				if st.sessions[liveKey{ls.n, ls.sid}] == ls {
					st.markLocked(ls) // again, unless it finished meanwhile (its last write follows)
				}
			} // otherwise the next refresh tries again
		}
	}
	for _, f := range finals {
		err := f.w.Err
		if err != nil && rdb.Unavailable(err) && now.Sub(f.queued) < st.a.opts.MaxOutage {
			held = true
			retry = append(retry, f)
			continue
		}
		if err != nil {
			st.a.stats.sessionErrors.Add(1)
			// Not the key: it holds the private session id, which restores the session (a credential).
			st.a.logLimited(&st.a.sessionLog, slog.LevelError, "redisstreams: session not written",
				"key_prefix", st.a.opts.SessionKeyPrefix, "err", err)
		}
		if f.done != nil {
			close(f.done)
		}
	}
	if len(retry) > 0 {
		st.finals = append(retry, st.finals...) // first, before any later write of the same key
	}
	st.mu.Unlock()
	for _, s := range closing {
		st.a.goSafe(func() { s.Disconnect(false) })
	}
	return held
}

// stop sends what is queued once more (bounded by RequestsTimeout), and drops the rest, releasing its waiters.
func (st *sessionStore) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), st.a.opts.RequestsTimeout)
	defer cancel()
	for ctx.Err() == nil {
		lives, finals := st.takeBatch()
		if len(lives)+len(finals) == 0 {
			break
		}
		if st.send(ctx, lives, finals) {
			break
		}
	}
	st.mu.Lock()
	st.stopped = true
	finals := st.finals
	st.finals, st.dirty = nil, nil
	st.mu.Unlock()
	for _, f := range finals {
		st.a.stats.sessionErrors.Add(1)
		if f.done != nil {
			close(f.done)
		}
	}
}

// liveCount is the number of sessions of connected sockets kept in Redis.
func (st *sessionStore) liveCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, ls := range st.sessions {
		if ls.sock != nil && !ls.superseded {
			n++
		}
	}
	return n
}

// rooms of a restored session, as a set, for the server.
func roomSet(rooms []string) *types.Set[socket.Room] { return types.NewSet(toRooms(rooms)...) }

// adopt registers a restored session, before its socket exists. A socket of this namespace that still holds the
// session here (its client came back before this server noticed it had gone) is disconnected first: the new socket
// takes its id, and the old one's cleanup must not touch the new one's rooms or session.
func (n *nspAdapter) adopt(ls *liveSession) {
	st := n.parent.sessions
	k := liveKey{n, ls.sid}
	st.mu.Lock()
	if old := st.sessions[k]; old != nil {
		old.superseded = true
	}
	st.mu.Unlock()
	if s, ok := n.Nsp().Sockets().Load(ls.sid); ok {
		n.parent.stats.superseded.Add(1)
		n.closeBefore(s)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if old := st.sessions[k]; old != nil {
		old.superseded, old.dirty = true, false
	}
	st.sessions[k] = ls
	st.markLocked(ls) // its content replaces the claim's marker at once
}

// closeBefore closes a socket whose session is being restored on this server, and returns once its cleanup is
// over: servers/socket removes a socket from its namespace, and its rooms from the adapter, by id, so a cleanup
// that ran once the new socket took the id would take the new one's place and rooms with it. A socket whose
// transport is closing already (its server noticed the client leave) closes by itself; one still open (its client
// came back before its server noticed) is disconnected here. The wait is bounded by RequestsTimeout.
func (n *nspAdapter) closeBefore(s *socket.Socket) {
	closed := make(chan struct{})
	var once sync.Once
	_ = s.Once("disconnect", func(...any) { once.Do(func() { close(closed) }) })
	if !s.Connected() {
		return
	}
	if s.Conn().ReadyState() == "open" {
		s.Disconnect(false)
	}
	t := time.NewTimer(n.opts().RequestsTimeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		n.parent.log.Warn("redisstreams: a restored session's former socket is still closing", "nsp", n.name, "sid", s.Id())
	}
}

// left is called when a socket left without PersistSession: for good, or (a restored socket that never connected)
// before its client got the session, which is then stored again for the client to come back with.
func (n *nspAdapter) left(ls *liveSession) {
	st := n.parent.sessions
	st.mu.Lock()
	superseded, connected, initial := ls.superseded, ls.sock != nil, ls.initial
	st.mu.Unlock()
	switch {
	case superseded:
	case connected:
		n.end(ls)
	default:
		n.storeBack(ls, initial)
	}
}

// giveBack stores a restored session again after a restore that failed once it had claimed it.
func (n *nspAdapter) giveBack(ls *liveSession) {
	st := n.parent.sessions
	st.mu.Lock()
	if k := (liveKey{n, ls.sid}); st.sessions[k] == ls {
		delete(st.sessions, k)
		ls.dirty = false
	}
	initial := ls.initial
	st.mu.Unlock()
	n.storeBack(ls, initial)
}

func (n *nspAdapter) storeBack(ls *liveSession, s wire.Session) {
	s.Owner = ls.owner
	v, err := wire.EncodeSession(s)
	if err != nil {
		n.parent.stats.sessionErrors.Add(1)
		return
	}
	n.finishSession(ls, v, n.sessionTTL(), false)
}
