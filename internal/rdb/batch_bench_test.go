package rdb_test

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/socketio-go/redisstreams/internal/rdb"
)

// BenchmarkBatch measures one pipelined batch of 512 XADDs shaped like the adapter's broadcasts (the publish path's
// round trip), per client family; allocs/xadd counts the client side's allocations per write, reply included.
func BenchmarkBatch(b *testing.B) {
	a := addrs(b, false)
	for _, family := range []string{"goredis", "rueidis"} {
		b.Run(family, func(b *testing.B) {
			var c rdb.Client
			var err error
			if family == "goredis" {
				c, err = openGoRedis(newGoRedisClient(b, a, false), false)
			} else {
				c, err = openRueidis(newRueidisClient(b, a, false), false)
			}
			if err != nil {
				b.Fatal(err)
			}
			stream := key(b, "stream")
			data := `{"packet":{"type":2,"data":["ev",{"pad":"` + strings.Repeat("x", 150) + `","s":1,"t":1795610928405}],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`
			ops := make([]*rdb.Op, 512)
			for i := range ops {
				ops[i] = &rdb.Op{Stream: stream, MaxLen: 10_000, Fields: []string{"uid", "abcdef", "nsp", "/", "type", "3", "data", data, "seq", "w:" + strconv.Itoa(i)}}
			}
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for b.Loop() {
				c.Batch(b.Context(), ops)
				if ops[0].Err != nil {
					b.Fatal(ops[0].Err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/float64(len(ops)), "allocs/xadd")
		})
	}
}
