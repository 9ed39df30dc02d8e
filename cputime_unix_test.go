//go:build unix

package redisstreams

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has used: benchmarks report it per operation,
// which the other processes of a shared machine disturb less than the elapsed time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
