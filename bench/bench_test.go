package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// The test binary doubles as the Go benchmark server: the harness starts it with "serve" as first argument.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serveMain(os.Args[2:]); err != nil {
			os.Stderr.WriteString("serve: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness once at a tiny scale: every system must deliver broadcasts to both receivers
// and to the fan-out sockets, answer fetchSockets and serverSideEmitWithAck (except zishang520's, broadcasts only),
// push XADDs on the publish path, and the report must be written. No timing is asserted.
func TestSmoke(t *testing.T) {
	redistest.Require(t)
	systems := allSystems
	if _, err := exec.LookPath("node"); err != nil {
		if redistest.Strict() {
			t.Fatalf("node is required under CI: %v", err)
		}
		t.Logf("node not found, the Node system is not run: %v", err)
		systems = systems[1:]
	}
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "interop", "node", "node_modules", "@socket.io", "redis-streams-adapter")); err != nil && systems[0] == "node" {
		if redistest.Strict() {
			t.Fatalf("interop/node's packages are required under CI (npm ci in interop/node): %v", err)
		}
		t.Logf("interop/node's packages are not installed, the Node system is not run")
		systems = systems[1:]
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	cfg := &config{
		Root: root, Systems: systems, Reps: 1,
		Steps: []float64{500}, StepDur: time.Second, Warm: 200 * time.Millisecond, Drain: 5 * time.Second, CatchUp: 5 * time.Second, Other: 10,
		FanoutSockets: 20, FanoutRate: 20, FanoutDur: 500 * time.Millisecond,
		IdleSockets: 20, IdleBroadcasts: 1, IdleGap: 200 * time.Millisecond,
		ReqRate: 100, ReqDur: 300 * time.Millisecond,
		PubEmitters: 16, PubDur: 300 * time.Millisecond,
		BenchN: 20000, Budget: time.Minute,
		GoServer: func(sys, addr string) []string { return goServerArgs(exe, sys, addr) },
		Log:      &log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := run(ctx, cfg)
	t.Log("harness log:\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		if redistest.Strict() {
			t.Errorf("redis-benchmark is required under CI (Debian: redis-tools): %v", err)
		}
	} else if len(res.Ceiling) != 1 || res.Ceiling[0] <= 0 {
		t.Errorf("redis-benchmark ceiling not measured: %v", res.Ceiling)
	}
	if len(res.Results) != len(systems) {
		t.Fatalf("%d results for %d systems", len(res.Results), len(systems))
	}
	for _, r := range res.Results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.System, r.Error)
			continue
		}
		if len(r.Steps) != 1 || r.Steps[0].Sent == 0 || r.Steps[0].Lost >= 2*r.Steps[0].Sent {
			t.Errorf("%s: ladder step delivered nothing: %+v", r.System, r.Steps)
		}
		if r.FanoutDelivered == 0 {
			t.Errorf("%s: fan-out delivered nothing (%d broadcasts to %d sockets)", r.System, r.FanoutSent, r.FanoutSockets)
		}
		if r.Idle == nil || r.Idle.Delivered == 0 || r.Idle.RSSAfter == 0 {
			t.Errorf("%s: idle sockets: %+v, want broadcasts delivered and the RSS read", r.System, r.Idle)
		}
		if r.System != "zishang" {
			for name, q := range map[string]*reqResult{"fetchSockets": r.Fetch, "serverSideEmitWithAck": r.SSE} {
				if q == nil || q.Calls == 0 || q.Errors != 0 || q.Responses != [2]int{2, 2} {
					t.Errorf("%s: %s: %+v, want every call answered with 2 sockets/acks", r.System, name, q)
				}
			}
		}
		if r.PubXadds == 0 {
			t.Errorf("%s: publish path: no XADD reached Redis", r.System)
		}
	}
	dir := t.TempDir()
	if err := writeResults(dir, cfg, res); err != nil {
		t.Fatal(err)
	}
	summary, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range systems {
		if !strings.Contains(string(summary), "| "+systemLabels[s]+" |") {
			t.Errorf("summary.md has no column for %s:\n%s", s, summary)
		}
	}
	for _, f := range []string{"results.json", "steps.csv"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}
