//go:build linux

package redistest

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in its own process group and asks the kernel to
// SIGKILL it when the parent dies.
//
// Pdeathsig is tied to the OS thread that forked the child; the Go runtime
// does not retire ordinary threads, so in practice it fires when the test
// binary exits or crashes.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killTree sends SIGKILL to the process group led by p.
func killTree(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return p.Kill()
	}
	return nil
}
