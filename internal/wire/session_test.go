package wire

import (
	"encoding/base64"
	"errors"
	"reflect"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// nodeSession is what the Node adapter 0.3.1 stored for sid "sid1", pid "pid1", rooms ["sid1", "room1"], data
// {a: 1}: notepack's MessagePack of {sid, pid, rooms, data}, in that key order.
func nodeSession() string {
	b := msgp.AppendMapHeader(nil, 4)
	b = msgp.AppendString(b, "sid")
	b = msgp.AppendString(b, "sid1")
	b = msgp.AppendString(b, "pid")
	b = msgp.AppendString(b, "pid1")
	b = msgp.AppendString(b, "rooms")
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendString(b, "sid1")
	b = msgp.AppendString(b, "room1")
	b = msgp.AppendString(b, "data")
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, "a")
	b = msgp.AppendInt64(b, 1)
	return base64.StdEncoding.EncodeToString(b)
}

func TestSessionBytesMatchNode(t *testing.T) {
	got, err := EncodeSession(Session{Sid: "sid1", Pid: "pid1", Rooms: []string{"sid1", "room1"},
		Data: map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if want := nodeSession(); got != want {
		t.Fatalf("EncodeSession = %s, want %s", got, want)
	}
	s, err := DecodeSession(got)
	if err != nil {
		t.Fatal(err)
	}
	want := Session{Sid: "sid1", Pid: "pid1", Rooms: []string{"sid1", "room1"}, Data: map[string]any{"a": int64(1)}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("DecodeSession = %#v, want %#v", s, want)
	}
}

func TestSessionNilRoomsAndData(t *testing.T) {
	raw, err := EncodeSession(Session{Sid: "s", Pid: "p"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeSession(raw)
	if err != nil || s.Rooms == nil || len(s.Rooms) != 0 || s.Data != nil {
		t.Fatalf("DecodeSession = %#v, %v", s, err)
	}
}

func TestDecodeSessionRejectsMalformed(t *testing.T) {
	enc := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	noPid := msgp.AppendMapHeader(nil, 1)
	noPid = msgp.AppendString(noPid, "sid")
	noPid = msgp.AppendString(noPid, "s")
	badRooms := msgp.AppendMapHeader(nil, 3)
	badRooms = msgp.AppendString(badRooms, "sid")
	badRooms = msgp.AppendString(badRooms, "s")
	badRooms = msgp.AppendString(badRooms, "pid")
	badRooms = msgp.AppendString(badRooms, "p")
	badRooms = msgp.AppendString(badRooms, "rooms")
	badRooms = msgp.AppendString(badRooms, "r")
	for name, stored := range map[string]string{
		"not base64":       "!!!",
		"truncated":        enc([]byte{0x84, 0xa3}),
		"not a map":        enc(msgp.AppendString(nil, "x")),
		"no pid":           enc(noPid),
		"rooms is no list": enc(badRooms),
		"empty":            "",
	} {
		if _, err := DecodeSession(stored); !errors.Is(err, ErrBadSession) {
			t.Errorf("%s: err = %v, want ErrBadSession", name, err)
		}
	}
}

// An owned session starts with its owner's prefix, whatever follows; decoders that do not know "owner" (Node's,
// an msgpack library) read the four keys unchanged; the prefix alone is no session.
func TestOwnedSession(t *testing.T) {
	owner := "0123456789abcdef"
	prefix, err := OwnerPrefix(owner)
	if err != nil || len(prefix) != OwnerPrefixLen {
		t.Fatalf("OwnerPrefix = %q, %v", prefix, err)
	}
	for _, s := range []Session{
		{Owner: owner, Sid: "sid1", Pid: "pid1", Rooms: []string{"sid1", "room1"}, Data: map[string]any{"a": int64(1)}},
		{Owner: owner, Sid: "s", Pid: "p", Rooms: []string{}, Data: []byte{0, 1, 2}},
		{Owner: owner, Sid: "a-much-longer-socket-id", Pid: "p", Rooms: []string{}},
	} {
		raw, err := EncodeSession(s)
		if err != nil {
			t.Fatal(err)
		}
		if raw[:OwnerPrefixLen] != prefix {
			t.Fatalf("%s does not start with %s", raw, prefix)
		}
		got, err := DecodeSession(raw)
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("DecodeSession = %#v, %v; want %#v", got, err, s)
		}
		bin, _ := base64.StdEncoding.DecodeString(raw)
		v, _, err := msgp.ReadIntfBytes(bin)
		m, _ := v.(map[string]any)
		if err != nil || m["sid"] != s.Sid || m["pid"] != s.Pid || m["owner"] != owner {
			t.Fatalf("generic decoder: %#v, %v", v, err)
		}
	}
	if _, err := DecodeSession(prefix); !errors.Is(err, ErrBadSession) {
		t.Fatalf("prefix alone: err = %v, want ErrBadSession", err)
	}
	bin, _ := base64.StdEncoding.DecodeString(prefix)
	if _, _, err := msgp.ReadIntfBytes(bin); err == nil {
		t.Fatal("a generic decoder read the prefix alone")
	}
	for _, bad := range []string{"", "short", "0123456789abcdefg"} {
		if _, err := OwnerPrefix(bad); err == nil {
			t.Errorf("OwnerPrefix(%q) accepted", bad)
		}
		if _, err := EncodeSession(Session{Owner: bad, Sid: "s", Pid: "p"}); bad != "" && err == nil {
			t.Errorf("EncodeSession with owner %q accepted", bad)
		}
	}
}
