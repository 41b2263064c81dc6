package api

import (
	"reflect"
	"strings"
	"testing"
)

type decodeProbe struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	On    bool   `json:"on"`
	Inner struct {
		Tags []string `json:"tags"`
	} `json:"inner"`
}

func TestDecodeStrictReportsEveryProblemWithItsPointer(t *testing.T) {
	body := `{"name": 5, "count": "x", "on": true, "extra": 1, "inner": {"tags": ["a", 2], "nope": null}}`
	var v decodeProbe
	bad, errs := decodeStrict([]byte(body), &v)
	if bad != nil {
		t.Fatalf("valid JSON reported malformed: %v", bad)
	}
	got := map[string]string{}
	for _, e := range errs {
		got[e.Pointer] = e.Detail
	}
	want := map[string]string{
		"/name":         "must be a string, not a number",
		"/count":        "must be a whole number, not a string",
		"/extra":        `unknown field "extra"`,
		"/inner/tags/1": "must be a string, not a number",
		"/inner/nope":   `unknown field "nope"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors = %v\nwant %v", got, want)
	}
}

func TestDecodeStrictMalformed(t *testing.T) {
	cases := map[string]string{
		"":                 "empty",
		"{\"a\": \n tru}":  "line 2",
		`{"name": "x"`:     "ends before",
		`{"name":"x"} {}`:  "more than one",
		`{"count": 1.5}`:   "",
		`{"name": "ok"}`:   "",
		`{"count": 12345}`: "",
	}
	for body, want := range cases {
		var v decodeProbe
		bad, errs := decodeStrict([]byte(body), &v)
		switch {
		case want == "" && body == `{"count": 1.5}`:
			if len(errs) != 1 || errs[0].Pointer != "/count" {
				t.Errorf("%q: errs = %v, want one at /count", body, errs)
			}
		case want == "":
			if bad != nil || len(errs) > 0 {
				t.Errorf("%q: unexpected problems %v %v", body, bad, errs)
			}
		default:
			if bad == nil || !strings.Contains(bad.Error(), want) {
				t.Errorf("%q: malformed error = %v, want it to mention %q", body, bad, want)
			}
		}
	}
	var v decodeProbe
	if _, errs := decodeStrict([]byte(`{"name":"Ann","count":3,"inner":{"tags":["a"]}}`), &v); len(errs) > 0 || v.Name != "Ann" || v.Count != 3 || v.Inner.Tags[0] != "a" {
		t.Fatalf("good body decoded to %+v (errs %v)", v, errs)
	}
}
