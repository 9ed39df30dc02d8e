package redisstreams

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketio-go/redisstreams/internal/redistest"
)

// eventLog records what an Observer made of Callbacks is told.
type eventLog struct {
	mu              sync.Mutex
	began, ended    []Outage
	lost            map[LossCause]int64
	dropped, sent   int
	batches, others int
}

func (l *eventLog) callbacks() Callbacks {
	return Callbacks{
		OnWriteBatch:  func(int, time.Duration, error) { l.mu.Lock(); l.batches++; l.mu.Unlock() },
		OnOutageBegan: func(o Outage) { l.mu.Lock(); l.began = append(l.began, o); l.mu.Unlock() },
		OnOutageEnded: func(o Outage) { l.mu.Lock(); l.ended = append(l.ended, o); l.mu.Unlock() },
		OnEntriesLost: func(x Loss) {
			l.mu.Lock()
			if l.lost == nil {
				l.lost = map[LossCause]int64{}
			}
			l.lost[x.Cause] += x.Entries
			l.mu.Unlock()
		},
		OnWritesDropped: func(d Drop) { l.mu.Lock(); l.dropped += d.Writes; l.sent += d.Sent; l.mu.Unlock() },
	}
}

func (l *eventLog) read(f func(*eventLog) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return f(l)
}

// An application learns of outages, dropped writes and lost entries as they happen, through the Observer's
// optional interfaces, without polling Stats (issue 19 item 5); the counts are those of Stats. Observers combines
// Callbacks with another Observer, and each gets every event it takes.
func TestObserverEvents(t *testing.T) {
	requireRedis(t)
	t.Run("outage and dropped writes", func(t *testing.T) {
		srv := redistest.StartServerT(t, redistest.ServerOptions{})
		events, other := &eventLog{}, &eventLog{}
		prefix := "t" + randomID()
		a, _, err := config{family: familyGoRedis}.newAdapterOn(t, []string{srv.Addr()}, Options{StreamName: prefix,
			ChannelPrefix: prefix, MaxOutage: 300 * time.Millisecond, RequestsTimeout: time.Second, Logger: testLogger(t),
			Observer: Observers(events.callbacks(), nil, other.callbacks())})
		if err != nil {
			t.Fatal(err)
		}
		nodes := startClusterWithAdapters(t, []*Adapter{a})
		if err := syscall.Kill(srv.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(srv.Pid(), syscall.SIGCONT)
			}
		}
		defer resume()
		for i := range 20 {
			nodes[0].io.Emit("x", i)
		}
		waitFor(t, "the outage told", func() bool { return events.read(func(l *eventLog) bool { return len(l.began) == 1 }) })
		waitFor(t, "dropped writes told", func() bool {
			return events.read(func(l *eventLog) bool { return l.dropped > 0 && uint64(l.dropped) == a.Stats().Dropped })
		})
		resume()
		nodes[0].io.Emit("x", "after") // the outage ends with the first write Redis takes
		waitFor(t, "the end of the outage told", func() bool { return events.read(func(l *eventLog) bool { return len(l.ended) == 1 }) })
		s := a.Stats()
		events.read(func(l *eventLog) bool {
			b, e := l.began[0], l.ended[0]
			if b.Err == nil || b.Began.IsZero() || e.Began != b.Began || e.Duration <= 0 || e.Dropped != l.dropped {
				t.Errorf("outage began %+v, ended %+v (dropped %d)", b, e, l.dropped)
			}
			if uint64(l.dropped) != s.Dropped || uint64(l.sent) != s.DroppedSent {
				t.Errorf("told %d dropped (%d sent), Stats %d (%d)", l.dropped, l.sent, s.Dropped, s.DroppedSent)
			}
			return true
		})
		if !other.read(func(l *eventLog) bool { return len(l.began) == 1 && l.dropped == events.dropped && l.batches > 0 }) {
			t.Error("the second Observer of Observers was not told the same")
		}
	})
	t.Run("entries lost", func(t *testing.T) {
		events := &eventLog{}
		adapters := standaloneAdapters(t, familyGoRedis, 1, Options{MaxLen: 50})
		receiver := standaloneAdaptersOn(t, familyGoRedis, adapters[0].opts, Options{ReadCount: 10, Observer: events.callbacks()})
		release := make(chan struct{})
		var once sync.Once
		receiver.beforeDispatch = func() { <-release } // held up: the stream is trimmed ahead of it
		nodes := startClusterWithAdapters(t, []*Adapter{adapters[0], receiver})
		for i := range 2000 {
			nodes[0].io.Emit("seq", i)
		}
		waitFor(t, "entries counted lost while held up", func() bool { return receiver.Stats().Lost > 0 })
		once.Do(func() { close(release) })
		waitFor(t, "every loss told", func() bool {
			return events.read(func(l *eventLog) bool { return l.lost[LossTrimmed] == int64(receiver.Stats().Lost) })
		})
		if n := events.read(func(l *eventLog) bool { return l.lost[LossDataSet] == 0 }); !n {
			t.Error("entries told lost with the data set, which Redis kept")
		}
	})
}

// standaloneAdaptersOn returns one more adapter on the streams of base, with opts for the rest.
func standaloneAdaptersOn(t *testing.T, family string, base Options, opts Options) *Adapter {
	t.Helper()
	opts.StreamName, opts.ChannelPrefix, opts.Logger = base.StreamName, base.ChannelPrefix, testLogger(t)
	a, _, err := config{family: family}.newAdapterOn(t, []string{standalone.Addr()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
