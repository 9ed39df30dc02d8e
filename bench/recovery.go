package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// The connection state recovery benchmark (go run ./bench -recovery): what keeping sessions live costs (Redis
// commands per connect and per burst of room changes, connect rate), and 1,000 clients resuming at once after
// their server was killed (SIGKILL) or after they all dropped, with restore latency and Redis CPU. Node 0.3.1 runs
// in the same run: it writes a session only when a socket disconnects, so after a kill it has none to restore.

// recoverySystems are the systems of the recovery benchmark: servers with recovery on.
var recoverySystems = []string{"node", "goredis", "goredis-ondisconnect", "rueidis"}

var recoveryLabels = map[string]string{
	"node":                 "Node 0.3.1",
	"goredis":              "Go, go-redis (SessionsLive)",
	"goredis-ondisconnect": "Go, go-redis (SessionsOnDisconnect)",
	"rueidis":              "Go, rueidis (SessionsLive)",
}

type recoveryConfig struct {
	Root     string
	Systems  []string
	Reps     int                                      // each system runs once per rep; each rep starts one system later
	Connects int                                      // clients of the connect-rate step
	Parallel int                                      // dials in flight during the connect-rate step
	Rooms    int                                      // rooms each socket joins in the room-change step
	Resumes  int                                      // clients that resume at once
	Missed   int                                      // broadcasts each of them missed
	GoServer func(adapter, redisAddr string) []string `json:"-"`
	Log      func(format string, args ...any)         `json:"-"`
}

type recoveryRun struct {
	Started time.Time       `json:"started"`
	Machine machineInfo     `json:"machine"`
	Config  recoveryConfig  `json:"config"`
	Results []recoverySysRs `json:"results"`
}

type recoverySysRs struct {
	System string `json:"system"`
	Rep    int    `json:"rep"`
	Error  string `json:"error,omitempty"`

	ConnectRate float64            `json:"connects_per_s"`
	ConnectCPU  float64            `json:"server_cpu_us_per_connect"` // A's, over the connects and the 500 ms after
	ConnectRCPU float64            `json:"redis_cpu_us_per_connect"`
	ConnectCmds map[string]float64 `json:"redis_commands_per_connect"` // INFO commandstats (scripts' own included)
	RoomCmds    map[string]float64 `json:"redis_commands_per_room_burst"`

	Killed  resumeResult `json:"killed"`
	Dropped resumeResult `json:"dropped"`
}

// resumeResult is Resumes clients coming back at once, spread over the two other servers.
type resumeResult struct {
	Clients   int     `json:"clients"`
	Recovered int     `json:"recovered"` // same socket id
	Complete  int     `json:"complete"`  // recovered with exactly the broadcasts missed
	P50ms     float64 `json:"p50_ms"`    // from the dial to the server's CONNECT (missed packets come before it)
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	WallMs    float64 `json:"wall_ms"` // the first dial to the last CONNECT
	RedisCPU  float64 `json:"redis_cpu_ms"`
	RedisCmds float64 `json:"redis_commands_per_client"`
}

func (cfg *recoveryConfig) start(ctx context.Context, sys, addr, name string) (*proc, error) {
	if sys == "node" {
		return startProc(ctx, name, nil, filepath.Join(cfg.Root, "bench", "node"), 30*time.Second, "node", "server.js",
			"--redis-url=redis://"+addr, "--recovery")
	}
	adapter, sessions := sys, "live"
	if sys == "goredis-ondisconnect" {
		adapter, sessions = "goredis", "ondisconnect"
	}
	return startProc(ctx, name, nil, cfg.Root, 30*time.Second, append(cfg.GoServer(adapter, addr), "-recovery", "-sessions", sessions)...)
}

// runRecovery runs every system once, one after the other, on one Redis.
func runRecovery(ctx context.Context, cfg *recoveryConfig) (*recoveryRun, error) {
	for _, s := range cfg.Systems {
		if _, ok := recoveryLabels[s]; !ok {
			return nil, fmt.Errorf("unknown system %q for -recovery (known: %s)", s, strings.Join(recoverySystems, ","))
		}
	}
	srv, rc, err := startRedis()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	defer rc.Close()
	out := &recoveryRun{Started: time.Now().UTC(), Config: *cfg}
	for rep := 1; rep <= max(cfg.Reps, 1); rep++ {
		order := slices.Clone(cfg.Systems)
		k := (rep - 1) % len(order)
		order = append(order[k:], order[:k]...)
		for _, sys := range order {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			r := recoverySystem(ctx, cfg, sys, srv, rc)
			r.Rep = rep
			if r.Error != "" {
				cfg.Log("%s rep %d: ERROR %s", sys, rep, r.Error)
			}
			out.Results = append(out.Results, r)
		}
	}
	return out, nil
}

func recoverySystem(ctx context.Context, cfg *recoveryConfig, sys string, srv *redistest.Server, rc *redis.Client) (out recoverySysRs) {
	out.System = sys
	fail := func(err error) recoverySysRs {
		out.Error = err.Error()
		return out
	}
	if err := rc.FlushAll(ctx).Err(); err != nil {
		return fail(err)
	}
	cfg.Log("%s: starting 3 servers", sys)
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	for _, name := range []string{"A", "B", "C"} {
		p, err := cfg.start(ctx, sys, srv.Addr(), name)
		if err != nil {
			return fail(err)
		}
		procs[name] = p
	}
	if err := waitCount(ctx, procs["B"], 3); err != nil {
		return fail(err)
	}

	// Connect rate, and the commands of a connect, after a few connections (Redis caches the scripts then).
	warm, err := dialCSRMany(ctx, procs["A"].base, 10, 10, nil)
	if err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range warm {
		c.cut()
	}
	if err := waitSockets(ctx, procs["A"], 0); err != nil {
		return fail(err)
	}
	cmds0, err := srv.CommandCalls()
	if err != nil {
		return fail(err)
	}
	pids := map[string]int{"A": procs["A"].pid(), "redis": srv.Pid()}
	cpu0 := sampleCPU(pids)
	start := time.Now()
	clients, err := dialCSRMany(ctx, procs["A"].base, cfg.Connects, cfg.Parallel, nil)
	if err != nil {
		return fail(fmt.Errorf("connect step: %w", err))
	}
	out.ConnectRate = float64(cfg.Connects) / time.Since(start).Seconds()
	time.Sleep(500 * time.Millisecond) // the session writes of the last connections
	cpu := delta(cpu0, sampleCPU(pids))
	out.ConnectCPU = float64(cpu.Procs["A"].Microseconds()) / float64(cfg.Connects)
	out.ConnectRCPU = float64(cpu.Procs["redis"].Microseconds()) / float64(cfg.Connects)
	cmds1, err := srv.CommandCalls()
	if err != nil {
		return fail(err)
	}
	out.ConnectCmds = perClient(cmds0, cmds1, cfg.Connects)
	// A burst of room changes on every socket.
	var jr struct{ Sockets int }
	if err := procs["A"].call(ctx, "join", map[string]any{"rooms": cfg.Rooms}, &jr); err != nil {
		return fail(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmds2, err := srv.CommandCalls()
	if err != nil {
		return fail(err)
	}
	out.RoomCmds = perClient(cmds1, cmds2, jr.Sockets)
	cfg.Log("%s: %d connects at %.0f/s (%d in flight), CPU µs per connect: server %.0f, Redis %.0f; Redis commands per connect %v; per burst of %d room joins %v",
		sys, cfg.Connects, out.ConnectRate, cfg.Parallel, out.ConnectCPU, out.ConnectRCPU, out.ConnectCmds, cfg.Rooms, out.RoomCmds)
	for _, c := range clients {
		c.cut()
	}
	if err := waitSockets(ctx, procs["A"], 0); err != nil {
		return fail(err)
	}

	seq := int64(1)
	for _, killed := range []bool{true, false} {
		what := "dropped"
		if killed {
			what = "killed"
		}
		r, err := resume(ctx, cfg, srv, procs, killed, &seq)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", what, err))
		}
		if killed {
			out.Killed = r
		} else {
			out.Dropped = r
		}
		cfg.Log("%s: %d clients %s, back at once: %d recovered, %d with exactly what they missed; CONNECT p50 %.1f p99 %.1f max %.1f ms, all in %.0f ms; Redis %.0f ms CPU, %.1f commands per client",
			sys, r.Clients, what, r.Recovered, r.Complete, r.P50ms, r.P99ms, r.MaxMs, r.WallMs, r.RedisCPU, r.RedisCmds)
		if killed { // A again, for the next step
			p, err := cfg.start(ctx, sys, srv.Addr(), "A")
			if err != nil {
				return fail(err)
			}
			procs["A"] = p
			if err := waitCount(ctx, procs["B"], 3); err != nil {
				return fail(err)
			}
		}
	}
	return out
}

// resume connects Resumes clients to A, gives each an offset, then kills A (or cuts every client), makes them
// miss Missed broadcasts, and brings them all back at once on B and C.
func resume(ctx context.Context, cfg *recoveryConfig, srv *redistest.Server, procs map[string]*proc, killed bool, seq *int64) (resumeResult, error) {
	r := resumeResult{Clients: cfg.Resumes}
	clients, err := dialCSRMany(ctx, procs["A"].base, cfg.Resumes, 64, nil)
	if err != nil {
		return r, err
	}
	defer func() {
		for _, c := range clients {
			c.cut()
		}
	}()
	if err := emit(ctx, procs["B"], 1, seq); err != nil {
		return r, err
	}
	if err := waitAll(ctx, clients, 1); err != nil {
		return r, err
	}
	time.Sleep(500 * time.Millisecond) // live sessions written (when they are)
	if killed {
		procs["A"].crash()
	} else {
		for _, c := range clients {
			c.cut()
		}
		if err := waitSockets(ctx, procs["A"], 0); err != nil { // A stored every session
			return r, err
		}
	}
	if err := emit(ctx, procs["B"], cfg.Missed, seq); err != nil {
		return r, err
	}
	time.Sleep(200 * time.Millisecond) // in the stream
	cmds0, err := srv.CommandCalls()
	if err != nil {
		return r, err
	}
	cpu0, _, _ := procCPU(srv.Pid())
	start := time.Now()
	back := make([]*csrClient, len(clients))
	lat := make([]int32, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		to := procs["B"]
		if i%2 == 1 {
			to = procs["C"]
		}
		wg.Go(func() {
			t0 := time.Now()
			back[i], errs[i] = dialCSR(ctx, to.base, c.state())
			lat[i] = int32(min(time.Since(t0).Microseconds(), 1<<31-1))
		})
	}
	wg.Wait()
	r.WallMs = float64(time.Since(start).Microseconds()) / 1000
	defer func() {
		for _, c := range back {
			if c != nil {
				c.cut()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	// The missed broadcasts came before each CONNECT: they are all there already.
	cpu1, _, _ := procCPU(srv.Pid())
	cmds1, err := srv.CommandCalls()
	if err != nil {
		return r, err
	}
	r.RedisCPU = float64((cpu1 - cpu0).Microseconds()) / 1000
	total := 0.0
	for _, v := range perClient(cmds0, cmds1, len(clients)) {
		total += v
	}
	r.RedisCmds = total
	r.P50ms, r.P99ms, r.MaxMs = percentiles(lat)
	for i, c := range clients {
		if back[i].sid != c.sid {
			continue
		}
		r.Recovered++
		if back[i].count() == cfg.Missed {
			r.Complete++
		}
	}
	return r, nil
}

// emit makes p broadcast n events "ev" (with an offset: recovery is on).
func emit(ctx context.Context, p *proc, n int, seq *int64) error {
	var r struct{ Sent int }
	if err := p.call(ctx, "emit", map[string]any{"n": n, "base": *seq}, &r); err != nil {
		return err
	}
	*seq += int64(n)
	return nil
}

func waitCount(ctx context.Context, p *proc, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var r struct{ Count int }
		if err := p.call(ctx, "count", nil, &r); err != nil {
			return err
		}
		if r.Count >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s counts %d servers, want %d", p.name, r.Count, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAll waits until every client has received n events.
func waitAll(ctx context.Context, clients []*csrClient, n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range clients {
		for c.count() < n {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("client %s: %d events, want %d", c.sid, c.count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// crash kills the process at once (SIGKILL to its group): nothing is closed or written.
func (p *proc) crash() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// perClient is what each of n clients cost, per command, between two commandstats (the INFO calls of the harness
// left out; commands under 0.05 per client, the servers' background reads, too).
func perClient(a, b map[string]int64, n int) map[string]float64 {
	out := map[string]float64{}
	if n == 0 {
		return out
	}
	for k, v := range b {
		if k == "info" {
			continue
		}
		if d := float64(v-a[k]) / float64(n); d >= 0.05 {
			out[k] = float64(int(d*100+0.5)) / 100
		}
	}
	return out
}

// csrClient is a raw Socket.IO client that recovers its session as socket.io-client does: {pid, offset} in its
// CONNECT, the pid from the server's CONNECT, the offset from the last string argument of each event.
type csrClient struct {
	conn     *websocket.Conn
	sid, pid string
	done     chan struct{}

	mu     sync.Mutex
	offset string
	events int // "ev" events received (the missed ones included)
}

// dialCSR connects and returns once the server's CONNECT arrived (the missed packets of a recovered session
// come before it and are counted).
func dialCSR(ctx context.Context, base string, auth map[string]any) (*csrClient, error) {
	url := "ws" + base[len("http"):] + "/socket.io/?EIO=4&transport=websocket"
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c := &csrClient{conn: conn, done: make(chan struct{})}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || len(open) == 0 || open[0] != '0' {
		_ = conn.Close()
		return nil, fmt.Errorf("engine.io open: %q %v", open, err)
	}
	connect := []byte("40")
	if auth != nil {
		b, _ := json.Marshal(auth)
		connect = append(connect, b...)
	}
	if err := conn.WriteMessage(websocket.TextMessage, connect); err != nil {
		_ = conn.Close()
		return nil, err
	}
	for c.sid == "" {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("socket.io connect: %w", err)
		}
		if bytes.HasPrefix(msg, []byte("40{")) {
			var hs struct{ Sid, Pid string }
			if err := json.Unmarshal(msg[2:], &hs); err != nil || hs.Pid == "" {
				_ = conn.Close()
				return nil, fmt.Errorf("CONNECT %q: no pid (recovery off?)", msg)
			}
			c.sid, c.pid = hs.Sid, hs.Pid
			break
		}
		c.handle(msg)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read()
	return c, nil
}

func (c *csrClient) read() {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if len(msg) == 1 && msg[0] == '2' {
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		c.handle(msg)
	}
}

// handle records an event "ev" and its offset (its last argument).
func (c *csrClient) handle(msg []byte) {
	if !bytes.HasPrefix(msg, []byte(`42["ev",`)) || !bytes.HasSuffix(msg, []byte(`"]`)) {
		return
	}
	i := bytes.LastIndexByte(msg[:len(msg)-2], '"')
	if i < 0 {
		return
	}
	c.mu.Lock()
	c.offset = string(msg[i+1 : len(msg)-2])
	c.events++
	c.mu.Unlock()
}

func (c *csrClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events
}

func (c *csrClient) state() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return map[string]any{"pid": c.pid, "offset": c.offset}
}

// cut closes the connection, as a network failure would.
func (c *csrClient) cut() {
	_ = c.conn.Close()
	<-c.done
}

// dialCSRMany opens n clients, parallel at a time.
func dialCSRMany(ctx context.Context, base string, n, parallel int, auth map[string]any) ([]*csrClient, error) {
	return dialAll(n, parallel, func() (*csrClient, error) { return dialCSR(ctx, base, auth) }, func(cs []*csrClient) {
		for _, c := range cs {
			if c != nil {
				c.cut()
			}
		}
	})
}

// recoveryMarkdown is the summary table: the median of the reps, with their range.
func recoveryMarkdown(run *recoveryRun) string {
	var b strings.Builder
	cfg := run.Config
	fmt.Fprintf(&b, "Connection state recovery, %s, %d rep(s) (Redis %s, Node %s, %d CPUs; %s)\n\n", run.Started.Format(time.RFC3339),
		max(cfg.Reps, 1), run.Machine.Redis, run.Machine.Node, run.Machine.CPUs, run.Machine.Lib)
	b.WriteString("| |")
	for _, s := range cfg.Systems {
		b.WriteString(" " + recoveryLabels[s] + " |")
	}
	b.WriteString("\n|---|")
	for range cfg.Systems {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(name string, f func(recoverySysRs) string) {
		b.WriteString("| " + name + " |")
		for _, s := range cfg.Systems {
			var cells []string
			for _, r := range run.Results {
				if r.System != s {
					continue
				}
				if r.Error != "" {
					cells = append(cells, "error")
				} else {
					cells = append(cells, f(r))
				}
			}
			b.WriteString(" " + strings.Join(slices.Compact(cells), " / ") + " |")
		}
		b.WriteString("\n")
	}
	// num is the median of f over the reps of a system, with the range when they differ.
	num := func(name string, f func(recoverySysRs) float64, format func(float64) string) {
		b.WriteString("| " + name + " |")
		for _, s := range cfg.Systems {
			var v []float64
			for _, r := range run.Results {
				if r.System == s && r.Error == "" {
					v = append(v, f(r))
				}
			}
			b.WriteString(" " + cell(v, format) + " |")
		}
		b.WriteString("\n")
	}
	cmds := func(m map[string]float64) string {
		if len(m) == 0 {
			return "0"
		}
		keys := slices.Sorted(maps.Keys(m))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.2g", strings.ToUpper(k), m[k])
		}
		return strings.Join(parts, ", ")
	}
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	num(fmt.Sprintf("connect rate, %d clients (%d dials in flight), sockets/s", cfg.Connects, cfg.Parallel),
		func(r recoverySysRs) float64 { return r.ConnectRate }, f0)
	num("  server CPU µs per connect (the connects and the 500 ms after)", func(r recoverySysRs) float64 { return r.ConnectCPU }, f0)
	num("  Redis CPU µs per connect", func(r recoverySysRs) float64 { return r.ConnectRCPU }, f0)
	row("Redis commands per connect (commands run by scripts included)", func(r recoverySysRs) string { return cmds(r.ConnectCmds) })
	row(fmt.Sprintf("Redis commands per socket for a burst of %d room joins", cfg.Rooms), func(r recoverySysRs) string { return cmds(r.RoomCmds) })
	for _, k := range []struct {
		name string
		get  func(recoverySysRs) resumeResult
	}{{"killed (SIGKILL)", func(r recoverySysRs) resumeResult { return r.Killed }}, {"dropped", func(r recoverySysRs) resumeResult { return r.Dropped }}} {
		row(fmt.Sprintf("%d clients of a server, %s, back at once: recovered (with exactly the %d missed)", cfg.Resumes, k.name, cfg.Missed),
			func(r recoverySysRs) string { x := k.get(r); return fmt.Sprintf("%d (%d)", x.Recovered, x.Complete) })
		num("  restore latency p50, ms (dial to CONNECT)", func(r recoverySysRs) float64 { return k.get(r).P50ms }, f1)
		num("  restore latency p99, ms", func(r recoverySysRs) float64 { return k.get(r).P99ms }, f1)
		num("  all back in, ms", func(r recoverySysRs) float64 { return k.get(r).WallMs }, f0)
		num("  Redis CPU, ms", func(r recoverySysRs) float64 { return k.get(r).RedisCPU }, f0)
		num("  Redis commands per client", func(r recoverySysRs) float64 { return k.get(r).RedisCmds }, f1)
	}
	return b.String()
}

// recoveryMain is "go run ./bench -recovery".
func recoveryMain(ctx context.Context, cfg *recoveryConfig, dir, libDesc, command string) error {
	run, err := runRecovery(ctx, cfg)
	if run == nil {
		return err
	}
	run.Machine = machine(libDesc, command)
	table := recoveryMarkdown(run)
	b, jerr := json.MarshalIndent(run, "", "  ")
	werr := errors.Join(jerr, os.WriteFile(filepath.Join(dir, "recovery.json"), b, 0o644),
		os.WriteFile(filepath.Join(dir, "recovery.md"), []byte(table), 0o644))
	fmt.Println(table)
	fmt.Fprintf(os.Stderr, "results in %s\n", dir)
	for _, r := range run.Results {
		if r.Error != "" && err == nil {
			err = fmt.Errorf("%s: %s", r.System, r.Error)
		}
	}
	return errors.Join(err, werr)
}
