package interop

import (
	"strings"
	"sync"
	"testing"
	"time"

	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/socketio-go/redisstreams/internal/siotest"
)

// eventWait bounds every wait for a client event. Generous: the machine is small and shared.
const eventWait = 15 * time.Second

type event struct {
	name    string
	args    []any // canonical, without the ack callback
	withAck bool
}

// client is a Socket.IO client of either language, with a record of the events it received.
type client struct {
	lang   string // "go" or "node"
	label  string // e.g. "node@G1"
	id     string
	server server // the server it is connected to

	mu     sync.Mutex
	events []event
	notify chan struct{}

	answerFn func(t testing.TB, event string, value any, ack bool)
	closeFn  func()
	dropFn   func(t testing.TB)                // cuts the connection as a network failure would
	stateFn  func(t testing.TB) map[string]any // Node clients: socket.io-client's recovery state
}

func newClient(lang, label string) *client {
	return &client{lang: lang, label: label, notify: make(chan struct{}, 1)}
}

func (c *client) String() string { return c.label + "(" + c.id + ")" }

func (c *client) record(e event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// next returns (and removes) the first recorded event whose name is one of names, waiting for it. Events of
// other names stay recorded: they belong to other checks.
func (c *client) next(t testing.TB, names ...string) event {
	t.Helper()
	e, ok := c.nextWithin(eventWait, names...)
	if !ok {
		t.Fatalf("client %s: no %s event within %v", c, strings.Join(names, "/"), eventWait)
	}
	return e
}

// nextWithin is next with a deadline of its own; false when it passed.
func (c *client) nextWithin(d time.Duration, names ...string) (event, bool) {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for i, e := range c.events {
			for _, n := range names {
				if e.name == n {
					c.events = append(c.events[:i:i], c.events[i+1:]...)
					c.mu.Unlock()
					return e, true
				}
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline:
			return event{}, false
		}
	}
}

// expect waits for the event and checks its arguments.
func (c *client) expect(t testing.TB, name string, want ...any) {
	t.Helper()
	e := c.next(t, name)
	if !equal(e.args, want) {
		t.Errorf("client %s: %s args = %s, want %s", c, name, show(e.args), show(canon(want)))
	}
}

// expectNot checks that the client got the marker and not the event before it.
func (c *client) expectNot(t testing.TB, name, marker string) {
	t.Helper()
	if e := c.next(t, name, marker); e.name != marker {
		t.Errorf("client %s: got %s %s, which was not meant for it", c, e.name, show(e.args))
	}
}

// answer makes the client acknowledge later events of that name with value (ack false: never acknowledge).
func (c *client) answer(t testing.TB, event string, value any, ack bool) {
	t.Helper()
	c.answerFn(t, event, value, ack)
}

func (c *client) close() { c.closeFn() }

// drop closes the client's engine (no DISCONNECT packet): the server sees a transport close and, with connection
// state recovery, persists the session.
func (c *client) drop(t testing.TB) { c.dropFn(t) }

// connectGo opens a Go client (clients/socket v3.0.6) over websocket (or long-polling first, then websocket)
// and waits until it is connected.
func connectGo(t testing.TB, label, url, nsp string, query map[string]string, auth map[string]any, polling bool) *client {
	t.Helper()
	var c *client
	dial := siotest.Dial
	if polling {
		dial = siotest.DialPolling
	}
	s, err := dial(siotest.WithQuery(url+nsp, query), auth, 5*time.Second, 3, func(s *sio.Socket) {
		c = recordGo(label, s)
	})
	if err != nil {
		t.Fatalf("go client %s could not connect to %s%s: %v", label, url, nsp, err)
	}
	c.id = s.Id()
	t.Cleanup(func() { s.Disconnect() })
	return c
}

// recordGo makes the record of a Go client that is not connected yet.
func recordGo(label string, s *sio.Socket) *client {
	c := newClient("go", label)
	answers := map[string]any{}
	var answersMu sync.Mutex
	c.answerFn = func(_ testing.TB, ev string, value any, ack bool) {
		answersMu.Lock()
		defer answersMu.Unlock()
		if ack {
			answers[ev] = value
		} else {
			delete(answers, ev)
		}
	}
	c.closeFn = func() { s.Disconnect() }
	c.dropFn = func(testing.TB) { s.Io().Engine().Close() }
	s.OnAny(func(args ...any) {
		if len(args) == 0 {
			return
		}
		name, _ := args[0].(string)
		args = args[1:]
		var ack socket.Ack
		if len(args) > 0 {
			ack, _ = args[len(args)-1].(socket.Ack)
			if ack != nil {
				args = args[:len(args)-1]
			}
		}
		// Record before answering: a test may look at the event as soon as the ack arrived.
		c.record(event{name: name, args: canon(args).([]any), withAck: ack != nil})
		if ack != nil {
			answersMu.Lock()
			v, ok := answers[name]
			answersMu.Unlock()
			if ok {
				ack([]any{v}, nil)
			}
		}
	})
	_ = s.On("disconnect", func(args ...any) {
		reason := ""
		if len(args) > 0 {
			reason, _ = args[0].(string)
		}
		c.record(event{name: "disconnect", args: []any{reason}})
	})
	return c
}
