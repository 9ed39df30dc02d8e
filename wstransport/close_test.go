package wstransport

import (
	"crypto/tls"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// After the server closes, no goroutine of this package survives: not the readers, not a goroutine writing a
// backlog to a client that stopped reading, not the writer goroutine of a TLS connection, not a connection whose
// client never answers the close frame (it is closed after CloseTimeout).
func TestNoGoroutineAfterClose(t *testing.T) {
	opts := socket.DefaultServerOptions()
	tr := Install(opts, Options{MaxQueuedBytes: 64 << 20, CloseTimeout: 500 * time.Millisecond})
	io := socket.NewServer(nil, opts)
	conns := make(chan *socket.Socket, 16)
	io.On("connection", func(args ...any) { conns <- args[0].(*socket.Socket) })
	plain := httptest.NewServer(io.ServeHandler(nil))
	defer plain.Close()
	secure := httptest.NewTLSServer(io.ServeHandler(nil))
	defer secure.Close()
	s := &testServer{io: io, tr: tr, url: plain.URL, conns: conns, reasons: map[string]chan disconnect{}}

	// A client that reads, a client that stopped reading (its backlog keeps a goroutine writing), and a client
	// that never reads at all, so never sees the close frame.
	dialRaw(t, s, nil, true)
	stalled := dialRaw(t, s, smallReadBuffer(), true)
	so := s.socketOf(t, stalled.id)
	pad := strings.Repeat("s", 8192)
	for i := 0; transportOf(so).Writable(); i++ {
		if i == 10_000 {
			t.Fatal("80 MB to a client that does not read never made a backlog")
		}
		must(t, so.Emit("m", pad))
	}
	// A TLS client: its connection has a writer goroutine.
	d := &websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	tc, _, err := d.Dial("wss"+strings.TrimPrefix(secure.URL, "https")+"/socket.io/?EIO=4&transport=websocket", nil)
	must(t, err)
	defer tc.Close()
	tlsClient := &rawClient{Conn: tc}
	tlsClient.sid = openSid(t, tlsClient.readText(t))
	tlsClient.join(t)
	tlsSock := s.socketOf(t, tlsClient.id)
	if tr := transportOf(tlsSock); tr == nil || tr.raw != nil {
		t.Fatalf("the TLS connection does not use the writer goroutine")
	}

	var reader, backlog, writer bool
	for _, g := range ownGoroutines() {
		reader = reader || strings.Contains(g, "(*conn).read(")
		backlog = backlog || strings.Contains(g, "(*conn).writeQueued(") && !strings.Contains(g, "(*conn).writeLoop(")
		writer = writer || strings.Contains(g, "(*conn).writeLoop(")
	}
	if !reader || !backlog || !writer {
		t.Fatalf("goroutines before close: reader %v, backlog writer %v, writer goroutine %v: the check below would prove little", reader, backlog, writer)
	}
	if st := tr.Stats(); st.Connections != 3 {
		t.Fatalf("Connections = %d, want 3", st.Connections)
	}

	done := make(chan struct{})
	io.Close(func(error) { close(done) })
	<-waitChan(t, chanOf(done))
	waitFor(t, "this package's goroutines to end", func() bool { return len(ownGoroutines()) == 0 })
	if st := tr.Stats(); st.Connections != 0 {
		t.Fatalf("Connections = %d after close, want 0", st.Connections)
	}
}
