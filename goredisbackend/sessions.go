package goredisbackend

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

var (
	goRedisSessionWrite = redis.NewScript(rdb.SessionWriteLua)
	goRedisSessionClaim = redis.NewScript(rdb.SessionClaimLua)
)

// WriteSessions implements rdb.Client: EVALSHA in one pipeline (go-redis sends a cluster's per node), EVAL for those
// a node did not have cached.
func (g *conn) WriteSessions(ctx context.Context, writes []*rdb.SessionWrite) {
	pending := writes
	for _, eval := range []bool{false, true} {
		pipe := g.client.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for i, w := range pending {
			args := []any{w.Owner, w.Value, rdb.TTLMillis(w.TTL)}
			if eval {
				cmds[i] = goRedisSessionWrite.Eval(ctx, pipe, []string{w.Key}, args...)
			} else {
				cmds[i] = goRedisSessionWrite.EvalSha(ctx, pipe, []string{w.Key}, args...)
			}
		}
		_, _ = pipe.Exec(ctx)
		var again []*rdb.SessionWrite
		for i, w := range pending {
			n, err := cmds[i].Int64()
			if !eval && rdb.IsNoScript(err) {
				again = append(again, w)
				continue
			}
			w.Fill(n, g.failed(err))
		}
		if pending = again; len(pending) == 0 {
			return
		}
	}
}

// ClaimSession implements rdb.Client.
func (g *conn) ClaimSession(ctx context.Context, key, marker string, ttl time.Duration) (string, bool, error) {
	v, err := goRedisSessionClaim.Run(ctx, g.client, []string{key}, marker, rdb.TTLMillis(ttl)).Text()
	if errors.Is(err, redis.Nil) {
		return rdb.ClaimResult("", nil, true)
	}
	return rdb.ClaimResult(v, g.failed(err), false)
}
