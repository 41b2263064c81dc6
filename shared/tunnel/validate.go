package tunnel

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/render"
)

// Catalog is what a tunnel may refer to: the workspace's catalog entities, by id.
type Catalog struct {
	Tags         map[string]bool
	Fields       map[string]string // field id -> type: string, number, boolean, date
	Variables    map[string]bool
	SalesPlans   map[string]bool
	Operators    map[string]bool
	EmailBots    map[string]bool
	LeadSources  map[string]bool
	Integrations map[string]bool
	Tunnels      map[string][]string // tunnel id -> its block ids (the default tunnel included)
	// Saved holds the stored definitions of the workspace's tunnels, to find
	// START loops across tunnels (StartLoops); nil skips that check.
	Saved map[string]*Tunnel
}

// known lets render.Check look fields and variables up in the catalog.
type known Catalog

func (k known) Field(id string) (string, bool) { t, ok := k.Fields[id]; return t, ok }
func (k known) Variable(key string) bool       { return k.Variables[key] }

// Validate checks a tunnel about to be saved under id against the catalog and returns
// every problem at once, each with a JSON pointer into the definition. It expects t from
// Parse without errors, or built in code; it also refuses parameters that do not belong
// to an action's type (Parse reports those as unknown fields).
func Validate(id string, t *Tunnel, cat Catalog) []FieldError {
	if t == nil {
		return []FieldError{{Detail: "no tunnel definition"}}
	}
	v := &validator{id: id, t: t, cat: cat, known: known(cat), index: map[string]int{}}
	v.run()
	return v.errs
}

type validator struct {
	id    string
	t     *Tunnel
	cat   Catalog
	known known
	index map[string]int // block id -> index of its first block
	errs  []FieldError
}

func (v *validator) add(ptr, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
}

// text checks the placeholders of a text parameter.
func (v *validator) text(ptr, s string) {
	for _, err := range render.Check(s, v.known) {
		v.errs = append(v.errs, FieldError{Pointer: ptr, Detail: err.Error()})
	}
}

// required reports a blank text parameter and says whether it is present.
func (v *validator) required(ptr, name, s string) bool {
	if strings.TrimSpace(s) == "" {
		v.add(ptr, "%s is required", name)
		return false
	}
	return true
}

func (v *validator) run() {
	t := v.t
	for i, b := range t.Blocks {
		if _, dup := v.index[b.ID]; !dup && b.ID != "" {
			v.index[b.ID] = i
		}
	}

	switch n := utf8.RuneCountInString(t.Name); {
	case strings.TrimSpace(t.Name) == "":
		v.add("/name", "name is required")
	case n > MaxNameLen:
		v.add("/name", "name is %d characters long; at most %d are allowed", n, MaxNameLen)
	}

	switch {
	case t.Entry == "":
		v.add("/entry", "entry is required")
	case len(t.Blocks) > 0 && !v.exists(t.Entry):
		v.add("/entry", "block %q does not exist", t.Entry)
	}

	switch {
	case len(t.Blocks) == 0:
		v.add("/blocks", "a tunnel needs at least one block")
	case len(t.Blocks) > MaxBlocks:
		v.add("/blocks", "a tunnel has at most %d blocks, this one has %d", MaxBlocks, len(t.Blocks))
	}

	for i := range t.Blocks {
		v.block(i)
	}
	v.reachability()
	v.loops()
	if v.cat.Saved != nil {
		v.errs = append(v.errs, StartLoops(v.id, t, func(id string) *Tunnel { return v.cat.Saved[id] })...)
	}
}

func (v *validator) exists(id string) bool {
	_, ok := v.index[id]
	return ok
}

func (v *validator) block(i int) {
	b := &v.t.Blocks[i]
	bp := "/blocks/" + strconv.Itoa(i)

	switch first, seen := v.index[b.ID]; {
	case b.ID == "":
		v.add(bp+"/id", "id is required")
	case !ValidID(b.ID):
		v.add(bp+"/id", "id %q must be 1 to 64 letters, digits, '_' or '-'", b.ID)
	case seen && first != i:
		v.add(bp+"/id", "duplicate block id %q (first used by /blocks/%d)", b.ID, first)
	}

	switch b.Type {
	case BlockMessage:
		v.message(bp, b)
	case BlockAction:
		v.actionBlock(bp, b)
	case BlockDelay:
		v.delay(bp, b)
	case BlockCondition:
		v.condition(bp, b)
	case BlockSplit:
		v.split(bp, b)
	case "":
		v.add(bp+"/type", "type is required (message, action, delay, condition or split)")
	default:
		v.add(bp+"/type", "unknown block type %q (want message, action, delay, condition or split)", b.Type)
	}
	v.logicMembers(bp, b)

	v.refs(bp+"/next", b.Next, "next blocks")
}

// refs checks a list of block ids (next, on_error).
func (v *validator) refs(ptr string, ids []string, what string) {
	if len(ids) > MaxNext {
		v.add(ptr, "at most %d %s, got %d", MaxNext, what, len(ids))
	}
	seen := map[string]bool{}
	for k, id := range ids {
		p := ptr + "/" + strconv.Itoa(k)
		switch {
		case id == "":
			v.add(p, "block id is empty")
		case !v.exists(id):
			v.add(p, "block %q does not exist", id)
		case seen[id]:
			v.add(p, "block %q is listed twice", id)
		}
		seen[id] = true
	}
}

func (v *validator) message(bp string, b *Block) {
	if b.Text == "" && b.Email == nil {
		v.add(bp, "a message block needs text or email")
	}
	if b.Text != "" {
		if strings.TrimSpace(b.Text) == "" {
			v.add(bp+"/text", "text is blank; leave it out to send email only")
		}
		v.text(bp+"/text", b.Text)
	}
	if e := b.Email; e != nil {
		ep := bp + "/email"
		if v.required(ep+"/subject", "email subject", e.Subject) {
			v.text(ep+"/subject", e.Subject)
		}
		if v.required(ep+"/html", "email html", e.HTML) {
			v.text(ep+"/html", e.HTML)
		}
		v.text(ep+"/text", e.Text)
	}
	if len(b.Actions) > 0 {
		v.add(bp+"/actions", "a message block has no actions; use an action block")
	}
	if b.Seconds != 0 {
		v.add(bp+"/seconds", "a message block has no seconds; use a delay block")
	}
	v.waits(bp, b)
}

func (v *validator) actionBlock(bp string, b *Block) {
	switch {
	case len(b.Actions) == 0:
		v.add(bp+"/actions", "an action block needs at least one action")
	case len(b.Actions) > MaxActions:
		v.add(bp+"/actions", "an action block has at most %d actions, this one has %d", MaxActions, len(b.Actions))
	}
	if b.Text != "" {
		v.add(bp+"/text", "an action block has no text; use a message block")
	}
	if b.Email != nil {
		v.add(bp+"/email", "an action block has no email; use a message block")
	}
	if b.Seconds != 0 {
		v.add(bp+"/seconds", "an action block has no seconds; use a delay block")
	}
	for k := range b.Actions {
		v.action(bp+"/actions/"+strconv.Itoa(k), &b.Actions[k])
	}
}

func (v *validator) delay(bp string, b *Block) {
	switch {
	case b.Seconds == 0 && b.Window == nil && b.Until == nil:
		v.add(bp+"/seconds", "seconds is required (1 to %d, 365 days), unless the delay has a window or until", MaxDelaySeconds)
	case b.Seconds < 0 || b.Seconds > MaxDelaySeconds:
		v.add(bp+"/seconds", "seconds must be between 1 and %d (365 days), got %d", MaxDelaySeconds, b.Seconds)
	}
	v.delayTiming(bp, b)
	if b.Text != "" {
		v.add(bp+"/text", "a delay block has no text; use a message block")
	}
	if b.Email != nil {
		v.add(bp+"/email", "a delay block has no email; use a message block")
	}
	if len(b.Actions) > 0 {
		v.add(bp+"/actions", "a delay block has no actions; use an action block")
	}
}

func (v *validator) action(ap string, a *Action) {
	switch {
	case a.Type == "":
		v.add(ap+"/type", "type is required")
		return
	case !contains(ActionTypes, a.Type):
		v.add(ap+"/type", "unknown action type %q", a.Type)
		return
	}
	allowed := paramsByType[a.Type]
	for _, name := range paramOrder {
		if !contains(allowed, name) && actionParams[name].isSet(a) {
			v.add(ap+"/"+name, "%q is not a parameter of %s (%s)", name, a.Type, takes(a.Type))
		}
	}

	switch a.Type {
	case ActionAddTags, ActionRemoveTags:
		if len(a.Tags) == 0 {
			v.add(ap+"/tags", "tags must list at least one tag")
		}
		for k, tag := range a.Tags {
			p := ap + "/tags/" + strconv.Itoa(k)
			if tag == "" {
				v.add(p, "tag id is empty")
			} else if !v.cat.Tags[tag] {
				v.add(p, "unknown tag %q", tag)
			}
		}
	case ActionSetField:
		if v.required(ap+"/field", "field", a.Field) {
			if _, ok := v.cat.Fields[a.Field]; !ok {
				v.add(ap+"/field", "unknown field %q", a.Field)
			}
		}
		v.text(ap+"/value", a.Value)
	case ActionAddToSalesPlan:
		if v.required(ap+"/plan", "plan", a.Plan) && !v.cat.SalesPlans[a.Plan] {
			v.add(ap+"/plan", "unknown sales plan %q", a.Plan)
		}
	case ActionMention:
		if v.required(ap+"/operator", "operator", a.Operator) && !v.cat.Operators[a.Operator] {
			v.add(ap+"/operator", "unknown operator %q", a.Operator)
		}
		if v.required(ap+"/comment", "comment", a.Comment) {
			v.text(ap+"/comment", a.Comment)
		}
	case ActionCreateEmailSubscriber:
		v.emailBot(ap, a)
		v.optionalTunnel(ap, a)
		v.leadSource(ap, a)
	case ActionSendEmail:
		v.emailBot(ap, a)
		if v.required(ap+"/subject", "subject", a.Subject) {
			v.text(ap+"/subject", a.Subject)
		}
		if v.required(ap+"/html", "html", a.HTML) {
			v.text(ap+"/html", a.HTML)
		}
		v.text(ap+"/text", a.Text)
		v.optionalTunnel(ap, a)
		v.leadSource(ap, a)
	case ActionAmoContact:
		v.integration(ap, a)
	case ActionAmoDeal:
		v.integration(ap, a)
		v.positive(ap+"/pipeline_id", "pipeline_id", a.PipelineID)
		v.positive(ap+"/status_id", "status_id", a.StatusID)
		v.text(ap+"/name", a.Name)
	case ActionStart:
		if v.required(ap+"/tunnel", "tunnel", a.Tunnel) {
			v.tunnelBlock(ap, a.Tunnel, a.Block)
		}
	case ActionStop:
		v.tunnelBlock(ap, a.Tunnel, a.Block)
	case ActionMarkUnread:
		// no parameters: the stray-parameter check above is all there is
	case ActionExternalRequest:
		v.externalRequest(ap, a)
	}
}

func (v *validator) emailBot(ap string, a *Action) {
	if v.required(ap+"/email_bot", "email_bot", a.EmailBot) && !v.cat.EmailBots[a.EmailBot] {
		v.add(ap+"/email_bot", "unknown email bot %q", a.EmailBot)
	}
}

func (v *validator) optionalTunnel(ap string, a *Action) {
	if a.Tunnel != "" && !v.tunnelExists(a.Tunnel) {
		v.add(ap+"/tunnel", "unknown tunnel %q", a.Tunnel)
	}
}

func (v *validator) leadSource(ap string, a *Action) {
	if a.LeadSource != "" && !v.cat.LeadSources[a.LeadSource] {
		v.add(ap+"/lead_source", "unknown lead source %q", a.LeadSource)
	}
}

func (v *validator) integration(ap string, a *Action) {
	if v.required(ap+"/integration", "integration", a.Integration) && !v.cat.Integrations[a.Integration] {
		v.add(ap+"/integration", "unknown integration %q", a.Integration)
	}
}

func (v *validator) positive(ptr, name string, n int64) {
	if n == 0 {
		v.add(ptr, "%s is required", name)
	} else if n < 0 {
		v.add(ptr, "%s must be a positive number, got %d", name, n)
	}
}

// tunnelExists: the tunnel being saved always exists (it may be new).
func (v *validator) tunnelExists(id string) bool {
	if id == v.id && id != "" {
		return true
	}
	_, ok := v.cat.Tunnels[id]
	return ok
}

// tunnelBlock checks a start/stop target. An empty tunnel is the one being saved; for it
// the blocks are those of t, not of the stored version.
func (v *validator) tunnelBlock(ap, tunnel, block string) {
	own := tunnel == "" || tunnel == v.id
	if !own && !v.tunnelExists(tunnel) {
		v.add(ap+"/tunnel", "unknown tunnel %q", tunnel)
		return
	}
	if block == "" {
		return
	}
	if own {
		if !v.exists(block) {
			v.add(ap+"/block", "block %q does not exist", block)
		}
		return
	}
	if !contains(v.cat.Tunnels[tunnel], block) {
		v.add(ap+"/block", "block %q does not exist in tunnel %q", block, tunnel)
	}
}

// Headers the deployment sets itself: letting a definition set them would break framing,
// routing (Host) or the step's idempotency key.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"upgrade": true, "te": true, "trailer": true, "keep-alive": true, "proxy-connection": true,
	"idempotency-key": true,
}

// ValidateExternalRequest checks an external request on its own, as the preview and
// check endpoints receive it: everything Validate checks of an external_request action
// (method, url, headers, query, body, placeholders, response mapping, timeout) except its
// on_error blocks, which only mean something inside a tunnel. Pointers are relative to
// the request ("/url", "/headers/0/name"); the caller prefixes where the request sits.
func ValidateExternalRequest(a Action, cat Catalog) []FieldError {
	v := &validator{cat: cat, known: known(cat), index: map[string]int{}}
	a.OnError = nil
	v.externalRequest("", &a)
	return v.errs
}

func (v *validator) externalRequest(ap string, a *Action) {
	switch a.Method {
	case "GET", "POST", "PUT":
	case "":
		v.add(ap+"/method", "method is required (GET, POST or PUT)")
	default:
		v.add(ap+"/method", "method must be GET, POST or PUT, not %q", a.Method)
	}

	if v.required(ap+"/url", "url", a.URL) {
		if msg := checkURL(a.URL); msg != "" {
			v.add(ap+"/url", "%s", msg)
		}
		v.text(ap+"/url", a.URL)
	}

	for k, h := range a.Headers {
		hp := ap + "/headers/" + strconv.Itoa(k)
		switch {
		case h.Name == "":
			v.add(hp+"/name", "header name is required")
		case !ValidHeaderName(h.Name):
			v.add(hp+"/name", "%q is not a valid HTTP header name", h.Name)
		case reservedHeaders[strings.ToLower(h.Name)]:
			v.add(hp+"/name", "header %q is set by Tunnels and cannot be set here", h.Name)
		}
		if lit := render.Literal(h.Value); strings.ContainsAny(lit, "\r\n") {
			v.add(hp+"/value", "header value must not contain line breaks")
		} else if hasControl(lit) {
			v.add(hp+"/value", "header value must not contain control characters")
		}
		v.text(hp+"/value", h.Value)
	}

	for k, q := range a.Query {
		qp := ap + "/query/" + strconv.Itoa(k)
		switch {
		case q.Name == "":
			v.add(qp+"/name", "query parameter name is required")
		case render.HasPlaceholders(q.Name):
			v.add(qp+"/name", "placeholders are not allowed in query parameter names")
		}
		v.text(qp+"/value", q.Value)
	}

	if len(a.Body) > 0 {
		v.body(ap+"/body", a)
	}

	for k, m := range a.ResponseMapping {
		mp := ap + "/response_mapping/" + strconv.Itoa(k)
		if v.required(mp+"/path", "path", m.Path) && !validPath(m.Path) {
			v.add(mp+"/path", "path %q must be keys or indexes separated by dots, like data.items.0.id", m.Path)
		}
		if v.required(mp+"/field", "field", m.Field) {
			if _, ok := v.cat.Fields[m.Field]; !ok {
				v.add(mp+"/field", "unknown field %q", m.Field)
			}
		}
	}

	v.refs(ap+"/on_error", a.OnError, "on_error blocks")

	if a.TimeoutMS != 0 && (a.TimeoutMS < MinTimeoutMS || a.TimeoutMS > MaxTimeoutMS) {
		v.add(ap+"/timeout_ms", "timeout_ms must be between %d and %d (or 0 for the default), got %d", MinTimeoutMS, MaxTimeoutMS, a.TimeoutMS)
	}
}

// body checks an external request body: a JSON string is a text body, any other JSON
// value has its string leaves rendered.
func (v *validator) body(ptr string, a *Action) {
	if a.Method == "GET" {
		v.add(ptr, "a GET request has no body; use POST or PUT")
	}
	if !json.Valid(a.Body) {
		v.add(ptr, "body must be a JSON value, or a JSON string for a text body")
		return
	}
	walkStrings(ptr, a.Body, v.text)
}

// walkStrings calls fn for every string leaf of a JSON value, with its pointer, in
// document order (object keys are not leaves: they are sent as written).
func walkStrings(ptr string, raw json.RawMessage, fn func(ptr, s string)) {
	switch kind(raw) {
	case "a string":
		var s string
		if json.Unmarshal(raw, &s) == nil {
			fn(ptr, s)
		}
	case "an object":
		for _, m := range objectMembers(ptr, raw) {
			walkStrings(m.ptr, m.val, fn)
		}
	case "an array":
		for i, el := range arrayElements(raw) {
			walkStrings(ptr+"/"+strconv.Itoa(i), el, fn)
		}
	}
}

// checkURL says what is wrong with an external request URL, or returns "". Placeholders
// are opaque, but the scheme and the host must be literal: the address a request goes to
// is fixed when the tunnel is saved (and checked against the egress policy when it runs),
// never chosen by subscriber data.
func checkURL(raw string) string {
	if strings.HasPrefix(strings.TrimSpace(raw), "{{") {
		return "url must start with a literal http:// or https:// address, not a placeholder"
	}
	lower := strings.ToLower(raw)
	var schemeLen int
	switch {
	case strings.HasPrefix(lower, "https://"):
		schemeLen = len("https://")
	case strings.HasPrefix(lower, "http://"):
		schemeLen = len("http://")
	default:
		return "url must be an absolute http:// or https:// address"
	}
	authEnd := len(raw)
	if i := strings.IndexAny(raw[schemeLen:], "/?#"); i >= 0 {
		authEnd = schemeLen + i
	}
	if strings.Contains(raw[:authEnd], "{{") {
		return "the host of the url must be literal; placeholders may only follow it (in the path or query)"
	}
	if raw[schemeLen:authEnd] == "" {
		return "url has no host"
	}
	lit := render.Literal(raw)
	for _, r := range lit {
		if r <= ' ' || r == 0x7f {
			return "url must not contain spaces or control characters (encode them, e.g. %20)"
		}
	}
	// Stand a plain token in for each placeholder and let net/url judge the rest.
	ps, err := render.Parse(raw)
	if err != nil {
		return "" // render.Check reports the syntax error
	}
	var b strings.Builder
	last := 0
	for _, p := range ps {
		b.WriteString(raw[last:p.Start])
		b.WriteString("x")
		last = p.End
	}
	b.WriteString(raw[last:])
	u, err := url.Parse(b.String())
	if err != nil {
		return "url is not valid: " + strings.TrimPrefix(err.Error(), "parse ")
	}
	if u.Hostname() == "" {
		return "url has no host"
	}
	return ""
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// validPath reports whether p is a dot/index path: non-empty segments separated by dots,
// without the wildcard, modifier, pipe or escape characters of gjson paths, so a path
// means the same to every reader.
func validPath(p string) bool {
	for _, seg := range strings.Split(p, ".") {
		if strings.TrimSpace(seg) == "" || strings.ContainsAny(seg, "*?#@|\\!") || hasControl(seg) {
			return false
		}
	}
	return true
}

// edge is a way from one block to another, with the pointer of what creates it.
type edge struct {
	to  int
	ptr string
}

// edges returns the ways out of block i that exist: next, on_error, and start actions
// aimed at the tunnel being saved (they run it again from a block of its own).
func (v *validator) edges(i int) []edge {
	b := &v.t.Blocks[i]
	bp := "/blocks/" + strconv.Itoa(i)
	var out []edge
	for k, id := range b.Next {
		if j, ok := v.index[id]; ok {
			out = append(out, edge{j, bp + "/next/" + strconv.Itoa(k)})
		}
	}
	list := func(ptr string, ids []string) {
		for k, id := range ids {
			if j, ok := v.index[id]; ok {
				out = append(out, edge{j, ptr + "/" + strconv.Itoa(k)})
			}
		}
	}
	for k := range b.Branches {
		list(bp+"/branches/"+strconv.Itoa(k)+"/next", b.Branches[k].Next)
	}
	list(bp+"/else", b.Else)
	for k := range b.Buttons {
		list(bp+"/buttons/"+strconv.Itoa(k)+"/next", b.Buttons[k].Next)
	}
	if r := b.Reply; r != nil {
		list(bp+"/reply/next", r.Next)
		list(bp+"/reply/on_timeout", r.OnTimeout)
	}
	for a := range b.Actions {
		act := &b.Actions[a]
		ap := bp + "/actions/" + strconv.Itoa(a)
		for k, id := range act.OnError {
			if j, ok := v.index[id]; ok {
				out = append(out, edge{j, ap + "/on_error/" + strconv.Itoa(k)})
			}
		}
		if act.Type == ActionStart && act.Tunnel != "" && act.Tunnel == v.id {
			target, ptr := v.t.Entry, ap+"/tunnel"
			if act.Block != "" {
				target, ptr = act.Block, ap+"/block"
			}
			if j, ok := v.index[target]; ok {
				out = append(out, edge{j, ptr})
			}
		}
	}
	return out
}

// reachability reports blocks no run can reach from the entry block.
func (v *validator) reachability() {
	entry, ok := v.index[v.t.Entry]
	if !ok {
		return // /entry is already reported; every block would be unreachable
	}
	seen := make([]bool, len(v.t.Blocks))
	seen[entry] = true
	stack := []int{entry}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range v.edges(i) {
			if !seen[e.to] {
				seen[e.to] = true
				stack = append(stack, e.to)
			}
		}
	}
	for i, b := range v.t.Blocks {
		if first, ok := v.index[b.ID]; !seen[i] && ok && first == i {
			v.add("/blocks/"+strconv.Itoa(i)+"/id", "block %q is not reachable from the entry block", b.ID)
		}
	}
}

// loops reports cycles made only of message and action blocks: with no delay on the way a
// run would go round them forever, as fast as the queues deliver.
func (v *validator) loops() {
	const (
		white = iota
		grey
		black
	)
	n := len(v.t.Blocks)
	color := make([]int, n)
	var path []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		path = append(path, i)
		var out []edge
		if !v.t.Blocks[i].WaitsForSubscriber() {
			out = v.edges(i) // a message that waits goes on only once the subscriber answered
		}
		for _, e := range out {
			if v.t.Blocks[e.to].Type == BlockDelay {
				continue
			}
			switch color[e.to] {
			case white:
				visit(e.to)
			case grey:
				var ids []string
				for k := len(path) - 1; k >= 0; k-- {
					if path[k] == e.to {
						for _, j := range path[k:] {
							ids = append(ids, strconv.Quote(v.t.Blocks[j].ID))
						}
						break
					}
				}
				ids = append(ids, strconv.Quote(v.t.Blocks[e.to].ID))
				v.add(e.ptr, "this closes a loop with no delay block (%s), which would repeat forever; put a delay block in it", strings.Join(ids, " -> "))
			}
		}
		path = path[:len(path)-1]
		color[i] = black
	}
	for i := range v.t.Blocks {
		if first, ok := v.index[v.t.Blocks[i].ID]; ok && first == i && color[i] == white && v.t.Blocks[i].Type != BlockDelay {
			visit(i)
		}
	}
}
