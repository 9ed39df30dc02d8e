package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runEmit(ctx context.Context, e *env, args []string) error {
	nsp := e.fs.String("nsp", "/", "`namespace`")
	var to, except listFlag
	e.fs.Var(&to, "to", "target `room` (repeatable)")
	e.fs.Var(&except, "except", "excluded `room` (repeatable)")
	volatile := e.fs.Bool("volatile", false, "volatile broadcast")
	e.fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: redisstreams emit [-nsp /x] [-to room]... [-except room]... event [json-arg...]\n\n"+
			"Each argument is JSON: 42, true, null, {\"a\":1}, and strings quoted (shell: '\"text\"').\n\n")
		e.fs.PrintDefaults()
	}
	if err := e.parse(args); err != nil {
		return err
	}
	if e.fs.NArg() == 0 {
		return usageError{"emit needs an event name"}
	}
	event := e.fs.Arg(0)
	var values []any
	for i, raw := range e.fs.Args()[1:] {
		v, err := wire.DecodeJSON([]byte(raw))
		if err != nil {
			return usageError{fmt.Sprintf("argument %d (%q) is not JSON: quote strings, e.g. '\"text\"' (%v)", i+1, raw, err)}
		}
		values = append(values, v)
	}
	if err := e.connect(ctx); err != nil {
		return err
	}
	em, err := emitter.New(goredisbackend.New(e.client), emitter.Options{StreamName: e.cfg.stream, StreamCount: e.cfg.streamCount,
		MaxLen: e.cfg.maxLen, ChannelPrefix: e.cfg.channelPrefix, UseShardedPubSub: e.cfg.sharded,
		StreamsOnly: e.cfg.streamsOnly, RequestsTimeout: e.cfg.timeout})
	if err != nil {
		return err
	}
	op := em.Of(*nsp)
	if len(to) > 0 {
		op = op.To(to...)
	}
	if len(except) > 0 {
		op = op.Except(except...)
	}
	if *volatile {
		op = op.Volatile()
	}
	if t, err := e.keyType(ctx, op.Stream()); err != nil {
		return err
	} else if t != "stream" && t != "none" {
		return fmt.Errorf("key %q is a %s, not a stream: is -stream right?", op.Stream(), t)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	id, err := op.EmitContext(ctx, event, values...)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "emitted %q to %s (stream %s, entry %s)\n", event, op.Namespace(), op.Stream(), id)
	return nil
}
