package interop

import (
	"encoding/base64"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Values are compared in one canonical form, whatever language produced them: numbers float64, binary []byte,
// arrays []any, objects map[string]any, dates time.Time (UTC).

// canon converts a Go value (as a Go server or client library hands it over) to the canonical form.
func canon(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x
	case []byte:
		return x
	case *types.BytesBuffer:
		return x.Bytes()
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case time.Time:
		return x.UTC()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canon(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canon(e)
		}
		return out
	case types.IncomingHttpHeaders:
		return canon(map[string]any(x))
	case types.ParsedUrlQuery:
		return canon(map[string]any(x))
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
		out := map[string]any{}
		for it := rv.MapRange(); it.Next(); {
			out[it.Key().String()] = canon(it.Value().Interface())
		}
		return out
	}
	return fmt.Sprintf("<uncanonical %T %v>", v, v)
}

// tag turns a canonical value into the JSON form of node/codec.js.
func tag(v any) any {
	switch x := v.(type) {
	case []byte:
		return map[string]any{"$bin": base64.StdEncoding.EncodeToString(x)}
	case time.Time:
		return map[string]any{"$date": x.UTC().Format("2006-01-02T15:04:05.000Z")}
	case float64:
		switch {
		case math.IsNaN(x):
			return map[string]any{"$number": "NaN"}
		case math.IsInf(x, 1):
			return map[string]any{"$number": "Infinity"}
		case math.IsInf(x, -1):
			return map[string]any{"$number": "-Infinity"}
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = tag(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = tag(e)
		}
		return out
	}
	return canon(v)
}

// untag decodes the JSON form of node/codec.js (as encoding/json decoded it) to the canonical form.
func untag(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = untag(e)
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			if s, ok := x["$bin"].(string); ok {
				b, err := base64.StdEncoding.DecodeString(s)
				if err == nil {
					return b
				}
			}
			if s, ok := x["$date"].(string); ok {
				if d, err := time.Parse(time.RFC3339Nano, s); err == nil {
					return d.UTC()
				}
			}
			if x["$undefined"] == true {
				return undefined{}
			}
			if x["$fn"] == true {
				return function{}
			}
			if s, ok := x["$number"].(string); ok {
				f, _ := strconv.ParseFloat(s, 64)
				return f
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = untag(e)
		}
		return out
	}
	return v
}

// undefined and function stand for JS values that have no canonical equivalent.
type (
	undefined struct{}
	function  struct{}
)

// show formats a canonical value readably, binary included.
func show(v any) string {
	switch x := v.(type) {
	case []byte:
		return fmt.Sprintf("bin%v", []int(toInts(x)))
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + show(x[k])
		}
		return "{" + strings.Join(parts, " ") + "}"
	case string:
		return fmt.Sprintf("%q", x)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v(%T)", v, v)
}

func toInts(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func equal(a, b any) bool { return reflect.DeepEqual(canon(a), canon(b)) }

// sameMultiset reports whether two lists hold the same values, in any order.
func sameMultiset(got, want []any) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(want))
next:
	for _, g := range got {
		for i, w := range want {
			if !used[i] && equal(g, w) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}
