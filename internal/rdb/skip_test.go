package rdb_test

import (
	"context"
	"testing"

	"github.com/socketio-go/redisstreams/internal/rdb"

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
	clients := map[string]rdb.Client{}
	if clients["goredis"], err = openGoRedis(newGoRedisClient(t, a, false), false); err != nil {
		t.Fatal(err)
	}
	if clients["rueidis"], err = openRueidis(newRueidisClient(t, a, false), false); err != nil {
		t.Fatal(err)
	}
	if clients["rueidis-resp2"], err = openRueidis(resp2, false); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			stream := key(t, "stream")
			ops := []*rdb.Op{
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
