package main

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Secrets never reach a log line or an error message: URLs are shown with their password redacted, and error
// messages that might quote a URL or a password are cleaned.

// userinfoPattern matches the userinfo of anything that looks like a URL ("scheme://user:pass@"), for strings that
// url.Parse rejects.
var userinfoPattern = regexp.MustCompile(`(://)[^/@\s]*@`)

// redactURL returns raw with the password of its userinfo replaced by "xxxxx", and any userinfo of a string that
// does not parse as a URL replaced entirely.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return userinfoPattern.ReplaceAllString(raw, "${1}xxxxx@")
}

// redactedError is an error whose message has had secrets removed. Unwrap still gives the original error, for
// errors.Is and errors.As; do not print that one.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr returns err with every URL userinfo and every given secret (a raw URL, a password) removed from its
// message; nil stays nil.
func redactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if u, perr := url.Parse(s); perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				msg = strings.ReplaceAll(msg, p, "xxxxx")
			}
		}
		if strings.Contains(s, "://") {
			msg = strings.ReplaceAll(msg, s, redactURL(s))
		} else {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	msg = userinfoPattern.ReplaceAllString(msg, "${1}xxxxx@")
	return &redactedError{msg: msg, err: err}
}

// redisSecrets returns the password a go-redis client authenticates with, if any.
func redisSecrets(rc redis.UniversalClient) []string {
	switch c := rc.(type) {
	case *redis.Client:
		return []string{c.Options().Password}
	case *redis.ClusterClient:
		return []string{c.Options().Password}
	}
	return nil
}
