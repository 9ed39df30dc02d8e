package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:s3cret@127.0.0.1:6379/0":     "redis://:xxxxx@127.0.0.1:6379/0",
		"rediss://app:s3cret@redis.example:1/": "rediss://app:xxxxx@redis.example:1/",
		"redis://127.0.0.1:6379":               "redis://127.0.0.1:6379",
		"redis://app:s3cret@host:port%zz":      "redis://xxxxx@host:port%zz", // does not parse
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A malformed REDIS_URL must not put its password in the error run returns (and main logs).
func TestMalformedRedisURLDoesNotLeakPassword(t *testing.T) {
	for _, u := range []string{
		"redis://app:s3cret@127.0.0.1:notaport/0",
		"redis://app:s3cret@127.0.0.1:6379/notadb",
		"redis://app:s3cret@127.0.0.1:6379/0?dial_timeout=bogus",
		"redis://app:s3cret@[::1%zz]:6379",
		"http://app:s3cret@127.0.0.1:6379",
	} {
		cfg := testConfig(t, 1)
		cfg.RedisURL = u
		var out strings.Builder
		cfg.Out = &out
		err := run(context.Background(), cfg)
		if err == nil {
			t.Errorf("REDIS_URL %q: no error", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(out.String(), "s3cret") {
			t.Errorf("REDIS_URL %q: the password leaks: %v; %s", u, err, out.String())
		}
		if !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("REDIS_URL %q: error %q does not say which setting is wrong", u, err)
		}
	}
}

func TestRedactErr(t *testing.T) {
	base := errors.New(`dial redis://u:pw1@h:1 failed; auth "pw1" refused`)
	err := redactErr(base, "redis://u:pw1@h:1")
	if strings.Contains(err.Error(), "pw1") || !errors.Is(err, base) {
		t.Fatalf("redactErr: %q (wraps the original: %v)", err, errors.Is(err, base))
	}
}
