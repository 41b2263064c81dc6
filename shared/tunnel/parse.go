package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse decodes a tunnel definition strictly. It reports malformed JSON (with line, column
// and byte offset), unknown fields at every level (an action's fields are checked against
// its type: a "plan" on an add_tags action is unknown), duplicate fields and values of the
// wrong type, each with a pointer to the offending member. It walks the document level by
// level so that every such problem is reported, not only the first.
//
// The tunnel is nil only when data is not JSON or not a JSON object. Otherwise it holds
// everything that decoded, with Blocks indexed as in the document; it is meant for Validate
// only when no errors were returned. null is accepted for any member and means "absent".
func Parse(data []byte) (*Tunnel, []FieldError) {
	if err := syntaxError(data); err != nil {
		return nil, []FieldError{*err}
	}
	d := &decoder{}
	ms, ok := d.object("", data, "a tunnel")
	if !ok {
		return nil, d.errs
	}
	t := &Tunnel{}
	for _, m := range ms {
		switch m.key {
		case "name":
			d.str(m.ptr, m.val, &t.Name)
		case "entry":
			d.str(m.ptr, m.val, &t.Entry)
		case "blocks":
			d.array(m.ptr, m.val, func(ptr string, raw json.RawMessage) {
				var b Block
				d.block(ptr, raw, &b)
				t.Blocks = append(t.Blocks, b) // also on error: indexes stay those of the document
			})
		default:
			d.unknown(m)
		}
	}
	return t, d.errs
}

// syntaxError says where data stops being JSON, or returns nil.
func syntaxError(data []byte) *FieldError {
	if len(bytes.TrimSpace(data)) == 0 {
		return &FieldError{Detail: "malformed JSON: the body is empty (a tunnel is a JSON object)"}
	}
	var v json.RawMessage
	err := json.Unmarshal(data, &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &FieldError{Detail: "malformed JSON: " + err.Error()}
	}
	// Offset counts the bytes read, the offending one included; at the end of input it is
	// the length.
	off := int(se.Offset)
	if off > 0 && off <= len(data) && !strings.Contains(se.Error(), "unexpected end") {
		off--
	}
	line, col := position(data, off)
	return &FieldError{Detail: fmt.Sprintf("malformed JSON at line %d, column %d (byte offset %d): %s", line, col, off, se.Error())}
}

// position converts a byte offset to a 1-based line and column (in characters).
func position(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

type member struct {
	key string
	ptr string
	val json.RawMessage
}

// decoder collects every problem while it walks a document already known to be valid
// JSON, so it never stops at the first.
type decoder struct {
	errs []FieldError
}

func (d *decoder) add(ptr, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
}

func (d *decoder) unknown(m member) {
	d.add(m.ptr, "unknown field %q", m.key)
}

// kind names the JSON type of a raw value for messages.
func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool { return kind(raw) == "null" }

// members returns the members of a JSON object in document order, reporting duplicates.
// what names the object in the message when raw is not an object.
func (d *decoder) members(ptr string, raw json.RawMessage, what string) ([]member, bool) {
	if k := kind(raw); k != "an object" {
		d.add(ptr, "%s must be a JSON object, not %s", what, k)
		return nil, false
	}
	return objectMembers(ptr, raw), true
}

// objectMembers lists the members of a raw JSON object (which must be valid), in order.
// Duplicate keys are kept: the caller decides.
func objectMembers(ptr string, raw json.RawMessage) []member {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return out
		}
		out = append(out, member{key: key, ptr: ptr + "/" + escapePointer(key), val: v})
	}
	return out
}

// arrayElements lists the elements of a raw JSON array (which must be valid).
func arrayElements(raw json.RawMessage) []json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '['
		return nil
	}
	var out []json.RawMessage
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return out
		}
		out = append(out, v)
	}
	return out
}

// escapePointer escapes one reference token of a JSON pointer (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// dedupe drops repeated keys, reporting each repeat at its own pointer.
func (d *decoder) dedupe(ms []member) []member {
	seen := make(map[string]bool, len(ms))
	out := ms[:0:0]
	for _, m := range ms {
		if seen[m.key] {
			d.add(m.ptr, "duplicate field %q", m.key)
			continue
		}
		seen[m.key] = true
		out = append(out, m)
	}
	return out
}

func (d *decoder) object(ptr string, raw json.RawMessage, what string) ([]member, bool) {
	ms, ok := d.members(ptr, raw, what)
	if !ok {
		return nil, false
	}
	return d.dedupe(ms), true
}

func (d *decoder) str(ptr string, raw json.RawMessage, dst *string) {
	if isNull(raw) {
		return
	}
	if k := kind(raw); k != "a string" {
		d.add(ptr, "must be a string, not %s", k)
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		d.add(ptr, "must be a string: %v", err)
	}
}

func (d *decoder) boolean(ptr string, raw json.RawMessage, dst *bool) {
	if isNull(raw) {
		return
	}
	if k := kind(raw); k != "a boolean" {
		d.add(ptr, "must be true or false, not %s", k)
		return
	}
	*dst = bytes.Equal(bytes.TrimSpace(raw), []byte("true"))
}

// integer decodes a whole number that fits in bits.
func (d *decoder) integer(ptr string, raw json.RawMessage, bits int) (int64, bool) {
	if isNull(raw) {
		return 0, false
	}
	if k := kind(raw); k != "a number" {
		d.add(ptr, "must be a whole number, not %s", k)
		return 0, false
	}
	s := string(bytes.TrimSpace(raw))
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		if strings.ContainsAny(s, ".eE") {
			d.add(ptr, "must be a whole number, not %s", s)
		} else {
			d.add(ptr, "%s is out of range", s)
		}
		return 0, false
	}
	return n, true
}

func (d *decoder) intField(ptr string, raw json.RawMessage, dst *int) {
	if n, ok := d.integer(ptr, raw, strconv.IntSize); ok {
		*dst = int(n)
	}
}

func (d *decoder) int64Field(ptr string, raw json.RawMessage, dst *int64) {
	if n, ok := d.integer(ptr, raw, 64); ok {
		*dst = n
	}
}

// array calls each for every element of a JSON array.
func (d *decoder) array(ptr string, raw json.RawMessage, each func(ptr string, raw json.RawMessage)) {
	if isNull(raw) {
		return
	}
	if k := kind(raw); k != "an array" {
		d.add(ptr, "must be an array, not %s", k)
		return
	}
	for i, el := range arrayElements(raw) {
		each(ptr+"/"+strconv.Itoa(i), el)
	}
}

func (d *decoder) strings(ptr string, raw json.RawMessage, dst *[]string) {
	d.array(ptr, raw, func(p string, el json.RawMessage) {
		var s string
		if isNull(el) {
			d.add(p, "must be a string, not null")
		} else {
			d.str(p, el, &s)
		}
		*dst = append(*dst, s)
	})
}

func (d *decoder) block(ptr string, raw json.RawMessage, b *Block) {
	ms, ok := d.object(ptr, raw, "a block")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "id":
			d.str(m.ptr, m.val, &b.ID)
		case "type":
			d.str(m.ptr, m.val, &b.Type)
		case "text":
			d.str(m.ptr, m.val, &b.Text)
		case "email":
			if !isNull(m.val) {
				b.Email = &EmailContent{}
				d.email(m.ptr, m.val, b.Email)
			}
		case "actions":
			d.array(m.ptr, m.val, func(p string, el json.RawMessage) {
				var a Action
				d.action(p, el, &a)
				b.Actions = append(b.Actions, a)
			})
		case "seconds":
			d.intField(m.ptr, m.val, &b.Seconds)
		case "next":
			d.strings(m.ptr, m.val, &b.Next)
		case "buttons":
			d.buttons(m.ptr, m.val, &b.Buttons)
		case "reply":
			if !isNull(m.val) {
				b.Reply = &Reply{}
				d.reply(m.ptr, m.val, b.Reply)
			}
		case "window":
			if !isNull(m.val) {
				b.Window = &Window{}
				d.window(m.ptr, m.val, b.Window)
			}
		case "until":
			if !isNull(m.val) {
				b.Until = &Until{}
				d.until(m.ptr, m.val, b.Until)
			}
		case "branches":
			d.branches(m.ptr, m.val, &b.Branches)
		case "else":
			d.strings(m.ptr, m.val, &b.Else)
		case "ui":
			if !isNull(m.val) {
				b.UI = &Position{}
				d.position(m.ptr, m.val, b.UI)
			}
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) email(ptr string, raw json.RawMessage, e *EmailContent) {
	ms, ok := d.object(ptr, raw, "email")
	if !ok {
		return
	}
	for _, m := range ms {
		switch m.key {
		case "subject":
			d.str(m.ptr, m.val, &e.Subject)
		case "html":
			d.str(m.ptr, m.val, &e.HTML)
		case "text":
			d.str(m.ptr, m.val, &e.Text)
		default:
			d.unknown(m)
		}
	}
}

func (d *decoder) nameValues(ptr string, raw json.RawMessage, dst *[]NameValue) {
	d.array(ptr, raw, func(p string, el json.RawMessage) {
		var nv NameValue
		if ms, ok := d.object(p, el, "a name/value pair"); ok {
			for _, m := range ms {
				switch m.key {
				case "name":
					d.str(m.ptr, m.val, &nv.Name)
				case "value":
					d.str(m.ptr, m.val, &nv.Value)
				default:
					d.unknown(m)
				}
			}
		}
		*dst = append(*dst, nv)
	})
}

func (d *decoder) mappings(ptr string, raw json.RawMessage, dst *[]Mapping) {
	d.array(ptr, raw, func(p string, el json.RawMessage) {
		var mp Mapping
		if ms, ok := d.object(p, el, "a response mapping"); ok {
			for _, m := range ms {
				switch m.key {
				case "path":
					d.str(m.ptr, m.val, &mp.Path)
				case "field":
					d.str(m.ptr, m.val, &mp.Field)
				default:
					d.unknown(m)
				}
			}
		}
		*dst = append(*dst, mp)
	})
}

// param is one action parameter: how to decode it, and whether an Action has it set
// (Validate uses that to refuse parameters that do not belong to the action's type).
type param struct {
	decode func(d *decoder, a *Action, ptr string, raw json.RawMessage)
	isSet  func(a *Action) bool
}

// paramOrder fixes the order Validate reports stray parameters in.
var paramOrder = []string{
	"tags", "field", "value", "plan", "operator", "comment", "email_bot", "tunnel", "lead_source",
	"subject", "html", "text", "create_subscriber", "integration", "pipeline_id", "status_id",
	"name", "block", "method", "url", "description", "headers", "query", "body",
	"response_mapping", "on_error", "timeout_ms",
}

func strParam(get func(a *Action) *string) param {
	return param{
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.str(ptr, raw, get(a)) },
		isSet:  func(a *Action) bool { return *get(a) != "" },
	}
}

var actionParams = map[string]param{
	"tags": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.strings(ptr, raw, &a.Tags) },
		isSet:  func(a *Action) bool { return len(a.Tags) > 0 },
	},
	"field":       strParam(func(a *Action) *string { return &a.Field }),
	"value":       strParam(func(a *Action) *string { return &a.Value }),
	"plan":        strParam(func(a *Action) *string { return &a.Plan }),
	"operator":    strParam(func(a *Action) *string { return &a.Operator }),
	"comment":     strParam(func(a *Action) *string { return &a.Comment }),
	"email_bot":   strParam(func(a *Action) *string { return &a.EmailBot }),
	"tunnel":      strParam(func(a *Action) *string { return &a.Tunnel }),
	"lead_source": strParam(func(a *Action) *string { return &a.LeadSource }),
	"subject":     strParam(func(a *Action) *string { return &a.Subject }),
	"html":        strParam(func(a *Action) *string { return &a.HTML }),
	"text":        strParam(func(a *Action) *string { return &a.Text }),
	"create_subscriber": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) {
			d.boolean(ptr, raw, &a.CreateSubscriber)
		},
		isSet: func(a *Action) bool { return a.CreateSubscriber },
	},
	"integration": strParam(func(a *Action) *string { return &a.Integration }),
	"pipeline_id": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.int64Field(ptr, raw, &a.PipelineID) },
		isSet:  func(a *Action) bool { return a.PipelineID != 0 },
	},
	"status_id": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.int64Field(ptr, raw, &a.StatusID) },
		isSet:  func(a *Action) bool { return a.StatusID != 0 },
	},
	"name":        strParam(func(a *Action) *string { return &a.Name }),
	"block":       strParam(func(a *Action) *string { return &a.Block }),
	"method":      strParam(func(a *Action) *string { return &a.Method }),
	"url":         strParam(func(a *Action) *string { return &a.URL }),
	"description": strParam(func(a *Action) *string { return &a.Description }),
	"headers": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.nameValues(ptr, raw, &a.Headers) },
		isSet:  func(a *Action) bool { return len(a.Headers) > 0 },
	},
	"query": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.nameValues(ptr, raw, &a.Query) },
		isSet:  func(a *Action) bool { return len(a.Query) > 0 },
	},
	"body": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) {
			if isNull(raw) {
				return
			}
			// Compact: whitespace of a JSON body means nothing, and a string body keeps
			// its text inside the quotes.
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				d.add(ptr, "must be JSON: %v", err)
				return
			}
			a.Body = json.RawMessage(buf.Bytes())
		},
		isSet: func(a *Action) bool { return len(a.Body) > 0 },
	},
	"response_mapping": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) {
			d.mappings(ptr, raw, &a.ResponseMapping)
		},
		isSet: func(a *Action) bool { return len(a.ResponseMapping) > 0 },
	},
	"on_error": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.strings(ptr, raw, &a.OnError) },
		isSet:  func(a *Action) bool { return len(a.OnError) > 0 },
	},
	"timeout_ms": {
		decode: func(d *decoder, a *Action, ptr string, raw json.RawMessage) { d.intField(ptr, raw, &a.TimeoutMS) },
		isSet:  func(a *Action) bool { return a.TimeoutMS != 0 },
	},
}

// action decodes one action. The type is read first so that the other members can be
// checked against the parameters of that type; with a missing or unknown type (which
// Validate reports) any action parameter is accepted.
func (d *decoder) action(ptr string, raw json.RawMessage, a *Action) {
	ms, ok := d.object(ptr, raw, "an action")
	if !ok {
		return
	}
	for _, m := range ms {
		if m.key == "type" {
			d.str(m.ptr, m.val, &a.Type)
		}
	}
	allowed, typed := paramsByType[a.Type]
	for _, m := range ms {
		if m.key == "type" {
			continue
		}
		p, isParam := actionParams[m.key]
		if !isParam {
			d.unknown(m)
			continue
		}
		if typed && !contains(allowed, m.key) {
			d.add(m.ptr, "unknown field %q for action type %s (%s)", m.key, a.Type, takes(a.Type))
			continue
		}
		p.decode(d, a, m.ptr, m.val)
	}
}

// takes describes the parameters of an action type, for messages.
func takes(actionType string) string {
	ps := paramsByType[actionType]
	if len(ps) == 0 {
		return actionType + " takes no parameters"
	}
	return actionType + " takes " + strings.Join(ps, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
