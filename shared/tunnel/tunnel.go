// Package tunnel holds tunnel definitions (SPEC section 8): their wire types, a strict
// parser that reports every problem of a request body with a JSON pointer, and the
// validation run when a tunnel is saved.
package tunnel

import "encoding/json"

// Block types.
const (
	BlockMessage = "message"
	BlockAction  = "action"
	BlockDelay   = "delay"
)

// BlockTypes lists every block type.
var BlockTypes = []string{BlockMessage, BlockAction, BlockDelay, BlockCondition, BlockSplit}

// Action types (SPEC sections 3 and 4).
const (
	ActionStart                 = "start"
	ActionStop                  = "stop"
	ActionAmoDeal               = "amo_deal"
	ActionAmoContact            = "amo_contact"
	ActionAddTags               = "add_tags"
	ActionRemoveTags            = "remove_tags"
	ActionMention               = "mention"
	ActionCreateEmailSubscriber = "create_email_subscriber"
	ActionMarkUnread            = "mark_unread"
	ActionSendEmail             = "send_email"
	ActionSetField              = "set_field"
	ActionAddToSalesPlan        = "add_to_sales_plan"
	ActionExternalRequest       = "external_request"
)

// ActionTypes lists every action type.
var ActionTypes = []string{
	ActionStart, ActionStop, ActionAmoDeal, ActionAmoContact, ActionAddTags, ActionRemoveTags,
	ActionMention, ActionCreateEmailSubscriber, ActionMarkUnread, ActionSendEmail,
	ActionSetField, ActionAddToSalesPlan, ActionExternalRequest,
}

// Limits of a tunnel definition.
const (
	MaxBlocks       = 500
	MaxActions      = 50
	MaxNext         = 20
	MaxNameLen      = 200 // characters
	MaxDelaySeconds = MaxWaitSeconds
	MinTimeoutMS    = 100
	MaxTimeoutMS    = 30000
)

// Tunnel is a funnel: a graph of blocks with one entry block.
type Tunnel struct {
	Name   string  `json:"name"`
	Entry  string  `json:"entry"`
	Blocks []Block `json:"blocks"`
}

// Block is one node of the graph. Which fields apply depends on Type: message has Text
// and/or Email (and may wait for Buttons or a Reply), action has Actions, delay has
// Seconds (and may add a Window or wait Until a date), condition and split have
// Branches (a condition also Else); message, action and delay have Next.
type Block struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	Email    *EmailContent `json:"email,omitempty"`
	Buttons  []Button      `json:"buttons,omitempty"`
	Reply    *Reply        `json:"reply,omitempty"`
	Actions  []Action      `json:"actions,omitempty"`
	Seconds  int           `json:"seconds,omitempty"`
	Window   *Window       `json:"window,omitempty"`
	Until    *Until        `json:"until,omitempty"`
	Branches []Branch      `json:"branches,omitempty"`
	Else     []string      `json:"else,omitempty"`
	Next     []string      `json:"next,omitempty"`
	// UI is where the console draws the block; the engine ignores it.
	UI *Position `json:"ui,omitempty"`
}

// Position is a block's place on the console's canvas.
type Position struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// EmailContent is what a message block sends on an email run.
type EmailContent struct {
	Subject string `json:"subject,omitempty"`
	HTML    string `json:"html,omitempty"`
	Text    string `json:"text,omitempty"`
}

// NameValue is a header or query parameter of an external request.
type NameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Mapping writes the value at Path of an external request's JSON response into Field.
type Mapping struct {
	Path  string `json:"path"`
	Field string `json:"field"`
}

// Action is flat: one struct with every action type's parameters; Type says which apply
// (see Params). A flat struct keeps the wire shape of SPEC section 8 and lets the engine
// switch on Type without a decoding step per type.
type Action struct {
	Type string `json:"type"`

	Tags []string `json:"tags,omitempty"` // add_tags, remove_tags

	Field string `json:"field,omitempty"` // set_field
	Value string `json:"value,omitempty"` // set_field

	Plan string `json:"plan,omitempty"` // add_to_sales_plan

	Operator string `json:"operator,omitempty"` // mention
	Comment  string `json:"comment,omitempty"`  // mention

	EmailBot   string `json:"email_bot,omitempty"`   // create_email_subscriber, send_email
	Tunnel     string `json:"tunnel,omitempty"`      // start, stop, create_email_subscriber, send_email
	LeadSource string `json:"lead_source,omitempty"` // create_email_subscriber, send_email

	Subject          string `json:"subject,omitempty"`           // send_email
	HTML             string `json:"html,omitempty"`              // send_email
	Text             string `json:"text,omitempty"`              // send_email
	CreateSubscriber bool   `json:"create_subscriber,omitempty"` // send_email

	Integration string `json:"integration,omitempty"` // amo_contact, amo_deal
	PipelineID  int64  `json:"pipeline_id,omitempty"` // amo_deal
	StatusID    int64  `json:"status_id,omitempty"`   // amo_deal
	Name        string `json:"name,omitempty"`        // amo_deal

	Block string `json:"block,omitempty"` // start, stop

	Method          string          `json:"method,omitempty"`           // external_request
	URL             string          `json:"url,omitempty"`              // external_request
	Description     string          `json:"description,omitempty"`      // external_request
	Headers         []NameValue     `json:"headers,omitempty"`          // external_request
	Query           []NameValue     `json:"query,omitempty"`            // external_request
	Body            json.RawMessage `json:"body,omitempty"`             // external_request: a JSON value, or a JSON string sent as text
	ResponseMapping []Mapping       `json:"response_mapping,omitempty"` // external_request
	OnError         []string        `json:"on_error,omitempty"`         // external_request
	TimeoutMS       int             `json:"timeout_ms,omitempty"`       // external_request; 0 = the deployment's default
}

// Params returns the wire names of the parameters an action type takes (besides "type"),
// and false for an unknown type.
func Params(actionType string) ([]string, bool) {
	p, ok := paramsByType[actionType]
	return p, ok
}

var paramsByType = map[string][]string{
	ActionStart:                 {"tunnel", "block"},
	ActionStop:                  {"tunnel", "block"},
	ActionAmoDeal:               {"integration", "pipeline_id", "status_id", "name"},
	ActionAmoContact:            {"integration"},
	ActionAddTags:               {"tags"},
	ActionRemoveTags:            {"tags"},
	ActionMention:               {"operator", "comment"},
	ActionCreateEmailSubscriber: {"email_bot", "tunnel", "lead_source"},
	ActionMarkUnread:            {},
	ActionSendEmail:             {"email_bot", "subject", "html", "text", "create_subscriber", "tunnel", "lead_source"},
	ActionSetField:              {"field", "value"},
	ActionAddToSalesPlan:        {"plan"},
	ActionExternalRequest:       {"method", "url", "description", "headers", "query", "body", "response_mapping", "on_error", "timeout_ms"},
}

// Block returns the block with the given id.
func (t *Tunnel) Block(id string) (*Block, bool) {
	for i := range t.Blocks {
		if t.Blocks[i].ID == id {
			return &t.Blocks[i], true
		}
	}
	return nil, false
}

// Successors returns the ids a block can continue to: its next blocks, the on_error
// blocks of its external requests, its branches and else, its buttons' and reply's
// next and on_timeout, in order and without repeats.
func (b *Block) Successors() []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range b.Next {
		add(id)
	}
	for _, a := range b.Actions {
		for _, id := range a.OnError {
			add(id)
		}
	}
	for _, br := range b.Branches {
		for _, id := range br.Next {
			add(id)
		}
	}
	for _, id := range b.Else {
		add(id)
	}
	for _, bt := range b.Buttons {
		for _, id := range bt.Next {
			add(id)
		}
	}
	if r := b.Reply; r != nil {
		for _, id := range r.Next {
			add(id)
		}
		for _, id := range r.OnTimeout {
			add(id)
		}
	}
	return out
}

// Reachable returns the ids of the blocks reachable from the block `from`, itself
// included, following next and on_error. Ids that name no block are not followed. An
// unknown `from` gives an empty set. STOP uses it to find what to cancel.
func (t *Tunnel) Reachable(from string) map[string]bool {
	index := make(map[string]int, len(t.Blocks))
	for i := range t.Blocks {
		if _, dup := index[t.Blocks[i].ID]; !dup {
			index[t.Blocks[i].ID] = i
		}
	}
	seen := map[string]bool{}
	if _, ok := index[from]; !ok {
		return seen
	}
	stack := []string{from}
	seen[from] = true
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n := range t.Blocks[index[id]].Successors() {
			if _, ok := index[n]; ok && !seen[n] {
				seen[n] = true
				stack = append(stack, n)
			}
		}
	}
	return seen
}

// ValidID reports whether s is a valid client id: 1 to 64 of [A-Za-z0-9_-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// FieldError is one problem of a tunnel definition. Pointer is an RFC 6901 JSON pointer
// into the request body ("" is the whole document); Detail says what is wrong.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

func (e FieldError) Error() string {
	if e.Pointer == "" {
		return e.Detail
	}
	return e.Pointer + ": " + e.Detail
}
