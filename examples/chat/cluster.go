package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/redisstreamsprom"
	"github.com/socketio-go/redisstreams/wstransport"
)

// chatCluster is the set of chat servers this process runs, and the embedded Redis if there is one.
type chatCluster struct {
	log    *slog.Logger
	mini   *miniredis.Miniredis // nil with an external Redis
	nodes  []*node
	failed chan error // a server's Serve returned unexpectedly
}

// node is one Socket.IO server: its own HTTP listener, Redis client and adapter.
type node struct {
	label   string // "host:port", shown to users as the server a message went through
	url     string // "http://host:port/"
	ln      net.Listener
	http    *http.Server
	io      *socket.Server
	adapter *redisstreams.Adapter
	ws      *wstransport.Transport // the websocket transport, for its counters in /api/stats
	rc      redis.UniversalClient
	log     *slog.Logger
	peers   []string // the URLs of every server of this process, this one included
	stats   statsCache
	metrics *prometheus.Registry // the adapter's metrics, served on /metrics
}

// startCluster connects to (or starts) Redis and starts one chat server per configured port. On error, whatever
// was started is stopped again.
func startCluster(ctx context.Context, cfg config) (_ *chatCluster, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Ports) == 0 {
		return nil, errors.New("no port configured")
	}
	c := &chatCluster{log: log, failed: make(chan error, len(cfg.Ports))}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Close(cctx)
		}
	}()

	newClient, err := c.redisFactory(cfg)
	if err != nil {
		return nil, err
	}

	// Listen on every port first, so that a port in use fails the start before anything talks to Redis.
	listeners := make([]net.Listener, len(cfg.Ports))
	for i, p := range cfg.Ports {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners[:i] {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen on %s (choose other ports with -ports): %w", addr, err)
		}
		listeners[i] = ln
	}
	peers := make([]string, len(listeners))
	for i, ln := range listeners {
		peers[i] = "http://" + browsable(ln.Addr().(*net.TCPAddr)) + "/"
	}

	for i, ln := range listeners {
		n, err := startNode(ctx, ln, newClient(), peers, log)
		if err != nil {
			for _, l := range listeners[i:] {
				_ = l.Close()
			}
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		go func() {
			if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.failed <- fmt.Errorf("server %s: %w", n.label, err)
			}
		}()
		n.log.Info("chat: server started", "url", n.url)
	}
	return c, nil
}

// redisFactory chooses the Redis every server talks to, and returns a function that makes one new client for it
// (each server has its own, as separate processes would).
func (c *chatCluster) redisFactory(cfg config) (func() redis.UniversalClient, error) {
	switch {
	case len(cfg.ClusterAddrs) > 0:
		c.log.Info("chat: using Redis Cluster from REDIS_CLUSTER_ADDRS", "addrs", cfg.ClusterAddrs)
		return func() redis.UniversalClient {
			// ContextTimeoutEnabled: a Redis that stops answering is noticed within the adapter's RequestsTimeout.
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.ClusterAddrs, ContextTimeoutEnabled: true})
		}, nil
	case cfg.RedisURL != "":
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %w", redactURL(cfg.RedisURL), redactErr(err, cfg.RedisURL))
		}
		c.log.Info("chat: using Redis from REDIS_URL", "url", redactURL(cfg.RedisURL))
		return func() redis.UniversalClient {
			o := *opt
			o.ContextTimeoutEnabled = true
			return redis.NewClient(&o)
		}, nil
	default:
		m := miniredis.NewMiniRedis()
		addr := cfg.MiniredisAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		if err := m.StartAddr(addr); err != nil {
			return nil, fmt.Errorf("start embedded Redis on %s: %w", addr, err)
		}
		c.mini = m
		c.log.Info("chat: started embedded Redis (miniredis); set REDIS_URL to use a real one", "addr", m.Addr())
		return func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
		}, nil
	}
}

// startNode makes one Socket.IO server with its own adapter over rc, and its HTTP server (not yet serving).
func startNode(ctx context.Context, ln net.Listener, rc redis.UniversalClient, peers []string, log *slog.Logger) (*node, error) {
	label := ln.Addr().String()
	n := &node{
		label: label,
		url:   "http://" + browsable(ln.Addr().(*net.TCPAddr)) + "/",
		ln:    ln,
		rc:    rc,
		log:   log.With("server", label),
		peers: peers,
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("server %s: cannot reach Redis: %w", label, redactErr(err, redisSecrets(rc)...))
	}
	metrics := redisstreamsprom.New(redisstreamsprom.Options{ConstLabels: prometheus.Labels{"server": label}})
	a, err := redisstreams.New(ctx, goredisbackend.New(rc), redisstreams.Options{Logger: n.log, Observer: metrics})
	if err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("server %s: %w", label, err)
	}
	n.adapter = a
	n.metrics = prometheus.NewRegistry()
	n.metrics.MustRegister(metrics.Collector(a))

	opts := socket.DefaultServerOptions()
	opts.SetAdapter(a)
	// Connection state recovery: a page that loses its connection gets, once back, what it missed (from the stream,
	// whichever server sent it). The adapter stores the sessions in Redis, so a restarted server can restore them.
	opts.SetConnectionStateRecovery(socket.DefaultConnectionStateRecovery())
	// Websocket connections use this module's transport (less CPU per message than the engine's), and compress
	// messages of 1 KB or more for the browsers that offer per-message deflate (they all do).
	opts.SetPerMessageDeflate(&types.PerMessageDeflate{Threshold: 1024})
	n.ws = wstransport.Install(opts, wstransport.Options{Logger: n.log})
	n.io = socket.NewServer(nil, opts)
	n.registerChat()
	n.answerPeers()

	n.http = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
	return n, nil
}

// routes is the server's HTTP API: one line per endpoint.
func (n *node) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", n.io.ServeHandler(nil))                                  // Socket.IO (websocket and polling)
	mux.HandleFunc("GET /api/stats", n.handleStats)                                    // the cluster view of the page
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{})) // Prometheus
	mux.HandleFunc("GET /healthz", n.handleHealth)                                     // readiness (Adapter.Ping)
	mux.Handle("/", staticHandler())                                                   // the page and its scripts
	return mux
}

// Close stops every server gracefully: Socket.IO servers first (their clients are told, their namespaces leave the
// cluster), then the HTTP servers, the adapters (queued writes are flushed), the Redis clients, and the embedded
// Redis last.
func (c *chatCluster) Close(ctx context.Context) error {
	var errs []error
	for _, n := range c.nodes {
		done := make(chan error, 1)
		n.io.Close(func(err error) { done <- err })
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("server %s: close socket.io: %w", n.label, err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("server %s: close socket.io: %w", n.label, ctx.Err()))
		}
	}
	for _, n := range c.nodes {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server %s: close http: %w", n.label, err))
		}
	}
	for _, n := range c.nodes {
		if err := n.adapter.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server %s: close adapter: %w", n.label, err))
		}
		if err := n.rc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server %s: close redis client: %w", n.label, err))
		}
		n.log.Info("chat: server stopped")
	}
	c.nodes = nil
	if c.mini != nil {
		c.mini.Close()
		c.mini = nil
		c.log.Info("chat: embedded Redis stopped")
	}
	return errors.Join(errs...)
}

// browsable is the host:port a browser on this machine can use for addr: a wildcard listen address becomes
// loopback.
func browsable(addr *net.TCPAddr) string {
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		if ip.To4() == nil && ip != nil {
			ip = net.IPv6loopback
		} else {
			ip = net.IPv4(127, 0, 0, 1)
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}
