package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// rateSample is how many of the newest entries the recent rate is measured over.
const rateSample = 1000

type streamStatus struct {
	Stream       string   `json:"stream"`
	Length       int64    `json:"length"`
	FirstID      string   `json:"firstId"`
	FirstAge     *float64 `json:"firstAgeSeconds,omitempty"`
	LastID       string   `json:"lastId"`
	LastAge      *float64 `json:"lastAgeSeconds,omitempty"`
	EntriesAdded int64    `json:"entriesAdded"` // -1: Redis < 7 does not say
	// Rate is entries per second over the newest entries (up to 1000), from the oldest of them to now.
	Rate float64 `json:"recentRatePerSecond"`
	// Headroom is how many seconds of traffic MaxLen entries hold at Rate (absent when idle).
	MaxLen     int64    `json:"maxLen"`
	Headroom   *float64 `json:"maxLenHeadroomSeconds,omitempty"`
	Namespaces []string `json:"namespaces"` // seen in the sampled entries
}

type status struct {
	Time     time.Time        `json:"time"`
	Layout   string           `json:"layout"` // "pubsub" or "streams-only"
	Streams  []streamStatus   `json:"streams"`
	Servers  map[string]int64 `json:"servers"` // per namespace
	Sessions int64            `json:"sessions"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	asJSON := e.fs.Bool("json", false, "print JSON")
	if err := e.parse(args); err != nil {
		return err
	}
	if e.fs.NArg() > 0 {
		return usageError{"status takes no arguments"}
	}
	if err := e.connect(ctx); err != nil {
		return err
	}
	st, err := e.status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e, st)
	return nil
}

func (e *env) status(ctx context.Context) (*status, error) {
	names, err := e.existingStreams(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	st := &status{Time: now.UTC().Truncate(time.Millisecond), Layout: "pubsub", Servers: map[string]int64{}}
	if e.cfg.streamsOnly {
		st.Layout = "streams-only"
	}
	seen := map[string]bool{}
	for _, name := range names {
		s, err := e.streamStatus(ctx, name, now)
		if err != nil {
			return nil, err
		}
		for _, n := range s.Namespaces {
			seen[n] = true
		}
		st.Streams = append(st.Streams, s)
	}
	if e.cfg.streamsOnly {
		err = e.heartbeatCounts(ctx, names, now, st.Servers)
	} else {
		err = e.subscriberCounts(ctx, seen, st.Servers)
	}
	if err != nil {
		return nil, err
	}
	if st.Sessions, err = e.countSessions(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

func (e *env) streamStatus(ctx context.Context, name string, now time.Time) (streamStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	info, err := e.rdb.StreamInfo(ctx, name)
	if err != nil {
		return streamStatus{}, fmt.Errorf("XINFO STREAM %s: %w", name, err)
	}
	s := streamStatus{Stream: name, Length: info.Length, FirstID: info.FirstID, LastID: info.LastID,
		EntriesAdded: info.Added, MaxLen: e.cfg.maxLen, Namespaces: []string{}}
	if info.Length > 0 {
		s.FirstAge = ageOf(info.FirstID, now)
		s.LastAge = ageOf(info.LastID, now)
	}
	recent, err := e.client.XRevRangeN(ctx, name, "+", "-", rateSample).Result()
	if err != nil {
		return streamStatus{}, fmt.Errorf("XREVRANGE %s: %w", name, err)
	}
	nsps := map[string]bool{}
	for _, m := range recent {
		if n, ok := m.Values["nsp"].(string); ok && n != "" {
			nsps[n] = true
		}
	}
	s.Namespaces = slices.Sorted(maps.Keys(nsps))
	if len(recent) > 0 {
		if oldest, ok := wire.IDMillis(recent[len(recent)-1].ID); ok {
			span := now.Sub(time.UnixMilli(oldest)).Seconds()
			if span > 0 {
				s.Rate = float64(len(recent)) / span
			}
		}
	}
	if s.Rate > 0 && e.cfg.maxLen > 0 {
		h := float64(e.cfg.maxLen) / s.Rate
		s.Headroom = &h
	}
	return s, nil
}

// subscriberCounts counts, per namespace, the subscribers of its public channel (PUBSUB NUMSUB, summed over a
// cluster's nodes), for the namespaces with a public channel and those seen in the streams.
func (e *env) subscriberCounts(ctx context.Context, seen map[string]bool, out map[string]int64) error {
	nsps := maps.Clone(seen)
	var mu sync.Mutex
	pattern := globEscape(e.cfg.channelPrefix) + "#*"
	private := regexp.MustCompile(`#[0-9a-f]{16}$`)
	err := e.forEachNode(ctx, false, func(ctx context.Context, c *redis.Client) error {
		var chans []string
		var err error
		if e.cfg.sharded {
			chans, err = c.PubSubShardChannels(ctx, pattern).Result()
		} else {
			chans, err = c.PubSubChannels(ctx, pattern).Result()
		}
		if err != nil {
			return fmt.Errorf("PUBSUB CHANNELS on %s: %w", c.Options().Addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range chans {
			rest := strings.TrimSuffix(strings.TrimPrefix(ch, e.cfg.channelPrefix+"#"), "#")
			if private.MatchString(rest) {
				continue // a server's private channel
			}
			nsps[rest] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for nsp := range nsps {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
		n, err := e.rdb.NumSub(cctx, wire.ChannelName(e.cfg.channelPrefix, nsp, ""))
		cancel()
		if err != nil {
			return fmt.Errorf("PUBSUB NUMSUB: %w", err)
		}
		out[nsp] = n
	}
	return nil
}

// heartbeatCounts counts, per namespace, the servers heard from on the streams within the heartbeat timeout.
func (e *env) heartbeatCounts(ctx context.Context, streams []string, now time.Time, out map[string]int64) error {
	for _, s := range streams {
		members, oldest, err := rdb.Members(ctx, e.rdb, s, now.Add(-e.cfg.heartbeatTimeout), 200_000)
		if err != nil {
			return fmt.Errorf("XREVRANGE %s: %w", s, err)
		}
		if !oldest.IsZero() {
			fmt.Fprintf(e.stderr, "redisstreams: %s: more than 200000 entries within -heartbeat-timeout; counted the "+
				"servers heard from in the last %v only\n", s, now.Sub(oldest).Round(time.Millisecond))
		}
		for nsp, uids := range members {
			out[nsp] += int64(len(uids))
		}
	}
	return nil
}

// scanSessions calls f with every session key (SCAN on every master).
func (e *env) scanSessions(ctx context.Context, f func(c *redis.Client, key string) error) error {
	var mu sync.Mutex
	pattern := globEscape(e.cfg.sessionPrefix) + "*"
	return e.forEachNode(ctx, true, func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			err := f(c, it.Val())
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("SCAN on %s: %w", c.Options().Addr, err)
		}
		return nil
	})
}

func (e *env) countSessions(ctx context.Context) (int64, error) {
	var n int64
	err := e.scanSessions(ctx, func(*redis.Client, string) error { n++; return nil })
	return n, err
}

func printStatus(e *env, st *status) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%s, layout %s, at %s\n\n", e.where(), st.Layout, st.Time.Format(time.RFC3339))
	fmt.Fprintf(w, "STREAM\tLENGTH\tFIRST\tLAST\tADDED\tRATE\tMAXLEN HEADROOM\tNAMESPACES\n")
	for _, s := range st.Streams {
		added := "?"
		if s.EntriesAdded >= 0 {
			added = strconv.FormatInt(s.EntriesAdded, 10)
		}
		headroom := "idle"
		if s.Headroom != nil {
			headroom = fmt.Sprintf("%s at this rate", fmtSeconds(*s.Headroom))
		}
		if s.MaxLen <= 0 {
			headroom = "no MAXLEN"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%.1f/s\t%s\t%s\n", s.Stream, s.Length, withAge(s.FirstID, s.FirstAge),
			withAge(s.LastID, s.LastAge), added, s.Rate, headroom, strings.Join(s.Namespaces, " "))
	}
	fmt.Fprintf(w, "\nNAMESPACE\tSERVERS\n")
	for _, nsp := range slices.Sorted(maps.Keys(st.Servers)) {
		fmt.Fprintf(w, "%s\t%d\n", nsp, st.Servers[nsp])
	}
	if len(st.Servers) == 0 {
		fmt.Fprintf(w, "(none)\t0\n")
	}
	fmt.Fprintf(w, "\nrecovery sessions stored (%s*): %d\n", e.cfg.sessionPrefix, st.Sessions)
	_ = w.Flush()
}

func withAge(id string, age *float64) string {
	if age == nil {
		return id
	}
	return fmt.Sprintf("%s (%s ago)", id, fmtSeconds(*age))
}

func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func ageOf(id string, now time.Time) *float64 {
	ms, ok := wire.IDMillis(id)
	if !ok {
		return nil
	}
	a := max(now.Sub(time.UnixMilli(ms)).Seconds(), 0)
	return &a
}

// globEscape escapes the glob characters of a SCAN / PUBSUB CHANNELS pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
