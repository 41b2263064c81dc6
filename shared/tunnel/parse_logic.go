package tunnel

import (
	"bytes"
	"encoding/json"
)

// Decoders of the funnel-logic members of a block: they follow the rest of the parser
// (every problem reported, each at its pointer; null means absent).

func (d *decoder) buttons(ptr string, raw json.RawMessage, dst *[]Button) {
	d.array(ptr, raw, func(p string, el json.RawMessage) {
		var bt Button
		if ms, ok := d.object(p, el, "a button"); ok {
			for _, m := range ms {
				switch m.key {
				case "id":
					d.str(m.ptr, m.val, &bt.ID)
				case "text":
					d.str(m.ptr, m.val, &bt.Text)
				case "next":
					d.strings(m.ptr, m.val, &bt.Next)
				default:
					d.unknown(m)
				}
			}
		}
		*dst = append(*dst, bt)
	})
}

func (d *decoder) reply(ptr string, raw json.RawMessage, r *Reply) {
	ms, ok := d.object(ptr, raw, "reply")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "field":
			d.str(m.ptr, m.val, &r.Field)
		case "validate":
			d.str(m.ptr, m.val, &r.Validate)
		case "timeout_seconds":
			d.intField(m.ptr, m.val, &r.TimeoutSeconds)
		case "on_timeout":
			d.strings(m.ptr, m.val, &r.OnTimeout)
		case "next":
			d.strings(m.ptr, m.val, &r.Next)
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) window(ptr string, raw json.RawMessage, w *Window) {
	ms, ok := d.object(ptr, raw, "window")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "timezone":
			d.str(m.ptr, m.val, &w.Timezone)
		case "hours":
			d.strings(m.ptr, m.val, &w.Hours)
		case "weekdays":
			d.strings(m.ptr, m.val, &w.Weekdays)
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) until(ptr string, raw json.RawMessage, u *Until) {
	ms, ok := d.object(ptr, raw, "until")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "field":
			d.str(m.ptr, m.val, &u.Field)
		case "at":
			d.str(m.ptr, m.val, &u.At)
		case "offset_seconds":
			d.intField(m.ptr, m.val, &u.OffsetSeconds)
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) position(ptr string, raw json.RawMessage, p *Position) {
	ms, ok := d.object(ptr, raw, "ui")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "x":
			d.number(m.ptr, m.val, &p.X)
		case "y":
			d.number(m.ptr, m.val, &p.Y)
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) number(ptr string, raw json.RawMessage, dst *float64) {
	if isNull(raw) {
		return
	}
	if k := kind(raw); k != "a number" {
		d.add(ptr, "must be a number, not %s", k)
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		d.add(ptr, "must be a number: %v", err)
	}
}

func (d *decoder) branches(ptr string, raw json.RawMessage, dst *[]Branch) {
	d.array(ptr, raw, func(p string, el json.RawMessage) {
		var br Branch
		if ms, ok := d.object(p, el, "a branch"); ok {
			for _, m := range ms {
				switch m.key {
				case "name":
					d.str(m.ptr, m.val, &br.Name)
				case "when":
					if !isNull(m.val) {
						br.When = &Rule{}
						d.rule(m.ptr, m.val, br.When, 1)
					}
				case "weight":
					d.intField(m.ptr, m.val, &br.Weight)
				case "next":
					d.strings(m.ptr, m.val, &br.Next)
				default:
					d.unknown(m)
				}
			}
		}
		*dst = append(*dst, br)
	})
}

// rule decodes a condition. Which members may be combined is Validate's business; the
// parser only refuses members no rule has and values of the wrong JSON type.
func (d *decoder) rule(ptr string, raw json.RawMessage, r *Rule, depth int) {
	ms, ok := d.object(ptr, raw, "a rule")
	if !ok {
		return
	}
	if depth > MaxRuleDepth {
		d.add(ptr, "rules nest at most %d levels deep", MaxRuleDepth)
		return
	}
	list := func(p string, val json.RawMessage, dst *[]Rule) {
		d.array(p, val, func(ep string, el json.RawMessage) {
			var sub Rule
			d.rule(ep, el, &sub, depth+1)
			*dst = append(*dst, sub)
		})
		if *dst == nil && !isNull(val) && kind(val) == "an array" {
			*dst = []Rule{} // keep "present but empty" for Validate to report
		}
	}
	for _, m := range ms {
		switch m.key {
		case "all":
			list(m.ptr, m.val, &r.All)
		case "any":
			list(m.ptr, m.val, &r.Any)
		case "not":
			if !isNull(m.val) {
				r.Not = &Rule{}
				d.rule(m.ptr, m.val, r.Not, depth+1)
			}
		case "has_tag":
			d.str(m.ptr, m.val, &r.HasTag)
		case "lacks_tag":
			d.str(m.ptr, m.val, &r.LacksTag)
		case "field":
			d.str(m.ptr, m.val, &r.Field)
		case "subscriber":
			d.str(m.ptr, m.val, &r.Subscriber)
		case "plan":
			d.str(m.ptr, m.val, &r.Plan)
		case "channel":
			d.str(m.ptr, m.val, &r.Channel)
		case "last_request":
			d.str(m.ptr, m.val, &r.LastRequest)
		case "op":
			d.str(m.ptr, m.val, &r.Op)
		case "value":
			if !isNull(m.val) {
				var buf bytes.Buffer
				if err := json.Compact(&buf, m.val); err != nil {
					d.add(m.ptr, "must be JSON: %v", err)
					continue
				}
				switch kind(m.val) {
				case "an object", "an array":
					d.add(m.ptr, "must be a string, a number or a boolean, not %s", kind(m.val))
					continue
				}
				r.Value = json.RawMessage(buf.Bytes())
			}
		default:
			d.unknown(m)
		}
	}
}
