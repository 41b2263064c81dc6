// Package fields converts custom field values to their field's type (SPEC sections 4.8
// and 8: a field is string, number, boolean or date) and formats them back as text for
// placeholders.
//
// Stored values are plain Go values that survive JSON and DynamoDB unchanged: string,
// float64, bool, and string for dates (normalised, so they sort and compare as text).
package fields

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Field types (the catalog's `type`).
const (
	String  = "string"
	Number  = "number"
	Boolean = "boolean"
	Date    = "date"
)

// Types lists every field type.
var Types = []string{String, Number, Boolean, Date}

// ValidType reports whether t is one of Types.
func ValidType(t string) bool {
	switch t {
	case String, Number, Boolean, Date:
		return true
	}
	return false
}

// Date layouts. A date-time is stored in UTC with milliseconds, always the same width,
// so stored values sort as text.
const (
	DateLayout     = "2006-01-02"
	DateTimeLayout = "2006-01-02T15:04:05.000Z"
)

// ErrNoValue is returned for a JSON null: there is nothing to write.
var ErrNoValue = errors.New("no value")

// ErrUnknownType is wrapped when the field type is not one of Types.
var ErrUnknownType = errors.New("unknown field type")

// maxQuoted bounds how much of a bad value an error repeats: errors end up in journey
// reasons and API answers, and a value can be long.
const maxQuoted = 64

// Convert converts text typed by a user or rendered from placeholders to a value of
// fieldType:
//   - string: the text as it is;
//   - number: float64 from a decimal number ("42", "-3.5", "1e3"), spaces around ignored;
//     NaN, infinities and out-of-range numbers are refused (JSON cannot carry them);
//   - boolean: true/false, yes/no, 1/0, any case, spaces around ignored;
//   - date: "YYYY-MM-DD" stays a date; an RFC 3339 date-time becomes UTC with
//     milliseconds ("2024-05-01T08:00:00.000Z"). Nothing else is guessed at.
//
// The error says what was wrong with which value: `"abc" is not a number`.
func Convert(fieldType, text string) (any, error) {
	switch fieldType {
	case String:
		return text, nil
	case Number:
		return parseNumber(text)
	case Boolean:
		return parseBool(text)
	case Date:
		return parseDate(text)
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownType, fieldType)
	}
}

// parseNumber accepts only plain decimal notation. strconv.ParseFloat alone would also
// take "0x1p4", "Inf", "NaN" and "1_000", none of which a user means as a number here.
func parseNumber(text string) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, errors.New("an empty value is not a number")
	}
	if !decimal(s) {
		if strings.Count(s, ",") == 1 && decimal(strings.Replace(s, ",", ".", 1)) {
			return nil, fmt.Errorf("%s is not a number (use a dot as the decimal separator)", quote(s))
		}
		return nil, fmt.Errorf("%s is not a number", quote(s))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%s is out of the range of numbers", quote(s))
	}
	if f == 0 {
		f = 0 // "-0" is stored and shown as 0
	}
	return f, nil
}

// decimal matches [+-]?(digits[.digits?] | .digits)([eE][+-]?digits)?.
func decimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	intDigits := digits(s[i:])
	i += intDigits
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		fracDigits = digits(s[i:])
		i += fracDigits
	}
	if intDigits == 0 && fracDigits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		n := digits(s[i:])
		if n == 0 {
			return false
		}
		i += n
	}
	return i == len(s)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func parseBool(text string) (any, error) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	case "":
		return nil, errors.New("an empty value is not a boolean")
	}
	return nil, fmt.Errorf("%s is not a boolean (use true/false, yes/no or 1/0)", quote(strings.TrimSpace(text)))
}

func parseDate(text string) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, errors.New("an empty value is not a date")
	}
	if len(s) == len(DateLayout) {
		if t, err := time.Parse(DateLayout, s); err == nil {
			return t.Format(DateLayout), nil
		}
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(DateTimeLayout), nil
	}
	return nil, fmt.Errorf("%s is not a date (use YYYY-MM-DD or RFC 3339, e.g. 2024-05-01T10:00:00Z)", quote(s))
}

// ConvertJSON converts a value picked from a JSON document (a response mapping) to a
// value of fieldType. v is what encoding/json or gjson produce: nil, bool, float64,
// json.Number, string, or an object or array (map[string]any, []any).
//
//   - null is ErrNoValue for every type: there is nothing to write;
//   - into a string field a number becomes its text (json.Number keeps the text exactly
//     as the document wrote it, so a large id is not rounded), a boolean "true"/"false";
//   - into a number field a number stays a number, a string is parsed as by Convert;
//   - into a boolean field a boolean stays, a string is parsed as by Convert, and the
//     numbers 1 and 0 are true and false;
//   - into a date field only a string is accepted (a bare number could be seconds or
//     milliseconds; it is refused rather than guessed);
//   - objects and arrays are refused for every type.
func ConvertJSON(fieldType string, v any) (any, error) {
	if !ValidType(fieldType) {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, fieldType)
	}
	switch x := v.(type) {
	case nil:
		return nil, ErrNoValue
	case string:
		return Convert(fieldType, x)
	case bool:
		switch fieldType {
		case String:
			return strconv.FormatBool(x), nil
		case Boolean:
			return x, nil
		}
		return nil, fmt.Errorf("the boolean %t is not a %s", x, fieldType)
	case json.Number:
		return jsonNumber(fieldType, string(x))
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%v is not a number", x)
		}
		return jsonNumber(fieldType, strconv.FormatFloat(x, 'f', -1, 64))
	case map[string]any:
		return nil, fmt.Errorf("a JSON object cannot be stored in a %s field", fieldType)
	case []any:
		return nil, fmt.Errorf("a JSON array cannot be stored in a %s field", fieldType)
	default:
		return nil, fmt.Errorf("a value of Go type %T cannot be stored in a field", v)
	}
}

// jsonNumber converts the text of a JSON number.
func jsonNumber(fieldType, text string) (any, error) {
	switch fieldType {
	case String:
		return text, nil
	case Number:
		return parseNumber(text)
	case Boolean:
		f, err := strconv.ParseFloat(text, 64)
		if err == nil && (f == 0 || f == 1) {
			return f == 1, nil
		}
		return nil, fmt.Errorf("the number %s is not a boolean (only 1 and 0 are)", clip(text))
	default: // Date
		return nil, fmt.Errorf("the number %s is not a date (send YYYY-MM-DD or RFC 3339 text)", clip(text))
	}
}

// Format writes a stored field value as placeholder text, the inverse of Convert:
// nil is "", numbers use the shortest exact decimal form without an exponent (42, -3.5,
// 1000), booleans "true"/"false", strings (dates included) as they are.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case json.Number:
		return string(x)
	case time.Time:
		return x.UTC().Format(DateTimeLayout)
	default:
		return fmt.Sprint(x)
	}
}

// quote is %q of s, cut to maxQuoted runes.
func quote(s string) string { return strconv.Quote(clip(s)) }

// clip cuts s to maxQuoted runes, marking the cut.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return s
	}
	n := 0
	for i := range s {
		if n == maxQuoted {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
