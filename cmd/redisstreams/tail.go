package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socketio-go/redisstreams/internal/rdb"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// hexPreview is how many bytes of a binary value tail shows.
const hexPreview = 16

// tailEntry is one decoded stream entry, as tail prints it.
type tailEntry struct {
	ID          string         `json:"id"`
	Stream      string         `json:"stream"`
	Time        string         `json:"time,omitempty"` // from the ID
	UID         string         `json:"uid"`
	Nsp         string         `json:"nsp"`
	Type        int            `json:"type"`
	TypeName    string         `json:"typeName"`
	Encoding    string         `json:"encoding,omitempty"` // data as "json" or "msgpack"
	RequestID   string         `json:"requestId,omitempty"`
	Rooms       []string       `json:"rooms,omitempty"`
	Except      []string       `json:"except,omitempty"`
	Flags       map[string]any `json:"flags,omitempty"`
	Event       string         `json:"event,omitempty"`
	Args        []any          `json:"args,omitempty"`
	PacketID    *uint64        `json:"packetId,omitempty"`
	JoinRooms   []string       `json:"joinRooms,omitempty"` // SOCKETS_JOIN / SOCKETS_LEAVE
	Close       *bool          `json:"close,omitempty"`
	Sockets     *int           `json:"sockets,omitempty"` // FETCH_SOCKETS_RESPONSE: how many
	Response    any            `json:"response,omitempty"`
	ClientCount *uint64        `json:"clientCount,omitempty"`
	Error       string         `json:"error,omitempty"` // a malformed entry
}

// binValue is how a binary value is shown.
type binValue struct {
	Bytes int    `json:"$bin"`
	Hex   string `json:"hex"`
}

func (b binValue) String() string {
	s := fmt.Sprintf("<bin %dB %s", b.Bytes, b.Hex)
	if b.Bytes > hexPreview {
		s += "…"
	}
	return s + ">"
}

type filter struct {
	nsp   string
	types map[int]bool
}

func (f filter) keep(e *tailEntry) bool {
	return (f.nsp == "" || e.Nsp == f.nsp) && (len(f.types) == 0 || f.types[e.Type])
}

func parseTypes(s string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if n, err := strconv.Atoi(t); err == nil {
			out[n] = true
			continue
		}
		found := false
		for n := wire.InitialHeartbeat; n <= wire.AdapterClose; n++ {
			if strings.EqualFold(n.String(), t) || strings.EqualFold(strings.ReplaceAll(n.String(), "_", ""), t) {
				out[int(n)] = true
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("-type %q: not a message type (BROADCAST, SOCKETS_JOIN, ... or 1-13)", t)
		}
	}
	return out, nil
}

func runTail(ctx context.Context, e *env, args []string) error {
	history := e.fs.Int("n", 0, "print the last `N` entries (that the filters keep, over all streams) first")
	asJSON := e.fs.Bool("json", false, "print one JSON object per entry")
	nsp := e.fs.String("nsp", "", "only entries of this `namespace`")
	types := e.fs.String("type", "", "only entries of these `types` (comma separated names or numbers)")
	maxEntries := e.fs.Int("max", 0, "exit after printing `N` entries (0: follow until interrupted)")
	if err := e.parse(args); err != nil {
		return err
	}
	if e.fs.NArg() > 0 {
		return usageError{"tail takes no arguments"}
	}
	f := filter{nsp: *nsp}
	var err error
	if f.types, err = parseTypes(*types); err != nil {
		return usageError{err.Error()}
	}
	if *history < 0 || *maxEntries < 0 {
		return usageError{"-n and -max must be >= 0"}
	}
	if err := e.connect(ctx); err != nil {
		return err
	}
	streams := e.streams()
	exists := 0
	for _, s := range streams {
		t, err := e.keyType(ctx, s)
		if err != nil {
			return err
		}
		if t == "stream" {
			exists++
		} else if t != "none" {
			return fmt.Errorf("key %q is a %s, not a stream: is -stream right?", s, t)
		}
	}
	if exists == 0 {
		fmt.Fprintf(e.stderr, "redisstreams tail: no stream %s yet on %s (is -stream right?); waiting for entries\n", e.describeStreams(), e.where())
	}
	p := &printer{w: e.stdout, json: *asJSON, filter: f, max: *maxEntries}

	// History, then everything after the newest entry of each stream at that point.
	start := map[string]string{}
	var past []*rdb.Entry
	var pastStream []string
	for _, s := range streams {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
		last, err := e.rdb.LastID(cctx, s)
		if err == nil && *history > 0 {
			var msgs []rdb.Entry
			msgs, err = lastEntries(cctx, e, s, *history, f)
			// Entries added between LastID and the history read are in the history: following starts after
			// them, or they would be printed twice.
			if n := len(msgs); n > 0 && wire.CompareIDs(msgs[n-1].ID, last) > 0 {
				last = msgs[n-1].ID
			}
			for i := range msgs {
				past = append(past, &msgs[i])
				pastStream = append(pastStream, s)
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		start[s] = last
	}
	order := make([]int, len(past))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return wire.CompareIDs(past[a].ID, past[b].ID) })
	if len(order) > *history {
		order = order[len(order)-*history:]
	}
	for _, i := range order {
		if p.print(pastStream[i], past[i]) {
			return nil
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type item struct {
		stream string
		entry  rdb.Entry
	}
	items := make(chan item, 256)
	var wg sync.WaitGroup
	for _, s := range streams {
		r, err := e.rdb.NewReader(nil)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer r.Close()
			last, failures := start[s], 0
			for ctx.Err() == nil {
				entries, err := r.Read(ctx, s, last, 100, time.Second)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					failures++
					fmt.Fprintf(e.stderr, "redisstreams tail: %s: %s (retrying)\n", s, e.redact(err.Error()))
					rdb.Sleep(ctx, rdb.Backoff(failures, 100*time.Millisecond, 5*time.Second))
					continue
				}
				failures = 0
				for _, en := range entries {
					select {
					case items <- item{s, en}:
					case <-ctx.Done():
						return
					}
					last = en.ID
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	for {
		select {
		case it := <-items:
			if p.print(it.stream, &it.entry) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// historyScan bounds how many entries of one stream tail -n reads backwards looking for matching ones.
const historyScan = 100_000

// lastEntries returns the newest n entries of a stream that the filter keeps, oldest first, reading backwards
// in pages (at most historyScan entries).
func lastEntries(ctx context.Context, e *env, stream string, n int, f filter) ([]rdb.Entry, error) {
	var out []rdb.Entry // newest first
	end, read := "+", 0
	page := int64(max(n, 100))
	for len(out) < n && read < historyScan {
		msgs, err := e.client.XRevRangeN(ctx, stream, end, "-", page).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			fields := make(map[string]string, len(m.Values))
			for k, v := range m.Values {
				fields[k] = fmt.Sprint(v)
			}
			en := rdb.Entry{ID: m.ID, Fields: fields}
			if f.keep(decodeEntry(stream, &en)) {
				out = append(out, en)
				if len(out) == n {
					break
				}
			}
		}
		read += len(msgs)
		if int64(len(msgs)) < page {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	slices.Reverse(out)
	return out, nil
}

type printer struct {
	w       io.Writer
	json    bool
	filter  filter
	max     int
	printed int
}

// print writes one entry (if the filters keep it) and reports whether the -max count is reached.
func (p *printer) print(stream string, en *rdb.Entry) bool {
	te := decodeEntry(stream, en)
	if !p.filter.keep(te) {
		return false
	}
	if p.json {
		b, err := json.Marshal(te)
		if err != nil {
			b, _ = json.Marshal(tailEntry{ID: te.ID, Stream: stream, Error: "cannot show: " + err.Error()})
		}
		fmt.Fprintf(p.w, "%s\n", b)
	} else {
		fmt.Fprintln(p.w, te.human())
	}
	p.printed++
	return p.max > 0 && p.printed >= p.max
}

func decodeEntry(stream string, en *rdb.Entry) *tailEntry {
	te := &tailEntry{ID: en.ID, Stream: stream, UID: en.Fields["uid"], Nsp: en.Fields["nsp"]}
	if ms, ok := wire.IDMillis(en.ID); ok {
		te.Time = time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	te.Type, _ = strconv.Atoi(en.Fields["type"])
	te.TypeName = wire.MessageType(te.Type).String()
	if d, ok := en.Fields["data"]; ok && d != "" {
		te.Encoding = "msgpack"
		if strings.HasPrefix(d, "{") {
			te.Encoding = "json"
		}
	}
	m, err := wire.DecodeStreamEntry(en.ID, en.Fields)
	if err != nil {
		te.Error = strings.TrimPrefix(err.Error(), wire.ErrInvalid.Error()+": ")
		if !errors.Is(err, wire.ErrInvalid) {
			te.Error = err.Error()
		}
		return te
	}
	te.RequestID = m.RequestID
	if m.Opts != nil {
		te.Rooms, te.Except = m.Opts.Rooms, m.Opts.Except
		f := map[string]any{}
		if m.Opts.Flags.Volatile {
			f["volatile"] = true
		}
		if m.Opts.Flags.Compress != nil {
			f["compress"] = *m.Opts.Flags.Compress
		}
		if m.Opts.Flags.Timeout != nil {
			f["timeout"] = *m.Opts.Flags.Timeout
		}
		if m.Opts.Flags.ExpectSingleResponse {
			f["expectSingleResponse"] = true
		}
		if len(f) > 0 {
			te.Flags = f
		}
	}
	switch m.Type {
	case wire.Broadcast:
		te.PacketID = m.Packet.ID
		te.Event, te.Args = eventOf(m.Packet.Data)
	case wire.ServerSideEmit:
		te.Event, te.Args = eventOf(m.Args)
	case wire.SocketsJoin, wire.SocketsLeave:
		te.JoinRooms = m.Rooms
		if te.JoinRooms == nil {
			te.JoinRooms = []string{}
		}
	case wire.DisconnectSockets:
		te.Close = &m.Close
	case wire.FetchSocketsResponse:
		n := len(m.Sockets)
		te.Sockets = &n
	case wire.ServerSideEmitResponse, wire.BroadcastAck:
		te.Response = showable(m.Response)
	case wire.BroadcastClientCount:
		te.ClientCount = &m.ClientCount
	}
	return te
}

func eventOf(data []any) (string, []any) {
	if len(data) == 0 {
		return "", nil
	}
	ev, _ := data[0].(string)
	args := make([]any, len(data)-1)
	for i, a := range data[1:] {
		args[i] = showable(a)
	}
	return ev, args
}

// showable replaces binary values with their length and a hex preview, and dates with their JS form.
func showable(v any) any {
	switch x := v.(type) {
	case []byte:
		n := min(len(x), hexPreview)
		return binValue{Bytes: len(x), Hex: hex.EncodeToString(x[:n])}
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z")
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = showable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = showable(e)
		}
		return out
	}
	return v
}

// human is the one-line form of an entry.
func (te *tailEntry) human() string {
	var sb strings.Builder
	ts := te.Time
	if len(ts) > 11 {
		ts = ts[11:] // time of day, UTC
	}
	fmt.Fprintf(&sb, "%s %s %s %s nsp=%s uid=%s", ts, te.ID, te.Stream, te.TypeName, te.Nsp, te.UID)
	if te.Error != "" {
		fmt.Fprintf(&sb, " MALFORMED: %s", te.Error)
		return sb.String()
	}
	if te.Encoding == "msgpack" {
		sb.WriteString(" (msgpack)")
	}
	if te.RequestID != "" {
		fmt.Fprintf(&sb, " requestId=%s", te.RequestID)
	}
	if te.Rooms != nil || te.Except != nil {
		fmt.Fprintf(&sb, " rooms=%s except=%s", showJSON(nonNil(te.Rooms)), showJSON(nonNil(te.Except)))
	}
	if te.Flags != nil {
		fmt.Fprintf(&sb, " flags=%s", showJSON(te.Flags))
	}
	if te.PacketID != nil {
		fmt.Fprintf(&sb, " id=%d", *te.PacketID)
	}
	if te.TypeName == wire.Broadcast.String() || te.TypeName == wire.ServerSideEmit.String() {
		fmt.Fprintf(&sb, " event=%s args=%s", strconv.Quote(te.Event), showArgs(te.Args))
	}
	if te.JoinRooms != nil {
		fmt.Fprintf(&sb, " join/leave=%s", showJSON(te.JoinRooms))
	}
	if te.Close != nil {
		fmt.Fprintf(&sb, " close=%v", *te.Close)
	}
	if te.Sockets != nil {
		fmt.Fprintf(&sb, " sockets=%d", *te.Sockets)
	}
	if te.Response != nil {
		fmt.Fprintf(&sb, " response=%s", showArgs([]any{te.Response}))
	}
	if te.ClientCount != nil {
		fmt.Fprintf(&sb, " clientCount=%d", *te.ClientCount)
	}
	return sb.String()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func showJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// showArgs shows arguments as JSON, with binary values as <bin NB hex…>.
func showArgs(args []any) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, a := range args {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(showValue(a))
	}
	sb.WriteByte(']')
	return sb.String()
}

func showValue(v any) string {
	switch x := v.(type) {
	case binValue:
		return x.String()
	case []any:
		return showArgs(x)
	case map[string]any:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		})
		var sb strings.Builder
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Quote(k))
			sb.WriteByte(':')
			sb.WriteString(showValue(x[k]))
		}
		sb.WriteByte('}')
		return sb.String()
	}
	return showJSON(v)
}
