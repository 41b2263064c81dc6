package tunnel

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/schedule"
)

// logicMembers refuses the funnel-logic members a block of this type does not take.
func (v *validator) logicMembers(bp string, b *Block) {
	branching := b.Type == BlockCondition || b.Type == BlockSplit
	if !branching {
		if len(b.Branches) > 0 {
			v.add(bp+"/branches", "a %s block has no branches; use a condition or a split block", b.Type)
		}
		if len(b.Else) > 0 {
			v.add(bp+"/else", "a %s block has no else; use a condition block", b.Type)
		}
	}
	if b.Type != BlockMessage {
		if len(b.Buttons) > 0 {
			v.add(bp+"/buttons", "a %s block has no buttons; use a message block", b.Type)
		}
		if b.Reply != nil {
			v.add(bp+"/reply", "a %s block has no reply; use a message block", b.Type)
		}
	}
	if b.Type != BlockDelay {
		if b.Window != nil {
			v.add(bp+"/window", "a %s block has no window; use a delay block", b.Type)
		}
		if b.Until != nil {
			v.add(bp+"/until", "a %s block has no until; use a delay block", b.Type)
		}
	}
	if branching {
		for _, f := range []struct {
			name string
			set  bool
		}{{"text", b.Text != ""}, {"email", b.Email != nil}, {"actions", len(b.Actions) > 0}, {"seconds", b.Seconds != 0}} {
			if f.set {
				v.add(bp+"/"+f.name, "a %s block has no %s", b.Type, f.name)
			}
		}
		if len(b.Next) > 0 {
			v.add(bp+"/next", "a %s block goes on through its branches, not next", b.Type)
		}
	}
}

// condition checks a condition block: branches tried in order, each with a rule.
func (v *validator) condition(bp string, b *Block) {
	v.branchList(bp, b, 1, func(p string, br *Branch) {
		if br.When == nil {
			v.add(p+"/when", "a condition branch needs a rule (when)")
		} else {
			v.rule(p+"/when", br.When)
		}
		if br.Weight != 0 {
			v.add(p+"/weight", "a condition branch has no weight; use a split block")
		}
	})
	v.refs(bp+"/else", b.Else, "else blocks")
}

// split checks a split block: at least two weighted branches.
func (v *validator) split(bp string, b *Block) {
	v.branchList(bp, b, 2, func(p string, br *Branch) {
		if br.When != nil {
			v.add(p+"/when", "a split branch has no rule; use a condition block")
		}
		if br.Weight < 1 || br.Weight > MaxWeight {
			v.add(p+"/weight", "weight must be between 1 and %d, got %d", MaxWeight, br.Weight)
		}
	})
}

// branchList checks the branches of a condition or split, each in document order:
// its name, what the block type checks (each), its next blocks.
func (v *validator) branchList(bp string, b *Block, min int, each func(p string, br *Branch)) {
	switch n := len(b.Branches); {
	case n < min:
		v.add(bp+"/branches", "a %s block needs at least %d branches, this one has %d", b.Type, min, n)
	case n > MaxBranches:
		v.add(bp+"/branches", "a %s block has at most %d branches, this one has %d", b.Type, MaxBranches, n)
	}
	names := map[string]int{}
	for k := range b.Branches {
		br := &b.Branches[k]
		p := bp + "/branches/" + strconv.Itoa(k)
		if br.Name != "" {
			if utf8.RuneCountInString(br.Name) > 64 {
				v.add(p+"/name", "a branch name has at most 64 characters")
			} else if first, dup := names[br.Name]; dup {
				v.add(p+"/name", "branch name %q is also used by branch %d", br.Name, first)
			} else {
				names[br.Name] = k
			}
		}
		each(p, br)
		v.refs(p+"/next", br.Next, "next blocks")
	}
}

// ruleForms names the forms a rule can take, in the order messages list them.
var ruleForms = []string{"all", "any", "not", "has_tag", "lacks_tag", "field", "subscriber", "plan", "channel", "last_request"}

func (r *Rule) forms() []string {
	set := map[string]bool{
		"all": r.All != nil, "any": r.Any != nil, "not": r.Not != nil, "has_tag": r.HasTag != "",
		"lacks_tag": r.LacksTag != "", "field": r.Field != "", "subscriber": r.Subscriber != "",
		"plan": r.Plan != "", "channel": r.Channel != "", "last_request": r.LastRequest != "",
	}
	var out []string
	for _, f := range ruleForms {
		if set[f] {
			out = append(out, f)
		}
	}
	return out
}

// rule checks one condition: exactly one form, known references, an operator that fits
// the type of what it compares and a value of that type.
func (v *validator) rule(ptr string, r *Rule) {
	forms := r.forms()
	switch len(forms) {
	case 0:
		v.add(ptr, "a rule needs one of %s", strings.Join(ruleForms, ", "))
		return
	case 1:
	default:
		v.add(ptr, "a rule has exactly one of %s; this one has %s", strings.Join(ruleForms, ", "), strings.Join(forms, " and "))
		return
	}
	compares := forms[0] == "field" || forms[0] == "subscriber" || forms[0] == "plan" || forms[0] == "last_request"
	if !compares {
		if r.Op != "" {
			v.add(ptr+"/op", "a %s rule has no op", forms[0])
		}
		if r.Value != nil {
			v.add(ptr+"/value", "a %s rule has no value", forms[0])
		}
	}
	switch forms[0] {
	case "all", "any":
		list := r.All
		if forms[0] == "any" {
			list = r.Any
		}
		switch {
		case len(list) == 0:
			v.add(ptr+"/"+forms[0], "%s needs at least one rule", forms[0])
		case len(list) > MaxRulesPerBranch:
			v.add(ptr+"/"+forms[0], "%s has at most %d rules, this one has %d", forms[0], MaxRulesPerBranch, len(list))
		}
		for k := range list {
			v.rule(ptr+"/"+forms[0]+"/"+strconv.Itoa(k), &list[k])
		}
	case "not":
		v.rule(ptr+"/not", r.Not)
	case "has_tag", "lacks_tag":
		tag := r.HasTag + r.LacksTag
		if !v.cat.Tags[tag] {
			v.add(ptr+"/"+forms[0], "unknown tag %q", tag)
		}
	case "channel":
		if len(r.Channel) > 64 {
			v.add(ptr+"/channel", "a channel id has at most 64 characters")
		}
	case "field":
		ft, ok := v.cat.Fields[r.Field]
		if !ok {
			v.add(ptr+"/field", "unknown field %q", r.Field)
			return
		}
		ops := map[string][]string{
			fields.String:  {OpEq, OpNe, OpContains, OpIsSet, OpNotSet},
			fields.Number:  {OpEq, OpNe, OpLt, OpGt, OpIsSet, OpNotSet},
			fields.Date:    {OpEq, OpNe, OpLt, OpGt, OpIsSet, OpNotSet},
			fields.Boolean: {OpEq, OpNe, OpIsSet, OpNotSet},
		}[ft]
		v.compare(ptr, r, ops, "field "+strconv.Quote(r.Field)+" ("+ft+")", ft)
	case "subscriber":
		if !contains(SubscriberProperties, r.Subscriber) {
			v.add(ptr+"/subscriber", "unknown subscriber property %q (want %s)", r.Subscriber, strings.Join(SubscriberProperties, ", "))
			return
		}
		v.compare(ptr, r, []string{OpEq, OpNe, OpContains, OpIsSet, OpNotSet}, "the subscriber's "+r.Subscriber, fields.String)
	case "plan":
		if !v.cat.SalesPlans[r.Plan] {
			v.add(ptr+"/plan", "unknown sales plan %q", r.Plan)
		}
		v.compare(ptr, r, []string{OpIsSet, OpNotSet, OpEq, OpNe}, "a sales plan's status", fields.String)
	case "last_request":
		if r.LastRequest != "http_status" {
			v.add(ptr+"/last_request", "last_request tests http_status, not %q", r.LastRequest)
			return
		}
		if v.compare(ptr, r, []string{OpEq, OpNe, OpLt, OpGt, OpIsSet, OpNotSet}, "the last request's HTTP status", fields.Number) {
			var n float64
			if r.Value != nil && json.Unmarshal(r.Value, &n) == nil && (n < 100 || n > 599 || n != float64(int(n))) {
				v.add(ptr+"/value", "an HTTP status is a whole number from 100 to 599, not %s", r.Value)
			}
		}
	}
}

// compare checks the op and value of a comparing rule; typ is the value's field type.
// It reports whether both are well-formed.
func (v *validator) compare(ptr string, r *Rule, ops []string, what, typ string) bool {
	switch {
	case r.Op == "":
		v.add(ptr+"/op", "op is required (%s)", strings.Join(ops, ", "))
		return false
	case !contains(ops, r.Op):
		v.add(ptr+"/op", "op %q does not apply to %s (want %s)", r.Op, what, strings.Join(ops, ", "))
		return false
	}
	if r.Op == OpIsSet || r.Op == OpNotSet {
		if r.Value != nil {
			v.add(ptr+"/value", "%s takes no value", r.Op)
			return false
		}
		return true
	}
	if r.Value == nil {
		v.add(ptr+"/value", "value is required for %s", r.Op)
		return false
	}
	if _, err := RuleValue(typ, r.Value); err != nil {
		v.add(ptr+"/value", "%s: %v", what, err)
		return false
	}
	return true
}

// RuleValue converts a rule's JSON value to the stored form of a field of type typ
// (see package fields): a number for number, a bool for boolean, normalised text for a
// date, the string itself for string.
func RuleValue(typ string, raw json.RawMessage) (any, error) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return nil, err
	}
	switch typ {
	case fields.Number:
		if n, ok := x.(float64); ok {
			return n, nil
		}
		return nil, errValue("a number", raw)
	case fields.Boolean:
		if b, ok := x.(bool); ok {
			return b, nil
		}
		return nil, errValue("true or false", raw)
	case fields.Date:
		s, ok := x.(string)
		if !ok {
			return nil, errValue(`a date ("2006-01-02" or RFC 3339)`, raw)
		}
		return fields.Convert(fields.Date, s)
	default:
		if s, ok := x.(string); ok {
			return s, nil
		}
		return nil, errValue("a string", raw)
	}
}

type valueError struct{ want, got string }

func (e valueError) Error() string { return "the value must be " + e.want + ", not " + e.got }

func errValue(want string, raw json.RawMessage) error {
	return valueError{want: want, got: string(raw)}
}

// buttons and reply of a message block: what it waits for and where each answer goes.
func (v *validator) waits(bp string, b *Block) {
	if len(b.Buttons) > MaxButtons {
		v.add(bp+"/buttons", "a message has at most %d buttons, this one has %d", MaxButtons, len(b.Buttons))
	}
	ids := map[string]int{}
	for k := range b.Buttons {
		bt := &b.Buttons[k]
		p := bp + "/buttons/" + strconv.Itoa(k)
		switch first, dup := ids[bt.ID]; {
		case bt.ID == "":
			v.add(p+"/id", "id is required")
		case !ValidID(bt.ID):
			v.add(p+"/id", "id %q must be 1 to 64 letters, digits, '_' or '-'", bt.ID)
		case dup:
			v.add(p+"/id", "duplicate button id %q (first used by button %d)", bt.ID, first)
		}
		ids[bt.ID] = k
		switch n := utf8.RuneCountInString(bt.Text); {
		case strings.TrimSpace(bt.Text) == "":
			v.add(p+"/text", "text is required")
		case n > MaxButtonText:
			v.add(p+"/text", "a button's text has at most %d characters, this one has %d", MaxButtonText, n)
		}
		v.refs(p+"/next", bt.Next, "next blocks")
	}
	if r := b.Reply; r != nil {
		rp := bp + "/reply"
		switch r.Validate {
		case "", ValidateAny, ValidateEmail, ValidatePhone, ValidateNumber:
		default:
			v.add(rp+"/validate", "validate must be any, email, phone or number, not %q", r.Validate)
		}
		if r.Field != "" {
			switch ft, ok := v.cat.Fields[r.Field]; {
			case !ok:
				v.add(rp+"/field", "unknown field %q", r.Field)
			case ft == fields.Number && r.Validate != ValidateNumber:
				v.add(rp+"/field", "field %q is a number field: set validate to number", r.Field)
			case ft != fields.String && ft != fields.Number:
				v.add(rp+"/field", "a reply is stored in a string or number field; %q is a %s field", r.Field, ft)
			}
		}
		if r.TimeoutSeconds < 0 || r.TimeoutSeconds > MaxWaitSeconds {
			v.add(rp+"/timeout_seconds", "timeout_seconds must be between 1 and %d (365 days), got %d", MaxWaitSeconds, r.TimeoutSeconds)
		}
		if len(r.OnTimeout) > 0 && r.TimeoutSeconds == 0 && (r.Validate == "" || r.Validate == ValidateAny) {
			v.add(rp+"/on_timeout", "on_timeout needs timeout_seconds (or a validate that can run out of attempts)")
		}
		v.refs(rp+"/next", r.Next, "next blocks")
		v.refs(rp+"/on_timeout", r.OnTimeout, "on_timeout blocks")
	}
	if b.WaitsForSubscriber() && len(b.Next) > 0 {
		v.add(bp+"/next", "a message that waits for a button or a reply goes on through them; move next into the buttons or reply.next")
	}
}

// delayTiming checks a delay's window and until.
func (v *validator) delayTiming(bp string, b *Block) {
	if w := b.Window; w != nil {
		wp := bp + "/window"
		switch {
		case w.Timezone == "":
			v.add(wp+"/timezone", `timezone is required: an IANA time zone such as "Europe/Moscow", or "subscriber"`)
		case w.Timezone != "subscriber":
			if err := schedule.ValidZone(w.Timezone); err != nil {
				v.add(wp+"/timezone", "%v, or \"subscriber\"", err)
			}
		}
		if len(w.Hours) == 0 && len(w.Weekdays) == 0 {
			v.add(wp, "a window needs hours, weekdays or both")
		}
		if len(w.Hours) != 0 {
			if len(w.Hours) != 2 {
				v.add(wp+"/hours", `hours is ["from", "to"], e.g. ["09:00", "21:00"]`)
			} else if _, err := schedule.NewWindow(time.UTC, w.Hours, nil); err != nil {
				v.add(wp+"/hours", "%v", err)
			}
		}
		seen := map[string]bool{}
		for k, d := range w.Weekdays {
			p := wp + "/weekdays/" + strconv.Itoa(k)
			if _, err := schedule.ParseWeekday(d); err != nil {
				v.add(p, "%v", err)
			} else if seen[strings.ToLower(d)] {
				v.add(p, "%q is listed twice", d)
			}
			seen[strings.ToLower(d)] = true
		}
	}
	if u := b.Until; u != nil {
		up := bp + "/until"
		switch {
		case u.Field == "" && u.At == "":
			v.add(up, "until needs a date field or a moment (at)")
		case u.Field != "" && u.At != "":
			v.add(up, "until takes a field or at, not both")
		case u.Field != "":
			if ft, ok := v.cat.Fields[u.Field]; !ok {
				v.add(up+"/field", "unknown field %q", u.Field)
			} else if ft != fields.Date {
				v.add(up+"/field", "field %q is a %s field; until needs a date field", u.Field, ft)
			}
		default:
			if _, err := time.Parse(time.RFC3339, u.At); err != nil {
				v.add(up+"/at", "at must be an RFC 3339 date-time such as 2026-12-24T18:00:00+03:00, not %q", u.At)
			}
		}
		if u.OffsetSeconds < -MaxWaitSeconds || u.OffsetSeconds > MaxWaitSeconds {
			v.add(up+"/offset_seconds", "offset_seconds must be within ±%d (365 days)", MaxWaitSeconds)
		}
		if b.Seconds != 0 {
			v.add(bp+"/seconds", "a delay until a date has no seconds; use until.offset_seconds")
		}
	}
}
