// Package engine runs tunnels: it turns a step message into its effect and the
// steps that follow. It is pure Go: storage, queues, the clock and the outside
// world are ports (see ports.go) implemented by adapters elsewhere.
package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"time"
)

// MessageVersion is the version of the step message on the wire. A function
// refuses versions it does not know instead of guessing.
const MessageVersion = 1

// Channels a run can use.
const (
	ChannelChat  = "chat"
	ChannelEmail = "email"
)

// Step is one unit of work: one block, or one action of an action block, of
// one run. It is the SQS message body.
type Step struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	WS      string `json:"ws"`
	Sub     string `json:"sub"`
	Tunnel  string `json:"tunnel"`
	Channel string `json:"channel"`
	Gen     int    `json:"gen"`
	Block   string `json:"block"`
	Action  int    `json:"action"`
	// At is when the step came into being: when its parent finished (or the
	// event was accepted). It is stored with the parent, so a replayed parent
	// re-creates the child with the same At; STOP compares it with its own time.
	At time.Time `json:"at"`
	// Due is set on delayed steps: not before this time. It is the tunnel's
	// time for the step and never changes once the parent set it.
	Due *time.Time `json:"due,omitempty"`
	// Wait holds back a copy of the step (a message held while an operator
	// has the chat, a duplicate's re-sent children): not before this time
	// either. See NotBefore.
	Wait *time.Time `json:"wait,omitempty"`
	// Hold carries the priority rule: the blocks held back until the action
	// sibling blocks named in it have all completed.
	Hold *Hold `json:"hold,omitempty"`
	// Next, set on the later actions of an action block, replaces the block's
	// next blocks: an earlier action took its on_error path.
	Next []string `json:"next,omitempty"`
	// Spin counts the steps run since the run last waited (a delay of at
	// least tunnel.MinWaitSeconds), START into other tunnels included. A step
	// past the processor's bound is failed instead of run: a loop that never
	// waits ends by itself (see Processor.MaxStepsWithoutWait).
	Spin int `json:"spin,omitempty"`
	// Phase says which part of a block's work this step does when the block
	// takes more than one step: a reply, a re-ask or the timeout of a message
	// that waits, the wake-up of a delay with a window. Empty: the block's
	// first (usually only) step.
	Phase string `json:"phase,omitempty"`
	// Input is what the subscriber answered, on a reply step.
	Input *Input `json:"input,omitempty"`
	// InChat is set by the processor, never sent: the step's record is the
	// chat message it sends (one item for both; see ChatRecord).
	InChat bool `json:"-"`
}

// Phases of a step (Step.Phase).
const (
	PhaseReply   = "reply"
	PhaseReask   = "reask"
	PhaseTimeout = "timeout"
	PhaseWake    = "wake"
)

// Input is a subscriber's answer to a waiting message: the wait it is for,
// and a pressed button's id or the text they sent.
type Input struct {
	Wait   string `json:"wait"`
	Button string `json:"button,omitempty"`
	Text   string `json:"text,omitempty"`
}

// Hold is the priority rule in flight: Then starts once every block of Actions
// has completed. Join names the point where the siblings split.
type Hold struct {
	Join    string   `json:"join"`
	Actions []string `json:"actions"`
	Then    []string `json:"then"`
	// Spin is the Spin of the step that split: the held blocks are its
	// children whichever sibling releases them.
	Spin int `json:"spin,omitempty"`
}

// Decode parses and checks a step message.
func Decode(body []byte) (Step, error) {
	s, ok := decodeStep(body)
	if !ok {
		var js Step // its own variable: only the slow path allocates it
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&js); err != nil {
			return Step{}, fmt.Errorf("step message: %w", err)
		}
		s = js
	}
	if s.V != MessageVersion {
		return Step{}, fmt.Errorf("step message: version %d is not supported (want %d)", s.V, MessageVersion)
	}
	switch {
	case s.ID == "", s.WS == "", s.Sub == "", s.Tunnel == "", s.Block == "":
		return Step{}, fmt.Errorf("step message: id, ws, sub, tunnel and block are required")
	case s.Channel != ChannelChat && s.Channel != ChannelEmail:
		return Step{}, fmt.Errorf("step message: unknown channel %q", s.Channel)
	case s.Gen < 1:
		return Step{}, fmt.Errorf("step message: generation must be at least 1")
	}
	return s, nil
}

// Encode is the wire form of a step: what json.Marshal writes.
func (s Step) Encode() []byte {
	if b, ok := appendStep(make([]byte, 0, encodedSize(s)), s); ok {
		return b
	}
	b, _ := json.Marshal(s) // a Step always marshals
	return b
}

// DeriveID makes a child step id from its parent's id and the edge taken, so
// a replayed parent produces the same children and their claims dedupe them:
// the first 20 bytes of SHA-256(parent, 0, edge[0], 0, edge[1]...) in
// lowercase base32 without padding (32 characters).
func DeriveID(parent string, edge ...string) string {
	var buf [256]byte // ids and edges are short: no allocation but the id
	b := append(buf[:0], parent...)
	for _, e := range edge {
		b = append(b, 0)
		b = append(b, e...)
	}
	sum := sha256.Sum256(b)
	var id [32]byte
	idEncoding.Encode(id[:], sum[:20])
	return string(id[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Kinds of steps; each has its own queue and function.
type Kind string

const (
	KindFlow    Kind = "flow"
	KindTags    Kind = "tags"
	KindEmail   Kind = "email"
	KindCRM     Kind = "crm"
	KindWebhook Kind = "webhook"
)

// Kinds lists every step kind.
var Kinds = []Kind{KindFlow, KindTags, KindEmail, KindCRM, KindWebhook}

// ActionKind is the kind (queue, function) that runs an action type.
func ActionKind(actionType string) Kind {
	switch actionType {
	case "add_tags", "remove_tags", "set_field", "add_to_sales_plan", "mention", "mark_unread":
		return KindTags
	case "create_email_subscriber", "send_email":
		return KindEmail
	case "amo_deal", "amo_contact":
		return KindCRM
	case "external_request":
		return KindWebhook
	default: // start, stop and anything unknown: the flow function records it
		return KindFlow
	}
}

// NotBefore is when the step may run: the later of Due and Wait (nil: now).
func (s Step) NotBefore() *time.Time {
	switch {
	case s.Wait == nil:
		return s.Due
	case s.Due == nil || s.Wait.After(*s.Due):
		return s.Wait
	}
	return s.Due
}

// ChatTime is the time a chat message step's message is filed under in the
// chat: when the tunnel meant it to go (Due for a delayed one, else when the
// step came into being). It is fixed by the parent, so every copy of the
// step names the same chat item.
func (s Step) ChatTime() time.Time {
	if s.Due != nil && s.Due.After(s.At) {
		return *s.Due
	}
	return s.At
}
