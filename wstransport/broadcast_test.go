package wstransport

import (
	"strconv"
	"strings"
	"testing"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WriteBroadcast, the adapter's direct path, interleaved in one goroutine with packets that go through the engine
// (socket.Emit, and WriteToEngine when WriteBroadcast declines): the client gets every packet in the order they
// were sent, across a backlog (while the engine holds packets, WriteBroadcast declines), and the direct path is
// taken again once the backlog is gone.
func TestWriteBroadcastKeepsOrder(t *testing.T) {
	s := startServer(t, Options{MaxQueuedBytes: 256 << 20}, nil, nil)
	c := dialRaw(t, s, smallReadBuffer(), true)
	so := s.socket(t)
	tr := transportOf(so)
	pad := strings.Repeat("o", 4096)
	direct, declined := 0, 0
	send := func(i int) {
		packet := `2["m",` + strconv.Itoa(i) + `,"` + pad + `"]`
		if i%2 == 0 {
			must(t, so.Emit("m", i, pad))
			return
		}
		if WriteBroadcast(so.Conn(), types.NewStringBufferString("4"+packet), true) {
			direct++
			return
		}
		declined++
		wo := &socket.WriteOptions{}
		wo.PreEncoded = true
		so.Client().WriteToEngine([]types.BufferInterface{types.NewStringBufferString(packet)}, wo)
	}
	i := 0
	for ; tr.Writable(); i++ {
		if i == 20_000 {
			t.Fatal("80 MB to a client that does not read never made a backlog")
		}
		send(i)
	}
	for end := i + 200; i < end; i++ {
		send(i)
	}
	if declined == 0 {
		t.Fatal("WriteBroadcast never declined while the transport was not writable")
	}
	for j := range i {
		if msg := c.readText(t); !strings.HasPrefix(msg, `42["m",`+strconv.Itoa(j)+`,`) {
			t.Fatalf("message %d: %.20q", j, msg)
		}
	}
	waitFor(t, "the engine to have flushed what it held", func() bool {
		return WriteBroadcast(so.Conn(), types.NewStringBufferString(`42["after"]`), true)
	})
	if msg := c.readText(t); msg != `42["after"]` {
		t.Fatalf("after the backlog: %q", msg)
	}
	if direct == 0 {
		t.Fatal("WriteBroadcast never took the direct path")
	}
}

// WriteBroadcast declines sockets that are not on this transport (long-polling).
func TestWriteBroadcastDeclinesPolling(t *testing.T) {
	s := startServer(t, Options{}, nil, func(tr *Transport) {})
	body := httpGet(t, s.url+"/socket.io/?EIO=4&transport=polling")
	sid := openSid(t, body)
	httpPost(t, s.url+"/socket.io/?EIO=4&transport=polling&sid="+sid, "40")
	so := s.socket(t)
	if WriteBroadcast(so.Conn(), types.NewStringBufferString(`42["x"]`), true) {
		t.Fatal("WriteBroadcast took a long-polling socket")
	}
}

// WriteBroadcastBatch defers the writes until Flush: the broadcasts of a batch go out to each socket in one write,
// in order; a write through the engine meanwhile writes them first.
func TestWriteBroadcastBatch(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	c1, c2 := dialRaw(t, s, nil, true), dialRaw(t, s, nil, true)
	so1, so2 := s.socketOf(t, c1.id), s.socketOf(t, c2.id)
	var batch Batch
	writes := s.tr.Stats().Writes
	for i := range 5 {
		msg := types.NewStringBufferString(`42["b",` + strconv.Itoa(i) + `]`)
		for _, so := range []*socket.Socket{so1, so2} {
			if !WriteBroadcastBatch(so.Conn(), msg, true, &batch) {
				t.Fatal("WriteBroadcastBatch declined an idle websocket")
			}
		}
	}
	if got := s.tr.Stats().Writes - writes; got != 0 {
		t.Fatalf("%d writes before Flush, want 0", got)
	}
	batch.Flush()
	if got := s.tr.Stats().Writes - writes; got != 2 {
		t.Fatalf("%d writes for 5 broadcasts to 2 sockets, want 2", got)
	}
	for _, c := range []*rawClient{c1, c2} {
		for i := range 5 {
			if msg := c.readText(t); msg != `42["b",`+strconv.Itoa(i)+`]` {
				t.Fatalf("got %q, want broadcast %d", msg, i)
			}
		}
	}

	// Deferred frames, then a packet through the engine before the Flush: all in order.
	WriteBroadcastBatch(so1.Conn(), types.NewStringBufferString(`42["deferred"]`), true, &batch)
	must(t, so1.Emit("engine"))
	batch.Flush()
	for _, want := range []string{`42["deferred"]`, `42["engine"]`} {
		if msg := c1.readText(t); msg != want {
			t.Fatalf("got %q, want %q", msg, want)
		}
	}
}

// A batch to more sockets than one goroutine flushes (flushShare) is written by several: every socket gets the
// broadcasts of the batch, in order.
func TestWriteBroadcastBatchShares(t *testing.T) {
	s := startServer(t, Options{}, nil, nil)
	n := 2*flushShare + 7
	clients := make([]*rawClient, n)
	socks := make([]*socket.Socket, n)
	for i := range n {
		clients[i] = dialRaw(t, s, nil, true)
		socks[i] = s.socket(t)
	}
	var batch Batch
	for k := range 3 {
		msg := types.NewStringBufferString(`42["b",` + strconv.Itoa(k) + `]`)
		for _, so := range socks {
			if !WriteBroadcastBatch(so.Conn(), msg, true, &batch) {
				t.Fatal("WriteBroadcastBatch declined an idle websocket")
			}
		}
	}
	batch.Flush()
	for _, c := range clients {
		for k := range 3 {
			if msg := c.readText(t); msg != `42["b",`+strconv.Itoa(k)+`]` {
				t.Fatalf("got %q, want broadcast %d", msg, k)
			}
		}
	}
}
