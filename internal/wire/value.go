package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// MaxDepth bounds the nesting of decoded values, so a hostile payload cannot exhaust the stack.
const MaxDepth = 64

// ErrTooDeep is returned when a payload nests deeper than MaxDepth.
var ErrTooDeep = errors.New("wire: value nested too deeply")

// HasBinary reports whether v contains a byte slice at any depth, mirroring socket.io-parser's hasBinary. Only
// the container types that the Socket.IO server itself walks ([]any, map[string]any) and plain Go slices, arrays,
// maps, pointers and structs are inspected.
func HasBinary(v any) bool {
	return hasBinary(v, 0)
}

func hasBinary(v any, depth int) bool {
	if depth > MaxDepth {
		return false
	}
	switch x := v.(type) {
	case nil, string, bool, int, int64, float64, time.Time, json.Number:
		return false
	case []byte:
		return true
	case *types.StringBuffer, *strings.Reader:
		return false
	case []any:
		for _, e := range x {
			if hasBinary(e, depth+1) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range x {
			if hasBinary(e, depth+1) {
				return true
			}
		}
		return false
	case io.Reader:
		return true
	}
	return reflectHasBinary(reflect.ValueOf(v), depth)
}

func reflectHasBinary(rv reflect.Value, depth int) bool {
	if depth > MaxDepth || !rv.IsValid() {
		return false
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return false
		}
		return reflectHasBinary(rv.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return rv.Kind() == reflect.Slice
		}
		for i := range rv.Len() {
			if reflectHasBinary(rv.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		it := rv.MapRange()
		for it.Next() {
			if reflectHasBinary(it.Value(), depth+1) {
				return true
			}
		}
	case reflect.Struct:
		if rv.Type() == reflect.TypeFor[time.Time]() {
			return false
		}
		for i := range rv.NumField() {
			if rv.Type().Field(i).IsExported() && reflectHasBinary(rv.Field(i), depth+1) {
				return true
			}
		}
	}
	return false
}

// AppendValue appends v to b as MessagePack, the way @msgpack/msgpack encodes the equivalent JS value: byte slices
// become bin, time.Time becomes the timestamp extension (-1), integers take the smallest encoding. Values of other
// types (structs, typed maps) are converted through their JSON form first, as JSON is how the Socket.IO server would
// send them to clients.
func AppendValue(b []byte, v any) ([]byte, error) {
	return appendValue(b, v, 0)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, ErrTooDeep
	}
	var err error
	switch x := v.(type) {
	case nil:
		return msgp.AppendNil(b), nil
	case bool:
		return msgp.AppendBool(b, x), nil
	case string:
		return msgp.AppendString(b, x), nil
	case []byte:
		return msgp.AppendBytes(b, x), nil
	case int:
		return msgp.AppendInt64(b, int64(x)), nil
	case int8:
		return msgp.AppendInt64(b, int64(x)), nil
	case int16:
		return msgp.AppendInt64(b, int64(x)), nil
	case int32:
		return msgp.AppendInt64(b, int64(x)), nil
	case int64:
		return msgp.AppendInt64(b, x), nil
	case uint:
		return msgp.AppendUint64(b, uint64(x)), nil
	case uint8:
		return msgp.AppendUint64(b, uint64(x)), nil
	case uint16:
		return msgp.AppendUint64(b, uint64(x)), nil
	case uint32:
		return msgp.AppendUint64(b, uint64(x)), nil
	case uint64:
		return msgp.AppendUint64(b, x), nil
	case float32:
		return appendFloat(b, float64(x)), nil
	case float64:
		return appendFloat(b, x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return msgp.AppendInt64(b, i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return b, fmt.Errorf("wire: bad number %q: %w", string(x), err)
		}
		return appendFloat(b, f), nil
	case time.Time:
		return msgp.AppendTimeExt(b, x), nil
	case []any:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for _, e := range x {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case []string:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for _, e := range x {
			b = msgp.AppendString(b, e)
		}
		return b, nil
	case map[string]any:
		b = msgp.AppendMapHeader(b, uint32(len(x)))
		for k, e := range x {
			b = msgp.AppendString(b, k)
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case map[string]string:
		return msgp.AppendMapStrStr(b, x), nil
	case *types.StringBuffer:
		return msgp.AppendString(b, x.String()), nil
	case types.BufferInterface:
		// The server's decoded attachments: read without consuming.
		return msgp.AppendBytes(b, x.Bytes()), nil
	case io.Reader:
		data, err := io.ReadAll(x)
		if err != nil {
			return b, fmt.Errorf("wire: read binary argument: %w", err)
		}
		return msgp.AppendBytes(b, data), nil
	}
	return appendReflect(b, reflect.ValueOf(v), depth)
}

// appendFloat writes integral floats as integers, as JS numbers have no separate integer type.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 && !(f == 0 && math.Signbit(f)) {
		return msgp.AppendInt64(b, int64(f))
	}
	return msgp.AppendFloat64(b, f)
}

func appendReflect(b []byte, rv reflect.Value, depth int) ([]byte, error) {
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return msgp.AppendNil(b), nil
		}
		return appendValue(b, rv.Elem().Interface(), depth+1)
	case reflect.Slice:
		if rv.IsNil() {
			return msgp.AppendNil(b), nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return msgp.AppendBytes(b, rv.Bytes()), nil
		}
		fallthrough
	case reflect.Array:
		var err error
		b = msgp.AppendArrayHeader(b, uint32(rv.Len()))
		for i := range rv.Len() {
			if b, err = appendValue(b, rv.Index(i).Interface(), depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			var err error
			b = msgp.AppendMapHeader(b, uint32(rv.Len()))
			it := rv.MapRange()
			for it.Next() {
				b = msgp.AppendString(b, it.Key().String())
				if b, err = appendValue(b, it.Value().Interface(), depth+1); err != nil {
					return b, err
				}
			}
			return b, nil
		}
	case reflect.String:
		return msgp.AppendString(b, rv.String()), nil
	case reflect.Bool:
		return msgp.AppendBool(b, rv.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return msgp.AppendInt64(b, rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return msgp.AppendUint64(b, rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(b, rv.Float()), nil
	}
	// Structs and anything else: their JSON form is what a client would see.
	plain, err := jsonRoundTrip(rv.Interface())
	if err != nil {
		return b, err
	}
	return appendValue(b, plain, depth+1)
}

func jsonRoundTrip(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return DecodeJSON(raw)
}

// ReadValue decodes one MessagePack value from b and returns it with the remaining bytes. Integers become int64
// (uint64 above MaxInt64), floats float64, bin []byte (a copy), maps map[string]any (numeric keys are turned into
// their decimal string, as JS does), the timestamp extension time.Time (UTC). Unknown extensions decode to nil.
func ReadValue(b []byte) (any, []byte, error) {
	return readValue(b, 0)
}

func readValue(b []byte, depth int) (any, []byte, error) {
	if depth > MaxDepth {
		return nil, b, ErrTooDeep
	}
	if len(b) == 0 {
		return nil, b, msgp.ErrShortBytes
	}
	switch t := msgp.NextType(b); t {
	case msgp.NilType:
		b, err := msgp.ReadNilBytes(b)
		return nil, b, err
	case msgp.BoolType:
		return wrap(msgp.ReadBoolBytes(b))
	case msgp.StrType:
		return wrap(msgp.ReadStringBytes(b))
	case msgp.BinType:
		v, rest, err := msgp.ReadBytesZC(b)
		if err != nil {
			return nil, b, err
		}
		return bytes.Clone(v), rest, nil
	case msgp.IntType:
		return wrap(msgp.ReadInt64Bytes(b))
	case msgp.UintType:
		u, rest, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return nil, b, err
		}
		if u <= math.MaxInt64 {
			return int64(u), rest, nil
		}
		return u, rest, nil
	case msgp.Float64Type:
		return wrap(msgp.ReadFloat64Bytes(b))
	case msgp.Float32Type:
		f, rest, err := msgp.ReadFloat32Bytes(b)
		return float64(f), rest, err
	case msgp.ArrayType:
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		if int(n) > len(rest) { // every element takes at least one byte
			return nil, b, msgp.ErrShortBytes
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], rest, err = readValue(rest, depth+1); err != nil {
				return nil, b, err
			}
		}
		return arr, rest, nil
	case msgp.MapType:
		n, rest, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		if int(n) > len(rest)/2 {
			return nil, b, msgp.ErrShortBytes
		}
		m := make(map[string]any, n)
		for range n {
			var k, v any
			if k, rest, err = readValue(rest, depth+1); err != nil {
				return nil, b, err
			}
			if v, rest, err = readValue(rest, depth+1); err != nil {
				return nil, b, err
			}
			ks, err := mapKey(k)
			if err != nil {
				return nil, b, err
			}
			m[ks] = v
		}
		return m, rest, nil
	case msgp.ExtensionType, msgp.TimeType:
		if tm, rest, err := msgp.ReadTimeBytes(b); err == nil {
			return tm.UTC(), rest, nil
		}
		rest, err := msgp.Skip(b)
		return nil, rest, err
	default:
		return nil, b, fmt.Errorf("wire: unsupported msgpack type %v", t)
	}
}

func wrap[T any](v T, rest []byte, err error) (any, []byte, error) {
	if err != nil {
		return nil, rest, err
	}
	return v, rest, nil
}

func mapKey(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case int64:
		return fmt.Sprint(x), nil
	case uint64:
		return fmt.Sprint(x), nil
	case float64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("wire: map key of type %T", k)
}

// DecodeMsgpack decodes a whole MessagePack document; trailing bytes are an error.
func DecodeMsgpack(b []byte) (any, error) {
	v, rest, err := ReadValue(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("wire: %d trailing bytes after msgpack value", len(rest))
	}
	return v, nil
}

// DecodeJSON decodes JSON into plain Go values with numbers normalised the same way as ReadValue: integral
// numbers that fit become int64, others float64.
func DecodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("wire: trailing data after JSON value")
	}
	return normalizeNumbers(v, 0)
}

func normalizeNumbers(v any, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	var err error
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) { // ±Inf for huge literals, as in JS
			return nil, err
		}
		return f, nil
	case []any:
		for i := range x {
			if x[i], err = normalizeNumbers(x[i], depth+1); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range x {
			if x[k], err = normalizeNumbers(e, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// EncodeJSON encodes v the way JSON.stringify would be read back by Node: no HTML escaping, no trailing newline.
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil
}

// ForClients makes values decoded from msgpack look to Socket.IO clients the way Node would send them: a
// time.Time becomes its JS Date.toJSON string ("2006-01-02T15:04:05.000Z"), NaN and ±Inf become nil (JSON has no
// such numbers, and the server's encoder would drop the whole packet). It rewrites []any and map[string]any in
// place and returns v.
func ForClients(v any) any {
	return forClients(v, 0)
}

func forClients(v any, depth int) any {
	if depth > MaxDepth {
		return v
	}
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z")
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case []any:
		for i, e := range x {
			x[i] = forClients(e, depth+1)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = forClients(e, depth+1)
		}
	}
	return v
}
