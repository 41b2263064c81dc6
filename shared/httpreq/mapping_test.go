package httpreq

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestMap(t *testing.T) {
	body := []byte(`{
		"data": {
			"id": "LMS-42",
			"num_id": 12345678901234567890,
			"count": 7, "ratio": "0.25", "flag": true, "flag_text": "yes", "one": 1,
			"created": "2024-05-01T10:00:00+02:00", "day": "2024-05-01",
			"items": [{"id": "first"}, {"id": "second"}],
			"nothing": null, "obj": {"a": 1}, "text": "abc"
		}
	}`)
	types := map[string]string{
		"s": "string", "n": "number", "b": "boolean", "d": "date",
	}
	tests := []struct {
		path, field string
		value       any
		err         string
	}{
		{"data.id", "s", "LMS-42", ""},
		{"data.items.0.id", "s", "first", ""},
		{"data.items.1.id", "s", "second", ""},
		{"data.num_id", "s", "12345678901234567890", ""},
		{"data.count", "s", "7", ""},
		{"data.flag", "s", "true", ""},
		{"data.count", "n", 7.0, ""},
		{"data.ratio", "n", 0.25, ""},
		{"data.text", "n", nil, `"abc" is not a number`},
		{"data.flag", "b", true, ""},
		{"data.flag_text", "b", true, ""},
		{"data.one", "b", true, ""},
		{"data.created", "d", "2024-05-01T08:00:00.000Z", ""},
		{"data.day", "d", "2024-05-01", ""},
		{"data.count", "d", nil, "the number 7 is not a date (send YYYY-MM-DD or RFC 3339 text)"},
		{"data.nothing", "s", nil, "no value"},
		{"data.obj", "s", nil, "a JSON object cannot be stored in a string field"},
		{"data.items", "s", nil, "a JSON array cannot be stored in a string field"},
		{"data.missing", "s", nil, MapNoMatch},
		{"data.items.5.id", "s", nil, MapNoMatch},
		{"data.id", "nope", nil, `unknown field "nope"`},
		{"data.items.#.id", "s", nil, MapBadPath},
		{"data..id", "s", nil, MapBadPath},
		{"data.@reverse", "s", nil, MapBadPath},
		{"{data.id,data.count}", "s", nil, MapBadPath},
		{"[data.id]", "s", nil, MapBadPath},
	}
	mapping := make([]tunnel.Mapping, len(tests))
	for i, tt := range tests {
		mapping[i] = tunnel.Mapping{Path: tt.path, Field: tt.field}
	}
	got := Map(body, mapping, types)
	if len(got) != len(tests) {
		t.Fatalf("%d results for %d mappings", len(got), len(tests))
	}
	for i, tt := range tests {
		want := MappingResult{Path: tt.path, Field: tt.field, Value: tt.value, Error: tt.err}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("%s -> %s: got %#v, want %#v", tt.path, tt.field, got[i], want)
		}
	}
}

func TestMapNotJSON(t *testing.T) {
	mapping := []tunnel.Mapping{{Path: "data.id", Field: "s"}, {Path: "x", Field: "n"}}
	types := map[string]string{"s": "string", "n": "number"}
	for _, body := range []string{"", "<html>oops</html>", `{"data": {"id": 1}`, `{"a":1} trailing`} {
		got := Map([]byte(body), mapping, types)
		want := []MappingResult{
			{Path: "data.id", Field: "s", Error: MapNotJSON},
			{Path: "x", Field: "n", Error: MapNotJSON},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body %q: %#v", body, got)
		}
	}
	if got := Map([]byte(`{}`), nil, types); len(got) != 0 {
		t.Errorf("no mapping: %v", got)
	}
}

func TestMappingResultJSON(t *testing.T) {
	tests := []struct {
		r    MappingResult
		want string
	}{
		{MappingResult{Path: "a", Field: "f", Value: "x"}, `{"path":"a","field":"f","value":"x"}`},
		{MappingResult{Path: "a", Field: "f", Value: false}, `{"path":"a","field":"f","value":false}`},
		{MappingResult{Path: "a", Field: "f", Value: 0.0}, `{"path":"a","field":"f","value":0}`},
		{MappingResult{Path: "a", Field: "f", Error: MapNoMatch}, `{"path":"a","field":"f","error":"path matched nothing"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.r)
		if err != nil || string(b) != tt.want {
			t.Errorf("%+v: %s %v, want %s", tt.r, b, err, tt.want)
		}
	}
}
