package rdb

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// Both readers return every entry in order, with the fields of the entries the skip function matches left out
// (rueidis over RESP3 and RESP2).
func TestReaderSkip(t *testing.T) {
	a := addrs(t, false)
	resp2, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: a, DisableCache: true, ForceSingleClient: true,
		AlwaysRESP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(resp2.Close)
	clients := map[string]Client{}
	if clients["goredis"], err = NewGoRedis(newGoRedisClient(t, a, false), false); err != nil {
		t.Fatal(err)
	}
	if clients["rueidis"], err = NewRueidis(newRueidisClient(t, a, false), false); err != nil {
		t.Fatal(err)
	}
	if clients["rueidis-resp2"], err = NewRueidis(resp2, false); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			stream := key(t, "stream")
			ops := []*Op{
				{Stream: stream, Fields: []string{"uid", "me", "nsp", "/", "type", "3", "data", "{}"}},
				{Stream: stream, Fields: []string{"uid", "other", "nsp", "/", "type", "3", "data", "{}"}},
				{Stream: stream, Fields: []string{"uid", "me", "nsp", "/chat", "type", "3"}},
				{Stream: stream, Fields: []string{"nsp", "/", "uid", "me"}}, // not the usual order: converted
				{Stream: stream, Fields: []string{"uid", "me", "nsp", "/", "type", "1"}},
			}
			c.Batch(t.Context(), ops)
			for _, op := range ops {
				if op.Err != nil {
					t.Fatal(op.Err)
				}
			}
			rd, err := c.NewReader(func(uid, nsp string) bool { return uid == "me" && nsp == "/" })
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			got, err := rd.Read(context.Background(), stream, "0-0", 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ops) {
				t.Fatalf("%d entries, want %d", len(got), len(ops))
			}
			for i, e := range got {
				if e.ID != ops[i].ID {
					t.Errorf("entry %d: ID %s, want %s", i, e.ID, ops[i].ID)
				}
			}
			want := []bool{true, false, false, name == "goredis", true}
			for i, e := range got {
				if e.Skipped != want[i] || e.Skipped != (e.Fields == nil) {
					t.Errorf("entry %d: skipped %v (fields %v), want %v", i, e.Skipped, e.Fields, want[i])
				}
			}
			if got[1].Fields["uid"] != "other" || got[1].Fields["data"] != "{}" || got[2].Fields["nsp"] != "/chat" {
				t.Errorf("fields: %v %v", got[1].Fields, got[2].Fields)
			}
			if !got[3].Skipped && (got[3].Fields["uid"] != "me" || len(got[3].Fields) != 2) {
				t.Errorf("fields: %v", got[3].Fields)
			}
		})
	}
}

// The go-redis reader reads what follows a full read as raw RESP (parseXRead): over RESP2 and RESP3, standalone and
// cluster, it returns the same entries as go-redis's own parsing, with the same ones skipped.
func TestGoRedisReaderRawFollowUp(t *testing.T) {
	for _, run := range []struct {
		name     string
		cluster  bool
		protocol int
	}{{"resp3", false, 3}, {"resp2", false, 2}, {"cluster", true, 3}} {
		t.Run(run.name, func(t *testing.T) {
			a := addrs(t, run.cluster)
			var c redis.UniversalClient
			if run.cluster {
				c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: a, Protocol: run.protocol})
			} else {
				c = redis.NewClient(&redis.Options{Addr: a[0], Protocol: run.protocol})
			}
			t.Cleanup(func() { _ = c.Close() })
			g, err := NewGoRedis(c, false)
			if err != nil {
				t.Fatal(err)
			}
			stream := key(t, "stream")
			var ops []*Op
			for i := range 25 {
				uid := "me"
				if i%3 == 0 {
					uid = "other"
				}
				ops = append(ops, &Op{Stream: stream, Fields: []string{"uid", uid, "nsp", "/", "type", "3", "data", fmt.Sprint(i, " é\r\n")}})
			}
			ops = append(ops, &Op{Stream: stream, Fields: []string{"nsp", "/", "uid", "me"}}) // not the usual order: converted
			g.Batch(t.Context(), ops)
			for _, op := range ops {
				if op.Err != nil {
					t.Fatal(op.Err)
				}
			}
			skip := func(uid, nsp string) bool { return uid == "me" && nsp == "/" }
			rd, err := g.NewReader(skip)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			var got []Entry
			last := "0-0"
			for len(got) < len(ops) {
				entries, err := rd.Read(t.Context(), stream, last, 4, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) == 0 {
					break
				}
				got = append(got, entries...)
				last = entries[len(entries)-1].ID
				if len(got) > 4 && len(entries) == 4 && !rd.(*goRedisReader).full {
					t.Fatal("a full read did not mark the reader full")
				}
			}
			if len(got) != len(ops) {
				t.Fatalf("%d entries, want %d", len(got), len(ops))
			}
			if n := rd.(*goRedisReader).raw; n < len(ops)/4-1 {
				t.Errorf("%d reads parsed raw, want %d", n, len(ops)/4-1)
			}
			for i, e := range got {
				want := skip(ops[i].Fields[1], ops[i].Fields[3]) && ops[i].Fields[0] == "uid"
				if e.ID != ops[i].ID || e.Skipped != want || e.Skipped != (e.Fields == nil) {
					t.Fatalf("entry %d: %s skipped %v, want %s skipped %v", i, e.ID, e.Skipped, ops[i].ID, want)
				}
				if !e.Skipped {
					for j := 0; j < len(ops[i].Fields); j += 2 {
						if e.Fields[ops[i].Fields[j]] != ops[i].Fields[j+1] || len(e.Fields) != len(ops[i].Fields)/2 {
							t.Fatalf("entry %d: fields %q, want %q", i, e.Fields, ops[i].Fields)
						}
					}
				}
			}
		})
	}
}

func TestParseXRead(t *testing.T) {
	for _, bad := range []string{"-ERR wrong\r\n", "-MOVED 1 127.0.0.1:1\r\n", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\na\r\n", "*1\r\n", ""} {
		if _, ok := parseXRead([]byte(bad), nil); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	for _, null := range []string{"*-1\r\n", "_\r\n", "%0\r\n"} {
		if e, ok := parseXRead([]byte(null), nil); !ok || len(e) != 0 {
			t.Errorf("%q: %v %v", null, e, ok)
		}
	}
	resp3 := "%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$3\r\nuid\r\n$2\r\nme\r\n$3\r\nnsp\r\n$1\r\n/\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n"
	e, ok := parseXRead([]byte(resp3), func(uid, nsp string) bool { return uid == "me" && nsp == "/" })
	if !ok || len(e) != 2 || e[0].ID != "1-0" || !e[0].Skipped || e[1].ID != "2-0" || e[1].Skipped || len(e[1].Fields) != 0 {
		t.Errorf("%+v %v", e, ok)
	}
}
