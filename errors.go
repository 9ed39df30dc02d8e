package redisstreams

import (
	"errors"
	"fmt"
)

// Errors returned (wrapped) by the adapter: test them with errors.Is.
var (
	// ErrClosed: the Adapter has been closed.
	ErrClosed = errors.New("redisstreams: adapter closed")
	// ErrTimeout: a request to the other servers did not get every response in time. The error is a *TimeoutError,
	// which says how many came.
	ErrTimeout = errors.New("redisstreams: timeout reached")
	// ErrUnavailable: Redis cannot be reached now (writes are being held, see Options.MaxOutage); requests to
	// the other servers fail at once with it instead of waiting for their timeout.
	ErrUnavailable = errors.New("redisstreams: redis unavailable")
	// ErrDropped: a write was given up without reaching Redis (held past Options.MaxOutage or Options.MaxHeldBytes,
	// a PUB/SUB message older than RequestsTimeout, or the adapter closed before Redis came back). Each is counted
	// in Stats.Dropped and reported to an Observer that implements DropObserver.
	ErrDropped = errors.New("redisstreams: write dropped")
)

// TimeoutError is the error of a request to the other servers (fetchSockets, serverSideEmit with an
// acknowledgement) that ended at its timeout without every response: Got of the Want responses came, and are
// returned with it. errors.Is(err, ErrTimeout) holds for it.
type TimeoutError struct {
	Got, Want int
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%v: only %d responses received out of %d", ErrTimeout, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }
