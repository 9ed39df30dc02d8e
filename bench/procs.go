package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process started by the harness: its own process group, SIGKILLed if the harness dies
// (Linux), stopped when its stdin closes.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  string // "http://127.0.0.1:port"
	done  chan struct{}
	mu    sync.Mutex
	tail  bytes.Buffer // last output lines, for error messages
}

// startProc runs argv, waits for "READY <port>" on its stdout (bounded by timeout) and returns the process.
func startProc(ctx context.Context, name string, env []string, dir string, timeout time.Duration, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	cmd.Stderr = writerFunc(p.keep)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if port, ok := strings.CutPrefix(line, "READY "); ok {
				select {
				case ready <- port:
				default:
				}
				continue
			}
			_, _ = p.keep([]byte(line + "\n"))
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case port := <-ready:
		p.base = "http://127.0.0.1:" + strings.TrimSpace(port)
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %s", name, p.output())
	case <-t.C:
		p.kill()
		return nil, fmt.Errorf("%s not ready within %v: %s", name, timeout, p.output())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// keep retains the last 4 KiB of the process's output.
func (p *proc) keep(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tail.Write(b)
	if p.tail.Len() > 8<<10 {
		rest := append([]byte(nil), p.tail.Bytes()[p.tail.Len()-4<<10:]...)
		p.tail.Reset()
		p.tail.Write(rest)
	}
	return len(b), nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.TrimSpace(p.tail.String())
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill stops the process: stdin closed (a clean exit), then SIGKILL to its group after a short grace, and waits.
func (p *proc) kill() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(2 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

var ctlClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}

// call POSTs a control operation and decodes the answer into out.
func (p *proc) call(ctx context.Context, op string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/ctl/"+op, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := ctlClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.name, op, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.name, op, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", p.name, op, res.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w (%s)", p.name, op, err, data)
	}
	return nil
}

// ---- CPU accounting from /proc ----

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time of pid (all its threads), and the system (kernel) part of it.
func procCPU(pid int) (total, system time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces: fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, time.Duration(stime) * time.Second / clockTicks, nil
}

// procRSS returns the resident set size of pid, in bytes (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// machineCPU returns the busy and total CPU time of the whole machine (all cores) from /proc/stat.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	var sum, idle int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		sum += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTicks, time.Duration(sum) * time.Second / clockTicks, nil
}

// cpuSample is the CPU time of the watched processes and of the machine at one instant.
type cpuSample struct {
	at    time.Time
	procs map[string]time.Duration
	sys   map[string]time.Duration // the system (kernel) part of procs
	busy  time.Duration
	total time.Duration
}

func sampleCPU(pids map[string]int) cpuSample {
	s := cpuSample{at: time.Now(), procs: make(map[string]time.Duration, len(pids)), sys: make(map[string]time.Duration, len(pids))}
	for name, pid := range pids {
		if d, sys, err := procCPU(pid); err == nil {
			s.procs[name], s.sys[name] = d, sys
		}
	}
	s.busy, s.total, _ = machineCPU()
	return s
}

// cpuDelta is what happened between two samples.
type cpuDelta struct {
	Wall     time.Duration
	Procs    map[string]time.Duration
	Sys      map[string]time.Duration // the system (kernel) part of Procs
	BusyPct  float64                  // whole machine, percent of one core (200 = 2 cores fully busy)
	KnownPct float64                  // the watched processes
	OtherPct float64                  // BusyPct - KnownPct: CPU used by something outside the benchmark
}

func delta(a, b cpuSample) cpuDelta {
	d := cpuDelta{Wall: b.at.Sub(a.at), Procs: map[string]time.Duration{}, Sys: map[string]time.Duration{}}
	var known time.Duration
	for name, v := range b.procs {
		if av, ok := a.procs[name]; ok {
			d.Procs[name] = v - av
			d.Sys[name] = b.sys[name] - a.sys[name]
			known += v - av
		}
	}
	if w := d.Wall.Seconds(); w > 0 {
		d.BusyPct = 100 * (b.busy - a.busy).Seconds() / w
		d.KnownPct = 100 * known.Seconds() / w
		d.OtherPct = d.BusyPct - d.KnownPct
	}
	return d
}

// snapshot saves a profile of a Go server at this instant (kind: heap, goroutine).
func (p *proc) snapshot(ctx context.Context, kind, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/debug/pprof/"+kind+"?gc=1", nil)
	if err != nil {
		return err
	}
	return p.save(req, file)
}

// save writes the answer to req into file.
func (p *proc) save(req *http.Request, file string) error {
	res, err := ctlClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, res.Body)
	return errors.Join(err, f.Close())
}

// profile saves a CPU profile of a Go server taken over d.
func (p *proc) profile(ctx context.Context, d time.Duration, file string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.base, secs), nil)
	if err != nil {
		return err
	}
	return p.save(req, file)
}
