package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestNumField(t *testing.T) {
	for _, tc := range []struct {
		msg, key string
		want     int64
		ok       bool
	}{
		{`42["ev",{"t":1790000000123456,"s":42,"pad":"xx"}]`, `"t":`, 1790000000123456, true}, // Node's key order
		{`42["ev",{"pad":"xx","s":42,"t":1790000000123456}]`, `"s":`, 42, true},               // Go's map order
		{`42["ev",{"s":7,"t":1.790000000123456e+15}]`, `"t":`, 1790000000123456, true},        // float form
		{`42["ev",{"s":-3}]`, `"s":`, -3, true},
		{`42["ev",{"pad":"xx"}]`, `"s":`, 0, false},
		{`42["ev",{"s":"x"}]`, `"s":`, 0, false},
	} {
		got, ok := numField([]byte(tc.msg), tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("numField(%s, %s) = %d, %v; want %d, %v", tc.msg, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRecorder(t *testing.T) {
	var r recorder
	r.reset(100, 10, 50)
	for _, s := range []int64{100, 101, 101, 109, 110, 99} {
		r.event(s, 60, 1060) // 1 ms late
	}
	r.event(102, 10, 20) // before the warm-up mark: counted, not timed
	d, dups, stray, lat := r.snapshot()
	if d != 4 || dups != 1 || stray != 2 || len(lat) != 3 {
		t.Fatalf("distinct %d dups %d stray %d latencies %d; want 4 1 2 3", d, dups, stray, len(lat))
	}
	if p50, p99, mx := percentiles(lat); p50 != 1 || p99 != 1 || mx != 1 {
		t.Errorf("percentiles = %v %v %v ms, want 1 1 1", p50, p99, mx)
	}
	r.reset(200, 5, 0)
	if d, dups, stray, lat := r.snapshot(); d != 0 || dups != 0 || stray != 0 || len(lat) != 0 {
		t.Errorf("reset left %d %d %d %d", d, dups, stray, len(lat))
	}
}

func TestCPUAccounting(t *testing.T) {
	pids := map[string]int{"self": os.Getpid()}
	a := sampleCPU(pids)
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); { // burn ~100 ms of CPU
	}
	b := sampleCPU(pids)
	d := delta(a, b)
	if d.Procs["self"] <= 0 {
		t.Errorf("no CPU time measured for a busy loop: %+v", d)
	}
	if d.BusyPct <= 0 || d.BusyPct > 100*float64(len(readCPUs()))+1 {
		t.Errorf("machine busy %.0f%% out of range", d.BusyPct)
	}
}

// readCPUs lists the per-CPU lines of /proc/stat.
func readCPUs() []string {
	b, _ := os.ReadFile("/proc/stat")
	var cpus []string
	for line := range strings.Lines(string(b)) {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] != ' ' {
			cpus = append(cpus, line)
		}
	}
	return cpus
}
