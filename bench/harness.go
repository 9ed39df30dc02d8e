package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// Systems the harness knows, in the default order.
var allSystems = []string{"node", "goredis", "rueidis", "goredis-ws", "rueidis-ws", "zishang"}

var systemLabels = map[string]string{
	"node":       "Node 0.3.1",
	"goredis":    "Go, go-redis",
	"rueidis":    "Go, rueidis",
	"goredis-ws": "Go, go-redis, wstransport",
	"rueidis-ws": "Go, rueidis, wstransport",
	"zishang":    "zishang520 adapters/redis v3.0.2",
}

// wsSuffix marks the systems whose servers use this module's websocket transport (wstransport) instead of the
// engine's own.
const wsSuffix = "-ws"

// isLib reports whether a system is this library (with either websocket transport).
func isLib(sys string) bool {
	a := strings.TrimSuffix(sys, wsSuffix)
	return a == "goredis" || a == "rueidis"
}

// goServerArgs is the command line of the Go server process of a system.
func goServerArgs(exe, sys, redisAddr string) []string {
	args := []string{exe, "serve", "-adapter", strings.TrimSuffix(sys, wsSuffix), "-redis", redisAddr}
	if strings.HasSuffix(sys, wsSuffix) {
		args = append(args, "-transport", "wstransport")
	}
	return args
}

// config is one benchmark run.
type config struct {
	Root    string   // repository root
	Systems []string // subset of allSystems
	Reps    int

	Steps   []float64     // ladder rates, broadcasts/s
	StepDur time.Duration // length of each step
	Warm    time.Duration // dropped head of each step
	Drain   time.Duration // longest wait for late events after a step
	CatchUp time.Duration // this library only: longest further wait for receivers to catch up after a lossy step
	Retries int           // redos of a step flagged as contaminated
	Other   float64       // contamination threshold: machine busy% minus known processes (percent of one core)

	FanoutSockets int
	FanoutRate    float64
	FanoutDur     time.Duration

	IdleSockets    int           // the idle-sockets scenario (0: skipped)
	IdleBroadcasts int           // broadcasts to all of them
	IdleGap        time.Duration // between two of those broadcasts

	ReqRate float64
	ReqDur  time.Duration

	PubEmitters int
	PubDur      time.Duration
	BenchN      int // redis-benchmark requests (0: skip the ceiling)

	Budget   time.Duration // after this, contaminated steps are no longer redone
	MaxRedos int           // contaminated steps redone in the whole run, at most, shared evenly by systems and reps

	// GoServer returns the command line of the Go server process of a system (see goServerArgs).
	GoServer func(sys, redisAddr string) []string
	// ProfileRate, when > 0, takes a CPU profile of the Go servers A and B during the measured window of the ladder
	// step at that rate, of B during the fan-out and of A during the publish path, into ProfileDir.
	ProfileRate float64
	ProfileDir  string

	Log io.Writer
}

func (c *config) logf(format string, args ...any) {
	fmt.Fprintf(c.Log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

// stepResult is one ladder step of one system.
type stepResult struct {
	System   string  `json:"system"`
	Rep      int     `json:"rep"`
	Target   float64 `json:"target"`
	Attempts int     `json:"attempts"`
	Sent     int64   `json:"sent"`
	Achieved float64 `json:"achieved"` // broadcasts/s over the measured window
	Lost     int64   `json:"lost"`     // summed over the receivers
	Dups     int64   `json:"dups"`
	Late     int64   `json:"late_from_earlier_steps"` // events of earlier steps received during this one
	// This library only, when something was not received within the drain window: once the receivers have caught
	// up, what they still had not received, and how much of it their adapters counted lost (Stats().Lost, e.g.
	// entries trimmed by MAXLEN before they were read). Unaccounted = NotReceived - CountedLost: lost silently.
	CaughtUp *catchUp `json:"caught_up,omitempty"`
	P50ms    float64  `json:"p50_ms"`
	P99ms    float64  `json:"p99_ms"`
	MaxMs    float64  `json:"max_ms"`
	// CPU µs per broadcast (measured window) by process: A, B, C, redis, harness.
	CPU      map[string]float64 `json:"cpu_us_per_broadcast"`
	BusyPct  float64            `json:"machine_busy_pct"`
	OtherPct float64            `json:"other_pct"`
	Flagged  bool               `json:"flagged"`
	// Saturated: the emitter was off target (< 95%) or p99 >= 50 ms.
	Saturated bool `json:"saturated"`
	OK        bool `json:"sustainable"` // not saturated, nothing lost or duplicated
}

// catchUp is what a step of this library's adapters left undelivered once the receivers caught up.
type catchUp struct {
	NotReceived int64   `json:"not_received"` // summed over the receivers
	CountedLost int64   `json:"counted_lost"` // the receivers' Stats().Lost, during the step and the catch-up
	Unaccounted int64   `json:"unaccounted"`  // NotReceived - CountedLost
	WaitS       float64 `json:"wait_s"`       // catch-up time after the drain window (Unaccounted > 0: gave up)
}

// reqResult is a series of fetchSockets or serverSideEmitWithAck calls.
type reqResult struct {
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Responses [2]int  `json:"responses_min_max"` // sockets (fetch) or acks (sse) per call
}

// sysResult is everything measured for one system in one rep.
type sysResult struct {
	System string       `json:"system"`
	Rep    int          `json:"rep"`
	Error  string       `json:"error,omitempty"`
	Steps  []stepResult `json:"steps"`

	FanoutSockets    int     `json:"fanout_sockets"`
	FanoutSent       int64   `json:"fanout_broadcasts"`
	FanoutDelivered  int64   `json:"fanout_delivered"`
	FanoutUsPerSend  float64 `json:"fanout_cpu_us_per_socket_send"`
	FanoutSysPerSend float64 `json:"fanout_system_cpu_us_per_socket_send"` // the kernel's part of FanoutUsPerSend
	FanoutOtherPct   float64 `json:"fanout_other_pct"`

	Idle *idleResult `json:"idle_sockets,omitempty"`

	Fetch *reqResult `json:"fetch_sockets,omitempty"`
	SSE   *reqResult `json:"server_side_emit_ack,omitempty"`

	PubEmits     int64   `json:"publish_emits"`
	PubXadds     int64   `json:"publish_xadds"`
	PubRate      float64 `json:"publish_xadds_per_s"`
	PubCPUPerOp  float64 `json:"publish_cpu_us_per_xadd"`
	PubRedisUsOp float64 `json:"publish_redis_cpu_us_per_xadd"`
}

// runResult is a whole run.
type runResult struct {
	Started  time.Time   `json:"started"`
	Duration string      `json:"duration"`
	Machine  machineInfo `json:"machine"`
	Systems  []string    `json:"systems"`
	Reps     int         `json:"reps"`
	Ceiling  []float64   `json:"redis_benchmark_xadd_per_s"` // one per rep
	Results  []sysResult `json:"results"`
}

type machineInfo struct {
	CPUs    int    `json:"cpus"`
	Redis   string `json:"redis"`
	Go      string `json:"go"`
	Node    string `json:"node"`
	Lib     string `json:"lib"`
	Command string `json:"command"`
}

// harness holds the shared state of a run.
type harness struct {
	cfg     *config
	redis   *redistest.Server
	rc      *redis.Client
	seq     int64 // next sequence number: every step uses a fresh range
	redos   int   // contaminated steps redone so far by the current system in the current rep
	rep     int   // current rep and step attempt, for file names
	attempt int
	start   time.Time
}

// startRedis starts the benchmark's redis-server (a free loopback port, no persistence) and a client of it.
func startRedis() (*redistest.Server, *redis.Client, error) {
	if err := redistest.Missing(); err != nil {
		return nil, nil, err
	}
	srv, err := redistest.StartServer(redistest.ServerOptions{})
	if err != nil {
		return nil, nil, err
	}
	return srv, redis.NewClient(&redis.Options{Addr: srv.Addr()}), nil
}

// run executes the whole benchmark.
func run(ctx context.Context, cfg *config) (*runResult, error) {
	for _, s := range cfg.Systems {
		if _, ok := systemLabels[s]; !ok {
			return nil, fmt.Errorf("unknown system %q (known: %s)", s, strings.Join(allSystems, ","))
		}
		if s == "node" {
			if _, err := exec.LookPath("node"); err != nil {
				return nil, fmt.Errorf("system node: node not found on PATH: %w", err)
			}
		}
	}
	srv, rc, err := startRedis()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	defer rc.Close()
	h := &harness{cfg: cfg, redis: srv, rc: rc, start: time.Now(), seq: 1}

	res := &runResult{Started: h.start.UTC(), Systems: cfg.Systems, Reps: cfg.Reps}
	cfg.logf("redis-server on %s (pid %d)", srv.Addr(), srv.Pid())
	for rep := 1; rep <= cfg.Reps; rep++ {
		if cfg.BenchN > 0 {
			c, err := h.ceiling(ctx)
			if err != nil {
				cfg.logf("redis-benchmark: %v", err)
			} else {
				cfg.logf("rep %d: redis-benchmark XADD ceiling %.0f/s", rep, c)
			}
			res.Ceiling = append(res.Ceiling, c)
		}
		// Alternate: each rep starts one system later.
		order := slices.Clone(cfg.Systems)
		k := (rep - 1) % len(order)
		order = append(order[k:], order[:k]...)
		for _, sys := range order {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			r := h.system(ctx, sys, rep)
			if r.Error != "" {
				cfg.logf("%s rep %d: ERROR %s", sys, rep, r.Error)
			}
			res.Results = append(res.Results, r)
		}
	}
	res.Duration = time.Since(h.start).Round(time.Second).String()
	return res, nil
}

// ceiling runs redis-benchmark's pipelined XADD against the run's Redis.
func (h *harness) ceiling(ctx context.Context) (float64, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// As long as a broadcast entry's data field; no comma or quote, so that the CSV output stays simple.
	data := strings.Repeat("d", len(`[2,{"type":2,"data":["ev",{"t":1790000000000000,"s":1,"pad":""}],"nsp":"/"}]`)+len(pad))
	cmd := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", strconv.Itoa(h.redis.Port()),
		"-P", "64", "-c", "50", "-n", strconv.Itoa(h.cfg.BenchN), "--csv",
		"XADD", "bench", "MAXLEN", "~", "10000", "*", "uid", "aBcDeFgHiJkLmNoP", "nsp", "/", "type", "3", "data", data)
	out, err := cmd.Output()
	_ = h.rc.Del(context.Background(), "bench").Err()
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), `","`)
		if len(f) >= 2 && strings.HasPrefix(f[0], `"XADD`) {
			return strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		}
	}
	return 0, fmt.Errorf("no XADD line in redis-benchmark output: %s", out)
}

// cluster is the three servers of one system, and the receivers' clients.
type cluster struct {
	sys     string
	a, b, c *proc
	recB    *recorder
	recC    *recorder
	cliB    *wsClient
	cliC    *wsClient
}

func (cl *cluster) close() {
	for _, c := range []*wsClient{cl.cliB, cl.cliC} {
		if c != nil {
			c.close()
		}
	}
	var wg sync.WaitGroup
	for _, p := range []*proc{cl.a, cl.b, cl.c} {
		if p != nil {
			wg.Go(p.kill)
		}
	}
	wg.Wait()
}

func (h *harness) startServer(ctx context.Context, sys, name string) (*proc, error) {
	addr := h.redis.Addr()
	if sys == "node" {
		dir := filepath.Join(h.cfg.Root, "bench", "node")
		return startProc(ctx, name, nil, dir, 30*time.Second, "node", "server.js", "--redis-url=redis://"+addr)
	}
	return startProc(ctx, name, nil, h.cfg.Root, 30*time.Second, h.cfg.GoServer(sys, addr)...)
}

// system runs every scenario for one system.
func (h *harness) system(ctx context.Context, sys string, rep int) (out sysResult) {
	out = sysResult{System: sys, Rep: rep}
	cfg := h.cfg
	cfg.logf("%s rep %d: starting 3 servers", sys, rep)
	if err := h.rc.FlushAll(ctx).Err(); err != nil {
		out.Error = err.Error()
		return out
	}
	h.redos = 0
	cl := &cluster{sys: sys, recB: &recorder{}, recC: &recorder{}}
	defer cl.close()
	var errs [3]error
	var wg sync.WaitGroup
	for i, x := range []struct {
		p    **proc
		name string
	}{{&cl.a, "A"}, {&cl.b, "B"}, {&cl.c, "C"}} {
		wg.Go(func() { *x.p, errs[i] = h.startServer(ctx, sys, x.name) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		out.Error = err.Error()
		return out
	}
	if err := h.setup(ctx, cl); err != nil {
		out.Error = err.Error()
		return out
	}

	// Rate ladder.
	fails := 0
	for _, rate := range cfg.Steps {
		st, err := h.step(ctx, cl, rate, rep)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		out.Steps = append(out.Steps, st)
		cfg.logf("%s rep %d: %6.0f/s achieved %6.0f lost %d dup %d p50 %.2f p99 %.2f max %.1f ms, cpu µs/bcast A %.1f B %.1f C %.1f redis %.1f, busy %.0f%% other %.0f%%%s",
			sys, rep, rate, st.Achieved, st.Lost, st.Dups, st.P50ms, st.P99ms, st.MaxMs,
			st.CPU["A"], st.CPU["B"], st.CPU["C"], st.CPU["redis"], st.BusyPct, st.OtherPct, flagNote(st))
		if st.OK {
			fails = 0
		} else {
			fails++
		}
		// Above saturation every further step only grows the backlog: stop after a clean failure at 10k/s or more, or
		// two failures in a row (a failure while something else used the CPU may not be saturation).
		if !st.OK && ((rate >= 10000 && !st.Flagged) || fails >= 2) {
			break
		}
	}

	if err := h.fanout(ctx, cl, &out); err != nil {
		out.Error = err.Error()
		return out
	}
	if err := h.idle(ctx, cl, &out); err != nil {
		out.Error = err.Error()
		return out
	}
	if sys != "zishang" { // its fetchSockets and serverSideEmit do not work across servers (see bench/README.md)
		for _, kind := range []string{"fetch", "sse"} {
			r, err := h.requests(ctx, cl, kind)
			if err != nil {
				out.Error = err.Error()
				return out
			}
			if kind == "fetch" {
				out.Fetch = r
			} else {
				out.SSE = r
			}
			cfg.logf("%s rep %d: %s at %.0f/s: %d calls, %d errors, p50 %.2f p99 %.2f max %.2f ms, responses %v",
				sys, rep, kind, cfg.ReqRate, r.Calls, r.Errors, r.P50ms, r.P99ms, r.MaxMs, r.Responses)
		}
	}
	if err := h.publish(ctx, cl, &out); err != nil {
		out.Error = err.Error()
		return out
	}
	cfg.logf("%s rep %d: publish path, %d emitters: %.0f XADD/s reaching Redis (A %.1f µs, Redis %.1f µs per XADD)",
		sys, rep, cfg.PubEmitters, out.PubRate, out.PubCPUPerOp, out.PubRedisUsOp)
	return out
}

func flagNote(st stepResult) string {
	if st.Flagged {
		return fmt.Sprintf(" FLAGGED (after %d attempts)", st.Attempts)
	}
	if st.Attempts > 1 {
		return fmt.Sprintf(" (clean at attempt %d)", st.Attempts)
	}
	return ""
}

// setup waits until the cluster works: the servers see each other, the receivers are connected, and a probe
// broadcast from A reaches both.
func (h *harness) setup(ctx context.Context, cl *cluster) error {
	if cl.sys != "zishang" { // its ServerCount is always 1
		deadline := time.Now().Add(15 * time.Second)
		for {
			var r struct{ Count int }
			if err := cl.a.call(ctx, "count", nil, &r); err != nil {
				return err
			}
			if r.Count >= 3 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("A sees %d servers after 15s, want 3", r.Count)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var err error
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if cl.cliB, err = dialClient(dctx, cl.b.base, cl.recB); err != nil {
		return err
	}
	if cl.cliC, err = dialClient(dctx, cl.c.base, cl.recC); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		base := h.take(100)
		cl.recB.reset(base, 100, 0)
		cl.recC.reset(base, 100, 0)
		var lr ladderReply
		if err := cl.a.call(ctx, "ladder", map[string]any{"rate": 100, "dur_ms": 300, "warm_ms": 0, "base": base}, &lr); err != nil {
			return err
		}
		waitUntil(time.Second, func() bool { return cl.recB.distinctCount() > 0 && cl.recC.distinctCount() > 0 })
		if cl.recB.distinctCount() > 0 && cl.recC.distinctCount() > 0 {
			return nil
		}
		if attempt == 10 {
			return errors.New("probe broadcasts from A never reached both receivers")
		}
	}
}

// take reserves n sequence numbers.
func (h *harness) take(n int) int64 {
	base := h.seq
	h.seq += int64(n)
	return base
}

func waitUntil(max time.Duration, cond func() bool) {
	deadline := time.Now().Add(max)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

type ladderReply struct {
	Sent     int64   `json:"sent"`
	SentWarm int64   `json:"sent_warm"`
	WindowS  float64 `json:"window_s"`
}

func (h *harness) pids(cl *cluster) map[string]int {
	m := map[string]int{"redis": h.redis.Pid(), "harness": selfPid()}
	for name, p := range map[string]*proc{"A": cl.a, "B": cl.b, "C": cl.c} {
		if p != nil && !p.exited() {
			m[name] = p.pid()
		}
	}
	return m
}

// redoShare is how many contaminated steps one system may redo in one rep: an even share of MaxRedos (at least
// one when MaxRedos > 0), so that every system gets the same chance of a clean step.
func (h *harness) redoShare() int {
	if h.cfg.MaxRedos <= 0 {
		return 0
	}
	return max(1, h.cfg.MaxRedos/(len(h.cfg.Systems)*h.cfg.Reps))
}

// step runs one ladder step, redone while contaminated (bounded by Retries and the time budget); it keeps the
// cleanest attempt.
func (h *harness) step(ctx context.Context, cl *cluster, rate float64, rep int) (stepResult, error) {
	var best stepResult
	for attempt := 1; ; attempt++ {
		h.rep, h.attempt = rep, attempt
		st, err := h.stepOnce(ctx, cl, rate)
		if err != nil {
			return st, err
		}
		st.System, st.Rep, st.Attempts = cl.sys, rep, attempt
		if attempt == 1 || st.OtherPct < best.OtherPct {
			best = st
		}
		best.Attempts = attempt
		if !st.Flagged || attempt > h.cfg.Retries || time.Since(h.start) > h.cfg.Budget || h.redos >= h.redoShare() {
			return best, nil
		}
		h.redos++
		h.cfg.logf("%s rep %d: %.0f/s contaminated (other %.0f%%), redoing", cl.sys, rep, rate, st.OtherPct)
	}
}

func (h *harness) stepOnce(ctx context.Context, cl *cluster, rate float64) (stepResult, error) {
	cfg := h.cfg
	size := int(rate*cfg.StepDur.Seconds()*1.05) + 100
	base := h.take(size)
	warmT := time.Now().Add(cfg.Warm).UnixMicro()
	cl.recB.reset(base, size, warmT)
	cl.recC.reset(base, size, warmT)
	pids := h.pids(cl)

	var s1, s2 cpuSample
	sampled := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(sampled)
		time.Sleep(time.Until(t0.Add(cfg.Warm)))
		s1 = sampleCPU(pids)
		time.Sleep(time.Until(t0.Add(cfg.StepDur)))
		s2 = sampleCPU(pids)
	}()
	var profiled sync.WaitGroup
	if cfg.ProfileRate == rate && cl.sys != "node" {
		for name, p := range map[string]*proc{"A": cl.a, "B": cl.b} {
			h.profile(ctx, &profiled, p, t0.Add(cfg.Warm), cfg.StepDur-cfg.Warm,
				fmt.Sprintf("%s-rep%d-%.0f-%s-attempt%d.pprof", cl.sys, h.rep, rate, name, h.attempt), cl.sys+": "+name)
		}
	}
	defer profiled.Wait()
	cctx, cancel := context.WithTimeout(ctx, cfg.StepDur+60*time.Second)
	defer cancel()
	lost0, counts := h.countedLost(ctx, cl)
	var lr ladderReply
	err := cl.a.call(cctx, "ladder", map[string]any{
		"rate": rate, "dur_ms": cfg.StepDur.Milliseconds(), "warm_ms": cfg.Warm.Milliseconds(), "base": base,
	}, &lr)
	<-sampled
	if err != nil {
		return stepResult{}, err
	}
	// Let late events arrive: until every receiver has everything, or nothing new for 1s, or Drain.
	deadline := time.Now().Add(cfg.Drain)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		nb, nc := cl.recB.distinctCount(), cl.recC.distinctCount()
		if nb >= lr.Sent && nc >= lr.Sent {
			break
		}
		if nb+nc != last {
			last, lastChange = nb+nc, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	st := stepResult{Target: rate, Sent: lr.Sent, CPU: map[string]float64{}}
	if lr.WindowS > 0 {
		st.Achieved = float64(lr.SentWarm) / lr.WindowS
	}
	var lat []int32
	for _, r := range []*recorder{cl.recB, cl.recC} {
		d, dups, stray, l := r.snapshot()
		st.Lost += lr.Sent - d
		st.Dups += dups
		st.Late += stray
		lat = append(lat, l...)
	}
	st.P50ms, st.P99ms, st.MaxMs = percentiles(lat)
	if counts && st.Lost > 0 {
		st.CaughtUp = h.catchUp(ctx, cl, lr.Sent, lost0)
	}
	d := delta(s1, s2)
	st.BusyPct, st.OtherPct = d.BusyPct, d.OtherPct
	if lr.SentWarm > 0 {
		for name, v := range d.Procs {
			st.CPU[name] = float64(v.Microseconds()) / float64(lr.SentWarm)
		}
	}
	st.Flagged = st.OtherPct > cfg.Other
	// On target: over the window and over the whole step (a late burst can make up for a slow start in the window).
	onTarget := st.Achieved >= 0.95*rate && float64(lr.Sent) >= 0.95*rate*cfg.StepDur.Seconds()
	st.Saturated = !onTarget || len(lat) == 0 || st.P99ms >= 50
	st.OK = st.Lost == 0 && st.Dups == 0 && !st.Saturated
	return st, nil
}

// countedLost returns the sum of Stats().Lost of receivers B and C, and whether both adapters count loss.
func (h *harness) countedLost(ctx context.Context, cl *cluster) (int64, bool) {
	var sum int64
	for _, p := range []*proc{cl.b, cl.c} {
		var r struct {
			Supported bool  `json:"supported"`
			Lost      int64 `json:"lost"`
		}
		if err := p.call(ctx, "stats", nil, &r); err != nil || !r.Supported {
			return 0, false
		}
		sum += r.Lost
	}
	return sum, true
}

// catchUp waits, after a step's drain window, until every broadcast of the step was received by both receivers or
// counted lost by their adapters, or nothing has changed for 7 s (at most CatchUp), and reports the difference. 7 s:
// a reader that has caught up checks its stream at the latest after its XREAD BLOCK (5 s by default) and the 1 s
// between its checks.
func (h *harness) catchUp(ctx context.Context, cl *cluster, sent, lost0 int64) *catchUp {
	start := time.Now()
	out := &catchUp{}
	last, lastChange := int64(-1), time.Now()
	for {
		lost, ok := h.countedLost(ctx, cl)
		if !ok {
			return nil
		}
		received := cl.recB.distinctCount() + cl.recC.distinctCount()
		out.NotReceived, out.CountedLost = 2*sent-received, lost-lost0
		out.Unaccounted = out.NotReceived - out.CountedLost
		if out.Unaccounted <= 0 {
			break
		}
		if progress := received + lost; progress != last {
			last, lastChange = progress, time.Now()
		}
		if time.Since(lastChange) > 7*time.Second || time.Since(start) > h.cfg.CatchUp || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.WaitS = time.Since(start).Seconds()
	h.cfg.logf("%s: caught up after %.1f s: %d not received, %d counted lost by the adapters, %d unaccounted",
		cl.sys, out.WaitS, out.NotReceived, out.CountedLost, out.Unaccounted)
	return out
}

// percentiles returns p50, p99 and max in milliseconds.
func percentiles(us []int32) (p50, p99, mx float64) {
	if len(us) == 0 {
		return 0, 0, 0
	}
	slices.Sort(us)
	at := func(q float64) float64 {
		i := int(q * float64(len(us)-1))
		return float64(us[i]) / 1000
	}
	return at(0.50), at(0.99), float64(us[len(us)-1]) / 1000
}

// fanout: one receiver (B) with FanoutSockets clients, A broadcasting at a low rate; CPU µs of B per socket-send.
func (h *harness) fanout(ctx context.Context, cl *cluster, out *sysResult) error {
	cfg := h.cfg
	n := cfg.FanoutSockets
	if n <= 0 {
		return nil
	}
	cl.cliB.close()
	cl.cliB = nil
	cnt := &counter{}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	clients, err := dialMany(dctx, cl.b.base, n, cnt)
	if err != nil {
		return fmt.Errorf("fan-out: %w", err)
	}
	defer func() { closeAll(clients) }()
	// Warm up (the first broadcasts to new sockets take slower paths), then measure.
	var lr ladderReply
	base := h.take(1 << 20)
	if err := cl.a.call(ctx, "ladder", map[string]any{"rate": cfg.FanoutRate, "dur_ms": 500, "warm_ms": 0, "base": base}, &lr); err != nil {
		return err
	}
	want := lr.Sent * int64(n)
	waitUntil(5*time.Second, func() bool { return cnt.load() >= want })
	before := cnt.load()
	pids := map[string]int{"B": cl.b.pid(), "harness": selfPid(), "redis": h.redis.Pid(), "A": cl.a.pid(), "C": cl.c.pid()}
	s1 := sampleCPU(pids)
	var profiled sync.WaitGroup
	if cfg.ProfileRate > 0 && cl.sys != "node" {
		h.profile(ctx, &profiled, cl.b, time.Time{}, cfg.FanoutDur, fmt.Sprintf("%s-rep%d-fanout-B.pprof", cl.sys, out.Rep),
			cl.sys+": B during fan-out")
	}
	err = cl.a.call(ctx, "ladder", map[string]any{"rate": cfg.FanoutRate, "dur_ms": cfg.FanoutDur.Milliseconds(), "warm_ms": 0, "base": base + 1<<19}, &lr)
	profiled.Wait()
	if err != nil {
		return err
	}
	want = lr.Sent * int64(n)
	waitUntil(cfg.Drain, func() bool { return cnt.load()-before >= want })
	s2 := sampleCPU(pids)
	d := delta(s1, s2)
	out.FanoutSockets = n
	out.FanoutSent = lr.Sent
	out.FanoutDelivered = cnt.load() - before
	out.FanoutOtherPct = d.OtherPct
	if want > 0 {
		out.FanoutUsPerSend = float64(d.Procs["B"].Microseconds()) / float64(want)
		out.FanoutSysPerSend = float64(d.Sys["B"].Microseconds()) / float64(want)
	}
	cfg.logf("%s rep %d: fan-out %d sockets, %d broadcasts: %d/%d delivered, B %.2f µs per socket-send (%.2f in the kernel) (other %.0f%%)",
		cl.sys, out.Rep, n, lr.Sent, out.FanoutDelivered, want, out.FanoutUsPerSend, out.FanoutSysPerSend, d.OtherPct)
	closeAll(clients)
	clients = nil
	// B gets its single client back, so that fetchSockets finds one socket on each receiver. The closed fan-out
	// sockets leave B asynchronously: wait until B holds only the new one, or a fetchSockets may still count one.
	if cl.cliB, err = dialClient(dctx, cl.b.base, cl.recB); err != nil {
		return err
	}
	return waitSockets(dctx, cl.b, 1)
}

// profile takes, in the background from start (at once if zero), a CPU profile of p for d into ProfileDir/name;
// wg waits for it. A failure is logged with what.
func (h *harness) profile(ctx context.Context, wg *sync.WaitGroup, p *proc, start time.Time, d time.Duration, name, what string) {
	file := filepath.Join(h.cfg.ProfileDir, name)
	wg.Go(func() {
		time.Sleep(time.Until(start))
		if err := p.profile(ctx, d, file); err != nil {
			h.cfg.logf("CPU profile of %s: %v", what, err)
		}
	})
}

// waitSockets waits until p reports exactly want connected sockets.
func waitSockets(ctx context.Context, p *proc, want int) error {
	var r struct {
		Sockets int `json:"sockets"`
	}
	for {
		if err := p.call(ctx, "sockets", nil, &r); err != nil {
			return fmt.Errorf("sockets: %w", err)
		}
		if r.Sockets == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fan-out: %d sockets still on the receiver, want %d: %w", r.Sockets, want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type requestsReply struct {
	RTTus     []int64 `json:"rtt_us"`
	Responses []int   `json:"responses"`
	Errors    int     `json:"errors"`
}

func (h *harness) requests(ctx context.Context, cl *cluster, kind string) (*reqResult, error) {
	cfg := h.cfg
	cctx, cancel := context.WithTimeout(ctx, cfg.ReqDur+60*time.Second)
	defer cancel()
	var rr requestsReply
	if err := cl.a.call(cctx, "requests", map[string]any{"kind": kind, "rate": cfg.ReqRate, "dur_ms": cfg.ReqDur.Milliseconds()}, &rr); err != nil {
		return nil, err
	}
	r := &reqResult{Calls: len(rr.RTTus) + rr.Errors, Errors: rr.Errors}
	lat := make([]int32, len(rr.RTTus))
	for i, v := range rr.RTTus {
		lat[i] = int32(min(v, 1<<31-1))
	}
	r.P50ms, r.P99ms, r.MaxMs = percentiles(lat)
	if len(rr.Responses) > 0 {
		r.Responses = [2]int{slices.Min(rr.Responses), slices.Max(rr.Responses)}
	}
	return r, nil
}

// publish: A alone (B and C stopped), PubEmitters concurrent emitters; XADDs reaching Redis per second.
func (h *harness) publish(ctx context.Context, cl *cluster, out *sysResult) error {
	cfg := h.cfg
	if cfg.PubEmitters <= 0 {
		return nil
	}
	for _, c := range []**wsClient{&cl.cliB, &cl.cliC} {
		if *c != nil {
			(*c).close()
			*c = nil
		}
	}
	var wg sync.WaitGroup
	for _, p := range []*proc{cl.b, cl.c} {
		wg.Go(p.kill)
	}
	wg.Wait()
	before, err := h.xaddCalls(ctx)
	if err != nil {
		return err
	}
	pids := map[string]int{"A": cl.a.pid(), "redis": h.redis.Pid()}
	s1 := sampleCPU(pids)
	cctx, cancel := context.WithTimeout(ctx, cfg.PubDur+60*time.Second)
	defer cancel()
	var profiled sync.WaitGroup
	if cfg.ProfileRate > 0 && cl.sys != "node" {
		h.profile(cctx, &profiled, cl.a, time.Time{}, cfg.PubDur, fmt.Sprintf("%s-rep%d-publish-A.pprof", cl.sys, h.rep),
			cl.sys+": A (publish path)")
	}
	defer profiled.Wait()
	var pr struct{ Emits int64 }
	if err := cl.a.call(cctx, "publish", map[string]any{"emitters": cfg.PubEmitters, "dur_ms": cfg.PubDur.Milliseconds()}, &pr); err != nil {
		return err
	}
	s2 := sampleCPU(pids)
	after, err := h.xaddCalls(ctx)
	if err != nil {
		return err
	}
	d := delta(s1, s2)
	out.PubEmits = pr.Emits
	out.PubXadds = after - before
	out.PubRate = float64(out.PubXadds) / d.Wall.Seconds()
	if out.PubXadds > 0 {
		out.PubCPUPerOp = float64(d.Procs["A"].Microseconds()) / float64(out.PubXadds)
		out.PubRedisUsOp = float64(d.Procs["redis"].Microseconds()) / float64(out.PubXadds)
	}
	return nil
}

// xaddCalls returns how many XADD commands Redis has executed.
func (h *harness) xaddCalls(ctx context.Context) (int64, error) {
	info, err := h.rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_xadd:calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		return strconv.ParseInt(n, 10, 64)
	}
	return 0, nil
}
