package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeProc is one node child process. It is killed when the test that started it ends, and it exits by itself
// when its stdin (our end of a pipe) closes or, on Linux, when the test binary dies.
type nodeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startNode(t testing.TB, dir, name string, env []string, script string, args ...string) *nodeProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	p := &nodeProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin, p.stdout = stdin, bufio.NewReaderSize(stdout, 1<<20)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		cancel() // SIGKILL
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("node %s (pid %d) did not exit", name, cmd.Process.Pid)
		}
		if s := p.stderr.String(); s != "" && (t.Failed() || testing.Verbose()) {
			t.Logf("--- stderr of node %s ---\n%s", name, s)
		}
	})
	return p
}

// nodeServer is a Node Socket.IO server (node/server.js) with its control API.
type nodeServer struct {
	label   string
	baseURL string
	proc    *nodeProc
	http    *http.Client
}

// spawnNodeServer starts a Node server; wait returns it once it listens (several can boot in parallel).
func spawnNodeServer(t testing.TB, dir, label string, env []string) (wait func() *nodeServer) {
	t.Helper()
	p := startNode(t, dir, label, env, "server.js")
	ready := make(chan string, 1)
	go func() {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			close(ready)
			return
		}
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, p.stdout)
	}()
	return func() *nodeServer {
		t.Helper()
		select {
		case line, ok := <-ready:
			port, found := strings.CutPrefix(line, "READY ")
			if !ok || !found {
				t.Fatalf("node server %s did not start (%q)\n%s", label, line, p.stderr.String())
			}
			return &nodeServer{label: label, baseURL: "http://127.0.0.1:" + port, proc: p, http: &http.Client{Timeout: 45 * time.Second}}
		case <-time.After(30 * time.Second):
			t.Fatalf("node server %s: no READY line within 30s\n%s", label, p.stderr.String())
		}
		return nil
	}
}

// ctl calls one control operation; out (if not nil) receives the JSON answer.
func (n *nodeServer) ctl(t testing.TB, op string, body any, out any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.http.Post(n.baseURL+"/ctl/"+op, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s /ctl/%s: %v", n.label, op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s /ctl/%s: %v", n.label, op, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /ctl/%s %s: status %d: %s", n.label, op, raw, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s /ctl/%s: bad answer %s: %v", n.label, op, data, err)
		}
	}
}

// nodeClients is one node/client.js process hosting any number of socket.io-client sockets.
type nodeClients struct {
	proc *nodeProc

	mu      sync.Mutex
	seq     int
	pending map[int]chan map[string]any
	clients map[string]*client
	nextID  int
	broken  error
}

func startNodeClients(t testing.TB) *nodeClients {
	t.Helper()
	p := startNode(t, nodeDir, "clients", nil, "client.js")
	nc := &nodeClients{proc: p, pending: map[int]chan map[string]any{}, clients: map[string]*client{}}
	ready := make(chan struct{})
	go nc.read(ready)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("node client process not ready within 30s\n%s", p.stderr.String())
	}
	return nc
}

func (nc *nodeClients) read(ready chan struct{}) {
	for {
		line, err := nc.proc.stdout.ReadBytes('\n')
		if err != nil {
			nc.mu.Lock()
			nc.broken = fmt.Errorf("client process output ended: %v", err)
			for _, ch := range nc.pending {
				close(ch)
			}
			clear(nc.pending)
			nc.mu.Unlock()
			return
		}
		var msg map[string]any
		if err := json.Unmarshal(line, &msg); err != nil {
			continue
		}
		cid, _ := msg["cid"].(string)
		switch msg["type"] {
		case "ready":
			close(ready)
		case "reply":
			seq := int(msg["seq"].(float64))
			nc.mu.Lock()
			ch := nc.pending[seq]
			delete(nc.pending, seq)
			nc.mu.Unlock()
			if ch != nil {
				ch <- msg
			}
		case "event":
			nc.mu.Lock()
			c := nc.clients[cid]
			nc.mu.Unlock()
			if c != nil {
				args, _ := untag(msg["args"]).([]any)
				name, ok := msg["event"].(string)
				if !ok {
					name = malformedEvent // a packet without data: socket.io-client calls onAny listeners with nothing
				}
				c.record(event{name: name, args: args, withAck: msg["withAck"] == true})
			}
		case "connect": // a reconnection of a client that reconnects by itself
			nc.mu.Lock()
			c := nc.clients[cid]
			nc.mu.Unlock()
			if c != nil {
				c.record(event{name: "connect", args: []any{msg["sid"], msg["recovered"]}})
			}
		case "disconnect":
			nc.mu.Lock()
			c := nc.clients[cid]
			nc.mu.Unlock()
			if c != nil {
				c.record(event{name: "disconnect", args: []any{msg["reason"]}})
			}
		}
	}
}

// malformedEvent is the name under which a Node client records an event packet it could not make sense of.
const malformedEvent = "malformed-event"

// call sends one command and waits for its reply.
func (nc *nodeClients) call(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	nc.mu.Lock()
	if nc.broken != nil {
		nc.mu.Unlock()
		t.Fatalf("node clients: %v\n%s", nc.broken, nc.proc.stderr.String())
	}
	nc.seq++
	seq := nc.seq
	ch := make(chan map[string]any, 1)
	nc.pending[seq] = ch
	cmd["seq"] = seq
	raw, err := json.Marshal(cmd)
	if err == nil {
		_, err = nc.proc.stdin.Write(append(raw, '\n'))
	}
	nc.mu.Unlock()
	if err != nil {
		t.Fatalf("node clients: %v", err)
	}
	select {
	case reply, ok := <-ch:
		if !ok {
			t.Fatalf("node clients: process ended\n%s", nc.proc.stderr.String())
		}
		if e, ok := reply["error"]; ok {
			t.Fatalf("node clients: %v: %v", cmd["cmd"], e)
		}
		return reply
	case <-time.After(30 * time.Second):
		t.Fatalf("node clients: no reply to %s within 30s", raw)
	}
	return nil
}

// connect opens a socket.io-client socket to url+nsp, over websocket (or long-polling first, then websocket).
func (nc *nodeClients) connect(t testing.TB, label, url, nsp string, query map[string]string, auth map[string]any, polling bool) *client {
	t.Helper()
	return nc.open(t, label, url, nsp, query, auth, false, polling)
}

// connectReconnecting opens a socket.io-client socket that reconnects by itself after a drop, recording each
// reconnection as an event "connect" with its socket id and socket.recovered.
func (nc *nodeClients) connectReconnecting(t testing.TB, label, url string, query map[string]string) *client {
	t.Helper()
	return nc.open(t, label, url, "/", query, nil, true, false)
}

func (nc *nodeClients) open(t testing.TB, label, url, nsp string, query map[string]string, auth map[string]any, reconnect, polling bool) *client {
	t.Helper()
	nc.mu.Lock()
	nc.nextID++
	cid := fmt.Sprintf("c%d", nc.nextID)
	c := newClient("node", label)
	nc.clients[cid] = c
	nc.mu.Unlock()
	c.answerFn = func(t testing.TB, ev string, value any, ack bool) {
		cmd := map[string]any{"cmd": "answer", "cid": cid, "event": ev}
		if ack {
			cmd["value"] = tag(value)
		} else {
			cmd["noAck"] = true
		}
		nc.call(t, cmd)
	}
	c.closeFn = func() {
		nc.mu.Lock()
		broken := nc.broken
		nc.mu.Unlock()
		if broken == nil {
			raw, _ := json.Marshal(map[string]any{"seq": 0, "cmd": "disconnect", "cid": cid})
			nc.mu.Lock()
			_, _ = nc.proc.stdin.Write(append(raw, '\n'))
			nc.mu.Unlock()
		}
	}
	c.dropFn = func(t testing.TB) { nc.call(t, map[string]any{"cmd": "drop", "cid": cid}) }
	c.stateFn = func(t testing.TB) map[string]any { return nc.call(t, map[string]any{"cmd": "state", "cid": cid}) }
	if query == nil {
		query = map[string]string{}
	}
	if auth == nil {
		auth = map[string]any{}
	}
	cmd := map[string]any{"cmd": "connect", "cid": cid, "url": url + nsp, "query": query, "auth": auth,
		"reconnect": reconnect}
	if polling {
		cmd["transports"] = []string{"polling", "websocket"}
	}
	reply := nc.call(t, cmd)
	c.id, _ = reply["sid"].(string)
	if c.id == "" {
		t.Fatalf("node client %s: no sid in %v", label, reply)
	}
	return c
}
