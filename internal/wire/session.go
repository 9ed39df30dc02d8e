package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// Session is a connection state recovery session as the Node adapter stores it under "<SessionKeyPrefix><pid>":
// base64 of the MessagePack map {sid, pid, rooms, data}, keys in that order. Go and Node servers restore each
// other's sessions.
type Session struct {
	Sid   string
	Pid   string
	Rooms []string // never nil once decoded
	Data  any      // the socket's data, as MessagePack decodes it (DecodeMsgpack)
}

// ErrBadSession: a stored session that is not what Session describes.
var ErrBadSession = errors.New("wire: malformed session")

// EncodeSession returns the stored form of s, byte for byte what the Node adapter writes for the same values.
func EncodeSession(s Session) (string, error) {
	rooms := s.Rooms
	if rooms == nil {
		rooms = []string{}
	}
	raw, err := Object{{"sid", s.Sid}, {"pid", s.Pid}, {"rooms", rooms}, {"data", s.Data}}.appendMsgpack(nil, 0)
	if err != nil {
		return "", fmt.Errorf("wire: encode session: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// DecodeSession parses a stored session. Keys other than the four are ignored, as Node ignores them; a session
// without sid or pid, or whose rooms are not a list, is an error wrapping ErrBadSession. Room names that are not
// strings are left out.
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
