package rdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"

	"github.com/redis/go-redis/v9"
)

// The session scripts on both client families, standalone and on a cluster (keys spread over the masters, one
// pipeline): a write applies to a missing key or one holding the writer's prefix, never to another's; a claim
// takes a session once and leaves a marker that no claim takes; deleting leaves other owners' keys alone; and a
// node whose script cache was flushed gets the script again (EVAL).
func TestSessionScripts(t *testing.T) {
	for _, s := range setups[:2] {
		for _, family := range []string{"goredis", "rueidis"} {
			t.Run(s.name+"/"+family, func(t *testing.T) {
				a := addrs(t, s.cluster)
				rc := newGoRedisClient(t, a, s.cluster)
				var c rdb.Client
				if family == "goredis" {
					c, _ = openGoRedis(newGoRedisClient(t, a, s.cluster), false)
				} else {
					c = newRueidis(t, s)
				}
				testSessionScripts(t, c, rc)
			})
		}
	}
}

func testSessionScripts(t *testing.T, c rdb.Client, rc redis.UniversalClient) {
	ctx := t.Context()
	flush := func() { // every node forgets the scripts: the next calls need EVAL
		var err error
		if cc, ok := rc.(*redis.ClusterClient); ok {
			err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() })
		} else {
			err = rc.ScriptFlush(ctx).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	const mine, theirs = "prefix-of-mine-0123456789abcdef0", "prefix-of-theirs-123456789abcdef"
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = key(t, fmt.Sprint("s", i))
	}
	write := func(owner, value string, ks ...string) []*rdb.SessionWrite {
		ws := make([]*rdb.SessionWrite, len(ks))
		for i, k := range ks {
			ws[i] = &rdb.SessionWrite{Key: k, Owner: owner, Value: value, TTL: time.Minute}
		}
		c.WriteSessions(ctx, ws)
		for _, w := range ws {
			if w.Err != nil {
				t.Fatalf("write %s: %v", w.Key, w.Err)
			}
		}
		return ws
	}
	flush()
	// Missing keys are written, on every node, with the TTL.
	for _, w := range write(mine, mine+"-session-1", keys...) {
		if !w.Applied {
			t.Fatalf("%s not written", w.Key)
		}
	}
	if v := rc.Get(ctx, keys[0]).Val(); v != mine+"-session-1" {
		t.Fatalf("stored %q", v)
	}
	if ttl := rc.PTTL(ctx, keys[0]).Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("TTL %v", ttl)
	}
	// The owner rewrites; another owner cannot, nor can a writer without a prefix match.
	flush()
	if ws := write(mine, mine+"-session-2", keys[:6]...); !ws[5].Applied {
		t.Fatal("owner's rewrite refused")
	}
	for _, w := range write(theirs, theirs+"-session", keys...) {
		if w.Applied {
			t.Fatalf("%s: another owner's write applied", w.Key)
		}
	}
	if v := rc.Get(ctx, keys[1]).Val(); v != mine+"-session-2" {
		t.Fatalf("stored %q after the refused write", v)
	}
	// A claim takes the session once, and leaves the claimer's marker, which the claimer may overwrite.
	v, ok, err := c.ClaimSession(ctx, keys[1], theirs, time.Minute)
	if err != nil || !ok || v != mine+"-session-2" {
		t.Fatalf("claim: %q %v %v", v, ok, err)
	}
	if got := rc.Get(ctx, keys[1]).Val(); got != theirs {
		t.Fatalf("after the claim %q", got)
	}
	for _, claimer := range []string{mine, "prefix-of-someone-else-456789abc"} {
		if v, ok, err := c.ClaimSession(ctx, keys[1], claimer, time.Minute); ok || err != nil {
			t.Fatalf("claim of a claimed session: %q %v %v", v, ok, err)
		}
	}
	if _, _, err := c.ClaimSession(ctx, keys[1], theirs, time.Minute); !errors.Is(err, rdb.ErrClaimRepeated) {
		t.Fatalf("a repeated claim: %v, want rdb.ErrClaimRepeated", err)
	}
	if ws := write(mine, mine+"-stale", keys[1]); ws[0].Applied {
		t.Fatal("the former owner's write applied over the claim")
	}
	if ws := write(theirs, theirs+"-session-3", keys[1]); !ws[0].Applied {
		t.Fatal("the claimer's write refused")
	}
	// A Node session (no prefix) can be claimed, and fences everyone's writes.
	rc.Set(ctx, keys[2], "hKNzaWSkc2lkMaNwaWSkcGlkMaVyb29tc5CkZGF0YcA=", time.Minute)
	if ws := write(mine, mine+"-x", keys[2]); ws[0].Applied {
		t.Fatal("write over a Node session applied")
	}
	if v, ok, err := c.ClaimSession(ctx, keys[2], mine, time.Minute); !ok || err != nil || !strings.HasPrefix(v, "hKNz") {
		t.Fatalf("claim of a Node session: %q %v %v", v, ok, err)
	}
	// Deleting: the owner's key goes, another owner's stays, a missing key is fine.
	flush()
	for i, w := range write(mine, "", keys[3], keys[1], key(t, "missing")) {
		if w.Applied != (i != 1) {
			t.Fatalf("delete %s: applied %v", w.Key, w.Applied)
		}
	}
	if rc.Exists(ctx, keys[3]).Val() != 0 || rc.Exists(ctx, keys[1]).Val() != 1 {
		t.Fatal("delete removed the wrong keys")
	}
	// Nothing to claim in a missing key.
	if _, ok, err := c.ClaimSession(ctx, keys[3], mine, time.Minute); ok || err != nil {
		t.Fatalf("claim of a missing key: %v %v", ok, err)
	}
	// Another type under the key: an error, reported per write.
	rc.Del(ctx, keys[4])
	rc.LPush(ctx, keys[4], "x")
	ws := []*rdb.SessionWrite{{Key: keys[4], Owner: mine, Value: "v", TTL: time.Second}, {Key: keys[5], Owner: mine, Value: "v", TTL: time.Second}}
	c.WriteSessions(ctx, ws)
	if ws[0].Err == nil || ws[1].Err != nil || !ws[1].Applied {
		t.Fatalf("wrong type: %v / %v %v", ws[0].Err, ws[1].Err, ws[1].Applied)
	}
}
