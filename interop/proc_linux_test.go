//go:build linux

package interop

import "syscall"

// sysProcAttr asks the kernel to SIGKILL a Node child when the test binary dies, so that no node process outlives
// a crashed test run. (Pdeathsig is tied to the forking OS thread; the Go runtime does not retire ordinary threads.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
