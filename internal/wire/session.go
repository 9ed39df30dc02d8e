package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// Session is a connection state recovery session as the Node adapter stores it under "<SessionKeyPrefix><pid>":
// base64 of the MessagePack map {sid, pid, rooms, data}, keys in that order. Go and Node servers restore each
// other's sessions.
//
// A Go server that keeps the session of a connected socket in Redis (see OwnerPrefix) adds one key, "owner", in
// front of the four: Node's decoder, and this one, ignore keys they do not know.
type Session struct {
	Owner string // "" or OwnerLen characters: the socket incarnation that wrote it (see OwnerPrefix)
	Sid   string
	Pid   string
	Rooms []string // never nil once decoded
	Data  any      // the socket's data, as MessagePack decodes it (DecodeMsgpack)
}

// ErrBadSession: a stored session that is not what Session describes.
var ErrBadSession = errors.New("wire: malformed session")

// OwnerLen is the length of Session.Owner. With it, the owner's part of a stored session (the map header, the key
// "owner" and the value) is 24 bytes, a multiple of 3: its base64 is the same 32 characters whatever follows.
const OwnerLen = 16

// OwnerPrefixLen is the length of OwnerPrefix's result.
const OwnerPrefixLen = 32

// ownerHead is the start of every owned session: a map of five keys, the key "owner", a string of OwnerLen bytes.
var ownerHead = []byte{0x85, 0xa5, 'o', 'w', 'n', 'e', 'r', 0xa0 | OwnerLen}

// OwnerPrefix returns the first OwnerPrefixLen characters of every session EncodeSession stores for owner. A
// script that compares them knows who wrote a stored value without decoding it.
//
// On its own, the prefix is a marker that no decoder takes for a session: its map announces five keys and holds
// one (Node's restore then fails, and the client gets a fresh session). The adapter stores it to fence a key (see
// session.go).
func OwnerPrefix(owner string) (string, error) {
	if len(owner) != OwnerLen {
		return "", fmt.Errorf("wire: session owner %q: want %d bytes", owner, OwnerLen)
	}
	b := append(append([]byte(nil), ownerHead...), owner...)
	return base64.StdEncoding.EncodeToString(b), nil
}

// EncodeSession returns the stored form of s. Without an Owner it is byte for byte what the Node adapter writes
// for the same values; with one, the same map with "owner" first (OwnerPrefix).
func EncodeSession(s Session) (string, error) {
	rooms := s.Rooms
	if rooms == nil {
		rooms = []string{}
	}
	o := Object{{"sid", s.Sid}, {"pid", s.Pid}, {"rooms", rooms}, {"data", s.Data}}
	if s.Owner != "" {
		if len(s.Owner) != OwnerLen {
			return "", fmt.Errorf("wire: encode session: owner %q: want %d bytes", s.Owner, OwnerLen)
		}
		o = append(Object{{"owner", s.Owner}}, o...)
	}
	raw, err := o.appendMsgpack(nil, 0)
	if err != nil {
		return "", fmt.Errorf("wire: encode session: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// DecodeSession parses a stored session. Keys other than the four (and "owner") are ignored, as Node ignores
// them; a session without sid or pid, or whose rooms are not a list, is an error wrapping ErrBadSession (so is an
// OwnerPrefix on its own). Room names that are not strings are left out.
func DecodeSession(stored string) (Session, error) {
	bin, err := base64.StdEncoding.DecodeString(stored)
	if err != nil {
		return Session{}, fmt.Errorf("%w: not base64: %w", ErrBadSession, err)
	}
	v, err := DecodeMsgpack(bin)
	if err != nil {
		return Session{}, fmt.Errorf("%w: not MessagePack: %w", ErrBadSession, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Session{}, fmt.Errorf("%w: a %T, not a map", ErrBadSession, v)
	}
	s := Session{Rooms: []string{}, Data: m["data"]}
	s.Owner, _ = m["owner"].(string)
	s.Sid, _ = m["sid"].(string)
	s.Pid, _ = m["pid"].(string)
	if s.Sid == "" || s.Pid == "" {
		return Session{}, fmt.Errorf("%w: no sid or pid", ErrBadSession)
	}
	switch list := m["rooms"].(type) {
	case nil:
	case []any:
		for _, r := range list {
			if room, ok := r.(string); ok {
				s.Rooms = append(s.Rooms, room)
			}
		}
	default:
		return Session{}, fmt.Errorf("%w: rooms is a %T", ErrBadSession, list)
	}
	return s, nil
}
