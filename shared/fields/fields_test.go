package fields

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConvert(t *testing.T) {
	tests := []struct {
		typ, text string
		want      any
		wantErr   string // substring; "" means success
	}{
		// string: kept exactly, spaces included.
		{String, "", "", ""},
		{String, "  Ann  ", "  Ann  ", ""},
		{String, "42", "42", ""},

		// number
		{Number, "42", 42.0, ""},
		{Number, "-3.5", -3.5, ""},
		{Number, "1e3", 1000.0, ""},
		{Number, "1E-2", 0.01, ""},
		{Number, " 7 ", 7.0, ""},
		{Number, "\t+0.25\n", 0.25, ""},
		{Number, ".5", 0.5, ""},
		{Number, "5.", 5.0, ""},
		{Number, "-0", 0.0, ""},
		{Number, "1e-400", 0.0, ""}, // underflow rounds to zero, it is not an error
		{Number, "", nil, "an empty value is not a number"},
		{Number, "   ", nil, "an empty value is not a number"},
		{Number, "abc", nil, `"abc" is not a number`},
		{Number, "NaN", nil, `"NaN" is not a number`},
		{Number, "Inf", nil, `"Inf" is not a number`},
		{Number, "-Infinity", nil, `"-Infinity" is not a number`},
		{Number, "0x10", nil, `"0x10" is not a number`},
		{Number, "1_000", nil, `"1_000" is not a number`},
		{Number, "1 000", nil, `"1 000" is not a number`},
		{Number, "3,5", nil, `"3,5" is not a number (use a dot as the decimal separator)`},
		{Number, "1e", nil, `"1e" is not a number`},
		{Number, ".", nil, `"." is not a number`},
		{Number, "-", nil, `"-" is not a number`},
		{Number, "1e400", nil, `"1e400" is out of the range of numbers`},

		// boolean
		{Boolean, "true", true, ""},
		{Boolean, "TRUE", true, ""},
		{Boolean, " Yes ", true, ""},
		{Boolean, "1", true, ""},
		{Boolean, "false", false, ""},
		{Boolean, "No", false, ""},
		{Boolean, "0", false, ""},
		{Boolean, "", nil, "an empty value is not a boolean"},
		{Boolean, "maybe", nil, `"maybe" is not a boolean (use true/false, yes/no or 1/0)`},
		{Boolean, "2", nil, `"2" is not a boolean`},

		// date
		{Date, "2024-05-01", "2024-05-01", ""},
		{Date, " 2024-02-29 ", "2024-02-29", ""},
		{Date, "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z", ""},
		{Date, "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00.000Z", ""},
		{Date, "2024-05-01T10:00:00.123456789-01:30", "2024-05-01T11:30:00.123Z", ""},
		{Date, "2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000Z", ""},
		{Date, "", nil, "an empty value is not a date"},
		{Date, "2023-02-29", nil, `"2023-02-29" is not a date`},
		{Date, "2024-13-01", nil, `"2024-13-01" is not a date`},
		{Date, "01.05.2024", nil, `"01.05.2024" is not a date (use YYYY-MM-DD or RFC 3339`},
		{Date, "2024-05-01 10:00:00", nil, `is not a date`},
		{Date, "2024-05-01T10:00:00", nil, `is not a date`}, // no zone: ambiguous
		{Date, "1714557600", nil, `"1714557600" is not a date`},

		// unknown type
		{"color", "red", nil, `unknown field type "color"`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.text, func(t *testing.T) {
			got, err := Convert(tt.typ, tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Convert(%q, %q) = %#v, %v; want error containing %q", tt.typ, tt.text, got, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("value with error = %#v, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Convert(%q, %q) error: %v", tt.typ, tt.text, err)
			}
			if got != tt.want {
				t.Fatalf("Convert(%q, %q) = %#v (%T), want %#v (%T)", tt.typ, tt.text, got, got, tt.want, tt.want)
			}
			if f, ok := got.(float64); ok && math.Signbit(f) != math.Signbit(tt.want.(float64)) {
				t.Fatalf("sign of %v differs from %v", f, tt.want)
			}
		})
	}
}

func TestConvertUnknownTypeIsErrUnknownType(t *testing.T) {
	if _, err := Convert("colour", "x"); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("err = %v, want ErrUnknownType", err)
	}
	if _, err := ConvertJSON("colour", "x"); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("ConvertJSON err = %v, want ErrUnknownType", err)
	}
}

func TestConvertErrorClipsLongValues(t *testing.T) {
	long := strings.Repeat("x", 1000)
	_, err := Convert(Number, long)
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 120 || !strings.Contains(err.Error(), "…") {
		t.Fatalf("error not clipped: %d bytes: %q", len(err.Error()), err)
	}
}

func TestConvertJSON(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		v       any
		want    any
		wantErr string
	}{
		{"null string", String, nil, nil, "no value"},
		{"null number", Number, nil, nil, "no value"},
		{"null boolean", Boolean, nil, nil, "no value"},
		{"null date", Date, nil, nil, "no value"},

		{"string to string", String, "LMS-42", "LMS-42", ""},
		{"string to number", Number, "42", 42.0, ""},
		{"bad string to number", Number, "x", nil, `"x" is not a number`},
		{"string to boolean", Boolean, "yes", true, ""},
		{"string to date", Date, "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00.000Z", ""},

		{"number to string keeps text", String, json.Number("12345678901234567890"), "12345678901234567890", ""},
		{"exponent number to string keeps text", String, json.Number("1e3"), "1e3", ""},
		{"float64 to string", String, 42.0, "42", ""},
		{"fraction float64 to string", String, -3.25, "-3.25", ""},
		{"number to number", Number, json.Number("-3.5"), -3.5, ""},
		{"float64 to number", Number, 7.0, 7.0, ""},
		{"1 to boolean", Boolean, json.Number("1"), true, ""},
		{"0 to boolean", Boolean, 0.0, false, ""},
		{"2 to boolean", Boolean, json.Number("2"), nil, "the number 2 is not a boolean"},
		{"number to date", Date, json.Number("1714557600"), nil, "the number 1714557600 is not a date"},
		{"NaN float", Number, math.NaN(), nil, "is not a number"},

		{"bool to string", String, true, "true", ""},
		{"bool to boolean", Boolean, false, false, ""},
		{"bool to number", Number, true, nil, "the boolean true is not a number"},
		{"bool to date", Date, false, nil, "the boolean false is not a date"},

		{"object", String, map[string]any{"a": 1.0}, nil, "a JSON object cannot be stored in a string field"},
		{"array", Number, []any{1.0}, nil, "a JSON array cannot be stored in a number field"},
		{"other Go type", String, struct{}{}, nil, "cannot be stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConvertJSON(tt.typ, tt.v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConvertJSON(%q, %#v) = %#v, %v; want error containing %q", tt.typ, tt.v, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConvertJSON(%q, %#v) error: %v", tt.typ, tt.v, err)
			}
			if got != tt.want {
				t.Fatalf("ConvertJSON(%q, %#v) = %#v (%T), want %#v (%T)", tt.typ, tt.v, got, got, tt.want, tt.want)
			}
		})
	}
	if _, err := ConvertJSON(String, nil); !errors.Is(err, ErrNoValue) {
		t.Fatalf("null: err = %v, want ErrNoValue", err)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""},
		{"Ann", "Ann"},
		{"2024-05-01", "2024-05-01"},
		{true, "true"},
		{false, "false"},
		{42.0, "42"},
		{-3.5, "-3.5"},
		{1e21, "1000000000000000000000"},
		{0.0001, "0.0001"},
		{float32(0.1), "0.1"},
		{7, "7"},
		{int64(-7), "-7"},
		{int32(3), "3"},
		{uint64(18446744073709551615), "18446744073709551615"},
		{json.Number("1e3"), "1e3"},
		{time.Date(2024, 5, 1, 10, 0, 0, 5e6, time.FixedZone("x", 3600)), "2024-05-01T09:00:00.005Z"},
		{[]string{"a"}, "[a]"},
	}
	for _, tt := range tests {
		if got := Format(tt.v); got != tt.want {
			t.Errorf("Format(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

// Format is the inverse of Convert: a converted value formats to text that converts
// back to the same value.
func TestFormatRoundTrip(t *testing.T) {
	tests := []struct{ typ, text string }{
		{String, "hello"},
		{Number, "42"},
		{Number, "-3.5"},
		{Number, "1e3"},
		{Number, "0.1"},
		{Number, "123456789.125"},
		{Boolean, "yes"},
		{Boolean, "0"},
		{Date, "2024-05-01"},
		{Date, "2024-05-01T10:00:00.5+02:00"},
	}
	for _, tt := range tests {
		v, err := Convert(tt.typ, tt.text)
		if err != nil {
			t.Fatalf("Convert(%q, %q): %v", tt.typ, tt.text, err)
		}
		back, err := Convert(tt.typ, Format(v))
		if err != nil {
			t.Fatalf("Convert(%q, Format(%#v)=%q): %v", tt.typ, v, Format(v), err)
		}
		if back != v {
			t.Errorf("%s %q: round trip %#v -> %q -> %#v", tt.typ, tt.text, v, Format(v), back)
		}
	}
}

func TestValidType(t *testing.T) {
	for _, typ := range Types {
		if !ValidType(typ) {
			t.Errorf("ValidType(%q) = false", typ)
		}
	}
	for _, typ := range []string{"", "String", "int", "datetime"} {
		if ValidType(typ) {
			t.Errorf("ValidType(%q) = true", typ)
		}
	}
}
