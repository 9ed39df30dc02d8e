package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// idleResult is the idle-sockets scenario of one system and rep: IdleSockets clients on B that only answer
// pings, then a few broadcasts from A to all of them.
type idleResult struct {
	Sockets     int     `json:"sockets"`
	RSSBefore   int64   `json:"rss_before_bytes"` // B with its one ladder client
	RSSAfter    int64   `json:"rss_after_bytes"`  // B with the idle sockets too, after they settled
	RSSPerSock  float64 `json:"rss_bytes_per_socket"`
	Broadcasts  int64   `json:"broadcasts"`
	Delivered   int64   `json:"delivered"`
	UsPerSend   float64 `json:"cpu_us_per_socket_send"` // B, over the broadcasts
	SysPerSend  float64 `json:"system_cpu_us_per_socket_send"`
	LastMs      float64 `json:"last_socket_ms"` // median over the broadcasts: emit to the last socket's receipt
	LastMsRange [2]float64
	OtherPct    float64 `json:"other_pct"`
}

// idleReadBuffer is the read buffer of each idle client of the harness (10,000 of them): small, they receive little.
const idleReadBuffer = 1024

// idle connects IdleSockets clients to B and measures B's memory per socket (RSS delta), then makes A broadcast
// IdleBroadcasts times, IdleGap apart, and measures B's CPU per socket-send and, per broadcast, the time until the
// last socket has it. The clients are closed at the end, and B gets back to its one ladder client.
func (h *harness) idle(ctx context.Context, cl *cluster, out *sysResult) error {
	cfg := h.cfg
	n := cfg.IdleSockets
	if n <= 0 || cfg.IdleBroadcasts <= 0 {
		return nil
	}
	r := &idleResult{Sockets: n}
	var err error
	if r.RSSBefore, err = procRSS(cl.b.pid()); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	arr := &arrivals{}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	clients, err := dialManyBuf(dctx, cl.b.base, n, arr, idleReadBuffer)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	defer func() { closeAll(clients) }()
	if err := waitSockets(dctx, cl.b, n+1); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	cfg.logf("%s rep %d: %d idle sockets connected in %.1f s", cl.sys, out.Rep, n, time.Since(start).Seconds())
	time.Sleep(2 * time.Second) // let B settle (GC) before its RSS is read
	if r.RSSAfter, err = procRSS(cl.b.pid()); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	r.RSSPerSock = float64(r.RSSAfter-r.RSSBefore) / float64(n)
	if cfg.ProfileRate > 0 && cl.sys != "node" { // after the RSS: a heap profile runs a GC
		for _, kind := range []string{"heap", "goroutine"} {
			file := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-rep%d-idle-B-%s.pprof", cl.sys, out.Rep, kind))
			if err := cl.b.snapshot(ctx, kind, file); err != nil {
				cfg.logf("%s profile of B with the idle sockets: %v", kind, err)
			}
		}
	}

	pids := map[string]int{"B": cl.b.pid(), "harness": selfPid(), "redis": h.redis.Pid(), "A": cl.a.pid(), "C": cl.c.pid()}
	base := h.take(1 << 10)
	arr.reset(base)
	s1 := sampleCPU(pids)
	rate := float64(time.Second) / float64(cfg.IdleGap)
	dur := time.Duration(cfg.IdleBroadcasts)*cfg.IdleGap + cfg.IdleGap/2
	var lr ladderReply
	if err := cl.a.call(ctx, "ladder", map[string]any{"rate": rate, "dur_ms": dur.Milliseconds(), "warm_ms": 0, "base": base}, &lr); err != nil {
		return err
	}
	want := lr.Sent * int64(n)
	waitUntil(10*time.Second, func() bool { return arr.total() >= want })
	s2 := sampleCPU(pids)
	d := delta(s1, s2)
	r.Broadcasts, r.Delivered, r.OtherPct = lr.Sent, arr.total(), d.OtherPct
	if want > 0 {
		r.UsPerSend = float64(d.Procs["B"].Microseconds()) / float64(want)
		r.SysPerSend = float64(d.Sys["B"].Microseconds()) / float64(want)
	}
	if last := arr.lastMs(n); len(last) > 0 {
		r.LastMs = median(last)
		r.LastMsRange = [2]float64{slices.Min(last), slices.Max(last)}
	}
	out.Idle = r
	cfg.logf("%s rep %d: %d idle sockets: RSS +%.1f KB per socket; %d broadcasts, %d/%d delivered, B %.2f µs per socket-send (%.2f in the kernel), last socket after %.1f ms (other %.0f%%)",
		cl.sys, out.Rep, n, r.RSSPerSock/1024, lr.Sent, r.Delivered, want, r.UsPerSend, r.SysPerSend, r.LastMs, d.OtherPct)
	closeAll(clients)
	clients = nil
	return waitSockets(dctx, cl.b, 1)
}

// arrivals is the sink of the idle clients: per broadcast, how many sockets got it, and when the last one did.
type arrivals struct {
	mu   sync.Mutex
	base int64
	by   map[int64]*arrival
	n    int64
}

type arrival struct {
	t, last int64 // µs: emitted, last received
	count   int64
}

func (a *arrivals) reset(base int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.base, a.by, a.n = base, map[int64]*arrival{}, 0
}

func (a *arrivals) event(s, t, now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.by == nil || s < a.base {
		return // a warm-up or an earlier scenario's broadcast
	}
	e := a.by[s]
	if e == nil {
		e = &arrival{t: t}
		a.by[s] = e
	}
	e.count++
	e.last = max(e.last, now)
	a.n++
}

func (a *arrivals) total() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// lastMs returns, for each broadcast every one of the n sockets got, the time from its emission to its last receipt.
func (a *arrivals) lastMs(n int) []float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []float64
	for _, e := range a.by {
		if e.count == int64(n) {
			out = append(out, float64(e.last-e.t)/1000)
		}
	}
	return out
}
