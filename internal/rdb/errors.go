package rdb

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// Unavailable tells whether a command failed because Redis could not be reached or could not serve it for now
// (connection refused, reset or closed, timeouts, a server loading its data set or failing over, a cluster slot
// moving), as opposed to an answer that will not change (wrong type, syntax, permissions). The same command may
// succeed later: the adapter holds writes that failed this way and sends them again.
//
// A command that timed out may have been applied: whoever retries it must tolerate a repeat.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, redis.Nil) || rueidis.IsRedisNil(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, rueidis.ErrDoCacheAborted) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	msg := err.Error()
	if ret, ok := rueidis.IsRedisErr(err); ok {
		msg = ret.Error()
	}
	for _, prefix := range unavailablePrefixes {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	// Client-side wording of lost connections that wrap no typed error.
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "i/o timeout") ||
		strings.Contains(msg, "use of closed network connection")
}

// unavailablePrefixes are the Redis error replies that describe a passing state of the server or the cluster.
var unavailablePrefixes = []string{
	"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "READONLY", "OOM", "NOREPLICAS",
	"UNBLOCKED", "NOTBUSY",
}
