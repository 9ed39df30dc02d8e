package rueidisbackend

import (
	"context"
	"errors"
	"fmt"
	"github.com/socketio-go/redisstreams/internal/rdb"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// conn serves rdb.Client with a rueidis client: standalone, sentinel or cluster (rueidis.NewClient picks the mode).
type conn struct {
	client  rueidis.Client
	sharded bool
	cluster bool

	lastMaxLen atomic.Pointer[formatted] // the last XADD trimming threshold, formatted
}

var _ rdb.Client = (*conn)(nil)

// open wraps client. sharded selects SPUBLISH/SSUBSCRIBE/SHARDNUMSUB. The client stays the caller's: nothing
// here closes it.
func open(client rueidis.Client, sharded bool) (*conn, error) {
	if client == nil {
		return nil, errors.New("rueidisbackend: nil rueidis client")
	}
	return &conn{client: client, sharded: sharded, cluster: client.Mode() == rueidis.ClientModeCluster}, nil
}

// Batch implements Client. rueidis pipelines a DoMulti in one round trip per node, and returns the results in
// the order of the commands.
//
// rueidis retries only read-only commands after a connection error. As go-redis retries every command a few
// times, the operations that failed on a connection error are sent again, up to writeRetries times, after a short
// pause (the broken connection is replaced meanwhile). Either way, delivery across a connection failure is at
// least once: an XADD whose reply was lost may be applied twice.
func (r *conn) Batch(ctx context.Context, batch []*rdb.Op) {
	retryEach(ctx, batch, func(op *rdb.Op) error { return op.Err }, r.batch)
}

// retryEach runs do with items, then again with those whose error (errOf) says a connection failed, up to
// writeRetries times, after a pause each time.
func retryEach[T any](ctx context.Context, items []T, errOf func(T) error, do func(context.Context, []T)) {
	do(ctx, items)
	for attempt := range writeRetries {
		var again []T
		for _, it := range items {
			if retryable(ctx, errOf(it)) {
				again = append(again, it)
			}
		}
		if len(again) == 0 || !pause(ctx, attempt) {
			return
		}
		do(ctx, again)
		items = again
	}
}

// writeRetries is how many times a write that failed on a connection error is sent again, as go-redis's
// default MaxRetries.
const writeRetries = 3

// pause waits before retry attempt (0-based): 10ms, 40ms, 160ms. False when ctx ended first.
func pause(ctx context.Context, attempt int) bool {
	return rdb.Sleep(ctx, 10*time.Millisecond<<(2*attempt))
}

// retry runs do again, as Batch does for writes, while it fails on a connection error.
func retry(ctx context.Context, do func() error) error {
	err := do()
	for attempt := 0; attempt < writeRetries && retryable(ctx, err); attempt++ {
		if !pause(ctx, attempt) {
			break
		}
		err = do()
	}
	return err
}

// retryable tells whether a command that failed with err may succeed on another connection.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || rueidis.IsRedisNil(err) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	_, redisErr := rueidis.IsRedisErr(err)
	return !redisErr
}

func (r *conn) batch(ctx context.Context, batch []*rdb.Op) {
	switch len(batch) {
	case 0:
		return
	case 1:
		fill(batch[0], r.client.Do(ctx, r.build(batch[0])))
		return
	}
	// A cluster client refuses a DoMulti that mixes commands without a slot (PUBLISH) with commands of several
	// slots (it panics): such a batch goes out as two DoMultis at once. Across nodes there is no order anyway.
	if r.cluster && !r.sharded {
		var keyed, keyless []*rdb.Op
		for _, op := range batch {
			if op.Channel != "" {
				keyless = append(keyless, op)
			} else {
				keyed = append(keyed, op)
			}
		}
		if len(keyed) > 0 && len(keyless) > 0 {
			var wg sync.WaitGroup
			wg.Go(func() { r.multi(ctx, keyless) })
			r.multi(ctx, keyed)
			wg.Wait()
			return
		}
	}
	r.multi(ctx, batch)
}

func (r *conn) multi(ctx context.Context, batch []*rdb.Op) {
	cmds := make(rueidis.Commands, len(batch))
	var scratch []string
	for i, op := range batch {
		cmds[i], scratch = r.buildWith(op, scratch)
	}
	for i, res := range r.client.DoMulti(ctx, cmds...) {
		fill(batch[i], res)
	}
}

// build turns an operation into its command: XADD, PUBLISH or SPUBLISH.
func (r *conn) build(op *rdb.Op) rueidis.Completed {
	c, _ := r.buildWith(op, nil)
	return c
}

// buildWith is build with a scratch slice for the arguments of an XADD, returned for the next call. An XADD is
// built as an arbitrary command: the typed builder appends field by field, growing the command's slice several
// times; here it grows once, to its final length. Commands are pinned: rueidis would otherwise recycle one
// while a failed connection's writer may still read it.
func (r *conn) buildWith(op *rdb.Op, scratch []string) (rueidis.Completed, []string) {
	b := r.client.B()
	if op.Channel != "" {
		if r.sharded {
			return b.Spublish().Channel(op.Channel).Message(string(op.Payload)).Build().Pin(), scratch
		}
		return b.Publish().Channel(op.Channel).Message(string(op.Payload)).Build().Pin(), scratch
	}
	args := scratch[:0]
	if op.MaxLen > 0 {
		args = append(args, "MAXLEN", "~", r.maxLen(op.MaxLen))
	}
	args = append(args, "*")
	args = append(args, op.Fields[:len(op.Fields)&^1]...)
	return b.Arbitrary("XADD").Keys(op.Stream).Args(args...).Build().Pin(), args
}

// maxLen formats a trimming threshold, reusing the last one: it is the same for every write.
func (r *conn) maxLen(n int64) string {
	if p := r.lastMaxLen.Load(); p != nil && p.n == n {
		return p.s
	}
	s := strconv.FormatInt(n, 10)
	r.lastMaxLen.Store(&formatted{n, s})
	return s
}

type formatted struct {
	n int64
	s string
}

// fill copies a finished command's outcome into its operation.
func fill(op *rdb.Op, res rueidis.RedisResult) {
	op.ID, op.Err = "", nil
	if op.Channel != "" {
		if err := res.Error(); err != nil {
			op.Err = fmt.Errorf("rdb: publish %s: %w", op.Channel, err)
		}
		return
	}
	id, err := res.ToString()
	if err != nil {
		op.Err = fmt.Errorf("rdb: xadd %s: %w", op.Stream, err)
		return
	}
	op.ID = id
}

// XRange implements Client.
func (r *conn) XRange(ctx context.Context, stream, start, end string, count int64) ([]rdb.Entry, error) {
	cmd := r.client.B().Xrange().Key(stream).Start(start).End(end)
	var c rueidis.Completed
	if count > 0 {
		c = cmd.Count(count).Build().Pin()
	} else {
		c = cmd.Build().Pin()
	}
	msgs, err := r.client.Do(ctx, c).AsXRange()
	if err != nil {
		return nil, fmt.Errorf("rdb: xrange %s: %w", stream, err)
	}
	return fromXRange(msgs), nil
}

// XRevRange implements rdb.Client.
func (r *conn) XRevRange(ctx context.Context, stream, end, start string, count int64) ([]rdb.Entry, error) {
	msgs, err := r.client.Do(ctx, r.client.B().Xrevrange().Key(stream).End(end).Start(start).Count(count).Build().Pin()).AsXRange()
	if err != nil {
		return nil, fmt.Errorf("rdb: xrevrange %s: %w", stream, err)
	}
	return fromXRange(msgs), nil
}

// LastID implements Client.
func (r *conn) LastID(ctx context.Context, stream string) (string, error) {
	msgs, err := r.client.Do(ctx, r.client.B().Xrevrange().Key(stream).End("+").Start("-").Count(1).Build().Pin()).AsXRange()
	if err != nil {
		return "", fmt.Errorf("rdb: xrevrange %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// StreamInfo implements Client. XINFO STREAM is built as an arbitrary command so that it is not marked read-only:
// rueidis retries a read-only command after a connection error or CLUSTERDOWN until its context ends, and a reader
// must see that Redis failed to answer (a failover may have cost entries that nothing else tells about).
func (r *conn) StreamInfo(ctx context.Context, stream string) (rdb.StreamInfo, error) {
	info, err := r.client.Do(ctx, r.client.B().Arbitrary("XINFO", "STREAM").Keys(stream).Build().Pin()).AsMap()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return rdb.StreamInfo{LastID: "0-0", FirstID: "0-0"}, nil
		}
		return rdb.StreamInfo{}, fmt.Errorf("rdb: xinfo stream %s: %w", stream, err)
	}
	out := rdb.StreamInfo{LastID: "0-0", FirstID: "0-0", Added: -1}
	if v, ok := info["last-generated-id"]; ok {
		out.LastID, _ = v.ToString()
	}
	if v, ok := info["length"]; ok {
		out.Length, _ = v.AsInt64()
	}
	if v, ok := info["entries-added"]; ok {
		out.Added, _ = v.AsInt64()
	}
	if v, ok := info["first-entry"]; ok {
		if e, err := v.AsXRangeEntry(); err == nil && e.ID != "" {
			out.FirstID = e.ID
		}
	}
	return out, nil
}

// Publish implements Client.
func (r *conn) Publish(ctx context.Context, channel string, payload []byte) error {
	op := &rdb.Op{Channel: channel, Payload: payload}
	r.Batch(ctx, []*rdb.Op{op})
	return op.Err
}

// NumSub implements Client. A subscriber is counted only by the node its connection is on: every node the client
// knows is asked (replicas included), at once.
func (r *conn) NumSub(ctx context.Context, channel string) (int64, error) {
	nodes := r.client.Nodes()
	if len(nodes) == 0 {
		return 0, errors.New("rdb: numsub: no Redis node known")
	}
	var (
		mu    sync.Mutex
		total int64
		errs  []error
		wg    sync.WaitGroup
	)
	for addr, node := range nodes {
		wg.Go(func() {
			var cmd rueidis.Completed
			if r.sharded {
				cmd = node.B().PubsubShardnumsub().Channel(channel).Build().Pin()
			} else {
				cmd = node.B().PubsubNumsub().Channel(channel).Build().Pin()
			}
			m, err := node.Do(ctx, cmd).AsIntMap()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("rdb: numsub %s on %s: %w", channel, addr, err))
				return
			}
			total += m[channel]
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// Epoch implements Client.
func (r *conn) Epoch(ctx context.Context, key, value string) (string, error) {
	old, err := r.client.Do(ctx, r.client.B().Set().Key(key).Value(value).Nx().Get().Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return value, nil
	}
	return old, err
}

// Set implements Client. A ttl <= 0 stores the value without expiry.
func (r *conn) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	set := func() rueidis.Completed { // a command is recycled once sent: one per attempt
		cmd := r.client.B().Set().Key(key).Value(value)
		if ttl > 0 {
			return cmd.PxMilliseconds(max(1, ttl.Milliseconds())).Build().Pin()
		}
		return cmd.Build().Pin()
	}
	err := retry(ctx, func() error { return r.client.Do(ctx, set()).Error() }) // see Batch
	if err != nil {
		return fmt.Errorf("rdb: set %s: %w", key, err)
	}
	return nil
}

// GetDel implements Client.
func (r *conn) GetDel(ctx context.Context, key string) (string, bool, error) {
	// Retried as Batch does. If an attempt was applied but its reply lost, the next finds nothing: no session,
	// which is what the failure would have meant anyway.
	var v string
	err := retry(ctx, func() (err error) {
		v, err = r.client.Do(ctx, r.client.B().Getdel().Key(key).Build().Pin()).ToString()
		return err
	})
	if rerr, ok := rueidis.IsRedisErr(err); ok && strings.Contains(strings.ToLower(rerr.Error()), "unknown command") {
		// Redis < 6.2: the MULTI/GET/DEL form Node uses, on a connection of its own.
		v, err = r.getDelMulti(ctx, key)
	}
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("rdb: getdel %s: %w", key, err)
	}
	return v, true, nil
}

func (r *conn) getDelMulti(ctx context.Context, key string) (v string, err error) {
	err = r.client.Dedicated(func(c rueidis.DedicatedClient) error {
		res := c.DoMulti(ctx,
			c.B().Multi().Build().Pin(),
			c.B().Get().Key(key).Build().Pin(),
			c.B().Del().Key(key).Build().Pin(),
			c.B().Exec().Build().Pin())
		for _, x := range res[:3] {
			if err := x.Error(); err != nil {
				return err
			}
		}
		replies, err := res[3].ToArray()
		if err != nil {
			return err
		}
		if len(replies) != 2 {
			return fmt.Errorf("EXEC returned %d replies, want 2", len(replies))
		}
		v, err = replies[0].ToString()
		return err
	})
	return v, err
}

// NewReader implements Client. The reads are blocking commands, which rueidis sends on connections of its
// blocking pool, never on the pipelined ones; Close cancels the read in progress (rueidis then drops that
// connection).
func (r *conn) NewReader(skip rdb.SkipFunc) (rdb.Reader, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &rueidisReader{client: r.client, ctx: ctx, cancel: cancel, skip: skip}, nil
}

type rueidisReader struct {
	client rueidis.Client
	skip   rdb.SkipFunc
	ctx    context.Context // done once the reader is closed
	cancel context.CancelFunc
}

func (r *rueidisReader) Read(ctx context.Context, stream, lastID string, count int64, block time.Duration) ([]rdb.Entry, error) {
	if r.ctx.Err() != nil {
		return nil, rdb.ErrClosed
	}
	// rueidis aborts a blocking command at once when its context is cancelled, but a context with a deadline
	// is applied as a socket deadline instead, which cancellation does not cut short. The command's context
	// therefore has no deadline: the caller's deadline, the caller's cancellation and Close all cancel it.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopCaller := context.AfterFunc(ctx, cancel)
	defer stopCaller()
	stopClose := context.AfterFunc(r.ctx, cancel)
	defer stopClose()

	// XREAD is built as an arbitrary command so that it is not marked read-only: rueidis retries a read-only
	// command after a connection error until its context ends, which for a context without deadline is until
	// Redis is back. The adapter's reader retries by itself, with a backoff, and counts the failures.
	args := make([]string, 0, 5)
	if count > 0 {
		args = append(args, "COUNT", strconv.FormatInt(count, 10))
	}
	if block > 0 {
		args = append(args, "BLOCK", strconv.FormatInt(max(1, block.Milliseconds()), 10))
	}
	b := r.client.B().Arbitrary("XREAD").Args(append(args, "STREAMS")...).Keys(stream).Args(lastID)
	var cmd rueidis.Completed
	if block > 0 {
		cmd = b.Blocking() // sent on a connection of the blocking pool
	} else {
		cmd = b.Build().Pin()
	}
	res, err := r.client.Do(cctx, cmd).ToMessage()
	var entries []rdb.Entry
	if err == nil {
		entries, err = xreadEntries(&res, stream, r.skip)
	}
	if rueidis.IsRedisNil(err) {
		return nil, nil // BLOCK timed out
	}
	if err != nil {
		switch {
		case r.ctx.Err() != nil:
			return nil, fmt.Errorf("rdb: xread %s: %w", stream, rdb.ErrClosed)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("rdb: xread %s: %w", stream, ctx.Err())
		}
		return nil, fmt.Errorf("rdb: xread %s: %w", stream, err)
	}
	return entries, nil
}

// xreadEntries converts the reply of an XREAD of one stream (a map in RESP3, an array of [name, entries] in
// RESP2) without the intermediate maps of AsXRead, and without converting the fields of the entries skip matches.
func xreadEntries(m *rueidis.RedisMessage, stream string, skip rdb.SkipFunc) ([]rdb.Entry, error) {
	var list *rueidis.RedisMessage
	if m.IsMap() {
		kv, err := m.ToMap()
		if err != nil {
			return nil, err
		}
		if v, ok := kv[stream]; ok {
			list = &v
		}
	} else {
		streams, err := m.ToArray()
		if err != nil {
			return nil, err
		}
		for i := range streams {
			pair, err := streams[i].ToArray()
			if err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("rdb: xread reply: stream %d: %d elements, %v", i, len(pair), err)
			}
			if name, _ := pair[0].ToString(); name == stream {
				list = &pair[1]
			}
		}
	}
	if list == nil {
		return nil, nil
	}
	msgs, err := list.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]rdb.Entry, len(msgs))
	for i := range msgs {
		pair, err := msgs[i].ToArray()
		if err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("rdb: xread reply: entry %d: %d elements, %v", i, len(pair), err)
		}
		id, err := pair[0].ToString()
		if err != nil {
			return nil, fmt.Errorf("rdb: xread reply: entry %d: %w", i, err)
		}
		out[i].ID = id
		kv, err := pair[1].ToArray()
		if err != nil { // a deleted entry has nil fields
			if !rueidis.IsRedisNil(err) {
				return nil, fmt.Errorf("rdb: xread reply: entry %s: %w", id, err)
			}
			out[i].Fields = map[string]string{}
			continue
		}
		if skip != nil && len(kv) >= 4 {
			f0, _ := kv[0].ToString()
			uid, _ := kv[1].ToString()
			f2, _ := kv[2].ToString()
			nsp, _ := kv[3].ToString()
			if f0 == "uid" && f2 == "nsp" && skip(uid, nsp) {
				out[i].Skipped = true
				continue
			}
		}
		fields := make(map[string]string, len(kv)/2)
		for j := 0; j+1 < len(kv); j += 2 {
			k, err1 := kv[j].ToString()
			v, err2 := kv[j+1].ToString()
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("rdb: xread reply: entry %s: field %d: %w", id, j/2, errors.Join(err1, err2))
			}
			fields[k] = v
		}
		out[i].Fields = fields
	}
	return out, nil
}

func (r *rueidisReader) Close() error {
	r.cancel()
	return nil
}

func fromXRange(msgs []rueidis.XRangeEntry) []rdb.Entry {
	out := make([]rdb.Entry, len(msgs))
	for i, m := range msgs {
		fields := m.FieldValues
		if fields == nil {
			fields = map[string]string{}
		}
		out[i] = rdb.Entry{ID: m.ID, Fields: fields}
	}
	return out
}

// NewSubscriber implements Client. Every subscription lives on a dedicated connection (Client.Dedicate) with
// PUB/SUB hooks, which reconnects and resubscribes on its own. Regular PUB/SUB shares one connection for every
// channel; sharded PUB/SUB takes one connection per channel, since each channel may live on a different cluster
// node.
func (r *conn) NewSubscriber(handle func(channel string, payload []byte)) rdb.Subscriber {
	return &rueidisSubscriber{r: r, handle: handle, subs: map[string]*rueidisPubSub{},
		done: make(chan struct{})}
}

const (
	// rueidisQueue is how many messages a connection buffers for its delivery goroutine, like go-redis's channel.
	rueidisQueue = 4096
	// rueidisResubscribeTimeout bounds the SUBSCRIBE sent after each (re)connection.
	rueidisResubscribeTimeout = 10 * time.Second
	rueidisMinBackoff         = 50 * time.Millisecond
	rueidisMaxBackoff         = 2 * time.Second
)

type rueidisSubscriber struct {
	r      *conn
	handle func(channel string, payload []byte)

	mu     sync.Mutex
	closed bool
	done   chan struct{}             // closed by Close
	shared *rueidisPubSub            // regular PUB/SUB
	subs   map[string]*rueidisPubSub // sharded: one per channel
	conf   rdb.Confirmations
	wg     sync.WaitGroup
}

// rueidisPubSub is one dedicated connection and the channels it must be subscribed to. Its run goroutine
// (re)connects and subscribes; its deliver goroutine passes messages to the handler, so that a slow handler does
// not stall the connection's reads (its PINGs and subscription rdb.Confirmations).
type rueidisPubSub struct {
	s        *rueidisSubscriber
	channels map[string]struct{}     // wanted; guarded by s.mu
	dc       rueidis.DedicatedClient // current connection, nil while (re)connecting; guarded by s.mu
	lastErr  error                   // why the last connection or SUBSCRIBE failed; guarded by s.mu
	msgs     chan rueidis.PubSubMessage
	kick     chan struct{}   // asks run for a new connection
	ctx      context.Context // done once the connection is no longer wanted
	stop     context.CancelFunc
	done     chan struct{} // closed when run returns: the connection is closed
}

func (s *rueidisSubscriber) start(channels ...string) *rueidisPubSub {
	ctx, stop := context.WithCancel(context.Background())
	p := &rueidisPubSub{s: s, channels: map[string]struct{}{}, msgs: make(chan rueidis.PubSubMessage, rueidisQueue),
		kick: make(chan struct{}, 1), ctx: ctx, stop: stop, done: make(chan struct{})}
	for _, c := range channels {
		p.channels[c] = struct{}{}
	}
	s.wg.Go(p.run)
	s.wg.Go(p.deliver)
	return p
}

// subscribeCmd builds a (S)SUBSCRIBE. Every command here is pinned (.Pin()): rueidis v1.0.79 recycles a command
// when Do returns, which for a connection failing mid-write can be before that connection's writer is done with
// it (a data race the race detector reports around Redis restarts).
func (p *rueidisPubSub) subscribeCmd(c rueidis.CoreClient, channels []string) rueidis.Completed {
	if p.s.r.sharded {
		return c.B().Ssubscribe().Channel(channels...).Build().Pin()
	}
	return c.B().Subscribe().Channel(channels...).Build().Pin()
}

// run keeps one connection subscribed to the wanted channels until stopped, replacing it whenever it fails.
func (p *rueidisPubSub) run() {
	defer close(p.done)
	failures := 0
	for p.ctx.Err() == nil {
		dc, _ := p.s.r.client.Dedicate()
		errs := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: p.onMessage, OnSubscription: p.onSubscription})
		p.s.mu.Lock()
		channels := slices.Sorted(maps.Keys(p.channels))
		p.dc = dc
		p.s.mu.Unlock()

		var err error
		if len(channels) > 0 {
			// Returns once Redis confirmed the first channel; onSubscription sees every confirmation.
			ctx, cancel := context.WithTimeout(p.ctx, rueidisResubscribeTimeout)
			if p.s.r.cluster && !p.s.r.sharded {
				err = pinToMaster(ctx, dc, channels[0])
			}
			if err == nil {
				err = dc.Do(ctx, p.subscribeCmd(dc, channels)).Error()
			}
			cancel()
		}
		up := time.Now()
		if err == nil {
			select {
			case e := <-errs:
				err = e
				if err == nil {
					err = rueidis.ErrClosing
				}
			case <-p.kick:
				err = errors.New("rdb: sharded subscription moved")
			case <-p.ctx.Done():
			}
		}
		p.s.mu.Lock()
		p.dc = nil
		if err != nil {
			p.lastErr = err
		}
		p.s.mu.Unlock()
		dc.Close() // closes the connection: a subscribed one is never put back in the pool
		for range errs {
			// closed once the hooks are no longer called
		}
		if time.Since(up) > 10*time.Second {
			failures = 0
		}
		failures++
		t := time.NewTimer(rdb.Backoff(failures, rueidisMinBackoff, rueidisMaxBackoff))
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
		}
	}
}

// pinToMaster makes a dedicated cluster connection, before its first command, the one to the master of key's slot
// (a PING whose argument rueidis routes as a key; Redis does not take it for one). A SUBSCRIBE alone would go to any
// node the client ever knew, the seed addresses included: a replica that a client left out of its view of the
// cluster (rueidis leaves out replicas that have replicated nothing yet, and a failover changes the view) would
// hold a subscriber that such a client's NumSub never counts. Masters are in every client's view, as go-redis's
// subscribers are on the master of their channel's slot.
func pinToMaster(ctx context.Context, dc rueidis.DedicatedClient, key string) error {
	if err := dc.Do(ctx, dc.B().Arbitrary("PING").Keys(key).Build().Pin()).Error(); err != nil {
		return fmt.Errorf("rdb: ping before subscribe: %w", err)
	}
	return nil
}

// onMessage runs on the connection's read goroutine: it only queues. A full queue blocks the reads (Redis keeps
// the backlog in the connection's output buffer) rather than dropping messages.
func (p *rueidisPubSub) onMessage(m rueidis.PubSubMessage) {
	select {
	case p.msgs <- m:
	case <-p.ctx.Done():
	}
}

func (p *rueidisPubSub) onSubscription(s rueidis.PubSubSubscription) {
	switch s.Kind {
	case "subscribe", "ssubscribe":
		p.s.conf.Confirm(s.Channel)
	case "sunsubscribe":
		// Redis drops the sharded subscriptions of a slot that moved to another node: subscribe again there.
		p.s.mu.Lock()
		_, wanted := p.channels[s.Channel]
		p.s.mu.Unlock()
		if wanted {
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
	}
}

func (p *rueidisPubSub) deliver() {
	for {
		select {
		case m := <-p.msgs:
			p.s.handle(m.Channel, []byte(m.Message))
		case <-p.ctx.Done():
			return
		}
	}
}

func (s *rueidisSubscriber) Subscribe(ctx context.Context, channels ...string) error {
	if len(channels) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return rdb.ErrClosed
	}
	var waits []chan struct{}
	wait := func(c string) { waits = append(waits, s.conf.Expect(c)) }
	var (
		conns []*rueidisPubSub // the connections that will confirm
		dc    rueidis.DedicatedClient
	)
	if s.r.sharded {
		for _, c := range channels {
			if _, ok := s.subs[c]; ok {
				continue // already subscribed: no new confirmation will come
			}
			wait(c)
			s.subs[c] = s.start(c) // its connection subscribes as soon as it is up
			conns = append(conns, s.subs[c])
		}
	} else {
		if s.shared == nil {
			s.shared = s.start()
		}
		for _, c := range channels {
			wait(c)
			s.shared.channels[c] = struct{}{}
		}
		conns = append(conns, s.shared)
		dc = s.shared.dc // nil while connecting: the connection subscribes to every wanted channel once up
	}
	s.mu.Unlock()

	if dc != nil {
		err := dc.Do(ctx, conns[0].subscribeCmd(dc, channels)).Error()
		if _, ok := rueidis.IsRedisErr(err); ok {
			s.forget(channels, waits, true)
			return fmt.Errorf("rdb: subscribe %v: %w", channels, err)
		}
		// Any other error is the connection's: its replacement subscribes to every wanted channel.
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-s.done:
			return rdb.ErrClosed
		case <-ctx.Done():
			s.forget(channels, waits, false)
			err := fmt.Errorf("rdb: subscribe %v not confirmed: %w", channels, ctx.Err())
			s.mu.Lock()
			for _, p := range conns {
				if p.lastErr != nil {
					err = fmt.Errorf("%w (connection: %v)", err, p.lastErr)
					break
				}
			}
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

// forget drops the waiters of a failed Subscribe and, when unwanted, its channels (regular PUB/SUB).
func (s *rueidisSubscriber) forget(channels []string, waits []chan struct{}, unwanted bool) {
	s.conf.Forget(channels, waits)
	if !unwanted {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range channels {
		if s.shared != nil {
			delete(s.shared.channels, c)
		}
	}
}

func (s *rueidisSubscriber) Unsubscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.r.sharded {
		var stop []*rueidisPubSub
		for _, c := range channels {
			if p, ok := s.subs[c]; ok {
				delete(s.subs, c)
				delete(p.channels, c)
				stop = append(stop, p)
			}
		}
		s.mu.Unlock()
		// Closing the connection drops its subscription: wait for it, so that NUMSUB no longer counts it.
		for _, p := range stop {
			p.stop()
		}
		for _, p := range stop {
			select {
			case <-p.done:
			case <-ctx.Done():
				return fmt.Errorf("rdb: unsubscribe %v: %w", channels, ctx.Err())
			}
		}
		return nil
	}
	if s.shared == nil {
		s.mu.Unlock()
		return nil
	}
	for _, c := range channels {
		delete(s.shared.channels, c)
	}
	dc := s.shared.dc
	s.mu.Unlock()
	if dc == nil {
		return nil // the next connection subscribes to the wanted channels only
	}
	err := dc.Do(ctx, dc.B().Unsubscribe().Channel(channels...).Build().Pin()).Error()
	if err != nil && !errors.Is(err, rueidis.ErrClosing) && !errors.Is(err, rueidis.ErrDedicatedClientRecycled) {
		return fmt.Errorf("rdb: unsubscribe %v: %w", channels, err)
	}
	return nil
}

func (s *rueidisSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	var all []*rueidisPubSub
	if s.shared != nil {
		all = append(all, s.shared)
	}
	for _, p := range s.subs {
		all = append(all, p)
	}
	s.mu.Unlock()
	for _, p := range all {
		p.stop()
	}
	s.wg.Wait()
	return nil
}
