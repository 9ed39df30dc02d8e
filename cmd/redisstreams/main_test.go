package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/goredisbackend"

	"github.com/redis/go-redis/v9"
	client "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/socketio-go/redisstreams"
	"github.com/socketio-go/redisstreams/emitter"
	"github.com/socketio-go/redisstreams/internal/redistest"
	"github.com/socketio-go/redisstreams/internal/siotest"
	"github.com/socketio-go/redisstreams/internal/wire"
)

// shared is the standalone Redis and the cluster that the package's tests share.
var shared redistest.Shared

func TestMain(m *testing.M) { os.Exit(shared.Main(m, redistest.MainOptions{})) }

// cli runs the command in-process and returns its exit status, stdout and stderr.
func cli(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return cliContext(t, context.Background(), args...)
}

func cliContext(t testing.TB, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// fleet is a cluster of Socket.IO servers (redisstreams adapters) on one Redis, broadcasting all the time.
type fleet struct {
	prefix  string
	conn    []string // -redis / -cluster flags for the CLI
	servers []*socket.Server
	urls    []string
	rc      redis.UniversalClient
}

type fleetOpts struct {
	cluster     bool
	streamCount int
	streamsOnly bool
	sharded     bool
	servers     int
}

// startFleet starts the servers and a loop that broadcasts from them (binary included) until the test ends.
func startFleet(t *testing.T, fo fleetOpts) *fleet {
	t.Helper()
	shared.Require(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	f := &fleet{prefix: "cli" + hex.EncodeToString(b[:])}
	newClient := func() redis.UniversalClient {
		var rc redis.UniversalClient
		if fo.cluster {
			rc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: shared.Cluster.Addrs()})
		} else {
			rc = redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
		}
		t.Cleanup(func() { _ = rc.Close() })
		return rc
	}
	f.rc = newClient()
	if fo.cluster {
		f.conn = []string{"-cluster", strings.Join(shared.Cluster.Addrs(), ",")}
	} else {
		f.conn = []string{"-redis", "redis://" + shared.Standalone.Addr()}
	}
	f.conn = append(f.conn, "-stream", f.prefix, "-channel-prefix", f.prefix, "-session-prefix", f.prefix+":session:")
	if fo.streamCount > 1 {
		f.conn = append(f.conn, "-stream-count", fmt.Sprint(fo.streamCount))
	}
	if fo.streamsOnly {
		f.conn = append(f.conn, "-streams-only")
	}
	if fo.sharded {
		f.conn = append(f.conn, "-sharded")
	}
	for range max(fo.servers, 2) {
		a, err := redisstreams.New(t.Context(), goredisbackend.New(newClient()), redisstreams.Options{StreamName: f.prefix, ChannelPrefix: f.prefix,
			SessionKeyPrefix: f.prefix + ":session:", StreamCount: fo.streamCount, StreamsOnly: fo.streamsOnly, UseShardedPubSub: fo.sharded,
			BlockTime: time.Second, HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		so := socket.DefaultServerOptions()
		so.SetAdapter(a)
		io := socket.NewServer(nil, so)
		io.Of("/chat", nil)
		f.servers = append(f.servers, io)
		f.urls = append(f.urls, siotest.Serve(t, io, a.Close))
	}
	// Broadcasting: bounded in count and time, stopped when the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 20000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := f.servers[i%len(f.servers)]
			if i%2 == 0 {
				s.Emit("tick", i, []byte{1, 2, 3})
			} else {
				s.Of("/chat", nil).To("room1").Emit("msg", map[string]any{"i": i})
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Wait until the streams have entries.
	var last string
	waitFor(t, "the fleet's first broadcasts", func() bool {
		code, _, errOut := cli(t, append([]string{"status"}, f.conn...)...)
		last = errOut
		return code == 0
	}, func() string { return last })
	return f
}

func (f *fleet) args(cmd string, extra ...string) []string {
	return append(append([]string{cmd}, f.conn...), extra...)
}

func waitFor(t testing.TB, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range detail {
				what += ": " + d()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storeSessions writes n recovery sessions as the adapter stores them.
func storeSessions(t *testing.T, f *fleet, n int) {
	t.Helper()
	for i := range n {
		pid := fmt.Sprintf("pid%03d", i)
		stored, err := wire.EncodeSession(wire.Session{Sid: "sid" + pid, Pid: pid, Rooms: []string{"secret-room"},
			Data: map[string]any{"user": "alice"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.rc.Set(context.Background(), f.prefix+":session:"+pid, stored, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStatus(t *testing.T) {
	for _, fo := range []fleetOpts{
		{},
		{cluster: true, streamCount: 5},
		{cluster: true, sharded: true, servers: 3},
		{streamsOnly: true, servers: 3},
	} {
		t.Run(fmt.Sprintf("cluster=%v,count=%d,sharded=%v,streamsOnly=%v", fo.cluster, fo.streamCount, fo.sharded, fo.streamsOnly), func(t *testing.T) {
			f := startFleet(t, fo)
			storeSessions(t, f, 3)
			want := max(fo.servers, 2)
			var st status
			waitFor(t, "every server counted", func() bool {
				code, out, errOut := cli(t, f.args("status", "-json")...)
				if code != 0 {
					t.Fatalf("status -json: %d %s", code, errOut)
				}
				st = status{}
				if err := json.Unmarshal([]byte(out), &st); err != nil {
					t.Fatalf("status -json: %v\n%s", err, out)
				}
				return st.Servers["/"] == int64(want) && st.Servers["/chat"] == int64(want)
			})
			if st.Sessions != 3 {
				t.Errorf("sessions = %d, want 3", st.Sessions)
			}
			wantStreams := map[string]bool{f.prefix: true}
			if fo.streamCount == 5 {
				wantStreams = map[string]bool{wire.StreamName(f.prefix, 5, "/"): true, wire.StreamName(f.prefix, 5, "/chat"): true}
			}
			for _, s := range st.Streams {
				if !wantStreams[s.Stream] {
					t.Errorf("unexpected stream %s", s.Stream)
				}
				delete(wantStreams, s.Stream)
				if s.Length == 0 || s.EntriesAdded < s.Length || s.LastAge == nil || *s.LastAge > 5 || s.Rate <= 0 || s.Headroom == nil || s.FirstID == "" {
					t.Errorf("stream %+v", s)
				}
			}
			if len(wantStreams) > 0 {
				t.Errorf("streams missing: %v", wantStreams)
			}
			code, out, errOut := cli(t, f.args("status")...)
			if code != 0 || !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, "/chat") || !strings.Contains(out, "recovery sessions stored") {
				t.Errorf("status: %d\n%s\n%s", code, out, errOut)
			}
			t.Logf("\n%s", out)
		})
	}
}

func TestTail(t *testing.T) {
	f := startFleet(t, fleetOpts{})
	// History and JSON.
	code, out, errOut := cli(t, f.args("tail", "-n", "4", "-json", "-max", "6")...)
	if code != 0 {
		t.Fatalf("tail: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	prev := ""
	for _, l := range lines {
		var te tailEntry
		if err := json.Unmarshal([]byte(l), &te); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if te.TypeName != "BROADCAST" || te.Error != "" || (te.Event != "tick" && te.Event != "msg") {
			t.Errorf("entry %s", l)
		}
		if prev != "" && wire.CompareIDs(prev, te.ID) >= 0 {
			t.Errorf("entries out of order: %s then %s", prev, te.ID)
		}
		prev = te.ID
		if te.Event == "tick" && !strings.Contains(l, `{"$bin":3,"hex":"010203"}`) {
			t.Errorf("binary not shown as length + hex: %s", l)
		}
		if te.Event == "msg" && (te.Nsp != "/chat" || len(te.Rooms) != 1 || te.Rooms[0] != "room1") {
			t.Errorf("room broadcast: %s", l)
		}
	}
	// History with a filter: the last entries that match, not the last entries filtered. Two joins, then
	// broadcasts go on.
	em, err := emitter.New(goredisbackend.New(f.rc), emitter.Options{StreamName: f.prefix})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"j1", "j2"} {
		if _, err := em.In("nobody").SocketsJoin(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "broadcasts after the joins", func() bool {
		_, out, _ := cli(t, f.args("tail", "-n", "20", "-type", "BROADCAST", "-max", "20")...)
		return !strings.Contains(out, "SOCKETS_JOIN")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, out, _ = cliContext(t, ctx, f.args("tail", "-n", "2", "-type", "SOCKETS_JOIN", "-max", "2")...)
	if code != 0 || strings.Count(out, "SOCKETS_JOIN") != 2 || !strings.Contains(out, `join/leave=["j1"]`) || !strings.Contains(out, `join/leave=["j2"]`) {
		t.Errorf("tail -n 2 -type SOCKETS_JOIN: %d\n%s", code, out)
	}
	// Filters, human form.
	code, out, _ = cli(t, f.args("tail", "-nsp", "/chat", "-type", "broadcast", "-max", "3")...)
	if code != 0 || strings.Count(out, "\n") != 3 || strings.Contains(out, "nsp=/ ") {
		t.Fatalf("tail -nsp /chat: %d\n%s", code, out)
	}
	if !strings.Contains(out, `BROADCAST nsp=/chat`) || !strings.Contains(out, `rooms=["room1"]`) || !strings.Contains(out, `event="msg" args=[{"i":`) {
		t.Errorf("human form:\n%s", out)
	}
	code, out, _ = cli(t, f.args("tail", "-nsp", "/", "-max", "2")...)
	if code != 0 || !strings.Contains(out, `event="tick" args=[`) || !strings.Contains(out, `<bin 3B 010203>`) {
		t.Errorf("tail binary:\n%s", out)
	}
	// Other types and the emitter's entries.
	var emitted sync.WaitGroup
	defer emitted.Wait()
	emitted.Go(func() {
		time.Sleep(200 * time.Millisecond)
		if code, _, errOut := cli(t, f.args("emit", "-nsp", "/chat", "-to", "r", "-except", "x", "hello", `"world"`, "1", `{"a":[true,null]}`)...); code != 0 {
			t.Errorf("emit: %d %s", code, errOut)
		}
	})
	code, out, _ = cli(t, f.args("tail", "-type", "BROADCAST", "-nsp", "/chat", "-json", "-max", "200")...)
	if code != 0 {
		t.Fatal(code)
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var te tailEntry
		_ = json.Unmarshal([]byte(l), &te)
		if te.UID == "emitter" {
			found = true
			if te.Event != "hello" || fmt.Sprint(te.Args) != "[world 1 map[a:[true <nil>]]]" || fmt.Sprint(te.Rooms, te.Except) != "[r] [x]" {
				t.Errorf("emitter entry: %s", l)
			}
			break
		}
	}
	if !found {
		t.Error("the emitter's entry was not tailed")
	}
	// An interrupt (ctx) stops a follow without error.
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if code, _, errOut := cliContext(t, short, f.args("tail", "-type", "ADAPTER_CLOSE")...); code != 0 {
		t.Errorf("tail interrupted: %d %s", code, errOut)
	}
}

func TestEmit(t *testing.T) {
	f := startFleet(t, fleetOpts{cluster: true, streamCount: 5})
	got := make(chan []any, 1)
	c, err := siotest.Dial(f.urls[1]+"/chat", nil, 5*time.Second, 3, func(c *client.Socket) {
		_ = c.On(types.EventName("cli"), func(args ...any) { got <- args })
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	var ss *socket.Socket
	waitFor(t, "the server socket", func() bool {
		f.servers[1].Of("/chat", nil).Sockets().Range(func(_ socket.SocketId, s *socket.Socket) bool { ss = s; return false })
		return ss != nil
	})
	ss.Join("vip")
	code, out, errOut := cli(t, f.args("emit", "-nsp", "/chat", "-to", "vip", "-to", "other", "-except", "muted", "cli", `"text"`, "42", `{"k":[1.5,null]}`)...)
	if code != 0 || !strings.Contains(out, `emitted "cli" to /chat`) {
		t.Fatalf("emit: %d %s %s", code, out, errOut)
	}
	select {
	case args := <-got:
		if fmt.Sprint(args) != "[text 42 map[k:[1.5 <nil>]]]" {
			t.Errorf("client got %#v", args)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client never got the emitted event")
	}
	// tail follows every stream of the layout: the entry is on the stream of /chat.
	code, out, errOut = cli(t, f.args("tail", "-n", "300", "-nsp", "/chat", "-json", "-max", "300")...)
	if code != 0 || !strings.Contains(out, `"uid":"emitter"`) || !strings.Contains(out, `"stream":"`+wire.StreamName(f.prefix, 5, "/chat")+`"`) {
		t.Errorf("tail after emit: %d %s", code, errOut)
	}
	code, _, errOut = cli(t, f.args("emit", "cli", "not-json")...)
	if code != 2 || !strings.Contains(errOut, "is not JSON") {
		t.Errorf("bad argument: %d %s", code, errOut)
	}
	if code, _, _ = cli(t, f.args("emit")...); code != 2 {
		t.Errorf("emit without event: %d", code)
	}
}

func TestSessions(t *testing.T) {
	f := startFleet(t, fleetOpts{cluster: true})
	storeSessions(t, f, 5)
	code, out, _ := cli(t, f.args("sessions")...)
	if code != 0 || !strings.Contains(out, "5 recovery sessions stored") {
		t.Errorf("sessions: %d %s", code, out)
	}
	code, out, _ = cli(t, f.args("sessions", "-list")...)
	if code != 0 || strings.Count(out, "\n") != 6 || !strings.Contains(out, "pid004") {
		t.Errorf("sessions -list: %d\n%s", code, out)
	}
	if strings.Contains(out, "secret-room") || strings.Contains(out, "alice") || strings.Contains(out, "sidpid") {
		t.Errorf("sessions -list printed session data:\n%s", out)
	}
	code, out, _ = cli(t, f.args("sessions", "-list", "-json", "-data")...)
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(out, `"secret-room"`) || !strings.Contains(out, `"ttlSeconds":`) {
		t.Errorf("sessions -list -data: %d\n%s", code, out)
	}
	if code, _, _ := cli(t, f.args("sessions", "-data")...); code != 2 {
		t.Errorf("-data without -list: %d", code)
	}
}

func TestErrors(t *testing.T) {
	shared.Require(t)
	const secret = "s3cr3t-pw"
	acl := redistest.StartServerT(t, redistest.ServerOptions{Config: "user alice on >right-pw ~* &* +@all\n"})
	rc := redis.NewClient(&redis.Options{Addr: shared.Standalone.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	if err := rc.Set(context.Background(), "cli-not-a-stream", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unreachable", []string{"status", "-redis", "redis://alice:" + secret + "@127.0.0.1:1", "-timeout", "500ms"}, 1, "cannot reach Redis redis://alice:xxxxx@127.0.0.1:1"},
		{"wrong password", []string{"status", "-redis", "redis://alice:" + secret + "@" + acl.Addr()}, 1, "refused the credentials"},
		{"wrong password, cluster form", []string{"sessions", "-cluster", "redis://alice:" + secret + "@" + acl.Addr()}, 1, "refused the credentials"},
		{"missing stream", []string{"status", "-redis", "redis://" + shared.Standalone.Addr(), "-stream", "cli-no-such-stream"}, 1, `no stream "cli-no-such-stream"`},
		{"wrong type", []string{"status", "-redis", "redis://" + shared.Standalone.Addr(), "-stream", "cli-not-a-stream"}, 1, `key "cli-not-a-stream" is a string, not a stream`},
		{"wrong type, tail", []string{"tail", "-redis", "redis://" + shared.Standalone.Addr(), "-stream", "cli-not-a-stream"}, 1, `is a string, not a stream`},
		{"wrong type, emit", []string{"emit", "-redis", "redis://" + shared.Standalone.Addr(), "-stream", "cli-not-a-stream", "ev"}, 1, `is a string, not a stream`},
		{"bad URL", []string{"status", "-redis", "http://alice:" + secret + "@x"}, 1, "-redis http://alice:xxxxx@x"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"no command", nil, 2, "usage:"},
		{"bad type filter", []string{"tail", "-type", "NOPE"}, 2, "not a message type"},
		{"exclusive", []string{"status", "-redis", "redis://x", "-cluster", "y:1"}, 2, "exclusive"},
		{"bad stream count", []string{"status", "-stream-count", "0"}, 2, "-stream-count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(out+errOut, secret) {
				t.Errorf("the password was printed: %s%s", out, errOut)
			}
		})
	}
	// A right password works.
	if code, _, errOut := cli(t, "sessions", "-redis", "redis://alice:right-pw@"+acl.Addr()); code != 0 {
		t.Errorf("right password: %d %s", code, errOut)
	}
}

// TestBinary builds the command and runs it as a user would: status, then a tail stopped by SIGINT.
func TestBinary(t *testing.T) {
	f := startFleet(t, fleetOpts{})
	bin := filepath.Join(t.TempDir(), "redisstreams")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, f.args("status", "-json")...)
	out, err := cmd.Output()
	var st status
	if err != nil || json.Unmarshal(out, &st) != nil || len(st.Streams) != 1 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// REDIS_URL from the environment, tail until SIGINT.
	cmd = exec.Command(bin, "tail", "-stream", f.prefix)
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+shared.Standalone.Addr(), "REDIS_CLUSTER_ADDRS=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-lines:
		if !strings.Contains(l, "BROADCAST") {
			t.Errorf("tail printed %q", l)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("tail printed nothing; stderr %s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail after SIGINT: %v, stderr %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("tail did not stop on SIGINT")
	}
}
