package tunnel

import "encoding/json"

// Funnel-logic block types: a condition branches on what is known about the
// subscriber, a split sends a fixed share of subscribers down each branch.
const (
	BlockCondition = "condition"
	BlockSplit     = "split"
)

// Limits of funnel logic.
const (
	MaxBranches       = 20
	MaxButtons        = 10
	MaxButtonText     = 64 // characters: a Telegram inline button shows about that many
	MaxRuleDepth      = 8
	MaxRulesPerBranch = 50
	MaxWeight         = 1000000
	MaxReplyAttempts  = 3        // invalid replies before on_timeout
	MaxWaitSeconds    = 31536000 // 365 days: a delay, a reply timeout, an until date
)

// Rule operators (SPEC: condition block).
const (
	OpEq       = "eq"
	OpNe       = "ne"
	OpLt       = "lt"
	OpGt       = "gt"
	OpContains = "contains"
	OpIsSet    = "is_set"
	OpNotSet   = "not_set"
)

// Subscriber properties a rule can test with "subscriber".
var SubscriberProperties = []string{"email", "phone", "first_name", "last_name", "timezone"}

// Reply validations.
const (
	ValidateAny    = "any"
	ValidateEmail  = "email"
	ValidatePhone  = "phone"
	ValidateNumber = "number"
)

// Branch is one way out of a condition (When) or a split (Weight). Name is an
// optional label the journey and the stats show (an A/B test's "A").
type Branch struct {
	Name   string   `json:"name,omitempty"`
	When   *Rule    `json:"when,omitempty"`
	Weight int      `json:"weight,omitempty"`
	Next   []string `json:"next,omitempty"`
}

// Rule is a condition on the subscriber. Exactly one of its forms is set:
//
//   - {"all": [rules]}, {"any": [rules]}, {"not": rule}
//   - {"has_tag": "vip"}, {"lacks_tag": "vip"}
//   - {"field": "<field id>", "op", "value"}: a custom field, typed by its type
//   - {"subscriber": "email"|"phone"|"first_name"|"last_name"|"timezone", "op", "value"}
//   - {"plan": "<plan id>", "op": "is_set"|"not_set"} (membership) or
//     {"plan", "op": "eq"|"ne", "value": "<status>"} (the deal's status)
//   - {"channel": "<channel>"}: the subscriber is reached through that channel
//   - {"last_request": "http_status", "op", "value"}: the HTTP status of the
//     subscriber's last external request (not set when none ran)
type Rule struct {
	All      []Rule `json:"all,omitempty"`
	Any      []Rule `json:"any,omitempty"`
	Not      *Rule  `json:"not,omitempty"`
	HasTag   string `json:"has_tag,omitempty"`
	LacksTag string `json:"lacks_tag,omitempty"`

	Field       string `json:"field,omitempty"`
	Subscriber  string `json:"subscriber,omitempty"`
	Plan        string `json:"plan,omitempty"`
	Channel     string `json:"channel,omitempty"`
	LastRequest string `json:"last_request,omitempty"`

	Op    string          `json:"op,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Button is a reply button of a message block: pressing it resumes the run on
// Next.
type Button struct {
	ID   string   `json:"id"`
	Text string   `json:"text"`
	Next []string `json:"next,omitempty"`
}

// Reply makes a message block wait for the subscriber's answer.
type Reply struct {
	// Field, when set, receives the validated answer (converted to its type).
	Field string `json:"field,omitempty"`
	// Validate is any (default), email, phone or number. An invalid answer
	// re-asks; after MaxReplyAttempts invalid answers the run takes OnTimeout.
	Validate string `json:"validate,omitempty"`
	// TimeoutSeconds ends the wait when nothing valid came (0: wait forever).
	TimeoutSeconds int      `json:"timeout_seconds,omitempty"`
	OnTimeout      []string `json:"on_timeout,omitempty"`
	Next           []string `json:"next,omitempty"`
}

// Window keeps a delay from ending outside the allowed hours and weekdays.
type Window struct {
	// Timezone is an IANA name, or "subscriber" for the subscriber's own
	// (UTC when the subscriber has none).
	Timezone string `json:"timezone,omitempty"`
	// Hours is ["HH:MM", "HH:MM"): from inclusive, to exclusive; a "to" at or
	// before "from" runs past midnight.
	Hours []string `json:"hours,omitempty"`
	// Weekdays are mon..sun; empty means every day.
	Weekdays []string `json:"weekdays,omitempty"`
}

// Until makes a delay wait for a date: a date field of the subscriber or a
// fixed moment, moved by OffsetSeconds (negative: before it).
type Until struct {
	Field         string `json:"field,omitempty"`
	At            string `json:"at,omitempty"`
	OffsetSeconds int    `json:"offset_seconds,omitempty"`
}

// WaitsForSubscriber reports whether a message block waits for an answer (a
// button or a reply) before the run goes on.
func (b *Block) WaitsForSubscriber() bool {
	return b.Type == BlockMessage && (len(b.Buttons) > 0 || b.Reply != nil)
}

// Button returns the button with the given id.
func (b *Block) Button(id string) (*Button, bool) {
	for i := range b.Buttons {
		if b.Buttons[i].ID == id {
			return &b.Buttons[i], true
		}
	}
	return nil, false
}
