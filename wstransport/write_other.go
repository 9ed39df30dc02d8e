//go:build !linux

package wstransport

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: non-blocking writes are only tried on Linux; elsewhere each connection has a writer
// goroutine.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []item) (int, bool, error) {
	panic("wstransport: tryWrite without a raw connection")
}
