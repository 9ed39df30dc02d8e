package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// respConn is a minimal RESP2 client used for readiness and health checks,
// so that the harness does not depend on a Redis client library.
type respConn struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// respError is an error reply sent by the server.
type respError string

func (e respError) Error() string { return "redis: " + string(e) }

func dialRESP(addr string, timeout time.Duration) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &respConn{conn: c, r: bufio.NewReader(c), timeout: timeout}, nil
}

func (c *respConn) Close() error { return c.conn.Close() }

// do sends one command and returns its reply: string for simple and bulk
// strings, int64 for integers, []any for arrays, nil for null replies and a
// respError for error replies.
func (c *respConn) do(args ...string) (any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 64)
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	if _, err := c.conn.Write(buf); err != nil {
		return nil, err
	}
	v, err := c.read()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(respError); ok {
		return nil, e
	}
	return v, nil
}

// doString is do for commands whose reply is a (bulk or simple) string.
func (c *respConn) doString(args ...string) (string, error) {
	v, err := c.do(args...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("redis: unexpected reply %T to %q", v, args[0])
	}
	return s, nil
}

func (c *respConn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("redis: bad bulk length %q: %w", body, err)
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("redis: bad array length %q: %w", body, err)
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			// Nested error replies stay values; only top-level ones are errors.
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	default:
		return nil, errors.New("redis: unsupported reply type " + strconv.QuoteRune(rune(kind)))
	}
}

// infoField extracts "name:value" from an INFO-style text reply.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if ok && k == name {
			return v, true
		}
	}
	return "", false
}

// CommandCalls returns INFO commandstats: per command (lower case, subcommands as "cmd|sub"), the calls that did
// not fail (an EVALSHA answered NOSCRIPT, sent again as EVAL, counts once, as the EVAL). INFO itself is left out.
func (s *Server) CommandCalls() (map[string]int64, error) {
	c, err := dialRESP(s.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	info, err := c.doString("INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _ := strconv.ParseInt(strings.Split(rest, ",")[0], 10, 64)
		if _, f, ok := strings.Cut(rest, "failed_calls="); ok {
			failed, _ := strconv.ParseInt(strings.Split(f, ",")[0], 10, 64)
			calls -= failed
		}
		if name = strings.TrimPrefix(name, "cmdstat_"); name != "info" {
			out[name] = calls
		}
	}
	return out, nil
}
