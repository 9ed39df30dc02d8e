package wstransport

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// readFrameFrom parses one server frame from b (the test client's parser, on bytes).
func readFrameFrom(t *testing.T, b []byte) frame {
	t.Helper()
	fc := &frameConn{Conn: nopConn{}, br: bufio.NewReader(bytes.NewReader(b))}
	return fc.readFrame(t)
}

type nopConn struct{ net.Conn }

func (nopConn) SetReadDeadline(time.Time) error { return nil }

func TestFrameHeaderLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 200_000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		b := newFrame(opText, payload)
		if len(b) != headerLen(n)+n {
			t.Fatalf("%d bytes: frame of %d bytes, header %d", n, len(b), headerLen(n))
		}
		f := readFrameFrom(t, b)
		if !f.fin || f.rsv1 || f.op != opText || !bytes.Equal(f.payload, payload) {
			t.Fatalf("%d bytes: read back fin=%v rsv1=%v op=%d len=%d", n, f.fin, f.rsv1, f.op, len(f.payload))
		}
	}
}

func TestDeflatedFrameInflates(t *testing.T) {
	for _, text := range []string{"", "x", strings.Repeat("a compressible line\n", 5000)} {
		b := newDeflatedFrame(opText, []byte(text))
		f := readFrameFrom(t, b)
		if !f.rsv1 || !f.fin || f.op != opText || f.text(t) != text {
			t.Fatalf("%d bytes: rsv1=%v fin=%v op=%d, inflated to %d bytes", len(text), f.rsv1, f.fin, f.op, len(f.text(t)))
		}
	}
}

// A buffer is framed once, whatever the number of sends; another buffer with the same bytes is another broadcast.
func TestFrameCacheKeyedOnTheBuffer(t *testing.T) {
	var c frameCache
	a := types.NewStringBufferString(`42["ev",1]`)
	f1, ok := c.get(a)
	if !ok {
		t.Fatal("a StringBuffer is not cached")
	}
	for range 10 {
		if f, _ := c.get(a); f != f1 {
			t.Fatal("the same buffer got another frame")
		}
	}
	b := types.NewStringBufferString(`42["ev",1]`)
	if f, _ := c.get(b); f == f1 {
		t.Fatal("another buffer got the first one's frame")
	}
	if got := c.built.Load(); got != 2 {
		t.Fatalf("built %d frames, want 2", got)
	}
	if f, _ := c.get(types.NewBytesBuffer([]byte{1, 2})); f.op != opBinary {
		t.Fatal("a BytesBuffer is not framed as binary")
	}
}

// offersDeflate agrees with the engine's upgrader (gorilla/websocket with compression enabled) on whether a
// request's extension header gets permessage-deflate.
func TestOffersDeflateAgreesWithTheUpgrader(t *testing.T) {
	up := websocket.Upgrader{EnableCompression: true}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, nil); err == nil {
			_ = c.Close()
		}
	}))
	defer hs.Close()
	for _, lines := range [][]string{
		nil,
		{"permessage-deflate"},
		{"permessage-deflate; client_max_window_bits"},
		{"permessage-deflate;server_max_window_bits=10; client_no_context_takeover"},
		{"x-webkit-deflate-frame, permessage-deflate"},
		{"foo; a=b c, permessage-deflate"},
		{`foo; a="quoted, value", permessage-deflate`},
		{`permessage-deflate; a="unterminated`},
		{"Permessage-Deflate"},
		{"permessage-deflate x"},
		{" , permessage-deflate"},
		{"permessage-deflate; =x"},
		{"foo;", "permessage-deflate"},
		{"foo", "bar; permessage-deflate"},
		{"permessage-deflate2"},
	} {
		h := http.Header{}
		for _, l := range lines {
			h.Add("Sec-WebSocket-Extensions", l)
		}
		nc, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
		must(t, err)
		req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		for _, l := range lines {
			req += "Sec-WebSocket-Extensions: " + l + "\r\n"
		}
		_, err = io.WriteString(nc, req+"\r\n")
		must(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		must(t, err)
		_ = nc.Close()
		accepted := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
		if got := offersDeflate(h); got != accepted {
			t.Errorf("%q: offersDeflate %v, the upgrader accepted: %v", lines, got, accepted)
		}
	}
}
