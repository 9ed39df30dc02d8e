package rdb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Unavailable tells whether a command failed because Redis could not be reached or could not serve it for now
// (connection refused, reset or closed, timeouts, a server loading its data set or failing over, a cluster slot
// moving), as opposed to an answer that will not change (wrong type, syntax, permissions). The same command may
// succeed later: the adapter holds writes that failed this way and sends them again.
//
// A command that timed out may have been applied: whoever retries it must tolerate a repeat.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// A Redis error reply, wrapped or not (both client libraries return it as an error whose text is the reply).
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		for _, prefix := range unavailablePrefixes {
			if strings.HasPrefix(msg, prefix) {
				return true
			}
		}
	}
	// Client-side wording of lost connections that wrap no typed error (go-redis: "redis: connection pool timeout").
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "i/o timeout") ||
		strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "connection pool timeout")
}

// unavailablePrefixes are the Redis error replies that describe a passing state of the server or the cluster.
var unavailablePrefixes = []string{
	"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "READONLY", "OOM", "NOREPLICAS",
	"UNBLOCKED", "NOTBUSY",
}
