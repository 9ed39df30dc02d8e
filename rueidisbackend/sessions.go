package rueidisbackend

import (
	"context"
	"time"

	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// WriteSessions implements rdb.Client: EVALSHA in one DoMulti (per node on a cluster), EVAL for those a node did not
// have cached. Writes that failed on a connection error are sent again as Batch does (a repeat of a write that was
// applied changes nothing).
func (r *conn) WriteSessions(ctx context.Context, writes []*rdb.SessionWrite) {
	retryEach(ctx, writes, func(w *rdb.SessionWrite) error { return w.Err }, r.writeSessions)
}

func (r *conn) writeSessions(ctx context.Context, writes []*rdb.SessionWrite) {
	pending := writes
	for _, eval := range []bool{false, true} {
		cmds := make(rueidis.Commands, len(pending))
		for i, w := range pending {
			cmds[i] = r.script(eval, rdb.SessionWriteLua, rdb.SessionWriteSha, w.Key, w.Args())
		}
		var again []*rdb.SessionWrite
		for i, res := range r.client.DoMulti(ctx, cmds...) {
			n, err := res.AsInt64()
			if !eval && rdb.IsNoScript(err) {
				again = append(again, pending[i])
				continue
			}
			pending[i].Fill(n, err)
		}
		if pending = again; len(pending) == 0 {
			return
		}
	}
}

// script builds an EVALSHA (or, with eval, an EVAL) of a one-key script.
func (r *conn) script(eval bool, src, sha string, key string, args []string) rueidis.Completed {
	b := r.client.B()
	if eval {
		return b.Eval().Script(src).Numkeys(1).Key(key).Arg(args...).Build().Pin()
	}
	return b.Evalsha().Sha1(sha).Numkeys(1).Key(key).Arg(args...).Build().Pin()
}

// ClaimSession implements rdb.Client. It is not sent again after a connection error: a claim applied whose reply was
// lost cannot be repeated.
func (r *conn) ClaimSession(ctx context.Context, key, marker string, ttl time.Duration) (string, bool, error) {
	args := []string{marker, rdb.TTLMillis(ttl)}
	res := r.client.Do(ctx, r.script(false, rdb.SessionClaimLua, rdb.SessionClaimSha, key, args))
	if rdb.IsNoScript(res.Error()) {
		res = r.client.Do(ctx, r.script(true, rdb.SessionClaimLua, rdb.SessionClaimSha, key, args))
	}
	v, err := res.ToString()
	return rdb.ClaimResult(v, err, rueidis.IsRedisNil(err))
}
