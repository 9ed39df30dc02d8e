// Command chat runs three Socket.IO chat servers in one process, each with its own Redis client and its own
// redisstreams.Adapter, all sharing one Redis. A message typed on the page of one server reaches the pages of the
// others through Redis Streams.
//
//	go run ./examples/chat                       # embedded Redis (miniredis), ports 3001-3003
//	REDIS_URL=redis://127.0.0.1:6379/0 go run ./examples/chat
//	REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001 go run ./examples/chat
//	go run ./examples/chat -ports 4001,4002 -addr-host 0.0.0.0
//
// Then open http://127.0.0.1:3001/ and http://127.0.0.1:3002/ side by side.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is everything run needs; main fills it from flags and the environment.
type config struct {
	// Host is the address every server listens on, e.g. "127.0.0.1".
	Host string
	// Ports are the servers' ports, one server each; 0 picks a free port.
	Ports []int

	// RedisURL, if set, is a redis:// or rediss:// URL (redis.ParseURL) of a standalone Redis.
	RedisURL string
	// ClusterAddrs, if set, are the seed addresses of a Redis Cluster. It wins over RedisURL.
	ClusterAddrs []string
	// MiniredisAddr is where the embedded Redis listens when neither RedisURL nor ClusterAddrs is set.
	MiniredisAddr string

	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration

	Logger *slog.Logger
	// Out receives the lines meant for the person who started the demo (starting, ready with the URLs); nil
	// discards them.
	Out io.Writer

	// ready, if set, is called by run with the servers' URLs once they all accept connections (for tests).
	ready func(urls []string)
}

func main() {
	cfg := config{ShutdownTimeout: 10 * time.Second}
	var ports, level string
	flag.StringVar(&ports, "ports", "3001,3002,3003", "comma-separated ports, one Socket.IO server each (0 = any free port)")
	flag.StringVar(&cfg.Host, "addr-host", "127.0.0.1", "host/IP the servers listen on")
	flag.StringVar(&cfg.MiniredisAddr, "miniredis-addr", "127.0.0.1:0", "listen address of the embedded Redis (used when REDIS_URL and REDIS_CLUSTER_ADDRS are unset)")
	flag.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\n", os.Args[0])
		fmt.Fprintln(flag.CommandLine.Output(), "Starts several Socket.IO chat servers sharing one Redis through the Redis Streams adapter.")
		fmt.Fprintln(flag.CommandLine.Output(), "Environment: REDIS_URL (standalone Redis URL), REDIS_CLUSTER_ADDRS (host:port,host:port).")
		fmt.Fprintln(flag.CommandLine.Output(), "Without either, an embedded in-process Redis (miniredis) is started.")
		fmt.Fprintln(flag.CommandLine.Output())
		flag.PrintDefaults()
	}
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "chat: -log-level: %v\n", err)
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg.Out = os.Stdout

	var err error
	if cfg.Ports, err = parsePorts(ports); err != nil {
		fmt.Fprintf(os.Stderr, "chat: -ports: %v\n", err)
		os.Exit(2)
	}
	cfg.RedisURL = os.Getenv("REDIS_URL")
	if addrs := os.Getenv("REDIS_CLUSTER_ADDRS"); addrs != "" {
		for a := range strings.SplitSeq(addrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.ClusterAddrs = append(cfg.ClusterAddrs, a)
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		cfg.Logger.Error("chat: exiting", "err", err)
		os.Exit(1)
	}
}

// run starts the cluster, serves until ctx is done (or a server fails), then shuts everything down.
func run(ctx context.Context, cfg config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	redis := "the embedded Redis"
	switch {
	case len(cfg.ClusterAddrs) > 0:
		redis = "the Redis Cluster at " + strings.Join(cfg.ClusterAddrs, ",")
	case cfg.RedisURL != "":
		redis = redactURL(cfg.RedisURL)
	}
	fmt.Fprintf(out, "chat: starting %d server(s) on %s…\n", len(cfg.Ports), redis)
	c, err := startCluster(ctx, cfg)
	if err != nil {
		return err
	}
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.url
	}
	fmt.Fprintf(out, "chat: ready. Open in a browser (Ctrl-C stops):\n")
	for _, u := range urls {
		fmt.Fprintf(out, "  %s\n", u)
	}
	if cfg.ready != nil {
		cfg.ready(urls)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("chat: shutting down", "cause", context.Cause(ctx))
	case serveErr = <-c.failed:
		log.Error("chat: a server stopped, shutting down", "err", serveErr)
	}
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	closeErr := c.Close(sctx)
	if closeErr == nil {
		log.Info("chat: stopped cleanly")
	}
	return errors.Join(serveErr, closeErr)
}

func parsePorts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("bad port %q", f)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no port given")
	}
	return out, nil
}
