package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// FieldError is one problem with a request body, at a JSON pointer.
type FieldError = tunnel.FieldError

// decodeStrict reads body into v (a pointer to a struct). Malformed JSON is
// one error (invalid_json); otherwise every unknown member and every value of
// the wrong type is reported at once, each with its JSON pointer.
func decodeStrict(body []byte, v any) (invalid error, fields []FieldError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("the request body is empty; a JSON object is expected"), nil
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return syntaxDetail(body, err), nil
	}
	if dec.More() {
		return fmt.Errorf("the request body holds more than one JSON value"), nil
	}
	fields = check(raw, reflect.TypeOf(v).Elem(), "")
	if len(fields) > 0 {
		return nil, fields
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, []FieldError{{Pointer: "", Detail: err.Error()}}
	}
	return nil, nil
}

func syntaxDetail(body []byte, err error) error {
	if se, ok := err.(*json.SyntaxError); ok {
		line, col := position(body, se.Offset)
		return fmt.Errorf("malformed JSON at line %d, column %d (byte %d): %s", line, col, se.Offset, se.Error())
	}
	if err.Error() == "unexpected EOF" {
		return fmt.Errorf("malformed JSON: the body ends before the value is complete")
	}
	return fmt.Errorf("malformed JSON: %s", err.Error())
}

func position(body []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(body)); i++ {
		if body[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// check walks a decoded JSON value against the Go type it will fill.
func check(v any, t reflect.Type, ptr string) []FieldError {
	if t == rawMessageType || t.Kind() == reflect.Interface {
		return nil
	}
	if v == nil {
		return nil // null leaves the zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be an object, not " + jsonKind(v)}}
		}
		fields := jsonFields(t)
		var errs []FieldError
		for _, k := range sortedKeys(obj) {
			f, ok := fields[k]
			p := ptr + "/" + escapePointer(k)
			if !ok {
				errs = append(errs, FieldError{Pointer: p, Detail: fmt.Sprintf("unknown field %q", k)})
				continue
			}
			errs = append(errs, check(obj[k], f.Type, p)...)
		}
		return errs
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be an object, not " + jsonKind(v)}}
		}
		var errs []FieldError
		for _, k := range sortedKeys(obj) {
			errs = append(errs, check(obj[k], t.Elem(), ptr+"/"+escapePointer(k))...)
		}
		return errs
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be an array, not " + jsonKind(v)}}
		}
		var errs []FieldError
		for i, e := range arr {
			errs = append(errs, check(e, t.Elem(), ptr+"/"+strconv.Itoa(i))...)
		}
		return errs
	case reflect.String:
		if _, ok := v.(string); !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be a string, not " + jsonKind(v)}}
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be true or false, not " + jsonKind(v)}}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		num, ok := v.(json.Number)
		if !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be a whole number, not " + jsonKind(v)}}
		}
		if _, err := strconv.ParseInt(num.String(), 10, 64); err != nil {
			return []FieldError{{Pointer: ptr, Detail: "must be a whole number, not " + num.String()}}
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			return []FieldError{{Pointer: ptr, Detail: "must be a number, not " + jsonKind(v)}}
		}
	}
	return nil
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case nil:
		return "null"
	}
	return "a value"
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
