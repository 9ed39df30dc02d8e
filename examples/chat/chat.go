package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/wstransport"
)

//go:embed static
var staticFiles embed.FS

// staticHandler serves the chat page (static/index.html at "/") and its scripts.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}

// Limits of what a client may send.
const (
	maxNameLen = 32
	maxTextLen = 1000
)

// roomPattern is what a room name may look like; the page offers "general" and "random".
var roomPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// user is what the server knows of one connected socket. Its copy in the socket's data (see userData) is what
// FetchSockets returns to every server of the cluster.
type user struct {
	mu   sync.Mutex
	name string
	room string
}

// registerChat installs the chat's event handlers on the main namespace.
//
// Client -> server events:
//
//	join {name, room}       leave the current room (if any) and join room; announced to both rooms
//	chat {name, room, text} a message to the room the socket is in, broadcast through the cluster
//
// Server -> client events:
//
//	welcome {server, id}               on connection: which server the client is on
//	joined  {room, name, server}       the join was done (to the joining socket only)
//	chat    {id, sid, name, room, text, server, ts}  sid is the sender's socket id
//	system  {room, text, server, ts}   joins, leaves and renames, to the room
//	notice  {text}                     a rejected request, to the socket only
func (n *node) registerChat() {
	_ = n.io.Of("/", nil).On("connection", func(args ...any) {
		s, ok := args[0].(*socket.Socket)
		if !ok {
			return
		}
		u := &user{}
		if s.Recovered() {
			// Connection state recovery restored the socket's id, rooms and data (see userData): pick up where the
			// page was.
			if d, ok := s.Data().(map[string]any); ok {
				u.name, _ = d["name"].(string)
				u.room, _ = d["room"].(string)
			}
		}
		n.log.Debug("chat: connected", "sid", s.Id(), "recovered", s.Recovered())
		_ = s.Emit("welcome", map[string]any{"server": n.label, "id": string(s.Id())})

		_ = s.On("join", func(args ...any) {
			req := payload(args)
			name := cleanName(req["name"])
			room, _ := req["room"].(string)
			if len(args) > 0 {
				if r, ok := args[0].(string); ok { // join "room" is accepted too
					room = r
				}
			}
			room = strings.ToLower(strings.TrimSpace(room))
			if !roomPattern.MatchString(room) {
				_ = s.Emit("notice", map[string]any{"text": "invalid room name"})
				return
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			prevRoom, prevName := u.room, u.name
			if name == "" {
				name = prevName
			}
			if name == "" {
				name = "anonymous"
			}
			u.name, u.room = name, room
			s.SetData(userData(name, room, n.label))
			switch {
			case prevRoom == room && prevName == name:
			case prevRoom == room:
				n.announce(room, prevName+" is now known as "+name)
			default:
				if prevRoom != "" {
					s.Leave(socket.Room(prevRoom))
					n.announce(prevRoom, prevName+" left #"+prevRoom)
				}
				s.Join(socket.Room(room))
				n.announce(room, name+" joined #"+room)
			}
			_ = s.Emit("joined", map[string]any{"room": room, "name": name, "server": n.label})
			n.log.Info("chat: join", "sid", s.Id(), "name", name, "room", room)
		})

		_ = s.On("chat", func(args ...any) {
			req := payload(args)
			text, _ := req["text"].(string)
			text = strings.TrimSpace(text)
			if text == "" {
				return
			}
			if utf8.RuneCountInString(text) > maxTextLen {
				text = string([]rune(text)[:maxTextLen])
			}
			u.mu.Lock()
			room, name := u.room, u.name
			if newName := cleanName(req["name"]); newName != "" && newName != name {
				// The page sends its current name with every message; keep the socket's data up to date.
				n.announce(room, name+" is now known as "+newName)
				name, u.name = newName, newName
				s.SetData(userData(name, room, n.label))
			}
			u.mu.Unlock()
			if room == "" {
				_ = s.Emit("notice", map[string]any{"text": "join a room first"})
				return
			}
			if want, _ := req["room"].(string); want != "" && want != room {
				_ = s.Emit("notice", map[string]any{"text": "you are in #" + room + ", not #" + want})
				return
			}
			msg := map[string]any{
				"id":     newID(),
				"sid":    string(s.Id()),
				"name":   name,
				"room":   room,
				"text":   text,
				"server": n.label,
				"ts":     time.Now().UnixMilli(),
			}
			// Sent to every socket in the room on every server: the adapter carries it over Redis Streams.
			if err := n.io.To(socket.Room(room)).Emit("chat", msg); err != nil {
				n.log.Warn("chat: broadcast failed", "room", room, "err", err)
			}
		})

		_ = s.On("disconnect", func(args ...any) {
			u.mu.Lock()
			room, name := u.room, u.name
			u.mu.Unlock()
			n.log.Debug("chat: disconnected", "sid", s.Id(), "reason", args)
			if len(args) > 0 && args[0] == "server shutting down" {
				return // the page reconnects to a server (recovering its session): not a leave
			}
			if room != "" {
				n.announce(room, name+" left #"+room)
			}
		})
	})
}

func (n *node) announce(room, text string) {
	err := n.io.To(socket.Room(room)).Emit("system", map[string]any{
		"room": room, "text": text, "server": n.label, "ts": time.Now().UnixMilli(),
	})
	if err != nil {
		n.log.Warn("chat: announce failed", "room", room, "err", err)
	}
}

func userData(name, room, server string) map[string]any {
	return map[string]any{"name": name, "room": room, "server": server}
}

// payload is the event's first argument as an object, or an empty one.
func payload(args []any) map[string]any {
	if len(args) > 0 {
		if m, ok := args[0].(map[string]any); ok {
			return m
		}
	}
	return map[string]any{}
}

func cleanName(v any) string {
	s, _ := v.(string)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxNameLen {
		s = string([]rune(s)[:maxNameLen])
	}
	return s
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stats is the cluster-wide view the page shows, from GET /api/stats.
type stats struct {
	Server  string         `json:"server"`  // the server that answered
	Servers int64          `json:"servers"` // servers in the cluster (Adapter().ServerCount())
	Users   int            `json:"users"`   // sockets connected to any server (FetchSockets)
	Rooms   map[string]int `json:"rooms"`   // sockets per chat room, cluster-wide
	Members []member       `json:"members"`
	Peers   []string       `json:"peers"` // the URLs of every server of the cluster (see clusterPeers)
	// Transport: this server's websocket connections and what its transport built (wstransport.Stats).
	Transport wstransport.Stats `json:"transport"`
	Error     string            `json:"error,omitempty"`
}

type member struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Room   string `json:"room"`
	Server string `json:"server"`
}

// statsCache keeps the last answer for a moment, so that many open pages polling /api/stats cost the cluster one
// request a second per server.
type statsCache struct {
	mu   sync.Mutex
	at   time.Time
	last stats
}

func (n *node) handleStats(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 6*time.Second)
	defer cancel()
	st := n.clusterStats(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if st.Error != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

func (n *node) clusterStats(ctx context.Context) stats {
	n.stats.mu.Lock()
	defer n.stats.mu.Unlock()
	if time.Since(n.stats.at) < time.Second {
		return n.stats.last
	}
	st := stats{Server: n.label, Rooms: map[string]int{}, Members: []member{}}
	st.Servers = n.io.Of("/", nil).Adapter().ServerCount()
	st.Peers = n.clusterPeers(ctx)
	st.Transport = n.ws.Stats()

	type result struct {
		sockets []*socket.RemoteSocket
		err     error
	}
	ch := make(chan result, 1)
	n.io.FetchSockets()(func(sockets []*socket.RemoteSocket, err error) { ch <- result{sockets, err} })
	select {
	case res := <-ch:
		if res.err != nil {
			st.Error = res.err.Error()
			n.log.Warn("chat: fetchSockets failed", "err", res.err)
		}
		st.Users = len(res.sockets)
		for _, rs := range res.sockets {
			m := member{ID: string(rs.Id())}
			if d, ok := rs.Data().(map[string]any); ok {
				m.Name, _ = d["name"].(string)
				m.Room, _ = d["room"].(string)
				m.Server, _ = d["server"].(string)
			} else if rs.Data() != nil {
				n.log.Warn("chat: unexpected socket data", "sid", rs.Id(), "type", typeName(rs.Data()))
			}
			if m.Room != "" {
				st.Rooms[m.Room]++
			}
			st.Members = append(st.Members, m)
		}
		sort.Slice(st.Members, func(i, j int) bool {
			a, b := st.Members[i], st.Members[j]
			if a.Room != b.Room {
				return a.Room < b.Room
			}
			if a.Name != b.Name {
				return a.Name < b.Name
			}
			return a.ID < b.ID
		})
	case <-ctx.Done():
		st.Error = "fetchSockets: " + ctx.Err().Error()
	}
	if st.Error == "" {
		n.stats.at, n.stats.last = time.Now(), st
	}
	return st
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// peersEvent is the server-side event (ServerSideEmit) by which a server asks every other server of the cluster,
// in this process or not, for its URL.
const peersEvent = "chat:peers"

// answerPeers makes the server answer peersEvent with its URL.
func (n *node) answerPeers() {
	n.io.On(peersEvent, func(args ...any) {
		if len(args) > 0 {
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{n.url}, nil)
			}
		}
	})
}

// clusterPeers returns the URLs of every server of the cluster: the ones of this process, and the ones that answer
// peersEvent (other processes). A server that does not answer in time is left out.
func (n *node) clusterPeers(ctx context.Context) []string {
	set := map[string]bool{}
	for _, p := range n.peers {
		set[p] = true
	}
	ch := make(chan []any, 1)
	err := n.io.ServerSideEmitWithAck(peersEvent)(func(replies []any, err error) {
		if err != nil {
			n.log.Debug("chat: some servers did not say their URL", "err", err)
		}
		ch <- replies
	})
	if err != nil {
		n.log.Warn("chat: asking the other servers for their URL", "err", err)
	} else {
		select {
		case replies := <-ch:
			for _, r := range replies {
				if u, ok := r.(string); ok && strings.HasPrefix(u, "http") {
					set[u] = true
				}
			}
		case <-ctx.Done():
		}
	}
	peers := make([]string, 0, len(set))
	for p := range set {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	return peers
}

// handleHealth answers 200 while the server's adapter is connected to Redis and reading every stream
// (Adapter.Ping), and 503 with the reason otherwise: a load balancer's health check.
func (n *node) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := n.adapter.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, redactErr(err, redisSecrets(n.rc)...))
		return
	}
	fmt.Fprintln(w, "ok")
}
