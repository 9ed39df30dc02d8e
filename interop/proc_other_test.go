//go:build !linux

package interop

import "syscall"

// sysProcAttr: elsewhere the children exit when their stdin closes (the test binary's end of the pipe).
func sysProcAttr() *syscall.SysProcAttr { return nil }
