// Command redisstreams looks at, and writes to, the Redis streams of a Socket.IO cluster that uses the
// redisstreams adapter (or the Node package @socket.io/redis-streams-adapter).
//
// Usage:
//
//	redisstreams [flags] <command> [command flags] [arguments]
//
// Commands:
//
//	status     per stream: length, first and last entries with their age, entries added, MAXLEN headroom at the
//	           recent rate; servers per namespace; stored recovery sessions
//	tail       follow the streams and print every entry decoded (-n history, -json, -nsp, -type filters)
//	emit       emit [-nsp /x] [-to room]... [-except room]... event [json-arg...], through the emitter
//	sessions   count (or -list) the stored connection state recovery sessions with their TTL
//
// Connection: -redis URL (or REDIS_URL), e.g. redis://user:password@host:6379/0 or rediss:// for TLS; or
// -cluster host:port,... (or REDIS_CLUSTER_ADDRS) for Redis Cluster, whose entries may be redis:// URLs that carry
// the credentials. Passwords are never printed. The naming flags (-stream, -stream-count, -channel-prefix,
// -session-prefix, -sharded, -streams-only) must match the servers' options.
//
// Exit status: 0 on success, 1 on an error, 2 on a usage error.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config holds the connection and naming flags every command shares.
type config struct {
	redisURL         string
	clusterAddrs     string
	stream           string
	streamCount      int
	channelPrefix    string
	sessionPrefix    string
	sharded          bool
	streamsOnly      bool
	heartbeatTimeout time.Duration
	maxLen           int64
	timeout          time.Duration

	explicit map[string]bool // flags given on the command line
}

// commonFlags registers the shared flags on fs, with c's current values as defaults (so that flags given before
// the command carry over to the command's own flag set).
func commonFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.redisURL, "redis", c.redisURL, "Redis `URL` (default $REDIS_URL, else redis://127.0.0.1:6379)")
	fs.StringVar(&c.clusterAddrs, "cluster", c.clusterAddrs, "Redis Cluster `addresses` host:port,... (default $REDIS_CLUSTER_ADDRS)")
	fs.StringVar(&c.stream, "stream", c.stream, "stream `name`, or prefix when -stream-count > 1 (the adapter's StreamName)")
	fs.IntVar(&c.streamCount, "stream-count", c.streamCount, "number of streams (the adapter's StreamCount)")
	fs.StringVar(&c.channelPrefix, "channel-prefix", c.channelPrefix, "PUB/SUB channel `prefix` (the adapter's ChannelPrefix)")
	fs.StringVar(&c.sessionPrefix, "session-prefix", c.sessionPrefix, "recovery session key `prefix` (the adapter's SessionKeyPrefix)")
	fs.BoolVar(&c.sharded, "sharded", c.sharded, "servers use sharded PUB/SUB (the adapter's UseShardedPubSub)")
	fs.BoolVar(&c.streamsOnly, "streams-only", c.streamsOnly, "servers use the streams-only layout (the adapter's StreamsOnly): count servers by heartbeats")
	fs.DurationVar(&c.heartbeatTimeout, "heartbeat-timeout", c.heartbeatTimeout, "streams-only: a server heard from within this `duration` is counted")
	fs.Int64Var(&c.maxLen, "maxlen", c.maxLen, "the streams' MAXLEN (the adapter's MaxLen), for the headroom and for emit")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "bound on each Redis command")
	// Usage texts show no URL: a value given before the command may hold a password.
	fs.Lookup("redis").DefValue = ""
	fs.Lookup("cluster").DefValue = ""
}

func defaultConfig() config {
	return config{
		stream:           wire.DefaultStreamName,
		streamCount:      wire.DefaultStreamCount,
		channelPrefix:    wire.DefaultChannelPrefix,
		sessionPrefix:    wire.DefaultSessionKeyPrefix,
		heartbeatTimeout: wire.DefaultHeartbeatTimeout,
		maxLen:           wire.DefaultMaxLen,
		timeout:          5 * time.Second,
		explicit:         map[string]bool{},
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"status", "streams, servers and sessions at a glance", runStatus},
	{"tail", "follow the streams, entries decoded", runTail},
	{"emit", "emit an event through the emitter", runEmit},
	{"sessions", "count or list the stored recovery sessions", runSessions},
}

// env is what a command runs with.
type env struct {
	cfg    config
	fs     *flag.FlagSet
	stdout io.Writer
	stderr io.Writer
	redact func(string) string

	client redis.UniversalClient
	rdb    rdb.Client
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole command: it parses args, runs the command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// go-redis logs dial retries through a global logger; the command reports errors itself.
	redis.SetLogger(quietLogger{})
	cfg := defaultConfig()
	global := flag.NewFlagSet("redisstreams", flag.ContinueOnError)
	global.SetOutput(stderr)
	commonFlags(global, &cfg)
	global.Usage = func() {
		fmt.Fprintf(stderr, "usage: redisstreams [flags] <command> [command flags] [arguments]\n\ncommands:\n")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-9s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(stderr, "\nflags (also accepted after the command):\n")
		global.PrintDefaults()
	}
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	global.Visit(func(f *flag.Flag) { cfg.explicit[f.Name] = true })
	if global.NArg() == 0 {
		global.Usage()
		return 2
	}
	name := global.Arg(0)
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "redisstreams: unknown command %q (run redisstreams -h)\n", name)
		return 2
	}
	fs := flag.NewFlagSet("redisstreams "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &env{cfg: cfg, fs: fs, stdout: stdout, stderr: stderr, redact: func(s string) string { return s }}
	commonFlags(fs, &e.cfg)
	err := cmd.run(ctx, e, global.Args()[1:])
	if e.client != nil {
		_ = e.client.Close()
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "redisstreams %s: %s\n", name, e.redact(err.Error()))
		return 2
	case errors.Is(err, errParse):
		return 2 // the flag package has said why
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return 0 // stopped by the caller (tail follows until SIGINT)
	}
	fmt.Fprintf(stderr, "redisstreams %s: %s\n", name, e.redact(err.Error()))
	return 1
}

var errParse = errors.New("bad flags")

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// parse parses the command's flags (common ones included) and validates the shared ones.
func (e *env) parse(args []string) error {
	if err := e.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errParse
	}
	c := &e.cfg
	e.fs.Visit(func(f *flag.Flag) { c.explicit[f.Name] = true })
	if c.explicit["redis"] && c.explicit["cluster"] {
		return usageError{"-redis and -cluster are exclusive"}
	}
	if c.redisURL == "" && c.clusterAddrs == "" {
		// From the environment: a cluster when REDIS_CLUSTER_ADDRS is set, else REDIS_URL.
		if c.clusterAddrs = os.Getenv("REDIS_CLUSTER_ADDRS"); c.clusterAddrs == "" {
			c.redisURL = os.Getenv("REDIS_URL")
		}
	}
	switch {
	case c.streamCount < 1:
		return usageError{fmt.Sprintf("-stream-count must be >= 1, got %d", c.streamCount)}
	case c.stream == "":
		return usageError{"-stream must not be empty"}
	case c.timeout <= 0:
		return usageError{"-timeout must be > 0"}
	}
	return nil
}

// connect opens the Redis client and checks it answers, with errors that say what is wrong and never show a
// password.
func (e *env) connect(ctx context.Context) error {
	c := &e.cfg
	var secrets []string
	if c.clusterAddrs != "" {
		o := &redis.ClusterOptions{ReadTimeout: c.timeout, WriteTimeout: c.timeout, DialTimeout: c.timeout, MaxRetries: 1}
		for _, a := range strings.Split(c.clusterAddrs, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if strings.Contains(a, "://") {
				u, err := url.Parse(a)
				if err != nil {
					return fmt.Errorf("-cluster: %q is not a URL", redactURL(a))
				}
				if p, ok := u.User.Password(); ok {
					o.Username, o.Password = u.User.Username(), p
					secrets = append(secrets, p)
				}
				if u.Scheme == "rediss" {
					o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				}
				a = u.Host
			}
			o.Addrs = append(o.Addrs, a)
		}
		if len(o.Addrs) == 0 {
			return usageError{"-cluster names no address"}
		}
		e.redact = redactor(secrets)
		e.client = redis.NewClusterClient(o)
	} else {
		raw := c.redisURL
		if raw == "" {
			raw = "redis://127.0.0.1:6379"
		}
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				secrets = append(secrets, p)
			}
		}
		e.redact = redactor(secrets)
		o, err := redis.ParseURL(raw)
		if err != nil {
			return fmt.Errorf("-redis %s: %s", redactURL(raw), e.redact(err.Error()))
		}
		o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.MaxRetries = c.timeout, c.timeout, c.timeout, 1
		e.client = redis.NewClient(o)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
	defer cancel()
	if err := e.client.Ping(pctx).Err(); err != nil {
		return e.connectError(err)
	}
	var err error
	if e.rdb, err = goredisbackend.New(e.client).Open(c.sharded); err != nil {
		return err
	}
	return nil
}

// where names the Redis the command talks to, without credentials.
func (e *env) where() string {
	if e.cfg.clusterAddrs != "" {
		var addrs []string
		for _, a := range strings.Split(e.cfg.clusterAddrs, ",") {
			addrs = append(addrs, redactURL(strings.TrimSpace(a)))
		}
		return "Redis Cluster " + strings.Join(addrs, ",")
	}
	if e.cfg.redisURL == "" {
		return "Redis redis://127.0.0.1:6379"
	}
	return "Redis " + redactURL(e.cfg.redisURL)
}

func (e *env) connectError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return fmt.Errorf("%s refused the credentials (wrong user name or password): %w", e.where(), err)
	case strings.Contains(msg, "NOAUTH"):
		return fmt.Errorf("%s requires a password: give it in the URL (redis://user:password@host:port): %w", e.where(), err)
	case strings.Contains(msg, "NOPERM"):
		return fmt.Errorf("%s: the user lacks a permission: %w", e.where(), err)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach %s: %w", e.where(), err)
	}
	return fmt.Errorf("%s: %w", e.where(), err)
}

// redactURL shows a URL without its password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 && strings.Contains(raw, "://") {
			return raw[:strings.Index(raw, "://")+3] + "xxxxx@" + raw[i+1:]
		}
		return raw
	}
	return u.Redacted()
}

// redactor returns a function that masks every occurrence of the secrets in a message.
func redactor(secrets []string) func(string) string {
	var pairs []string
	for _, s := range secrets {
		if s != "" {
			pairs = append(pairs, s, "xxxxx")
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// streams returns every stream of the layout: the base name, or with a stream count its "-i" streams, negative
// indexes included (the adapter's namespace hash produces them).
func (e *env) streams() []string { return wire.StreamNames(e.cfg.stream, e.cfg.streamCount) }

// keyType returns Redis' TYPE of a key ("none" when missing).
func (e *env) keyType(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	t, err := e.client.Type(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("TYPE %s: %w", key, err)
	}
	return t, nil
}

// existingStreams returns the layout's streams that exist, and fails on a key of another type or when none does.
func (e *env) existingStreams(ctx context.Context) ([]string, error) {
	var out []string
	for _, s := range e.streams() {
		t, err := e.keyType(ctx, s)
		if err != nil {
			return nil, err
		}
		switch t {
		case "none":
		case "stream":
			out = append(out, s)
		default:
			return nil, fmt.Errorf("key %q is a %s, not a stream: is -stream right?", s, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no stream %s on %s: is -stream (or -stream-count) right? Servers create it on their first write", e.describeStreams(), e.where())
	}
	return out, nil
}

func (e *env) describeStreams() string {
	if e.cfg.streamCount == 1 {
		return fmt.Sprintf("%q", e.cfg.stream)
	}
	return fmt.Sprintf("%q-<i> (-stream-count %d)", e.cfg.stream, e.cfg.streamCount)
}

// forEachNode runs f on the standalone client, or on every node of a cluster (masters only when masters).
func (e *env) forEachNode(ctx context.Context, masters bool, f func(ctx context.Context, c *redis.Client) error) error {
	switch c := e.client.(type) {
	case *redis.Client:
		return f(ctx, c)
	case *redis.ClusterClient:
		if masters {
			return c.ForEachMaster(ctx, f)
		}
		return c.ForEachShard(ctx, f)
	}
	return fmt.Errorf("unsupported client %T", e.client)
}
