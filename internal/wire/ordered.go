package wire

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/tinylib/msgp/msgp"
)

// Field is one key of an Object.
type Field struct {
	Key   string
	Value any
}

// Object is a JSON object / MessagePack map whose keys are written in the order given, for writers whose exact
// byte layout matters (the emitter writes what @socket.io/redis-streams-emitter writes). Values are encoded as
// EncodeJSON and AppendValue encode them; an Object may hold Objects.
type Object []Field

// MarshalJSON implements json.Marshaler: the keys in order, values as EncodeJSON writes them.
func (o Object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(appendJSONString(nil, f.Key))
		buf.WriteByte(':')
		raw, err := EncodeJSON(f.Value)
		if err != nil {
			return nil, err
		}
		buf.Write(raw)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (o Object) appendMsgpack(b []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, ErrTooDeep
	}
	b = msgp.AppendMapHeader(b, uint32(len(o)))
	var err error
	for _, f := range o {
		b = msgp.AppendString(b, f.Key)
		if inner, ok := f.Value.(Object); ok {
			b, err = inner.appendMsgpack(b, depth+1)
		} else {
			b, err = AppendValue(b, f.Value)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func (o Object) hasBinary() bool {
	for _, f := range o {
		if inner, ok := f.Value.(Object); ok {
			if inner.hasBinary() {
				return true
			}
		} else if HasBinary(f.Value) {
			return true
		}
	}
	return false
}

// OrderedStreamFields returns the XADD field/value list uid, nsp, type, data for a data object whose key order is
// kept, with Node's encoding rule: base64 of MessagePack when the type may carry binary and data holds some
// (unless onlyPlaintext), JSON otherwise.
func OrderedStreamFields(t MessageType, uid, nsp string, data Object, onlyPlaintext bool) ([]string, error) {
	fields := []string{"uid", uid, "nsp", nsp, "type", strconv.Itoa(int(t))}
	if !onlyPlaintext && t.mayCarryBinary() && data.hasBinary() {
		raw, err := data.appendMsgpack(nil, 0)
		if err != nil {
			return nil, fmt.Errorf("wire: encode %v: %w", t, err)
		}
		return append(fields, "data", base64.StdEncoding.EncodeToString(raw)), nil
	}
	raw, err := EncodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %v: %w", t, err)
	}
	return append(fields, "data", string(raw)), nil
}
