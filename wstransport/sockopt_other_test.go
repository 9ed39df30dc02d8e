//go:build !unix

package wstransport

import "syscall"

// setReceiveBuffer leaves the receive buffer as it is (it only makes backlogs sooner).
func setReceiveBuffer(int) func(network, address string, c syscall.RawConn) error { return nil }
