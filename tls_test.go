package redisstreams

import (
	"strings"
	"testing"

	"github.com/socketio-go/redisstreams/goredisbackend"
	"github.com/socketio-go/redisstreams/rueidisbackend"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// TestTLS connects both client families with a rediss:// URL and a custom certificate authority (as
// docs/operations.md shows) to a redis-server that accepts TLS with a certificate generated here, and runs the
// operations traffic, recovery included, through them. A client that does not trust the authority is refused.
func TestTLS(t *testing.T) {
	requireRedis(t)
	files, err := redistest.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.StartServerT(t, redistest.ServerOptions{TLS: files})
	url := "rediss://" + srv.TLSAddr() + "/0"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()

	t.Run("go-redis", func(t *testing.T) {
		newAdapter := func() *Adapter {
			opt, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			if opt.TLSConfig.RootCAs, err = files.RootCAs(); err != nil {
				t.Fatal(err)
			}
			rc := redis.NewClient(opt)
			t.Cleanup(func() { _ = rc.Close() })
			a, err := New(t.Context(), goredisbackend.New(rc), Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		opsTraffic(t, []*Adapter{newAdapter(), newAdapter()}, true, admin)

		opt, err := redis.ParseURL(url) // the system's authorities only
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(opt)
		defer rc.Close()
		// A certificate the client does not trust is a misconfiguration that will not pass: New reports it
		// (docs/operations.md, section 7), instead of holding writes as for a Redis that is down.
		_, err = New(t.Context(), goredisbackend.New(rc), Options{Logger: testLogger(t)})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("New with an untrusted certificate: %v", err)
		}
	})

	t.Run("rueidis", func(t *testing.T) {
		newAdapter := func() *Adapter {
			opt, err := rueidis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			if opt.TLSConfig.RootCAs, err = files.RootCAs(); err != nil {
				t.Fatal(err)
			}
			rc, err := rueidis.NewClient(opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rc.Close)
			a, err := New(t.Context(), rueidisbackend.New(rc), Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		opsTraffic(t, []*Adapter{newAdapter(), newAdapter()}, true, admin)

		opt, err := rueidis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		if rc, err := rueidis.NewClient(opt); err == nil {
			rc.Close()
			t.Fatal("rueidis connected without trusting the server's authority")
		}
	})
}
