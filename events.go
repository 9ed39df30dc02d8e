package redisstreams

import "time"

// The Observer's optional interfaces. The adapter calls the methods of each one its Options.Observer implements,
// inline, from its own goroutines: they must be fast, must not block, and must be safe for concurrent use. New
// kinds of events come as new interfaces, so an Observer written today keeps compiling; their arguments are
// structs, so that they can carry more later. Callbacks implements all of them with functions, and Observers
// combines several Observers into one.

// OutageObserver is told when the adapter starts holding writes because Redis cannot be reached (connection
// refused or reset, timeouts, LOADING, a failover), and when Redis takes its writes again.
type OutageObserver interface {
	OutageBegan(Outage)
	OutageEnded(Outage)
}

// Outage describes an outage: as it begins (Held and Err set), and as it ends (every field).
type Outage struct {
	Began    time.Time
	Duration time.Duration // at the end: how long writes were held
	Held     int           // writes held: at the beginning, those queued then; at the end, the most held at once
	Dropped  int           // at the end: writes given up during the outage (Options.MaxOutage, MaxHeldBytes)
	Err      error         // the failure that began it
}

// LossObserver is told each time a reader counts stream entries that vanished before this server read them:
// the increments of Stats.Lost, as they are counted.
type LossObserver interface {
	EntriesLost(Loss)
}

// Loss is one count of lost stream entries.
type Loss struct {
	Stream  string
	Entries int64
	Cause   LossCause
}

// LossCause says why entries vanished before a reader read them.
type LossCause int

const (
	// LossTrimmed: trimmed (MaxLen) or deleted while this server was behind.
	LossTrimmed LossCause = iota + 1
	// LossDataSet: lost with Redis's data set (a restart without persistence, a failover to a replica that was
	// behind), counted from the numbering of Go servers' entries.
	LossDataSet
)

func (c LossCause) String() string {
	switch c {
	case LossTrimmed:
		return "trimmed"
	case LossDataSet:
		return "data set lost"
	}
	return "unknown"
}

// DropObserver is told when writes are given up without reaching Redis: the increments of Stats.Dropped.
type DropObserver interface {
	WritesDropped(Drop)
}

// Drop is one batch of writes given up.
type Drop struct {
	Writes int    // writes given up
	Sent   int    // of them, stream writes sent at least once (Stats.DroppedSent): they may have reached Redis
	Bound  string // what gave them up: "MaxOutage", "MaxHeldBytes", "Close"
}

// Callbacks is an Observer whose methods call its fields; a nil field does nothing. It lets an application react
// to a few events (an alert on an outage, a metric of lost entries) without implementing every method:
//
//	opts.Observer = redisstreams.Callbacks{OnOutageBegan: func(o redisstreams.Outage) { alert(o.Err) }}
type Callbacks struct {
	OnWriteBatch    func(n int, rtt time.Duration, err error)
	OnRequest       func(kind string, rtt time.Duration, err error)
	OnDelivered     func(stream, nsp string, delay time.Duration)
	OnOutageBegan   func(Outage)
	OnOutageEnded   func(Outage)
	OnEntriesLost   func(Loss)
	OnWritesDropped func(Drop)
}

func (c Callbacks) WriteBatch(n int, rtt time.Duration, err error) {
	if c.OnWriteBatch != nil {
		c.OnWriteBatch(n, rtt, err)
	}
}

func (c Callbacks) Request(kind string, rtt time.Duration, err error) {
	if c.OnRequest != nil {
		c.OnRequest(kind, rtt, err)
	}
}

func (c Callbacks) Delivered(stream, nsp string, delay time.Duration) {
	if c.OnDelivered != nil {
		c.OnDelivered(stream, nsp, delay)
	}
}

func (c Callbacks) OutageBegan(o Outage) {
	if c.OnOutageBegan != nil {
		c.OnOutageBegan(o)
	}
}

func (c Callbacks) OutageEnded(o Outage) {
	if c.OnOutageEnded != nil {
		c.OnOutageEnded(o)
	}
}

func (c Callbacks) EntriesLost(l Loss) {
	if c.OnEntriesLost != nil {
		c.OnEntriesLost(l)
	}
}

func (c Callbacks) WritesDropped(d Drop) {
	if c.OnWritesDropped != nil {
		c.OnWritesDropped(d)
	}
}

// Observers returns an Observer that passes every measurement and event to each of obs that takes it (nil ones
// are skipped), in order: metrics and an application's callbacks together.
func Observers(obs ...Observer) Observer {
	var list observers
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return list
}

type observers []Observer

func (l observers) WriteBatch(n int, rtt time.Duration, err error) {
	for _, o := range l {
		o.WriteBatch(n, rtt, err)
	}
}

func (l observers) Request(kind string, rtt time.Duration, err error) {
	for _, o := range l {
		o.Request(kind, rtt, err)
	}
}

func (l observers) Delivered(stream, nsp string, delay time.Duration) {
	for _, o := range l {
		o.Delivered(stream, nsp, delay)
	}
}

func (l observers) OutageBegan(x Outage) { each(l, func(o OutageObserver) { o.OutageBegan(x) }) }
func (l observers) OutageEnded(x Outage) { each(l, func(o OutageObserver) { o.OutageEnded(x) }) }
func (l observers) EntriesLost(x Loss)   { each(l, func(o LossObserver) { o.EntriesLost(x) }) }
func (l observers) WritesDropped(x Drop) { each(l, func(o DropObserver) { o.WritesDropped(x) }) }

// each calls f with each observer of l that implements T.
func each[T any](l observers, f func(T)) {
	for _, o := range l {
		if x, ok := o.(T); ok {
			f(x)
		}
	}
}

var (
	_ OutageObserver = Callbacks{}
	_ LossObserver   = Callbacks{}
	_ DropObserver   = Callbacks{}
	_ OutageObserver = observers{}
	_ LossObserver   = observers{}
	_ DropObserver   = observers{}
)
