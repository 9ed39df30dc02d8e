package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/wire"
)

type sessionInfo struct {
	Key  string  `json:"key"`
	PID  string  `json:"pid"`
	TTL  float64 `json:"ttlSeconds"` // -1: no expiry, -2: gone
	SID  string  `json:"sid,omitempty"`
	Data any     `json:"session,omitempty"` // only with -data
}

func runSessions(ctx context.Context, e *env, args []string) error {
	list := e.fs.Bool("list", false, "list the sessions (key, pid, TTL) instead of counting them")
	data := e.fs.Bool("data", false, "with -list: also print each session's content (sid, rooms, data): may hold personal data")
	limit := e.fs.Int("limit", 1000, "with -list: at most `N` sessions")
	asJSON := e.fs.Bool("json", false, "print JSON")
	if err := e.parse(args); err != nil {
		return err
	}
	if e.fs.NArg() > 0 {
		return usageError{"sessions takes no arguments"}
	}
	if *data && !*list {
		return usageError{"-data needs -list"}
	}
	if err := e.connect(ctx); err != nil {
		return err
	}
	if !*list {
		n, err := e.countSessions(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(map[string]any{"prefix": e.cfg.sessionPrefix, "sessions": n})
		}
		fmt.Fprintf(e.stdout, "%d recovery sessions stored (%s*)\n", n, e.cfg.sessionPrefix)
		return nil
	}
	var out []sessionInfo
	truncated := false
	err := e.scanSessions(ctx, func(c *redis.Client, key string) error {
		if len(out) >= *limit {
			truncated = true
			return nil
		}
		s := sessionInfo{Key: key, PID: strings.TrimPrefix(key, e.cfg.sessionPrefix)}
		cctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
		defer cancel()
		ttl, err := c.PTTL(cctx, key).Result()
		if err != nil {
			return fmt.Errorf("PTTL %s: %w", key, err)
		}
		s.TTL = ttl.Seconds()
		if ttl < 0 {
			s.TTL = float64(ttl / time.Nanosecond) // go-redis: -1 no expiry, -2 missing
		}
		if *data {
			raw, err := c.Get(cctx, key).Result()
			if err == redis.Nil {
				return nil // expired meanwhile
			}
			if err != nil {
				return fmt.Errorf("GET %s: %w", key, err)
			}
			s.Data = decodeSession(raw)
			if m, ok := s.Data.(map[string]any); ok {
				s.SID, _ = m["sid"].(string)
			}
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(out, func(a, b sessionInfo) int { return strings.Compare(a.Key, b.Key) })
	if truncated {
		fmt.Fprintf(e.stderr, "redisstreams sessions: more than %d sessions; listing %d (-limit)\n", *limit, len(out))
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, s := range out {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PID\tTTL\tKEY")
	if *data {
		fmt.Fprintf(w, "\tSESSION")
	}
	fmt.Fprintln(w)
	for _, s := range out {
		ttl := fmtSeconds(s.TTL)
		if s.TTL == -1 {
			ttl = "none"
		}
		fmt.Fprintf(w, "%s\t%s\t%s", s.PID, ttl, s.Key)
		if *data {
			fmt.Fprintf(w, "\t%s", showValue(s.Data))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// decodeSession decodes a stored session for display.
func decodeSession(raw string) any {
	s, err := wire.DecodeSession(raw)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	return map[string]any{"sid": s.Sid, "pid": s.Pid, "rooms": s.Rooms, "data": showable(s.Data)}
}
