package localstack

// The template is read with gopkg.in/yaml.v3 rather than goformation: goformation
// resolves intrinsic functions itself while parsing (a !Ref to a resource
// becomes nothing usable, a parameter Ref its Default) and maps SAM resources
// onto generated structs, so the information this package needs — which
// resource a !Ref/!GetAtt points at — is gone before we see it. A direct read
// keeps the template exactly as written; the CloudFormation short tags
// (!Ref, !GetAtt, !Sub, ...) are turned into their long forms ({"Ref": x},
// {"Fn::GetAtt": [r, a]}, ...) and resolved here against what was provisioned.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// template is the part of a SAM/CloudFormation template this package uses.
type template struct {
	Parameters map[string]parameter
	// Conditions are the template's named conditions, unevaluated (Fn::If
	// and Condition evaluate them against the parameters).
	Conditions map[string]any
	Globals    map[string]any
	Resources  map[string]resourceDecl
	// order lists resource logical ids as they appear in the file, so work is
	// done (and errors reported) in a stable order.
	order []string
}

type parameter struct {
	Type       string
	Default    any
	HasDefault bool
	NoEcho     bool
}

type resourceDecl struct {
	Type       string
	Properties map[string]any
}

func readTemplate(path string) (*template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTemplate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func parseTemplate(b []byte) (*template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("empty template")
	}
	root, err := convertNode(doc.Content[0])
	if err != nil {
		return nil, err
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("template is not a mapping")
	}
	t := &template{
		Parameters: map[string]parameter{},
		Resources:  map[string]resourceDecl{},
	}
	if g, ok := top["Globals"].(map[string]any); ok {
		t.Globals = g
	}
	if c, ok := top["Conditions"].(map[string]any); ok {
		t.Conditions = c
	}
	if ps, ok := top["Parameters"].(map[string]any); ok {
		for name, v := range ps {
			m, _ := v.(map[string]any)
			p := parameter{}
			p.Type, _ = m["Type"].(string)
			p.Default, p.HasDefault = m["Default"]
			p.NoEcho = truthy(m["NoEcho"])
			t.Parameters[name] = p
		}
	}
	rs, ok := top["Resources"].(map[string]any)
	if !ok {
		return nil, errors.New("template has no Resources")
	}
	for id, v := range rs {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s is not a mapping", id)
		}
		typ, _ := m["Type"].(string)
		if typ == "" {
			return nil, fmt.Errorf("resource %s has no Type", id)
		}
		props, _ := m["Properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		t.Resources[id] = resourceDecl{Type: typ, Properties: props}
	}
	t.order = resourceOrder(doc.Content[0])
	return t, nil
}

// resourceOrder returns the keys of the top-level Resources mapping in file order.
func resourceOrder(root *yaml.Node) []string {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "Resources" {
			var ids []string
			res := root.Content[i+1]
			for j := 0; j+1 < len(res.Content); j += 2 {
				ids = append(ids, res.Content[j].Value)
			}
			return ids
		}
	}
	return nil
}

// shortTags maps CloudFormation YAML short forms to their long keys.
var shortTags = map[string]string{
	"!Ref":          "Ref",
	"!Condition":    "Condition",
	"!GetAtt":       "Fn::GetAtt",
	"!Sub":          "Fn::Sub",
	"!Join":         "Fn::Join",
	"!Select":       "Fn::Select",
	"!Split":        "Fn::Split",
	"!If":           "Fn::If",
	"!Equals":       "Fn::Equals",
	"!Not":          "Fn::Not",
	"!And":          "Fn::And",
	"!Or":           "Fn::Or",
	"!FindInMap":    "Fn::FindInMap",
	"!Base64":       "Fn::Base64",
	"!Cidr":         "Fn::Cidr",
	"!GetAZs":       "Fn::GetAZs",
	"!ImportValue":  "Fn::ImportValue",
	"!Transform":    "Fn::Transform",
	"!ToJsonString": "Fn::ToJsonString",
	"!Length":       "Fn::Length",
}

// convertNode turns a YAML node into plain Go values (map[string]any, []any,
// string, int64, float64, bool, nil) with short tags in long form.
func convertNode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return convertNode(n.Alias)
	}
	if long, ok := shortTags[n.Tag]; ok {
		var inner any
		var err error
		switch n.Kind {
		case yaml.ScalarNode:
			inner = n.Value
		default:
			plain := *n
			plain.Tag = ""
			if n.Kind == yaml.MappingNode {
				plain.Tag = "!!map"
			} else if n.Kind == yaml.SequenceNode {
				plain.Tag = "!!seq"
			}
			inner, err = convertNode(&plain)
			if err != nil {
				return nil, err
			}
		}
		if long == "Fn::GetAtt" {
			if s, ok := inner.(string); ok {
				id, attr, found := strings.Cut(s, ".")
				if !found {
					return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", n.Line, s)
				}
				inner = []any{id, attr}
			}
		}
		return map[string]any{long: inner}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				merged, err := convertNode(v)
				if err != nil {
					return nil, err
				}
				if mm, ok := merged.(map[string]any); ok {
					for mk, mv := range mm {
						if _, exists := m[mk]; !exists {
							m[mk] = mv
						}
					}
				}
				continue
			}
			val, err := convertNode(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convertNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, err
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, err
			}
			return i, nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			return f, nil
		default:
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

// noValue is what Ref AWS::NoValue resolves to: the enclosing key or list
// item is dropped.
type noValueT struct{}

var noValue = noValueT{}

// errPending marks a reference to a resource that is declared but not yet
// created; provisioning retries such a resource after the others.
var errPending = errors.New("not provisioned yet")

// refTarget is what a resource answers to Ref and Fn::GetAtt.
type refTarget interface {
	ref() (string, error)
	getAtt(attr string) (string, error)
}

// resolver evaluates intrinsic functions.
type resolver struct {
	tpl    *template
	params map[string]string // values given or defaulted
	lookup func(id string) (refTarget, error)
	// evaluating are the conditions being evaluated (a cycle is an error).
	evaluating map[string]bool
}

// resolve returns v with every intrinsic function evaluated.
func (r *resolver) resolve(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			rv, err := r.resolve(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if rv != noValue {
				out[k] = rv
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			rv, err := r.resolve(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if rv != noValue {
				out = append(out, rv)
			}
		}
		return out, nil
	}
	return v, nil
}

// str resolves v and renders it as the string CloudFormation would.
func (r *resolver) str(v any) (string, error) {
	rv, err := r.resolve(v)
	if err != nil {
		return "", err
	}
	return scalarString(rv)
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("value %v is not a scalar", v)
}

func (r *resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref: want a name, got %v", arg)
		}
		return r.ref(name)
	case "Fn::GetAtt":
		if s, ok := arg.(string); ok { // long form written as "Resource.Attribute"
			id, attr, _ := strings.Cut(s, ".")
			arg = []any{id, attr}
		}
		parts, err := r.strList(arg)
		if err != nil || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt: want [Resource, Attribute], got %v", arg)
		}
		return r.getAtt(parts[0], parts[1])
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::Join":
		args, ok := arg.([]any)
		if !ok || len(args) != 2 {
			return nil, fmt.Errorf("Fn::Join: want [delimiter, [values]]")
		}
		delim, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: delimiter must be a string")
		}
		items, err := r.strList(args[1])
		if err != nil {
			return nil, fmt.Errorf("Fn::Join: %w", err)
		}
		return strings.Join(items, delim), nil
	case "Fn::Select":
		args, ok := arg.([]any)
		if !ok || len(args) != 2 {
			return nil, fmt.Errorf("Fn::Select: want [index, [values]]")
		}
		is, err := r.str(args[0])
		if err != nil {
			return nil, err
		}
		idx, err := strconv.Atoi(is)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %q", is)
		}
		list, err := r.resolve(args[1])
		if err != nil {
			return nil, err
		}
		l, ok := list.([]any)
		if !ok || idx < 0 || idx >= len(l) {
			return nil, fmt.Errorf("Fn::Select: index %d out of range", idx)
		}
		return l[idx], nil
	case "Fn::Split":
		args, ok := arg.([]any)
		if !ok || len(args) != 2 {
			return nil, fmt.Errorf("Fn::Split: want [delimiter, string]")
		}
		delim, _ := args[0].(string)
		s, err := r.str(args[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, delim) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::If":
		args, ok := arg.([]any)
		if !ok || len(args) != 3 {
			return nil, fmt.Errorf("Fn::If: want [condition, value if true, value if false]")
		}
		name, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::If: the condition must be a name")
		}
		yes, err := r.condition(name)
		if err != nil {
			return nil, fmt.Errorf("Fn::If: %w", err)
		}
		if yes {
			return r.resolve(args[1])
		}
		return r.resolve(args[2])
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition":
		return r.truth(map[string]any{fn: arg})
	}
	return nil, fmt.Errorf("intrinsic function %s is not supported by the local stack", fn)
}

// condition evaluates the template's named condition.
func (r *resolver) condition(name string) (bool, error) {
	c, ok := r.tpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("condition %s is not in the template's Conditions", name)
	}
	if r.evaluating[name] {
		return false, fmt.Errorf("condition %s refers to itself", name) // CloudFormation refuses such a template too
	}
	if r.evaluating == nil {
		r.evaluating = map[string]bool{}
	}
	r.evaluating[name] = true
	defer delete(r.evaluating, name)
	yes, err := r.truth(c)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	return yes, nil
}

// truth evaluates a condition function: Fn::Equals, Fn::Not, Fn::And,
// Fn::Or, or a reference to a named condition ({"Condition": name}).
func (r *resolver) truth(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("want a condition function, got %v", v)
	}
	for fn, arg := range m {
		if fn == "Condition" {
			name, _ := arg.(string)
			return r.condition(name)
		}
		args, ok := arg.([]any)
		if !ok {
			return false, fmt.Errorf("%s: want a list, got %v", fn, arg)
		}
		switch fn {
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals: want two values")
			}
			a, err := r.str(args[0])
			if err != nil {
				return false, err
			}
			b, err := r.str(args[1])
			if err != nil {
				return false, err
			}
			return a == b, nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not: want one condition")
			}
			yes, err := r.truth(args[0])
			return !yes, err
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, a := range args {
				yes, err := r.truth(a)
				if err != nil {
					return false, err
				}
				if yes != and {
					return yes, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("%s is not a condition function", fn)
	}
	return false, nil
}

// strList resolves a list whose items are all scalars.
func (r *resolver) strList(v any) ([]string, error) {
	rv, err := r.resolve(v)
	if err != nil {
		return nil, err
	}
	l, ok := rv.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %v", rv)
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, err := scalarString(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// pseudo are the pseudo parameters as the local stack answers them.
var pseudo = map[string]string{
	"AWS::Region":    Region,
	"AWS::AccountId": AccountID,
	"AWS::Partition": "aws",
	"AWS::URLSuffix": "amazonaws.com",
	"AWS::StackName": "tunnels",
	"AWS::StackId":   "arn:aws:cloudformation:" + Region + ":" + AccountID + ":stack/tunnels/local",
}

func (r *resolver) ref(name string) (any, error) {
	if name == "AWS::NoValue" {
		return noValue, nil
	}
	if v, ok := pseudo[name]; ok {
		return v, nil
	}
	if _, ok := r.tpl.Parameters[name]; ok {
		v, ok := r.params[name]
		if !ok {
			return nil, fmt.Errorf("!Ref %s: parameter has no value and no Default", name)
		}
		return v, nil
	}
	if _, ok := r.tpl.Resources[name]; ok {
		t, err := r.lookup(name)
		if err != nil {
			return nil, fmt.Errorf("!Ref %s: %w", name, err)
		}
		s, err := t.ref()
		if err != nil {
			return nil, fmt.Errorf("!Ref %s: %w", name, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("!Ref %s: no such parameter or resource", name)
}

func (r *resolver) getAtt(id, attr string) (any, error) {
	if _, ok := r.tpl.Resources[id]; !ok {
		return nil, fmt.Errorf("!GetAtt %s.%s: no such resource", id, attr)
	}
	t, err := r.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("!GetAtt %s.%s: %w", id, attr, err)
	}
	s, err := t.getAtt(attr)
	if err != nil {
		return nil, fmt.Errorf("!GetAtt %s.%s: %w", id, attr, err)
	}
	return s, nil
}

// sub implements Fn::Sub: "${Name}", "${Resource.Attr}", "${!Literal}", with
// optional explicit variables.
func (r *resolver) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]string{}
	switch x := arg.(type) {
	case string:
		tmpl = x
	case []any:
		if len(x) != 2 {
			return nil, errors.New("Fn::Sub: want string or [string, {vars}]")
		}
		s, ok := x[0].(string)
		if !ok {
			return nil, errors.New("Fn::Sub: template must be a string")
		}
		tmpl = s
		m, ok := x[1].(map[string]any)
		if !ok {
			return nil, errors.New("Fn::Sub: variables must be a mapping")
		}
		for k, v := range m {
			s, err := r.str(v)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = s
		}
	default:
		return nil, errors.New("Fn::Sub: want string or [string, {vars}]")
	}
	var out bytes.Buffer
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			out.WriteString(tmpl)
			break
		}
		out.WriteString(tmpl[:i])
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub: unclosed ${ in %q", tmpl)
		}
		name := tmpl[i+2 : i+j]
		tmpl = tmpl[i+j+1:]
		if strings.HasPrefix(name, "!") {
			out.WriteString("${" + name[1:] + "}")
			continue
		}
		if v, ok := vars[name]; ok {
			out.WriteString(v)
			continue
		}
		var v any
		var err error
		if id, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			v, err = r.getAtt(id, attr)
		} else {
			v, err = r.ref(name)
		}
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
		}
		s, err := scalarString(v)
		if err != nil {
			return nil, err
		}
		out.WriteString(s)
	}
	return out.String(), nil
}

// decodeInto converts a resolved property tree into a struct through JSON,
// so struct field names are the CloudFormation property names.
func decodeInto(v any, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// cfnInt accepts a number or a numeric string, as CloudFormation does.
type cfnInt int64

func (c *cfnInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*c = cfnInt(i)
	return nil
}

// cfnBool accepts true/false or "true"/"false".
type cfnBool bool

func (c *cfnBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	switch strings.ToLower(s) {
	case "true":
		*c = true
	case "false", "", "null":
		*c = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

// idsOfType lists the logical ids of resources of the given types in file order.
func (t *template) idsOfType(types ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range t.order {
		d, ok := t.Resources[id]
		if !ok || seen[id] {
			continue
		}
		for _, typ := range types {
			if d.Type == typ {
				out = append(out, id)
				seen[id] = true
			}
		}
	}
	// Resources missing from order (cannot happen with a parsed file, but a
	// hand-built template may lack it) go last, sorted.
	var rest []string
	for id, d := range t.Resources {
		if seen[id] {
			continue
		}
		for _, typ := range types {
			if d.Type == typ {
				rest = append(rest, id)
			}
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}
