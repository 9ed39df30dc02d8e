package main

import (
	"context"
	"fmt"
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
	root, systems := withNode(t, allSystems)
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

// TestRecoverySmoke runs the recovery benchmark at a tiny scale: with live sessions every client of a killed
// server recovers with exactly what it missed, and each connect costs one script call; without them (Go's
// SessionsOnDisconnect, Node) none does after a kill, and all do after a drop. No timing is asserted.
func TestRecoverySmoke(t *testing.T) {
	redistest.Require(t)
	root, systems := withNode(t, recoverySystems)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	cfg := &recoveryConfig{Root: root, Systems: systems, Connects: 20, Parallel: 8, Rooms: 3, Resumes: 20, Missed: 3,
		GoServer: func(adapter, addr string) []string {
			return []string{exe, "serve", "-adapter", adapter, "-redis", addr}
		},
		Log: func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := runRecovery(ctx, cfg)
	t.Log("harness log:\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run.Results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.System, r.Error)
			continue
		}
		live := r.System == "goredis" || r.System == "rueidis"
		if live {
			if r.Killed.Complete != cfg.Resumes || r.ConnectCmds["evalsha"] != 1 || r.RoomCmds["evalsha"] != 1 {
				t.Errorf("%s: killed %+v, per connect %v, per room burst %v", r.System, r.Killed, r.ConnectCmds, r.RoomCmds)
			}
		} else if r.Killed.Recovered != 0 || r.ConnectCmds["evalsha"] != 0 {
			t.Errorf("%s: killed %+v (nothing to restore after a kill), per connect %v", r.System, r.Killed, r.ConnectCmds)
		}
		if r.Dropped.Complete != cfg.Resumes {
			t.Errorf("%s: dropped %+v", r.System, r.Dropped)
		}
	}
	if md := recoveryMarkdown(run); !strings.Contains(md, "| "+recoveryLabels[systems[0]]+" |") {
		t.Errorf("no column for %s:\n%s", systems[0], md)
	}
}

// withNode returns the repository root and systems (whose first is "node"), without "node" when Node or
// interop/node's packages are missing (a failure under CI).
func withNode(t *testing.T, systems []string) (string, []string) {
	t.Helper()
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	_, err = exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "interop", "node", "node_modules", "@socket.io", "redis-streams-adapter"))
	}
	if err != nil {
		if redistest.Strict() {
			t.Fatalf("node and interop/node's packages are required under CI (npm ci in interop/node): %v", err)
		}
		t.Logf("node or interop/node's packages missing, the Node system is not run: %v", err)
		return root, systems[1:]
	}
	return root, systems
}
