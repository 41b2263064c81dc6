package httpreq

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// MappingResult is what one response mapping would write: Value (converted to the
// field's type) or, when there is nothing to write, Error. Its JSON is one entry of the
// check answer's "mapping": {"path", "field", "value"} or {"path", "field", "error"}.
type MappingResult struct {
	Path  string
	Field string
	Value any    // string, float64 or bool (dates are strings); nil when Error is set
	Error string // "" when Value is set
}

// MarshalJSON writes exactly one of value and error, as the API description's oneOf
// requires (a plain struct would either drop a false/0 value or always write both).
func (m MappingResult) MarshalJSON() ([]byte, error) {
	if m.Error != "" {
		return json.Marshal(struct {
			Path  string `json:"path"`
			Field string `json:"field"`
			Error string `json:"error"`
		}{m.Path, m.Field, m.Error})
	}
	return json.Marshal(struct {
		Path  string `json:"path"`
		Field string `json:"field"`
		Value any    `json:"value"`
	}{m.Path, m.Field, m.Value})
}

// Mapping errors that are not a conversion's message.
const (
	MapNotJSON      = "response is not JSON"
	MapNoMatch      = "path matched nothing"
	MapUnknownField = "unknown field"
	MapBadPath      = "path must be keys or indexes separated by dots, like data.items.0.id"
)

// Map picks each mapping's path out of a JSON response body and converts the value to
// its field's type (fieldTypes: field id -> type), one result per mapping, in order.
// Problems are per mapping, never a Go error: a body that is not JSON gives every
// mapping MapNotJSON; a path that selects nothing gives MapNoMatch; a value that does not
// convert gives the conversion's message (a null gives "no value").
//
// Paths are the SPEC's dot/index paths (data.items.0.id), which are gjson paths without
// gjson's wildcards, queries and modifiers; a path using those is refused (MapBadPath)
// so that it means the same here as in the tunnel editor.
func Map(body []byte, mapping []tunnel.Mapping, fieldTypes map[string]string) []MappingResult {
	out := make([]MappingResult, len(mapping))
	valid := gjson.ValidBytes(body)
	for i, m := range mapping {
		out[i] = MappingResult{Path: m.Path, Field: m.Field}
		if !valid {
			out[i].Error = MapNotJSON
			continue
		}
		typ, ok := fieldTypes[m.Field]
		if !ok {
			out[i].Error = MapUnknownField + " " + strconv.Quote(m.Field)
			continue
		}
		if !plainPath(m.Path) {
			out[i].Error = MapBadPath
			continue
		}
		res := gjson.GetBytes(body, m.Path)
		if !res.Exists() {
			out[i].Error = MapNoMatch
			continue
		}
		v, err := fields.ConvertJSON(typ, jsonValue(res))
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].Value = v
	}
	return out
}

// jsonValue gives a gjson result in the form fields.ConvertJSON takes. A number keeps
// its text (json.Number), so a long id written into a string field is not rounded.
func jsonValue(r gjson.Result) any {
	switch r.Type {
	case gjson.Null:
		return nil
	case gjson.False:
		return false
	case gjson.True:
		return true
	case gjson.Number:
		return json.Number(strings.TrimSpace(r.Raw))
	case gjson.String:
		return r.Str
	default:
		return r.Value() // map[string]any or []any
	}
}

// plainPath reports whether p is non-empty dot-separated keys or indexes without gjson's
// special characters (the rule tunnel validation applies) and not starting with the
// brackets of a gjson multipath.
func plainPath(p string) bool {
	if strings.HasPrefix(p, "[") || strings.HasPrefix(p, "{") {
		return false // gjson would read a multipath, building a new document
	}
	for _, seg := range strings.Split(p, ".") {
		if strings.TrimSpace(seg) == "" || strings.ContainsAny(seg, "*?#@|\\!") {
			return false
		}
	}
	return true
}
