package rdb

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// Fenced writes of connection state recovery sessions. A stored session starts with the prefix of the socket
// incarnation that wrote it (wire.OwnerPrefix); a value no longer than a prefix is a marker, not a session. Each
// script reads and writes one key, so it runs on a Redis Cluster as any single-key command does.

// sessionWriteLua stores ARGV[2] (deletes the key when it is "") with a TTL of ARGV[3] ms, unless the key holds a
// value that does not start with ARGV[1], the writer's prefix: a session another incarnation claimed, or a value
// written by a server that does not fence (Node). Returns 1 when it wrote, 0 when it left the key alone.
const sessionWriteLua = `local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if cur then redis.call('DEL', KEYS[1]) end
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`

// sessionClaimLua returns the session stored under KEYS[1] and leaves in its place the marker ARGV[1] (the
// claimer's prefix) with a TTL of ARGV[2] ms, in one step: of two restores of one session, one gets it. A missing
// key, or a marker, is no session (nil). Finding the claimer's own marker means that this claim ran already and its
// reply was lost (a client library's retry): an error, since the session is gone with that reply.
const sessionClaimLua = `local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return redis.error_reply('CLAIMED the session was claimed by this call already') end
if not cur or #cur <= #ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return cur`

// ErrClaimRepeated: a session claim was applied, but its reply was lost and the claim sent again; the session is
// gone.
var ErrClaimRepeated = errors.New("rdb: session claim repeated after a lost reply")

// SessionWrite is one fenced write of a session (Client.WriteSessions).
type SessionWrite struct {
	Key   string
	Owner string        // the writer's prefix: the write applies when the key is missing or its value starts with it
	Value string        // stored with TTL; "" deletes the key
	TTL   time.Duration // at least 1 ms is sent

	Applied bool // after the call: false when the key holds someone else's value (left as it was)
	Err     error
}

func (w *SessionWrite) args() []string {
	return []string{w.Owner, w.Value, ttlMillis(w.TTL)}
}

func ttlMillis(d time.Duration) string { return strconv.FormatInt(max(1, d.Milliseconds()), 10) }

// fillWrite reads a write script's reply.
func (w *SessionWrite) fill(n int64, err error) {
	w.Applied, w.Err = n == 1, nil
	if err != nil {
		w.Applied, w.Err = false, fmt.Errorf("rdb: session write %s: %w", w.Key, err)
	}
}

func claimResult(v string, err error, isNil bool) (string, bool, error) {
	switch {
	case isNil:
		return "", false, nil
	case err != nil && strings.HasPrefix(err.Error(), "CLAIMED"):
		return "", false, ErrClaimRepeated
	case err != nil:
		return "", false, fmt.Errorf("rdb: session claim: %w", err)
	}
	return v, true, nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

var (
	goRedisSessionWrite = redis.NewScript(sessionWriteLua)
	goRedisSessionClaim = redis.NewScript(sessionClaimLua)
)

// WriteSessions implements Client: EVALSHA in one pipeline (go-redis sends a cluster's per node), EVAL for those
// a node did not have cached.
func (g *GoRedis) WriteSessions(ctx context.Context, writes []*SessionWrite) {
	pending := writes
	for _, eval := range []bool{false, true} {
		pipe := g.client.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for i, w := range pending {
			args := []any{w.Owner, w.Value, ttlMillis(w.TTL)}
			if eval {
				cmds[i] = goRedisSessionWrite.Eval(ctx, pipe, []string{w.Key}, args...)
			} else {
				cmds[i] = goRedisSessionWrite.EvalSha(ctx, pipe, []string{w.Key}, args...)
			}
		}
		_, _ = pipe.Exec(ctx)
		var again []*SessionWrite
		for i, w := range pending {
			n, err := cmds[i].Int64()
			if !eval && isNoScript(err) {
				again = append(again, w)
				continue
			}
			w.fill(n, g.failed(err))
		}
		if pending = again; len(pending) == 0 {
			return
		}
	}
}

// ClaimSession implements Client.
func (g *GoRedis) ClaimSession(ctx context.Context, key, marker string, ttl time.Duration) (string, bool, error) {
	v, err := goRedisSessionClaim.Run(ctx, g.client, []string{key}, marker, ttlMillis(ttl)).Text()
	if errors.Is(err, redis.Nil) {
		return claimResult("", nil, true)
	}
	return claimResult(v, g.failed(err), false)
}

// The scripts' SHA1 digests, for EVALSHA.
var sessionWriteSha, sessionClaimSha = sha1Hex(sessionWriteLua), sha1Hex(sessionClaimLua)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// WriteSessions implements Client: EVALSHA in one DoMulti (per node on a cluster), EVAL for those a node did not
// have cached. Writes that failed on a connection error are sent again as Batch does (a repeat of a write that was
// applied changes nothing).
func (r *Rueidis) WriteSessions(ctx context.Context, writes []*SessionWrite) {
	retryEach(ctx, writes, func(w *SessionWrite) error { return w.Err }, r.writeSessions)
}

func (r *Rueidis) writeSessions(ctx context.Context, writes []*SessionWrite) {
	pending := writes
	for _, eval := range []bool{false, true} {
		cmds := make(rueidis.Commands, len(pending))
		for i, w := range pending {
			cmds[i] = r.script(eval, sessionWriteLua, sessionWriteSha, w.Key, w.args())
		}
		var again []*SessionWrite
		for i, res := range r.client.DoMulti(ctx, cmds...) {
			n, err := res.AsInt64()
			if !eval && isNoScript(err) {
				again = append(again, pending[i])
				continue
			}
			pending[i].fill(n, err)
		}
		if pending = again; len(pending) == 0 {
			return
		}
	}
}

// script builds an EVALSHA (or, with eval, an EVAL) of a one-key script.
func (r *Rueidis) script(eval bool, src, sha string, key string, args []string) rueidis.Completed {
	b := r.client.B()
	if eval {
		return b.Eval().Script(src).Numkeys(1).Key(key).Arg(args...).Build().Pin()
	}
	return b.Evalsha().Sha1(sha).Numkeys(1).Key(key).Arg(args...).Build().Pin()
}

// ClaimSession implements Client. It is not sent again after a connection error: a claim applied whose reply was
// lost cannot be repeated.
func (r *Rueidis) ClaimSession(ctx context.Context, key, marker string, ttl time.Duration) (string, bool, error) {
	args := []string{marker, ttlMillis(ttl)}
	res := r.client.Do(ctx, r.script(false, sessionClaimLua, sessionClaimSha, key, args))
	if isNoScript(res.Error()) {
		res = r.client.Do(ctx, r.script(true, sessionClaimLua, sessionClaimSha, key, args))
	}
	v, err := res.ToString()
	return claimResult(v, err, rueidis.IsRedisNil(err))
}
