package redisstreams

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// A reader's checks that Redis refuses (here NOPERM, the ACL taking XINFO STREAM and SET away after the adapters
// started) are counted in Stats.CheckErrors, shown in StreamStats.CheckError and by Ping, logged once (rate-limited),
// and made once per check interval, not before every XREAD (issue 18 item 7: they were ignored, and retried before
// every read). Broadcasts go on; once Redis allows the checks again, the error clears.
func TestRefusedChecksAreReported(t *testing.T) {
	requireRedis(t)
	const user, password = "app", "pw"
	rules := aclRules(aclPing, aclRueidis, aclStreams, aclPubSub)
	srv := redistest.StartServerT(t, redistest.ServerOptions{Config: "user " + user + " on >" + password +
		" resetkeys resetchannels -@all " + rules + "\n"})
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()

	for _, family := range []string{familyGoRedis, familyRueidis} {
		t.Run(family, func(t *testing.T) {
			if err := admin.Do(t.Context(), "ACL", "SETUSER", user, "+xinfo|stream", "+set").Err(); err != nil {
				t.Fatal(err)
			}
			var refusals atomic.Int64 // log lines about refused checks
			log := slog.New(&countingHandler{Handler: testLogger(t).Handler(), match: "refused a stream check", n: &refusals})
			opts := Options{ReadCount: 1, Logger: log} // one XREAD per entry: many reads per check interval
			var adapters []*Adapter
			for range 2 {
				var a *Adapter
				var err error
				if family == familyRueidis {
					rc, cerr := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, Username: user, Password: password})
					if cerr != nil {
						t.Fatal(cerr)
					}
					t.Cleanup(rc.Close)
					a, err = New(t.Context(), rueidisbackend.New(rc), opts)
				} else {
					rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: password})
					t.Cleanup(func() { _ = rc.Close() })
					a, err = New(t.Context(), goredisbackend.New(rc), opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				adapters = append(adapters, a)
			}
			nodes := startClusterWithAdapters(t, adapters)
			counter := dialCounter(t, nodes[1].url, "seq")
			if err := nodes[1].adapter.Ping(t.Context()); err != nil {
				t.Fatalf("Ping before: %v", err)
			}

			if err := admin.Do(t.Context(), "ACL", "SETUSER", user, "-xinfo|stream", "-set").Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a refused check", func() bool { return nodes[1].adapter.Stats().CheckErrors > 0 })
			s := nodes[1].adapter.Stats()
			if len(s.Streams) != 1 || !strings.Contains(s.Streams[0].CheckError, "NOPERM") {
				t.Errorf("StreamStats.CheckError = %+v, want NOPERM", s.Streams)
			}
			if err := nodes[1].adapter.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("Ping = %v, want the refusal", err)
			}

			// Reads go on, and the refused XINFO is not sent before each of them.
			before := commandCalls(t, admin)
			const n = 2000
			for i := range n {
				nodes[0].io.Emit("seq", i)
			}
			waitFor(t, "every broadcast received", func() bool { unique, _ := counter.counts(n); return unique == n })
			after := commandCalls(t, admin)
			xreads, xinfos := after["xread"]-before["xread"], after["xinfo|stream"]-before["xinfo|stream"]
			t.Logf("while refused: %d XREAD, %d XINFO STREAM tried; check errors %d, log lines %d", xreads, xinfos,
				nodes[1].adapter.Stats().CheckErrors, refusals.Load())
			if xreads < n/2 || xinfos*10 > xreads {
				t.Errorf("%d XINFO STREAM for %d XREAD: the refused check is tried before reads", xinfos, xreads)
			}
			if refusals.Load() == 0 || refusals.Load() > 4 {
				t.Errorf("%d log lines about refused checks, want one per server (rate-limited)", refusals.Load())
			}

			if err := admin.Do(t.Context(), "ACL", "SETUSER", user, "+xinfo|stream", "+set").Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "checks allowed again", func() bool {
				s := nodes[1].adapter.Stats()
				return len(s.Streams) == 1 && s.Streams[0].CheckError == "" && nodes[1].adapter.Ping(t.Context()) == nil
			})
		})
	}
}

// commandCalls returns, per command, the calls Redis counted (INFO commandstats), refused ones included.
func commandCalls(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var total int64
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "calls" || k == "rejected_calls" || k == "failed_calls" {
				n, _ := strconv.ParseInt(v, 10, 64)
				if k != "failed_calls" {
					total += n
				}
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = total
	}
	return out
}
