package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	zredis "github.com/zishang520/socket.io/adapters/redis/v3"
	zadapter "github.com/zishang520/socket.io/adapters/redis/v3/adapter"
	"github.com/zishang520/socket.io/servers/socket/v3"

	redisstreams "github.com/socketio-go/redisstreams"
)

// The Go benchmark server: one Socket.IO server with one of the Go adapters, driven over HTTP by the harness.
// It speaks the same control API as node/server.js:
//
//	POST /ctl/ladder   {rate, dur_ms, warm_ms, base}  -> {sent, sent_warm, window_s}   paced io.Emit("ev", {t, s, pad})
//	POST /ctl/publish  {emitters, dur_ms}             -> {emits}                        closed-loop io.Emit from N goroutines
//	POST /ctl/requests {kind, rate, dur_ms}           -> {rtt_us, responses, errors}    fetchSockets / serverSideEmitWithAck
//	GET  /ctl/count                                   -> {count}                        adapter's server count
//	POST /ctl/sockets                                 -> {sockets}                      sockets connected to this server
//	POST /ctl/stats                                   -> {supported, lost, duplicates}  this library's loss counters
//	POST /ctl/join     {rooms}                        -> {sockets}                      each local socket joins that many rooms
//	POST /ctl/emit     {n, base}                      -> {sent}                         n io.Emit("ev", {t, s, pad}) at once
//	GET  /debug/pprof/profile?seconds=N               CPU profile (Go servers only)
//	GET  /debug/pprof/heap, /debug/pprof/goroutine      heap and goroutine profiles (Go servers only)
//
// It prints "READY <port>" once listening and exits when stdin closes.

// pad is the 150-byte filler of every benchmark event.
var pad = strings.Repeat("x", 150)

// serveMain runs the server; args are the flags after "serve".
func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kind := fs.String("adapter", "goredis", "goredis | rueidis | zishang")
	addr := fs.String("redis", "", "Redis address host:port")
	recovery := fs.Bool("recovery", false, "connection state recovery on (Socket.IO's defaults)")
	sessions := fs.String("sessions", "live", "this library's Options.Sessions with -recovery: live | ondisconnect")
	transport := fs.String("transport", "engine", "websocket transport: engine (servers/engine's own) | wstransport (this module's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("serve: -redis is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	opts := socket.DefaultServerOptions()
	if *recovery {
		opts.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery())
	}
	ropts := redisstreams.Options{Logger: log}
	switch *sessions {
	case "live":
	case "ondisconnect":
		ropts.Sessions = redisstreams.SessionsOnDisconnect
	default:
		return fmt.Errorf("serve: unknown -sessions %q", *sessions)
	}
	var closeAdapter func()
	var stats func() redisstreams.Stats // this library's adapters only
	switch *kind {
	case "goredis":
		rc := redis.NewClient(&redis.Options{Addr: *addr})
		a, err := redisstreams.New(context.Background(), goredisbackend.New(rc), ropts)
		if err != nil {
			return err
		}
		opts.SetAdapter(a)
		closeAdapter = func() { closeWithin(a.Close); _ = rc.Close() }
		stats = a.Stats
	case "rueidis":
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{*addr}, DisableCache: true})
		if err != nil {
			return err
		}
		a, err := redisstreams.New(context.Background(), rueidisbackend.New(rc), ropts)
		if err != nil {
			rc.Close()
			return err
		}
		opts.SetAdapter(a)
		closeAdapter = func() { closeWithin(a.Close); rc.Close() }
		stats = a.Stats
	case "zishang":
		rc := redis.NewClient(&redis.Options{Addr: *addr})
		opts.SetAdapter(&zadapter.RedisStreamsAdapterBuilder{
			Redis: zredis.NewRedisClient(context.Background(), rc),
			Opts:  zadapter.DefaultRedisStreamsAdapterOptions(),
		})
		closeAdapter = func() { _ = rc.Close() }
	default:
		return fmt.Errorf("serve: unknown adapter %q", *kind)
	}
	switch *transport {
	case "engine":
	case "wstransport":
		if err := installWS(opts, log); err != nil {
			return err
		}
	default:
		return fmt.Errorf("serve: unknown transport %q", *transport)
	}
	sio := socket.NewServer(nil, opts)
	nsp := sio.Of("/", nil)
	_ = nsp.On("bench-ping", func(args ...any) {
		if len(args) > 0 {
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{"pong"}, nil)
			}
		}
	})

	s := &benchServer{io: sio, stats: stats}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio.ServeHandler(nil))
	mux.HandleFunc("/ctl/ladder", s.handle(s.ladder))
	mux.HandleFunc("/ctl/publish", s.handle(s.publish))
	mux.HandleFunc("/ctl/requests", s.handle(s.requests))
	mux.HandleFunc("/ctl/count", s.handle(s.count))
	mux.HandleFunc("/ctl/sockets", s.handle(s.sockets))
	mux.HandleFunc("/ctl/stats", s.handle(s.adapterStats))
	mux.HandleFunc("/ctl/join", s.handle(s.join))
	mux.HandleFunc("/ctl/emit", s.handle(s.emit))
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)            // the harness's -profile option (loopback only)
	mux.Handle("/debug/pprof/heap", pprof.Handler("heap"))           // -profile: B's heap with the idle sockets
	mux.Handle("/debug/pprof/goroutine", pprof.Handler("goroutine")) // idem, its goroutines
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)

	// Exit when the harness closes our stdin (or dies).
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	done := make(chan struct{})
	sio.Close(func(error) { close(done) })
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	_ = hs.Close()
	closeAdapter()
	return nil
}

func closeWithin(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = f(ctx)
}

type benchServer struct {
	io    *socket.Server
	stats func() redisstreams.Stats // nil for adapters without loss counters
}

// ctlRequest is the body of every control call (fields used as each operation needs).
type ctlRequest struct {
	Rate     float64 `json:"rate"`
	DurMs    int64   `json:"dur_ms"`
	WarmMs   int64   `json:"warm_ms"`
	Base     int64   `json:"base"`
	Emitters int     `json:"emitters"`
	Kind     string  `json:"kind"`
	Rooms    int     `json:"rooms"`
	N        int     `json:"n"`
}

func (s *benchServer) handle(op func(ctlRequest) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ctlRequest
		if r.Method == http.MethodPost {
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		out, err := op(req)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			out = map[string]string{"error": err.Error()}
		}
		_ = json.NewEncoder(w).Encode(out)
	}
}

func event(s int64) map[string]any {
	return map[string]any{"t": time.Now().UnixMicro(), "s": s, "pad": pad}
}

// ladder emits at req.Rate per second for req.DurMs, open loop: every millisecond it emits what is due, so a slow
// emit delays later ones without lowering the target. Sequence numbers start at req.Base.
func (s *benchServer) ladder(req ctlRequest) (any, error) {
	if req.Rate <= 0 || req.DurMs <= 0 {
		return nil, errors.New("ladder: rate and dur_ms must be > 0")
	}
	dur := time.Duration(req.DurMs) * time.Millisecond
	warm := time.Duration(req.WarmMs) * time.Millisecond
	start := time.Now()
	var sent, sentWarm int64
	for {
		el := time.Since(start)
		if el >= dur {
			break
		}
		due := int64(req.Rate * el.Seconds())
		for sent < due {
			s.io.Emit("ev", event(req.Base+sent))
			sent++
			if time.Since(start) >= warm { // per emit: an emit may block, and a late burst must count where it falls
				sentWarm++
			}
		}
		time.Sleep(time.Millisecond)
	}
	return map[string]any{"sent": sent, "sent_warm": sentWarm, "window_s": (dur - warm).Seconds()}, nil
}

// publish runs req.Emitters goroutines that each emit in a loop for req.DurMs (closed loop).
func (s *benchServer) publish(req ctlRequest) (any, error) {
	if req.Emitters <= 0 || req.DurMs <= 0 {
		return nil, errors.New("publish: emitters and dur_ms must be > 0")
	}
	deadline := time.Now().Add(time.Duration(req.DurMs) * time.Millisecond)
	var emits atomic.Int64
	var wg sync.WaitGroup
	for i := range req.Emitters {
		wg.Go(func() {
			for n := int64(0); time.Now().Before(deadline); n++ {
				s.io.Emit("ev", event(int64(i)<<32|n))
				emits.Add(1)
			}
		})
	}
	wg.Wait()
	return map[string]any{"emits": emits.Load()}, nil
}

// requests starts req.Rate calls per second (open loop, each in its own goroutine) of fetchSockets or
// serverSideEmitWithAck for req.DurMs, and returns every round trip and how many sockets/responses each got.
func (s *benchServer) requests(req ctlRequest) (any, error) {
	if req.Rate <= 0 || req.DurMs <= 0 {
		return nil, errors.New("requests: rate and dur_ms must be > 0")
	}
	n := int(req.Rate * float64(req.DurMs) / 1000)
	interval := time.Duration(float64(time.Second) / req.Rate)
	var mu sync.Mutex
	rtts := make([]int64, 0, n)
	resps := make([]int, 0, n)
	errs := 0
	var wg sync.WaitGroup
	record := func(start time.Time, count int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs++
			return
		}
		rtts = append(rtts, time.Since(start).Microseconds())
		resps = append(resps, count)
	}
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		t0 := time.Now()
		var once sync.Once
		finish := func(count int, err error) { once.Do(func() { record(t0, count, err); wg.Done() }) }
		switch req.Kind {
		case "fetch":
			go s.io.FetchSockets()(func(list []*socket.RemoteSocket, err error) { finish(len(list), err) })
		case "sse":
			go func() {
				err := s.io.Of("/", nil).ServerSideEmitWithAck("bench-ping")(func(res []any, err error) { finish(len(res), err) })
				if err != nil {
					finish(0, err)
				}
			}()
		default:
			wg.Done()
			return nil, fmt.Errorf("requests: unknown kind %q", req.Kind)
		}
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		return nil, errors.New("requests: calls still unanswered 10s after the last one")
	}
	mu.Lock()
	defer mu.Unlock()
	return map[string]any{"rtt_us": rtts, "responses": resps, "errors": errs}, nil
}

// adapterStats reports the adapter's own loss counters, so that the harness can tell the broadcasts a receiver
// never got and counted lost from those it never got without a word.
func (s *benchServer) adapterStats(ctlRequest) (any, error) {
	if s.stats == nil {
		return map[string]any{"supported": false}, nil
	}
	st := s.stats()
	return map[string]any{"supported": true, "lost": st.Lost, "duplicates": st.Duplicates}, nil
}

func (s *benchServer) sockets(ctlRequest) (any, error) {
	return map[string]any{"sockets": s.io.Of("/", nil).Sockets().Len()}, nil
}

func (s *benchServer) count(ctlRequest) (any, error) {
	return map[string]any{"count": s.io.Of("/", nil).Adapter().ServerCount()}, nil
}

// join makes every local socket join req.Rooms rooms, one socket after the other, each in a burst of separate joins.
func (s *benchServer) join(req ctlRequest) (any, error) {
	n := 0
	s.io.Of("/", nil).Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		for i := range req.Rooms {
			sock.Join(socket.Room(fmt.Sprintf("room-%d", i)))
		}
		n++
		return true
	})
	return map[string]any{"sockets": n}, nil
}

// emit broadcasts req.N events at once, numbered from req.Base.
func (s *benchServer) emit(req ctlRequest) (any, error) {
	for i := range req.N {
		s.io.Emit("ev", event(req.Base+int64(i)))
	}
	return map[string]any{"sent": req.N}, nil
}
