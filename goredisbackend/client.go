package goredisbackend

import (
	"context"
	"errors"
	"fmt"
	"github.com/socketio-go/redisstreams/internal/rdb"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// conn serves rdb.Client with a go-redis v9 standalone (*redis.Client) or cluster (*redis.ClusterClient) client.
type conn struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // client, when it is a cluster client
	sharded bool
}

var _ rdb.Client = (*conn)(nil)

// open wraps client. sharded selects SPUBLISH/SSUBSCRIBE/SHARDNUMSUB. The client stays the caller's.
func open(client redis.UniversalClient, sharded bool) (*conn, error) {
	switch client.(type) {
	case *redis.Client, *redis.ClusterClient:
	default:
		return nil, fmt.Errorf("goredisbackend: unsupported go-redis client type %T (want *redis.Client or *redis.ClusterClient)", client)
	}
	cc, _ := client.(*redis.ClusterClient)
	return &conn{client: client, cluster: cc, sharded: sharded}, nil
}

// failed passes err through, and when it says that a cluster node could not be reached or could not serve (a
// master killed, CLUSTERDOWN during a failover), asks the cluster client to reload its slot map. go-redis reloads
// it on MOVED and READONLY replies, and otherwise only every ClusterStateReloadInterval (60 s by default): after a
// master died and its replica took over, its commands would go on dialing the dead master until then, and every
// write held meanwhile would wait (or be dropped after MaxOutage). The reload runs in the background, at most one
// at a time (go-redis coalesces the requests).
func (g *conn) failed(err error) error {
	if g.cluster != nil && rdb.Unavailable(err) && !errors.Is(err, context.Canceled) {
		g.cluster.ReloadState(context.Background())
	}
	return err
}

// Batch implements Client.
func (g *conn) Batch(ctx context.Context, batch []*rdb.Op) {
	defer func() {
		for _, op := range batch {
			if op.Err != nil {
				_ = g.failed(op.Err)
				return
			}
		}
	}()
	var b boxes
	if len(batch) == 1 {
		g.do(ctx, g.client, batch[0], &b).Result()
		return
	}
	// The arguments of every XADD of the batch share one slice.
	n := 0
	for _, op := range batch {
		if op.Channel == "" {
			n += xaddArgs(op)
		}
	}
	b.args = make([]any, 0, n)
	pipe := g.client.Pipeline()
	cmds := make([]result, len(batch))
	for i, op := range batch {
		cmds[i] = g.do(ctx, pipe, op, &b)
	}
	_, _ = pipe.Exec(ctx)
	for _, r := range cmds {
		r.Result()
	}
}

// processor is what do needs of a client or a pipeline.
type processor interface {
	redis.Cmdable
	Process(ctx context.Context, cmd redis.Cmder) error
}

// do queues (on a pipeline) or runs one operation; for a direct call the result is stored in op.
func (g *conn) do(ctx context.Context, c processor, op *rdb.Op, b *boxes) result {
	if op.Channel != "" {
		var cmd *redis.IntCmd
		if g.sharded {
			cmd = c.SPublish(ctx, op.Channel, op.Payload)
		} else {
			cmd = c.Publish(ctx, op.Channel, op.Payload)
		}
		return result{cmd, op}
	}
	// What XAdd with XAddArgs sends, built here: XAdd boxes every argument into an interface (an allocation each)
	// and grows an argument slice of its own; here the stream, the trimming threshold, the field names and the uid,
	// nsp and type values, the same for most writes of a batch, are boxed once, and the arguments are taken from
	// the batch's slice (b.args) while it has room.
	start := len(b.args)
	if cap(b.args)-start < xaddArgs(op) {
		b.args = make([]any, 0, xaddArgs(op))
		start = 0
	}
	args := append(b.args, "xadd", b.box(op.Stream))
	if op.MaxLen > 0 {
		args = append(args, "maxlen", "~", b.maxLen(op.MaxLen))
	}
	args = append(args, "*")
	for i := 0; i+1 < len(op.Fields); i += 2 {
		name, value := op.Fields[i], op.Fields[i+1]
		var v any
		switch name {
		case "uid", "nsp", "type":
			v = b.box(value)
		default:
			v = value
		}
		args = append(args, fieldName(name), v)
	}
	b.args = args
	cmd := redis.NewStringCmd(ctx, args[start:len(args):len(args)]...)
	_ = c.Process(ctx, cmd)
	return result{cmd, op}
}

// xaddArgs is the number of arguments of op's XADD.
func xaddArgs(op *rdb.Op) int { return 6 + len(op.Fields)&^1 }

// fieldName boxes a stream field name: the adapter's own names without an allocation.
func fieldName(name string) any {
	switch name {
	case "uid":
		return "uid"
	case "nsp":
		return "nsp"
	case "type":
		return "type"
	case "data":
		return "data"
	case "seq":
		return "seq"
	}
	return name
}

// boxes keeps the strings of one batch that repeat from write to write, boxed once.
type boxes struct {
	args   []any // room for the arguments of the batch's XADDs
	n      int
	s      [6]string
	v      [6]any
	max    int64
	maxBox any
}

func (b *boxes) box(s string) any {
	for i := range b.n {
		if b.s[i] == s {
			return b.v[i]
		}
	}
	var v any = s
	if b.n < len(b.s) {
		b.s[b.n], b.v[b.n] = s, v
		b.n++
	}
	return v
}

func (b *boxes) maxLen(n int64) any {
	if b.maxBox == nil || b.max != n {
		b.max, b.maxBox = n, n
	}
	return b.maxBox
}

type result struct {
	redis.Cmder
	op *rdb.Op
}

// Result copies a finished command's outcome into its operation.
func (r result) Result() {
	if c, ok := r.Cmder.(*redis.StringCmd); ok {
		r.op.ID, r.op.Err = c.Result()
		return
	}
	r.op.Err = r.Err()
}

// XRange implements Client.
func (g *conn) XRange(ctx context.Context, stream, start, end string, count int64) ([]rdb.Entry, error) {
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = g.client.XRangeN(ctx, stream, start, end, count).Result()
	} else {
		msgs, err = g.client.XRange(ctx, stream, start, end).Result()
	}
	if err != nil {
		return nil, g.failed(err)
	}
	return toEntries(msgs, nil), nil
}

// XRevRange implements rdb.Client.
func (g *conn) XRevRange(ctx context.Context, stream, end, start string, count int64) ([]rdb.Entry, error) {
	msgs, err := g.client.XRevRangeN(ctx, stream, end, start, count).Result()
	if err != nil {
		return nil, g.failed(err)
	}
	return toEntries(msgs, nil), nil
}

// LastID implements Client.
func (g *conn) LastID(ctx context.Context, stream string) (string, error) {
	msgs, err := g.client.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", g.failed(err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// StreamInfo implements Client.
func (g *conn) StreamInfo(ctx context.Context, stream string) (rdb.StreamInfo, error) {
	info, err := g.client.XInfoStream(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return rdb.StreamInfo{LastID: "0-0", FirstID: "0-0"}, nil
		}
		return rdb.StreamInfo{}, g.failed(err)
	}
	out := rdb.StreamInfo{LastID: info.LastGeneratedID, FirstID: info.FirstEntry.ID, Length: info.Length, Added: info.EntriesAdded}
	if out.FirstID == "" {
		out.FirstID = "0-0"
	}
	if info.RecordedFirstEntryID == "" { // Redis < 7: no entries-added either
		out.Added = -1
	}
	return out, nil
}

// Publish implements Client.
func (g *conn) Publish(ctx context.Context, channel string, payload []byte) error {
	if g.sharded {
		return g.failed(g.client.SPublish(ctx, channel, payload).Err())
	}
	return g.failed(g.client.Publish(ctx, channel, payload).Err())
}

// NumSub implements Client.
func (g *conn) NumSub(ctx context.Context, channel string) (int64, error) {
	count := func(ctx context.Context, c redis.Cmdable) (int64, error) {
		var m map[string]int64
		var err error
		if g.sharded {
			m, err = c.PubSubShardNumSub(ctx, channel).Result()
		} else {
			m, err = c.PubSubNumSub(ctx, channel).Result()
		}
		return m[channel], err
	}
	cc, ok := g.client.(*redis.ClusterClient)
	if !ok {
		return count(ctx, g.client)
	}
	// A subscriber is counted only by the node its connection is on: ask every node, replicas included.
	var mu sync.Mutex
	var total int64
	err := cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := count(ctx, node)
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, err
}

// Set implements Client.
func (g *conn) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	return g.failed(g.client.Set(ctx, key, value, ttl).Err())
}

// Epoch implements Client.
func (g *conn) Epoch(ctx context.Context, key, value string) (string, error) {
	old, err := g.client.SetArgs(ctx, key, value, redis.SetArgs{Mode: "NX", Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return value, nil
	}
	return old, g.failed(err)
}

// GetDel implements Client.
func (g *conn) GetDel(ctx context.Context, key string) (string, bool, error) {
	v, err := g.client.GetDel(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "unknown command") {
		// Redis < 6.2: the MULTI/GET/DEL form Node uses.
		var get *redis.StringCmd
		_, err = g.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, key)
			p.Del(ctx, key)
			return nil
		})
		if errors.Is(err, redis.Nil) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		v, err = get.Result()
	}
	if err != nil {
		return "", false, g.failed(err)
	}
	return v, true, nil
}

// NewReader implements Client: a duplicate of the caller's client, limited to one connection per node, which the
// reader owns and closes.
func (g *conn) NewReader(skip rdb.SkipFunc) (rdb.Reader, error) {
	switch c := g.client.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 0
		// The copied options share the caller's maintenance-notification state, which may not be registered twice.
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		r := &goRedisReader{skip: skip}
		if o.Addr == failoverAddr && o.Dialer != nil {
			r.followMaster(&o)
		}
		r.client = redis.NewClient(&o)
		return r, nil
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 0
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return &goRedisReader{client: redis.NewClusterClient(&o), skip: skip, clusterOptions: &o}, nil
	}
	return nil, fmt.Errorf("rdb: unsupported client %T", g.client)
}

type goRedisReader struct {
	client redis.UniversalClient
	skip   rdb.SkipFunc
	closed sync.Once

	// A reader of a failover client (redis.NewFailoverClient) only: go-redis moves the caller's client to the new
	// master when Sentinel fails over, but not this duplicate, whose connection would go on reading the old master
	// (still a master, or a replica during its resync), missing what is written to the new one.
	dialMaster func(ctx context.Context, network, addr string) (net.Conn, error) // dials the master Sentinel names
	options    *redis.Options
	dialed     atomic.Pointer[string] // the server address of the reader's connection
	verified   time.Time              // when the master was last asked for; read goroutine only
	mu         sync.Mutex             // guards client and isClosed for the reconnection
	isClosed   bool

	// A reader of a cluster client only: its options, to start over with a new client (and a fresh slot map) when
	// a read fails because a node could not be reached or serve. Its client, a duplicate of the caller's, does not
	// learn that a dead master's replica took over its slots until it reloads its slot map (every 60 s, or on a
	// MOVED reply, which a dead master never sends).
	clusterOptions *redis.ClusterOptions
}

// failoverAddr is the Addr that go-redis gives the options of a failover client.
const failoverAddr = "FailoverClient"

// followMasterEvery is how often a failover client's reader asks Sentinel for the master.
const followMasterEvery = time.Second

// followMaster makes the reader note the server its connection reaches (o is the reader's options).
func (r *goRedisReader) followMaster(o *redis.Options) {
	dial := o.Dialer
	r.dialMaster = dial
	r.options = o
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err == nil {
			a := conn.RemoteAddr().String()
			r.dialed.Store(&a)
		}
		return conn, err
	}
}

// moveToMaster asks Sentinel (through the failover client's dialer) where the master is, at most once per
// followMasterEvery, and when the reader's connection reaches another server, replaces it with one to the master.
// Failing to ask is no reason to stop reading: the read goes on where it was.
func (r *goRedisReader) moveToMaster(ctx context.Context) {
	if time.Since(r.verified) < followMasterEvery {
		return
	}
	r.verified = time.Now()
	dialed := r.dialed.Load()
	if dialed == nil {
		return // not connected yet: the first read dials the master
	}
	timeout := r.options.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := r.dialMaster(ctx, "tcp", "")
	if err != nil {
		return
	}
	master := conn.RemoteAddr().String()
	_ = conn.Close()
	if master == *dialed {
		return
	}
	r.mu.Lock()
	if r.isClosed {
		r.mu.Unlock()
		return
	}
	old := r.client
	r.dialed.Store(nil)
	r.client = redis.NewClient(r.options)
	r.mu.Unlock()
	_ = old.Close()
}

func (r *goRedisReader) Read(ctx context.Context, stream, lastID string, count int64, block time.Duration) ([]rdb.Entry, error) {
	if r.dialMaster != nil {
		r.moveToMaster(ctx)
	}
	client := r.client
	if r.dialMaster != nil || r.clusterOptions != nil { // the client may be replaced (moveToMaster, renew)
		r.mu.Lock()
		client = r.client
		r.mu.Unlock()
	}
	res, err := client.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, lastID}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if r.clusterOptions != nil && ctx.Err() == nil && rdb.Unavailable(err) {
			r.renew(client)
		}
		return nil, err
	}
	if len(res) == 1 {
		return toEntries(res[0].Messages, r.skip), nil
	}
	var out []rdb.Entry
	for _, s := range res {
		out = append(out, toEntries(s.Messages, r.skip)...)
	}
	return out, nil
}

// renew replaces the reader's cluster client, when it is still old, with a new one: its first command loads the
// slot map afresh.
func (r *goRedisReader) renew(old redis.UniversalClient) {
	r.mu.Lock()
	if r.isClosed || r.client != old {
		r.mu.Unlock()
		return
	}
	o := *r.clusterOptions
	r.client = redis.NewClusterClient(&o)
	r.mu.Unlock()
	_ = old.Close()
}

func (r *goRedisReader) Close() error {
	var err error
	r.closed.Do(func() {
		r.mu.Lock()
		r.isClosed = true
		client := r.client
		r.mu.Unlock()
		err = client.Close()
	})
	return err
}

func toEntries(msgs []redis.XMessage, skip rdb.SkipFunc) []rdb.Entry {
	out := make([]rdb.Entry, len(msgs))
	for i, m := range msgs {
		if skip != nil {
			uid, ok1 := m.Values["uid"].(string)
			nsp, ok2 := m.Values["nsp"].(string)
			if ok1 && ok2 && skip(uid, nsp) {
				out[i] = rdb.Entry{ID: m.ID, Skipped: true}
				continue
			}
		}
		fields := make(map[string]string, len(m.Values))
		for k, v := range m.Values {
			switch s := v.(type) {
			case string:
				fields[k] = s
			default:
				fields[k] = fmt.Sprint(v)
			}
		}
		out[i] = rdb.Entry{ID: m.ID, Fields: fields}
	}
	return out
}

// NewSubscriber implements Client. Regular PUB/SUB shares one connection for every channel; sharded PUB/SUB takes
// one connection per channel, since each channel may live on a different cluster node.
func (g *conn) NewSubscriber(handle func(channel string, payload []byte)) rdb.Subscriber {
	return &goRedisSubscriber{g: g, handle: handle, subs: map[string]*goRedisPubSub{}}
}

type goRedisSubscriber struct {
	g      *conn
	handle func(channel string, payload []byte)

	mu     sync.Mutex
	closed bool
	shared *goRedisPubSub            // regular PUB/SUB
	subs   map[string]*goRedisPubSub // sharded: one per channel
	conf   rdb.Confirmations
	wg     sync.WaitGroup
}

type goRedisPubSub struct {
	ps *redis.PubSub
}

func (s *goRedisSubscriber) start(ps *redis.PubSub) *goRedisPubSub {
	p := &goRedisPubSub{ps: ps}
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(4096))
	s.wg.Go(func() {
		for m := range ch {
			switch v := m.(type) {
			case *redis.Message:
				s.handle(v.Channel, []byte(v.Payload))
			case *redis.Subscription:
				if v.Kind == "subscribe" || v.Kind == "ssubscribe" {
					s.conf.Confirm(v.Channel)
				}
			}
		}
	})
	return p
}

func (s *goRedisSubscriber) Subscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return rdb.ErrClosed
	}
	var waits []chan struct{}
	var fresh []string // sharded: channels that need a connection of their own
	for _, c := range channels {
		if _, ok := s.subs[c]; ok {
			continue // sharded and already subscribed: no new confirmation will come
		}
		waits = append(waits, s.conf.Expect(c))
		fresh = append(fresh, c)
	}
	if !s.g.sharded && s.shared == nil {
		s.shared = s.start(s.g.client.Subscribe(ctx)) // no I/O until the first channel
	}
	shared := s.shared
	s.mu.Unlock()

	// Network calls happen outside s.mu: the delivery goroutines need it to confirm subscriptions.
	var err error
	if s.g.sharded {
		for _, c := range fresh {
			ps := s.g.client.SSubscribe(ctx)
			if err = ps.SSubscribe(ctx, c); err != nil {
				_ = ps.Close()
				break
			}
			s.mu.Lock()
			_, dup := s.subs[c]
			if s.closed || dup {
				s.mu.Unlock()
				_ = ps.Close()
				continue
			}
			s.subs[c] = s.start(ps)
			s.mu.Unlock()
		}
	} else {
		err = shared.ps.Subscribe(ctx, channels...)
	}
	if err != nil {
		s.conf.Forget(channels, waits)
		return fmt.Errorf("rdb: subscribe %v: %w", channels, err)
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			s.conf.Forget(channels, waits)
			return fmt.Errorf("rdb: subscribe %v not confirmed: %w", channels, ctx.Err())
		}
	}
	return nil
}

func (s *goRedisSubscriber) Unsubscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.g.sharded {
		var errs []error
		for _, c := range channels {
			if p, ok := s.subs[c]; ok {
				delete(s.subs, c)
				errs = append(errs, p.ps.SUnsubscribe(ctx, c), p.ps.Close())
			}
		}
		return errors.Join(errs...)
	}
	if s.shared == nil {
		return nil
	}
	return s.shared.ps.Unsubscribe(ctx, channels...)
}

func (s *goRedisSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	if s.shared != nil {
		errs = append(errs, s.shared.ps.Close())
	}
	for _, p := range s.subs {
		errs = append(errs, p.ps.Close())
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}
