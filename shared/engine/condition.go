package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// Choose picks the branch a condition block takes for sub: the first whose
// rule holds, or -1 for else. why says, rule by rule, what was found, for the
// journey ("has_tag \"vip\": no; field \"age\" (30) gt 18: yes").
func Choose(b *tunnel.Block, sub *Subscriber) (branch int, why []string) {
	for i := range b.Branches {
		br := &b.Branches[i]
		if br.When == nil {
			continue
		}
		ok, w := Evaluate(br.When, sub)
		why = append(why, fmt.Sprintf("branch %s: %s", branchLabel(br, i), w))
		if ok {
			return i, why
		}
	}
	return -1, why
}

func branchLabel(br *tunnel.Branch, i int) string {
	if br.Name != "" {
		return strconv.Quote(br.Name)
	}
	return strconv.Itoa(i)
}

// Evaluate tells whether rule r holds for sub and explains the answer.
func Evaluate(r *tunnel.Rule, sub *Subscriber) (bool, string) {
	switch {
	case r.All != nil, r.Any != nil:
		list, name := r.All, "all"
		if r.Any != nil {
			list, name = r.Any, "any"
		}
		parts := make([]string, 0, len(list))
		result := name == "all"
		for i := range list {
			ok, w := Evaluate(&list[i], sub)
			parts = append(parts, w)
			if name == "all" && !ok {
				result = false
				break // the rest cannot change the answer
			}
			if name == "any" && ok {
				result = true
				break
			}
		}
		return result, name + "(" + strings.Join(parts, "; ") + ")"
	case r.Not != nil:
		ok, w := Evaluate(r.Not, sub)
		return !ok, "not(" + w + ")"
	case r.HasTag != "":
		ok := slices.Contains(sub.Tags, r.HasTag)
		return ok, fmt.Sprintf("has_tag %q: %s", r.HasTag, yes(ok))
	case r.LacksTag != "":
		ok := !slices.Contains(sub.Tags, r.LacksTag)
		return ok, fmt.Sprintf("lacks_tag %q: %s", r.LacksTag, yes(ok))
	case r.Channel != "":
		ok := false
		for _, id := range sub.Channels {
			ok = ok || id.Channel == r.Channel
		}
		return ok, fmt.Sprintf("channel %q: %s", r.Channel, yes(ok))
	case r.Field != "":
		v, set := sub.Fields[r.Field]
		if s, isStr := v.(string); isStr && s == "" {
			set = false
		}
		ok := compare(v, set, r)
		return ok, fmt.Sprintf("field %q (%s) %s: %s", r.Field, shown(v, set), opText(r), yes(ok))
	case r.Subscriber != "":
		v := subscriberProperty(sub, r.Subscriber)
		ok := compare(v, v != "", r)
		return ok, fmt.Sprintf("subscriber %s (%s) %s: %s", r.Subscriber, shown(v, v != ""), opText(r), yes(ok))
	case r.Plan != "":
		m, member := sub.Plans[r.Plan]
		var ok bool
		switch r.Op {
		case tunnel.OpIsSet:
			ok = member
		case tunnel.OpNotSet:
			ok = !member
		default:
			ok = compare(m.Status, member, r)
		}
		status := "not a member"
		if member {
			status = "status " + strconv.Quote(m.Status)
		}
		return ok, fmt.Sprintf("plan %q (%s) %s: %s", r.Plan, status, opText(r), yes(ok))
	case r.LastRequest != "":
		n := sub.LastHTTPStatus
		ok := compare(float64(n), n != 0, r)
		return ok, fmt.Sprintf("last request's HTTP status (%s) %s: %s", shown(n, n != 0), opText(r), yes(ok))
	}
	return false, "empty rule: no"
}

func subscriberProperty(sub *Subscriber, name string) string {
	switch name {
	case "email":
		return sub.Email
	case "phone":
		return sub.Phone
	case "first_name":
		return sub.FirstName
	case "last_name":
		return sub.LastName
	case "timezone":
		return sub.Timezone
	}
	return ""
}

// compare applies r's operator to a stored value. The value's Go type says how
// to read the rule's value (a number field holds float64, a boolean bool, a
// string or a date text); a stored date compares as a moment in time.
func compare(v any, set bool, r *tunnel.Rule) bool {
	switch r.Op {
	case tunnel.OpIsSet:
		return set
	case tunnel.OpNotSet:
		return !set
	}
	if !set {
		return r.Op == tunnel.OpNe // an absent value differs from any value
	}
	switch x := v.(type) {
	case float64:
		want, err := tunnel.RuleValue(fields.Number, r.Value)
		if err != nil {
			return false
		}
		return order(cmpFloat(x, want.(float64)), r.Op)
	case bool:
		want, err := tunnel.RuleValue(fields.Boolean, r.Value)
		if err != nil {
			return false
		}
		eq := x == want.(bool)
		return (r.Op == tunnel.OpEq && eq) || (r.Op == tunnel.OpNe && !eq)
	case string:
		if t, ok := asTime(x); ok {
			if want, err := tunnel.RuleValue(fields.Date, r.Value); err == nil {
				if w, ok := asTime(want.(string)); ok {
					return order(t.Compare(w), r.Op)
				}
			}
		}
		want, err := tunnel.RuleValue(fields.String, r.Value)
		if err != nil {
			return false
		}
		w := strings.TrimSpace(want.(string))
		got := strings.TrimSpace(x)
		switch r.Op {
		case tunnel.OpContains:
			return strings.Contains(strings.ToLower(got), strings.ToLower(w))
		case tunnel.OpEq:
			return strings.EqualFold(got, w)
		case tunnel.OpNe:
			return !strings.EqualFold(got, w)
		}
		return false
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func order(c int, op string) bool {
	switch op {
	case tunnel.OpEq:
		return c == 0
	case tunnel.OpNe:
		return c != 0
	case tunnel.OpLt:
		return c < 0
	case tunnel.OpGt:
		return c > 0
	}
	return false
}

// asTime reads a stored date value (see package fields).
func asTime(s string) (time.Time, bool) {
	if t, err := time.Parse(fields.DateLayout, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(fields.DateTimeLayout, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func opText(r *tunnel.Rule) string {
	if r.Value == nil {
		return r.Op
	}
	return r.Op + " " + string(r.Value)
}

func shown(v any, set bool) string {
	if !set {
		return "not set"
	}
	s := fields.Format(v)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// SplitBranch picks the branch of a split block for a subscriber: weighted and
// sticky. The draw is a hash of workspace, subscriber, tunnel and block, so the
// same subscriber takes the same branch every time (a re-subscription too)
// without anything stored, while subscribers spread by the weights.
func SplitBranch(b *tunnel.Block, ws, sub, tunnelID string) int {
	total := 0
	for _, br := range b.Branches {
		if br.Weight > 0 {
			total += br.Weight
		}
	}
	if total == 0 {
		return -1
	}
	h := sha256.Sum256([]byte(ws + "\x00" + sub + "\x00" + tunnelID + "\x00" + b.ID))
	x := int(binary.BigEndian.Uint64(h[:8]) % uint64(total))
	for i, br := range b.Branches {
		if br.Weight <= 0 {
			continue
		}
		if x < br.Weight {
			return i
		}
		x -= br.Weight
	}
	return -1
}
