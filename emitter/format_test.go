package emitter_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/socketio-go/redisstreams/emitter"
)

// rawEntries returns the fields of every entry of a stream in the order Redis stored them (go-redis' XRange
// returns them as a map, which loses the order).
func rawEntries(t *testing.T, s setup, stream string) [][]string {
	t.Helper()
	res, err := s.goRedis(t).Do(context.Background(), "XRANGE", stream, "-", "+").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, e := range res {
		var fields []string
		for _, f := range e.([]any)[1].([]any) {
			fields = append(fields, f.(string))
		}
		out = append(out, fields)
	}
	return out
}

// TestEntriesAreNodeEmitters checks the exact bytes of each kind of entry against what
// @socket.io/redis-streams-emitter 0.1.1 writes for the same calls (its source: uid "emitter", fields uid, nsp,
// type, data; packet {type, data, nsp}; broadcast opts {rooms, flags, except}, the others' {rooms, except,
// flags: {}}; flags in the order set; base64 MessagePack with the same key order when binary is present).
func TestEntriesAreNodeEmitters(t *testing.T) {
	s := setup{name: "standalone"}
	opts := uniqueOptions(emitter.Options{})
	em := s.newEmitter(t, opts)
	steps := []struct {
		do   func() error
		nsp  string
		typ  string
		data string
	}{
		{func() error { _, err := em.Emit("ev", 1, "2", map[string]any{"a": []any{true, nil}}); return err }, "/", "3",
			`{"packet":{"type":2,"data":["ev",1,"2",{"a":[true,null]}],"nsp":"/"},"opts":{"rooms":[],"flags":{},"except":[]}}`},
		{func() error {
			_, err := em.To("r1", "r2").Except("r3").Volatile().Compress(false).Emit("v")
			return err
		}, "/", "3",
			`{"packet":{"type":2,"data":["v"],"nsp":"/"},"opts":{"rooms":["r1","r2"],"flags":{"volatile":true,"compress":false},"except":["r3"]}}`},
		{func() error { _, err := em.Compress(true).Volatile().Compress(false).Emit("c"); return err }, "/", "3",
			`{"packet":{"type":2,"data":["c"],"nsp":"/"},"opts":{"rooms":[],"flags":{"compress":false,"volatile":true},"except":[]}}`},
		{func() error { _, err := em.Emit("bin", []byte{1, 2, 3}); return err }, "/", "3", "b64:" +
			// {packet:{type:2,data:["bin",<bin 010203>],nsp:"/"},opts:{rooms:[],flags:{},except:[]}}
			"82" + "a67061636b6574" + "83" + "a474797065" + "02" + "a464617461" + "92" + "a362696e" + "c403010203" +
			"a36e7370" + "a12f" + "a46f707473" + "83" + "a5726f6f6d73" + "90" + "a5666c616773" + "80" + "a6657863657074" + "90"},
		{func() error { _, err := em.Of("custom").In("r1").SocketsJoin("j"); return err }, "/custom", "4",
			`{"opts":{"rooms":["r1"],"except":[],"flags":{}},"rooms":["j"]}`},
		{func() error { _, err := em.Except("r1").SocketsLeave("j", "k"); return err }, "/", "5",
			`{"opts":{"rooms":[],"except":["r1"],"flags":{}},"rooms":["j","k"]}`},
		{func() error { _, err := em.DisconnectSockets(true); return err }, "/", "6",
			`{"opts":{"rooms":[],"except":[],"flags":{}},"close":true}`},
		{func() error { _, err := em.To("ignored").ServerSideEmit("sse", 1, map[string]any{"x": 2}); return err }, "/", "9",
			`{"packet":["sse",1,{"x":2}]}`},
		{func() error { _, err := em.Of("/custom").Emit("html", "<&>"); return err }, "/custom", "3",
			`{"packet":{"type":2,"data":["html","<&>"],"nsp":"/custom"},"opts":{"rooms":[],"flags":{},"except":[]}}`},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
	}
	got := rawEntries(t, s, opts.StreamName)
	if len(got) != len(steps) {
		t.Fatalf("%d entries, want %d", len(got), len(steps))
	}
	for i, st := range steps {
		data := st.data
		if hexData, ok := strings.CutPrefix(data, "b64:"); ok {
			raw, err := hex.DecodeString(hexData)
			if err != nil {
				t.Fatal(err)
			}
			data = base64.StdEncoding.EncodeToString(raw)
		}
		want := []string{"uid", "emitter", "nsp", st.nsp, "type", st.typ, "data", data}
		if !slices.Equal(got[i], want) {
			t.Errorf("entry %d:\n got %q\nwant %q", i, got[i], want)
		}
	}
}

// TestOperatorsAreImmutable derives emitters from one base concurrently: each keeps exactly its own rooms.
func TestOperatorsAreImmutable(t *testing.T) {
	s := setup{name: "standalone"}
	opts := uniqueOptions(emitter.Options{})
	base := s.newEmitter(t, opts).To("x")
	var wg sync.WaitGroup
	for _, r := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			if _, err := base.To(r).Compress(true).SocketsJoin(r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := base.SocketsJoin("base"); err != nil {
		t.Fatal(err)
	}
	entries := rawEntries(t, s, opts.StreamName)
	if len(entries) != 5 {
		t.Fatalf("%d entries", len(entries))
	}
	for _, e := range entries {
		data := e[7]
		var joined string
		if i := strings.Index(data, `"rooms":["`); i >= 0 {
			joined = data[strings.LastIndex(data, `"rooms":["`)+len(`"rooms":["`):]
			joined = joined[:strings.IndexByte(joined, '"')]
		}
		want := `{"opts":{"rooms":["x","` + joined + `"],"except":[],"flags":{}},"rooms":["` + joined + `"]}`
		if joined == "base" {
			want = `{"opts":{"rooms":["x"],"except":[],"flags":{}},"rooms":["base"]}`
		}
		if data != want {
			t.Errorf("entry %q, want %q", data, want)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	s := setup{name: "standalone"}
	for _, o := range []emitter.Options{{StreamCount: -1}, {ChannelPrefix: "a*"}, {RequestsTimeout: -1}, {HeartbeatTimeout: -1}} {
		if _, err := emitter.New(goredisbackend.New(s.goRedis(t)), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
