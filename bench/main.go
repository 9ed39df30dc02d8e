// Command bench runs the side-by-side end-to-end benchmark of this library (go-redis and rueidis) against the Node
// streams adapter (socket.io 4.8 + @socket.io/redis-streams-adapter 0.3.1) and zishang520's adapters/redis streams
// adapter: one Redis, three server processes per system, raw Engine.IO WebSocket receivers. See bench/README.md.
//
//	go run ./bench                     # full run (2 reps, under 10 minutes)
//	go run ./bench -quick              # smoke run (1 rep, short steps, under a minute)
//	go run ./bench -systems node,rueidis
//	go run ./bench -lib /tmp/before    # Go servers built against another checkout of the library
//
// Results go to bench/results/<timestamp>/ (summary.md, results.json, steps.csv); the table is printed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serveMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	if err := benchMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func selfPid() int { return os.Getpid() }

func benchMain(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smoke run: one rep, short steps (under a minute)")
	systems := fs.String("systems", strings.Join(allSystems, ","), "comma-separated systems: "+strings.Join(allSystems, ","))
	reps := fs.Int("reps", 0, "repetitions (default 2, or 1 with -quick)")
	lib := fs.String("lib", os.Getenv("BENCH_LIB"), "build the Go servers against the library checkout in this directory (env BENCH_LIB)")
	outDir := fs.String("out", "", "results directory (default bench/results/<timestamp>)")
	profile := fs.Float64("profile", 0, "take CPU profiles of the Go servers A and B during the ladder step at this rate (e.g. 10000), of B during the fan-out and of A during the publish path, and heap and goroutine profiles of B with the idle sockets, into the results directory")
	idle := fs.Int("idle", -1, "sockets of the idle-sockets scenario (default 10000, or 1000 with -quick; 0 skips it)")
	steps := fs.String("steps", "", "ladder rates, comma separated (default 2500,5000,10000,20000,30000,40000,60000,80000; -quick: 2500,10000)")
	recovery := fs.Bool("recovery", false, "run the connection state recovery benchmark instead (systems "+strings.Join(recoverySystems, ",")+"; 3 reps, under 3 minutes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	cfg := defaultConfig(*quick)
	cfg.Root = root
	cfg.Log = os.Stderr
	cfg.Systems = nil
	for s := range strings.SplitSeq(*systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Systems = append(cfg.Systems, s)
		}
	}
	if len(cfg.Systems) == 0 {
		return errors.New("no system selected")
	}
	if *reps > 0 {
		cfg.Reps = *reps
	}
	if *idle >= 0 {
		cfg.IdleSockets = *idle
	}
	if *steps != "" {
		cfg.Steps = nil
		for f := range strings.SplitSeq(*steps, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("-steps: bad rate %q", f)
			}
			cfg.Steps = append(cfg.Steps, v)
		}
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join(root, "bench", "results", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	cfg.ProfileRate, cfg.ProfileDir = *profile, dir

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	libDesc := "current tree"
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if *lib != "" {
		libAbs, err := filepath.Abs(*lib)
		if err != nil {
			return err
		}
		exe, err = buildAgainst(ctx, root, libAbs, dir)
		if err != nil {
			return err
		}
		libDesc = libAbs + " (" + gitDescribe(libAbs) + ")"
	} else {
		libDesc += " (" + gitDescribe(root) + ")"
	}
	cfg.GoServer = func(sys, redisAddr string) []string { return goServerArgs(exe, sys, redisAddr) }

	if *recovery {
		rcfg := &recoveryConfig{Root: root, Systems: recoverySystems, Reps: 3, Connects: 2000, Parallel: 64, Rooms: 5,
			Resumes: 1000, Missed: 10, GoServer: cfg.GoServer,
			Log: func(format string, args ...any) { cfg.logf(format, args...) }}
		if *quick {
			rcfg.Reps, rcfg.Connects, rcfg.Resumes = 1, 200, 100
		}
		if *reps > 0 {
			rcfg.Reps = *reps
		}
		if *systems != strings.Join(allSystems, ",") {
			rcfg.Systems = cfg.Systems
		}
		return recoveryMain(ctx, rcfg, dir, libDesc, "go run ./bench "+strings.Join(args, " "))
	}
	res, err := run(ctx, cfg)
	if res == nil {
		return err
	}
	res.Machine = machine(libDesc, "go run ./bench "+strings.Join(args, " "))
	if werr := writeResults(dir, cfg, res); werr != nil {
		return errors.Join(err, werr)
	}
	table := markdown(cfg, res)
	fmt.Println(table)
	fmt.Fprintf(os.Stderr, "results in %s\n", dir)
	failed := 0
	for _, r := range res.Results {
		if r.Error != "" {
			failed++
		}
	}
	if failed > 0 && err == nil {
		err = fmt.Errorf("%d system run(s) failed; see the summary", failed)
	}
	return err
}

// defaultConfig is the full run (2 reps, about 8 minutes on 2 cores) or, with quick, a smoke run.
func defaultConfig(quick bool) *config {
	c := &config{
		Systems:        allSystems,
		Reps:           2,
		Steps:          []float64{2500, 5000, 10000, 20000, 30000, 40000, 60000, 80000},
		StepDur:        3 * time.Second,
		Warm:           time.Second,
		Drain:          4 * time.Second,
		CatchUp:        15 * time.Second,
		Retries:        2,
		Other:          10,
		FanoutSockets:  1000,
		FanoutRate:     20,
		FanoutDur:      3 * time.Second,
		IdleSockets:    10_000,
		IdleBroadcasts: 5,
		IdleGap:        500 * time.Millisecond,
		ReqRate:        100,
		ReqDur:         2 * time.Second,
		PubEmitters:    512,
		PubDur:         2 * time.Second,
		BenchN:         1_000_000,
		Budget:         6 * time.Minute,
		MaxRedos:       16,
	}
	if quick {
		c.Reps = 1
		c.Steps = []float64{2500, 10000}
		c.StepDur = 2 * time.Second
		c.Warm = 500 * time.Millisecond
		c.Drain = 3 * time.Second
		c.Retries = 0
		c.FanoutSockets = 200
		c.FanoutDur = 2 * time.Second
		c.IdleSockets = 1000
		c.IdleBroadcasts = 2
		c.ReqDur = time.Second
		c.PubDur = time.Second
		c.BenchN = 200_000
		c.Budget = time.Minute
		c.MaxRedos = 0
	}
	return c
}

// findRoot walks up from the working directory to the repository root (the directory holding bench/go.mod).
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "bench", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the repository (no bench/go.mod found above the working directory)")
		}
		dir = parent
	}
}

// buildAgainst builds this command with the library replaced by the checkout in lib, and returns the binary.
func buildAgainst(ctx context.Context, root, lib, out string) (string, error) {
	benchDir := filepath.Join(root, "bench")
	tmp, err := os.MkdirTemp("", "bench-lib-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	mod, err := os.ReadFile(filepath.Join(benchDir, "go.mod"))
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(benchDir, "go.sum"))
	if err != nil {
		return "", err
	}
	mod = []byte(strings.Replace(string(mod), "=> ../", "=> "+lib, 1))
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), mod, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "go.sum"), sum, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(out, "bench-server")
	args := []string{"build", "-modfile", filepath.Join(tmp, "go.mod"), "-mod=mod", "-o", bin}
	if _, err := os.Stat(filepath.Join(lib, "wstransport")); err != nil {
		args = append(args, "-tags", "benchnows") // a checkout from before the transport: the -ws systems fail
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = benchDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build against %s: %w\n%s", lib, err, b)
	}
	return bin, nil
}

func gitDescribe(dir string) string {
	b, err := exec.Command("git", "-C", dir, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown commit"
	}
	return strings.TrimSpace(string(b))
}

func machine(lib, command string) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version(), Lib: lib, Command: command}
	if b, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m.Redis = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("node", "--version").Output(); err == nil {
		m.Node = strings.TrimSpace(string(b))
	}
	return m
}
