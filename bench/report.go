package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// writeResults writes results.json (everything), steps.csv (one line per ladder step) and summary.md (the tables).
func writeResults(dir string, cfg *config, res *runResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "steps.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"system", "rep", "target", "attempts", "sent", "achieved", "lost", "dups", "late", "p50_ms", "p99_ms", "max_ms",
		"cpu_us_A", "cpu_us_B", "cpu_us_C", "cpu_us_redis", "cpu_us_harness", "busy_pct", "other_pct", "flagged", "saturated", "sustainable"})
	ff := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	for _, r := range res.Results {
		for _, s := range r.Steps {
			_ = w.Write([]string{s.System, strconv.Itoa(s.Rep), ff(s.Target), strconv.Itoa(s.Attempts), strconv.FormatInt(s.Sent, 10),
				ff(s.Achieved), strconv.FormatInt(s.Lost, 10), strconv.FormatInt(s.Dups, 10), strconv.FormatInt(s.Late, 10), ff(s.P50ms), ff(s.P99ms), ff(s.MaxMs),
				ff(s.CPU["A"]), ff(s.CPU["B"]), ff(s.CPU["C"]), ff(s.CPU["redis"]), ff(s.CPU["harness"]),
				ff(s.BusyPct), ff(s.OtherPct), strconv.FormatBool(s.Flagged), strconv.FormatBool(s.Saturated), strconv.FormatBool(s.OK)})
		}
	}
	w.Flush()
	if err := firstErr(w.Error(), f.Close()); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(markdown(cfg, res)), 0o644)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// perSystem returns the results of one system, one per rep (failed reps included).
func perSystem(res *runResult, sys string) []sysResult {
	var out []sysResult
	for _, r := range res.Results {
		if r.System == sys {
			out = append(out, r)
		}
	}
	return out
}

func stepAt(r sysResult, target float64) (stepResult, bool) {
	for _, s := range r.Steps {
		if s.Target == target {
			return s, true
		}
	}
	return stepResult{}, false
}

// sustainable is the highest step with 100% delivered, no duplicate, p99 < 50 ms and the emitter on target.
func sustainable(r sysResult) float64 {
	best := 0.0
	for _, s := range r.Steps {
		if s.OK && s.Target > best {
			best = s.Target
		}
	}
	return best
}

// collect applies f to every rep of sys and keeps the values that exist.
func collect(res *runResult, sys string, f func(sysResult) (float64, bool)) []float64 {
	var vals []float64
	for _, r := range perSystem(res, sys) {
		if r.Error != "" {
			continue
		}
		if v, ok := f(r); ok && !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	return vals
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cell formats the median, with the range when the reps differ.
func cell(v []float64, format func(float64) string) string {
	if len(v) == 0 {
		return "–"
	}
	m := format(median(v))
	lo, hi := format(slices.Min(v)), format(slices.Max(v))
	if len(v) == 1 || lo == hi {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, lo, hi)
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return strings.TrimSuffix(strconv.FormatFloat(v/1000, 'f', 1, 64), ".0") + "k"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

func rateK(v float64) string { return strconv.FormatFloat(v/1000, 'f', 0, 64) + "k" }
func ms(v float64) string    { return strconv.FormatFloat(v, 'f', 1, 64) }
func us(v float64) string    { return strconv.FormatFloat(v, 'f', 1, 64) }
func usShort(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// ratio formats a/b against Node's median.
func ratio(vals []float64, node []float64) string {
	if len(vals) == 0 || len(node) == 0 {
		return ""
	}
	n := median(node)
	if n == 0 || math.IsNaN(n) {
		return ""
	}
	return fmt.Sprintf(" (%.2f×)", median(vals)/n)
}

// markdown renders the summary table, the per-step table and the run's context.
func markdown(cfg *config, res *runResult) string {
	var b strings.Builder
	systems := res.Systems
	hasNode := slices.Contains(systems, "node")
	header := func(first string) {
		b.WriteString("| " + first + " |")
		for _, s := range systems {
			b.WriteString(" " + systemLabels[s] + " |")
		}
		b.WriteString("\n|---|")
		for range systems {
			b.WriteString("---|")
		}
		b.WriteString("\n")
	}
	type metric struct {
		name  string
		get   func(sysResult) (float64, bool)
		fmt   func(float64) string
		ratio bool
	}
	row := func(m metric) {
		b.WriteString("| " + m.name + " |")
		var node []float64
		if hasNode {
			node = collect(res, "node", m.get)
		}
		for _, s := range systems {
			v := collect(res, s, m.get)
			c := cell(v, m.fmt)
			if m.ratio && s != "node" {
				c += ratio(v, node)
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	stepCPU := func(target float64, who ...string) func(sysResult) (float64, bool) {
		return func(r sysResult) (float64, bool) {
			s, ok := stepAt(r, target)
			if !ok {
				return 0, false
			}
			sum := 0.0
			for _, w := range who {
				sum += s.CPU[w]
			}
			return sum, true
		}
	}
	mid := 10000.0
	low := 5000.0
	if !slices.Contains(cfg.Steps, mid) {
		mid = cfg.Steps[len(cfg.Steps)-1]
	}
	if !slices.Contains(cfg.Steps, low) {
		low = cfg.Steps[0]
	}

	fmt.Fprintf(&b, "Median of %d rep(s) (range in parentheses when reps differ); ratios are to Node's median in the same run.\n\n", res.Reps)
	header("metric")
	row(metric{"sustainable rate (100% delivered, 0 dup, p99 < 50 ms)", func(r sysResult) (float64, bool) { return sustainable(r), true }, func(v float64) string { return rate(v) + "/s" }, true})
	row(metric{fmt.Sprintf("p99 at %s/s, ms", rate(low)), func(r sysResult) (float64, bool) {
		s, ok := stepAt(r, low)
		return s.P99ms, ok
	}, ms, true})
	for _, w := range []string{"A", "B", "C"} {
		row(metric{fmt.Sprintf("CPU µs per broadcast at %s/s, %s", rate(mid), w), stepCPU(mid, w), usShort, false})
	}
	row(metric{fmt.Sprintf("CPU µs per broadcast at %s/s, A+B+C", rate(mid)), stepCPU(mid, "A", "B", "C"), usShort, true})
	row(metric{fmt.Sprintf("Redis CPU µs per broadcast at %s/s", rate(mid)), stepCPU(mid, "redis"), usShort, true})
	count := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	row(metric{"lost + duplicated below saturation (steps before the first saturated one)", func(r sysResult) (float64, bool) {
		var n int64
		for _, s := range r.Steps {
			if s.Saturated {
				break
			}
			n += s.Lost + s.Dups
		}
		return float64(n), true
	}, count, false})
	row(metric{"not received within the drain window, saturated steps", func(r sysResult) (float64, bool) {
		var n int64
		for _, s := range r.Steps {
			if s.Saturated {
				n += s.Lost
			}
		}
		return float64(n), true
	}, count, false})
	// This library's receivers count what they lose (Stats().Lost); once they caught up, the rest was lost silently.
	caughtUp := func(field func(*catchUp) int64) func(r sysResult) (float64, bool) {
		return func(r sysResult) (float64, bool) {
			if !isLib(r.System) {
				return 0, false
			}
			var n int64
			for _, s := range r.Steps {
				if s.CaughtUp != nil {
					n += field(s.CaughtUp)
				}
			}
			return float64(n), true
		}
	}
	row(metric{"not received once the receivers caught up, lossy steps", caughtUp(func(c *catchUp) int64 { return c.NotReceived }), count, false})
	row(metric{"… of which counted lost by the receiving adapters (Stats().Lost)", caughtUp(func(c *catchUp) int64 { return c.CountedLost }), count, false})
	row(metric{"… lost silently (not received and not counted)", caughtUp(func(c *catchUp) int64 { return max(c.Unaccounted, 0) }), count, false})
	row(metric{fmt.Sprintf("fan-out: 1 receiver, %d sockets, CPU µs per socket-send", cfg.FanoutSockets), func(r sysResult) (float64, bool) {
		return r.FanoutUsPerSend, r.FanoutSent > 0
	}, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }, true})
	row(metric{"… of which in the kernel (system time: the write syscalls)", func(r sysResult) (float64, bool) {
		return r.FanoutSysPerSend, r.FanoutSent > 0
	}, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }, true})
	pct := func(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }
	row(metric{"fan-out delivered / expected", func(r sysResult) (float64, bool) {
		if r.FanoutSent == 0 {
			return 0, false
		}
		return float64(r.FanoutDelivered) / float64(r.FanoutSent*int64(r.FanoutSockets)), true
	}, pct, false})
	if cfg.IdleSockets > 0 {
		idle := func(f func(*idleResult) float64) func(sysResult) (float64, bool) {
			return func(r sysResult) (float64, bool) {
				if r.Idle == nil || r.Idle.Broadcasts == 0 {
					return 0, false
				}
				return f(r.Idle), true
			}
		}
		n := strconv.Itoa(cfg.IdleSockets)
		if cfg.IdleSockets >= 1000 {
			n = strconv.Itoa(cfg.IdleSockets/1000) + "," + fmt.Sprintf("%03d", cfg.IdleSockets%1000)
		}
		one := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
		row(metric{n + " idle sockets on one server: RSS per socket, KB", idle(func(i *idleResult) float64 { return i.RSSPerSock / 1024 }), one, true})
		row(metric{n + " idle sockets: CPU µs per socket-send of a broadcast to all", idle(func(i *idleResult) float64 { return i.UsPerSend }), one, true})
		row(metric{"… of which in the kernel (system time)", idle(func(i *idleResult) float64 { return i.SysPerSend }), one, true})
		row(metric{n + " idle sockets: ms from the emit until the last socket has it", idle(func(i *idleResult) float64 { return i.LastMs }), one, true})
		row(metric{n + " idle sockets: delivered / expected", idle(func(i *idleResult) float64 {
			return float64(i.Delivered) / float64(i.Broadcasts*int64(i.Sockets))
		}), pct, false})
	}
	row(metric{fmt.Sprintf("publish path (%d emitters, A alone): XADD/s reaching Redis", cfg.PubEmitters), func(r sysResult) (float64, bool) {
		return r.PubRate, r.PubXadds > 0
	}, rateK, true})
	if len(res.Ceiling) > 0 {
		ceil := median(res.Ceiling)
		row(metric{fmt.Sprintf("publish path, %% of redis-benchmark XADD ceiling (%s/s)", rateK(ceil)), func(r sysResult) (float64, bool) {
			return r.PubRate / ceil, r.PubXadds > 0 && ceil > 0
		}, func(v float64) string { return strconv.FormatFloat(100*v, 'f', 0, 64) + "%" }, false})
	}
	row(metric{"publish path, server CPU µs per XADD", func(r sysResult) (float64, bool) { return r.PubCPUPerOp, r.PubXadds > 0 }, us, true})
	for _, k := range []struct {
		name string
		get  func(sysResult) *reqResult
	}{{"fetchSockets", func(r sysResult) *reqResult { return r.Fetch }}, {"serverSideEmitWithAck", func(r sysResult) *reqResult { return r.SSE }}} {
		row(metric{fmt.Sprintf("%s at %.0f/s, p50 ms", k.name, cfg.ReqRate), func(r sysResult) (float64, bool) {
			q := k.get(r)
			return reqField(q, func(q *reqResult) float64 { return q.P50ms })
		}, ms, false})
		row(metric{fmt.Sprintf("%s at %.0f/s, p99 ms", k.name, cfg.ReqRate), func(r sysResult) (float64, bool) {
			q := k.get(r)
			return reqField(q, func(q *reqResult) float64 { return q.P99ms })
		}, ms, true})
	}
	row(metric{"ladder steps still contaminated after retries", func(r sysResult) (float64, bool) {
		n := 0
		for _, s := range r.Steps {
			if s.Flagged {
				n++
			}
		}
		return float64(n), true
	}, func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }, false})

	// Errors.
	for _, r := range res.Results {
		if r.Error != "" {
			fmt.Fprintf(&b, "\n**%s rep %d failed:** %s\n", systemLabels[r.System], r.Rep, r.Error)
		}
	}
	if slices.Contains(systems, "zishang") {
		b.WriteString("\nzishang520's adapter: broadcasts only (its fetchSockets and serverSideEmit do not reach other servers).\n")
	}

	// Per-step detail.
	b.WriteString("\nLadder, per step (median over reps; CPU µs per broadcast over the measured window; busy% of the whole machine, 200% = 2 cores; * = contaminated after retries):\n\n")
	b.WriteString("| system | target/s | achieved/s | lost | dup | p50 ms | p99 ms | max ms | CPU A | CPU B | CPU C | CPU Redis | busy% | other% |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sys := range systems {
		for _, target := range cfg.Steps {
			var steps []stepResult
			for _, r := range perSystem(res, sys) {
				if s, ok := stepAt(r, target); ok {
					steps = append(steps, s)
				}
			}
			if len(steps) == 0 {
				continue
			}
			f := func(get func(stepResult) float64) []float64 {
				v := make([]float64, len(steps))
				for i, s := range steps {
					v[i] = get(s)
				}
				return v
			}
			var lost, dups int64
			flag := ""
			for _, s := range steps {
				lost += s.Lost
				dups += s.Dups
				if s.Flagged {
					flag = "*"
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s%s |\n",
				systemLabels[sys], rate(target),
				rate(math.Round(median(f(func(s stepResult) float64 { return s.Achieved })))),
				lost, dups,
				ms(median(f(func(s stepResult) float64 { return s.P50ms }))),
				ms(median(f(func(s stepResult) float64 { return s.P99ms }))),
				ms(median(f(func(s stepResult) float64 { return s.MaxMs }))),
				usShort(median(f(func(s stepResult) float64 { return s.CPU["A"] }))),
				usShort(median(f(func(s stepResult) float64 { return s.CPU["B"] }))),
				usShort(median(f(func(s stepResult) float64 { return s.CPU["C"] }))),
				usShort(median(f(func(s stepResult) float64 { return s.CPU["redis"] }))),
				strconv.FormatFloat(median(f(func(s stepResult) float64 { return s.BusyPct })), 'f', 0, 64),
				strconv.FormatFloat(median(f(func(s stepResult) float64 { return s.OtherPct })), 'f', 0, 64), flag)
		}
	}
	m := res.Machine
	fmt.Fprintf(&b, "\nRun %s, %s, %d CPUs; %s; Go %s; Node %s; library: %s. Command: `%s`.\n",
		res.Started.Format("2006-01-02 15:04 MST"), res.Duration, m.CPUs, m.Redis, m.Go, m.Node, m.Lib, m.Command)
	return b.String()
}

func reqField(q *reqResult, f func(*reqResult) float64) (float64, bool) {
	if q == nil || q.Calls == 0 {
		return 0, false
	}
	return f(q), true
}
