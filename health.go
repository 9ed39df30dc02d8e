package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// Ping reports whether the adapter works: Redis answers (the node of every stream this server reads, on a
// cluster), no write is held for want of Redis, and every stream reader is reading (its last XREAD succeeded).
// Serve it as a readiness check (e.g. /healthz). It returns nil, or an error wrapping ErrClosed, ErrUnavailable
// or Redis's own error (wrong credentials, missing permission, also for the commands a reader's checks need:
// XINFO STREAM, and SET/GET of the epoch key, see StreamStats.CheckError). It costs one round trip per stream read.
func (a *Adapter) Ping(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	streams := make([]string, 0, len(a.readers))
	readers := make([]*streamReader, 0, len(a.readers))
	for s, r := range a.readers {
		streams = append(streams, s)
		readers = append(readers, r)
	}
	a.mu.Unlock()
	if len(streams) == 0 {
		streams = append(streams, a.opts.StreamName)
	}
	for _, s := range streams {
		if _, err := a.client.StreamInfo(ctx, s); err != nil {
			return fmt.Errorf("redisstreams: ping: stream %s: %w", s, unavailable(err))
		}
	}
	if queued, _, held := a.pub.gauges(); held > 0 {
		return fmt.Errorf("redisstreams: ping: %d writes held: %w", queued, ErrUnavailable)
	}
	for _, r := range readers {
		if since := r.failingSince.Load(); since != 0 {
			return fmt.Errorf("redisstreams: ping: reader of stream %s failing for %v: %w", r.stream,
				time.Since(time.Unix(0, since)).Round(time.Millisecond), ErrUnavailable)
		}
		if err := r.checkError(); err != nil {
			return fmt.Errorf("redisstreams: ping: Redis refuses the checks of stream %s, losses may go uncounted: %w",
				r.stream, err)
		}
	}
	return nil
}

// unavailable wraps Redis errors that mean "cannot reach Redis now" so that they match ErrUnavailable too.
func unavailable(err error) error {
	if rdb.Unavailable(err) {
		return errors.Join(ErrUnavailable, err)
	}
	return err
}

// checkAtStart makes a Redis that refuses this client visible when the Adapter is created: wrong credentials,
// missing permissions or a wrong server are returned as errors. A Redis that cannot be reached is only logged:
// the adapter holds writes and reconnects on its own, and Ping reports it until then. The check waits at most
// RequestsTimeout, and not beyond ctx.
func (a *Adapter) checkAtStart(ctx context.Context) error {
	check, cancel := context.WithTimeout(ctx, a.opts.RequestsTimeout)
	defer cancel()
	_, err := a.client.StreamInfo(check, wire.StreamName(a.opts.StreamName, a.opts.StreamCount, "/"))
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		err = fmt.Errorf("redisstreams: start check: %w", context.Cause(ctx))
	case rdb.Unavailable(err):
		a.log.Error("redisstreams: Redis unreachable at start; writes are held until it answers (see Adapter.Ping)", "err", err)
		return nil
	default:
		err = fmt.Errorf("redisstreams: Redis refused the adapter: %w", err)
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), a.opts.RequestsTimeout)
	defer cancelClose()
	_ = a.Close(closeCtx)
	return err
}
