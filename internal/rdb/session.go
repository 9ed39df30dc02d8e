package rdb

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Fenced writes of connection state recovery sessions. A stored session starts with the prefix of the socket
// incarnation that wrote it (wire.OwnerPrefix); a value no longer than a prefix is a marker, not a session. Each
// script reads and writes one key, so it runs on a Redis Cluster as any single-key command does.

// SessionWriteLua stores ARGV[2] (deletes the key when it is "") with a TTL of ARGV[3] ms, unless the key holds a
// value that does not start with ARGV[1], the writer's prefix: a session another incarnation claimed, or a value
// written by a server that does not fence (Node). Returns 1 when it wrote, 0 when it left the key alone.
const SessionWriteLua = `local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if cur then redis.call('DEL', KEYS[1]) end
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`

// SessionClaimLua returns the session stored under KEYS[1] and leaves in its place the marker ARGV[1] (the
// claimer's prefix) with a TTL of ARGV[2] ms, in one step: of two restores of one session, one gets it. A missing
// key, or a marker, is no session (nil). Finding the claimer's own marker means that this claim ran already and its
// reply was lost (a client library's retry): an error, since the session is gone with that reply.
const SessionClaimLua = `local cur = redis.call('GET', KEYS[1])
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

// Args are the write script's ARGV.
func (w *SessionWrite) Args() []string {
	return []string{w.Owner, w.Value, TTLMillis(w.TTL)}
}

// TTLMillis is d in whole milliseconds, at least 1, as the scripts take it.
func TTLMillis(d time.Duration) string { return strconv.FormatInt(max(1, d.Milliseconds()), 10) }

// Fill reads a write script's reply.
func (w *SessionWrite) Fill(n int64, err error) {
	w.Applied, w.Err = n == 1, nil
	if err != nil {
		w.Applied, w.Err = false, fmt.Errorf("rdb: session write: %w", err) // not the key: it holds the private session id
	}
}

// ClaimResult reads a claim script's reply (isNil: the client said the reply was nil).
func ClaimResult(v string, err error, isNil bool) (string, bool, error) {
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

// IsNoScript tells that EVALSHA found no script cached under its digest.
func IsNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// The scripts' SHA1 digests, for EVALSHA.
var SessionWriteSha, SessionClaimSha = sha1Hex(SessionWriteLua), sha1Hex(SessionClaimLua)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
