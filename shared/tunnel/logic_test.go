package tunnel

import (
	"strings"
	"testing"
)

// logicCatalog adds date and boolean fields to the example's catalog.
func logicCatalog() Catalog {
	c := catalog()
	c.Fields["webinar_at"] = "date"
	c.Fields["paid"] = "boolean"
	return c
}

// logicBase has a block of each funnel-logic kind; cases edit it as text.
const logicBase = `{"name": "Logic", "entry": "check", "blocks": [
 {"id": "check", "type": "condition", "branches": [
   {"name": "lead", "when": {"has_tag": "lead"}, "next": ["ask"]},
   {"when": {"all": [{"field": "age", "op": "gt", "value": 18}, {"not": {"subscriber": "email", "op": "is_set"}}]}, "next": ["ab"]}],
  "else": ["wait"]},
 {"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 50, "next": ["ask"]}, {"name": "B", "weight": 50, "next": ["wait"]}]},
 {"id": "ask", "type": "message", "text": "Email?", "buttons": [{"id": "later", "text": "Later", "next": ["wait"]}],
  "reply": {"field": "source", "validate": "email", "timeout_seconds": 3600, "on_timeout": ["wait"], "next": ["wait"]}},
 {"id": "wait", "type": "delay", "seconds": 60, "window": {"timezone": "Europe/Moscow", "hours": ["09:00", "21:00"], "weekdays": ["mon", "fri"]}, "next": ["bye"]},
 {"id": "bye", "type": "message", "text": "Bye", "ui": {"x": 1, "y": 2}}
]}`

func TestValidateLogic(t *testing.T) {
	type fe = FieldError
	cases := []struct {
		name     string
		from, to string
		want     []fe
	}{
		{"valid", "", "", nil},
		// condition
		{"rule missing", `"when": {"has_tag": "lead"}, `, ``, []fe{{"/blocks/0/branches/0/when", "a condition branch needs a rule (when)"}}},
		{"two forms", `{"has_tag": "lead"}`, `{"has_tag": "lead", "field": "age"}`, []fe{{"/blocks/0/branches/0/when", "a rule has exactly one of all, any, not, has_tag, lacks_tag, field, subscriber, plan, channel, last_request; this one has has_tag and field"}}},
		{"no form", `{"has_tag": "lead"}`, `{}`, []fe{{"/blocks/0/branches/0/when", "a rule needs one of all, any, not, has_tag, lacks_tag, field, subscriber, plan, channel, last_request"}}},
		{"unknown tag", `{"has_tag": "lead"}`, `{"has_tag": "vip"}`, []fe{{"/blocks/0/branches/0/when/has_tag", `unknown tag "vip"`}}},
		{"unknown field and wrong type at once", `{"field": "age", "op": "gt", "value": 18}, {"not": {"subscriber": "email", "op": "is_set"}}`,
			`{"field": "height", "op": "gt", "value": 18}, {"field": "age", "op": "gt", "value": "old"}, {"field": "age", "op": "contains", "value": 1}, {"field": "source", "op": "lt", "value": "a"}`,
			[]fe{
				{"/blocks/0/branches/1/when/all/0/field", `unknown field "height"`},
				{"/blocks/0/branches/1/when/all/1/value", `field "age" (number): the value must be a number, not "old"`},
				{"/blocks/0/branches/1/when/all/2/op", `op "contains" does not apply to field "age" (number) (want eq, ne, lt, gt, is_set, not_set)`},
				{"/blocks/0/branches/1/when/all/3/op", `op "lt" does not apply to field "source" (string) (want eq, ne, contains, is_set, not_set)`},
			}},
		{"date and boolean fields", `{"field": "age", "op": "gt", "value": 18}`,
			`{"field": "webinar_at", "op": "lt", "value": "2026-12-24T18:00:00+03:00"}, {"field": "paid", "op": "eq", "value": true}, {"field": "webinar_at", "op": "gt", "value": "soon"}`,
			[]fe{{"/blocks/0/branches/1/when/all/2/value", `field "webinar_at" (date): "soon" is not a date (use YYYY-MM-DD or RFC 3339, e.g. 2024-05-01T10:00:00Z)`}}},
		{"is_set with a value, eq without", `{"not": {"subscriber": "email", "op": "is_set"}}`, `{"subscriber": "email", "op": "is_set", "value": "x"}, {"subscriber": "phone", "op": "eq"}`,
			[]fe{{"/blocks/0/branches/1/when/all/1/value", "is_set takes no value"}, {"/blocks/0/branches/1/when/all/2/value", "value is required for eq"}}},
		{"empty all", `{"all": [{"field": "age", "op": "gt", "value": 18}, {"not": {"subscriber": "email", "op": "is_set"}}]}`, `{"all": []}`,
			[]fe{{"/blocks/0/branches/1/when/all", "all needs at least one rule"}}},
		{"plan, channel, last request", `{"has_tag": "lead"}`, `{"any": [{"plan": "q4", "op": "eq", "value": "won"}, {"plan": "q9", "op": "is_set"}, {"channel": "tg", "op": "eq"}, {"last_request": "http_status", "op": "lt", "value": 700}, {"last_request": "latency", "op": "lt", "value": 1}]}`,
			[]fe{
				{"/blocks/0/branches/0/when/any/1/plan", `unknown sales plan "q9"`},
				{"/blocks/0/branches/0/when/any/2/op", "a channel rule has no op"},
				{"/blocks/0/branches/0/when/any/3/value", "an HTTP status is a whole number from 100 to 599, not 700"},
				{"/blocks/0/branches/0/when/any/4/last_request", `last_request tests http_status, not "latency"`},
			}},
		{"condition with next", `"else": ["wait"]},`, `"else": ["wait"], "next": ["bye"]},`, []fe{{"/blocks/0/next", "a condition block goes on through its branches, not next"}}},
		{"else to nowhere", `"else": ["wait"]`, `"else": ["nowhere"]`, []fe{{"/blocks/0/else/0", `block "nowhere" does not exist`}}},
		// split
		{"split of one", `[{"name": "A", "weight": 50, "next": ["ask"]}, {"name": "B", "weight": 50, "next": ["wait"]}]`, `[{"name": "A", "weight": 50, "next": ["ask", "wait"]}]`,
			[]fe{{"/blocks/1/branches", "a split block needs at least 2 branches, this one has 1"}}},
		{"split weights", `{"name": "A", "weight": 50,`, `{"name": "B", "weight": 0,`, []fe{
			{"/blocks/1/branches/0/weight", "weight must be between 1 and 1000000, got 0"},
			{"/blocks/1/branches/1/name", `branch name "B" is also used by branch 0`}}},
		// buttons and reply
		{"buttons", `[{"id": "later", "text": "Later", "next": ["wait"]}]`, `[{"id": "later", "text": "Later", "next": ["wait"]}, {"id": "later", "text": " "}, {"id": "bad id", "text": "` + strings.Repeat("x", 65) + `"}]`,
			[]fe{
				{"/blocks/2/buttons/1/id", `duplicate button id "later" (first used by button 0)`},
				{"/blocks/2/buttons/1/text", "text is required"},
				{"/blocks/2/buttons/2/id", `id "bad id" must be 1 to 64 letters, digits, '_' or '-'`},
				{"/blocks/2/buttons/2/text", "a button's text has at most 64 characters, this one has 65"},
			}},
		{"reply", `"reply": {"field": "source", "validate": "email", "timeout_seconds": 3600,`, `"reply": {"field": "age", "validate": "date", "timeout_seconds": -1,`,
			[]fe{
				{"/blocks/2/reply/validate", `validate must be any, email, phone or number, not "date"`},
				{"/blocks/2/reply/field", `field "age" is a number field: set validate to number`},
				{"/blocks/2/reply/timeout_seconds", "timeout_seconds must be between 1 and 31536000 (365 days), got -1"},
			}},
		{"on_timeout that cannot happen", `"validate": "email", "timeout_seconds": 3600,`, ``, []fe{{"/blocks/2/reply/on_timeout", "on_timeout needs timeout_seconds (or a validate that can run out of attempts)"}}},
		{"waiting message with next", `"next": ["wait"]}}`, `"next": ["wait"]}, "next": ["bye"]}`, []fe{{"/blocks/2/next", "a message that waits for a button or a reply goes on through them; move next into the buttons or reply.next"}}},
		{"buttons on a delay", `"seconds": 60,`, `"seconds": 60, "buttons": [{"id": "x", "text": "X"}],`, []fe{{"/blocks/3/buttons", "a delay block has no buttons; use a message block"}}},
		// delays
		{"window", `"window": {"timezone": "Europe/Moscow", "hours": ["09:00", "21:00"], "weekdays": ["mon", "fri"]}`, `"window": {"timezone": "Moscow", "hours": ["9", "21:00"], "weekdays": ["mon", "monday", "mon"]}`,
			[]fe{
				{"/blocks/3/window/timezone", `"Moscow" is not an IANA time zone (e.g. Europe/Moscow), or "subscriber"`},
				{"/blocks/3/window/hours", `"9" is not a time of day HH:MM`},
				{"/blocks/3/window/weekdays/1", `"monday" is not a weekday (mon, tue, wed, thu, fri, sat, sun)`},
				{"/blocks/3/window/weekdays/2", `"mon" is listed twice`},
			}},
		{"empty window", `"window": {"timezone": "Europe/Moscow", "hours": ["09:00", "21:00"], "weekdays": ["mon", "fri"]}`, `"window": {"timezone": "subscriber"}`,
			[]fe{{"/blocks/3/window", "a window needs hours, weekdays or both"}}},
		{"window alone, no seconds", `"seconds": 60, `, ``, nil},
		{"until a date field", `"seconds": 60, "window"`, `"until": {"field": "webinar_at", "offset_seconds": -3600}, "window"`, nil},
		{"until problems", `"seconds": 60, "window"`, `"seconds": 60, "until": {"field": "age", "at": "tomorrow", "offset_seconds": 40000000}, "window"`,
			[]fe{
				{"/blocks/3/until", "until takes a field or at, not both"},
				{"/blocks/3/until/offset_seconds", "offset_seconds must be within ±31536000 (365 days)"},
				{"/blocks/3/seconds", "a delay until a date has no seconds; use until.offset_seconds"},
			}},
		{"until a string field", `"seconds": 60, "window"`, `"until": {"field": "source"}, "window"`, []fe{{"/blocks/3/until/field", `field "source" is a string field; until needs a date field`}}},
		{"until at", `"seconds": 60, "window"`, `"until": {"at": "2026-12-24 18:00"}, "window"`, []fe{{"/blocks/3/until/at", `at must be an RFC 3339 date-time such as 2026-12-24T18:00:00+03:00, not "2026-12-24 18:00"`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := logicBase
			if c.from != "" {
				if !strings.Contains(doc, c.from) {
					t.Fatalf("the base has no %q", c.from)
				}
				doc = strings.Replace(doc, c.from, c.to, 1)
			}
			tn, perrs := Parse([]byte(doc))
			if len(perrs) > 0 {
				t.Fatalf("parse: %v", perrs)
			}
			got := Validate("logic", tn, logicCatalog())
			if len(got) != len(c.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", list(got), list(c.want))
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got:\n%s\nwant:\n%s", list(got), list(c.want))
				}
			}
		})
	}
}

func TestParseLogicStrictly(t *testing.T) {
	doc := strings.Replace(logicBase, `{"has_tag": "lead"}`, `{"has_tag": "lead", "colour": "red", "value": {"a": 1}}`, 1)
	doc = strings.Replace(doc, `"timeout_seconds": 3600`, `"timeout_seconds": "1h"`, 1)
	doc = strings.Replace(doc, `"ui": {"x": 1, "y": 2}`, `"ui": {"x": "left", "z": 2}`, 1)
	_, errs := Parse([]byte(doc))
	want := []FieldError{
		{"/blocks/0/branches/0/when/colour", `unknown field "colour"`},
		{"/blocks/0/branches/0/when/value", "must be a string, a number or a boolean, not an object"},
		{"/blocks/2/reply/timeout_seconds", "must be a whole number, not a string"},
		{"/blocks/4/ui/x", "must be a number, not a string"},
		{"/blocks/4/ui/z", `unknown field "z"`},
	}
	if len(errs) != len(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", list(errs), list(want))
	}
	for i := range want {
		if errs[i] != want[i] {
			t.Fatalf("got:\n%s\nwant:\n%s", list(errs), list(want))
		}
	}
}

func TestLoopsThroughWaitsAreFine(t *testing.T) {
	// A reply that loops back to the question waits for a person each round.
	doc := strings.Replace(logicBase, `"on_timeout": ["wait"], "next": ["wait"]`, `"on_timeout": ["wait"], "next": ["check"]`, 1)
	tn, _ := Parse([]byte(doc))
	if errs := Validate("logic", tn, logicCatalog()); len(errs) != 0 {
		t.Fatalf("a loop through a waiting message: %s", list(errs))
	}
	// A condition looping on itself through a split never waits.
	doc = strings.Replace(logicBase, `{"name": "B", "weight": 50, "next": ["wait"]}`, `{"name": "B", "weight": 50, "next": ["check"]}`, 1)
	tn, _ = Parse([]byte(doc))
	errs := Validate("logic", tn, logicCatalog())
	if len(errs) != 1 || errs[0].Pointer != "/blocks/1/branches/1/next/0" || !strings.Contains(errs[0].Detail, `("check" -> "ab" -> "check")`) {
		t.Fatalf("loop without a wait: %s", list(errs))
	}
}
