package engine

import (
	"errors"
	"time"
)

// Step outcomes, as the journey shows them.
const (
	StatusDone    = "done"
	StatusSkipped = "skipped"
	StatusFailed  = "failed"
)

// Errors the ports report.
var (
	// ErrNotFound: the thing asked for does not exist (in this workspace).
	ErrNotFound = errors.New("not found")
	// ErrPermanent marks a failure that retrying cannot fix.
	ErrPermanent = errors.New("permanent failure")
	// ErrBusy: another invocation holds a live lease on the step; retry later.
	ErrBusy = errors.New("step is in progress elsewhere")
)

// Identity is one channel identity of a subscriber.
type Identity struct {
	Channel    string `json:"channel" dynamodbav:"channel"`
	ExternalID string `json:"external_id" dynamodbav:"external_id"`
}

// Subscriber is what a step needs to know about the person it runs for.
type Subscriber struct {
	ID        string
	WS        string
	FirstName string
	LastName  string
	Email     string
	Phone     string
	Channels  []Identity
	Tags      []string
	Fields    map[string]any
	// Runs by RunKey(tunnel, channel).
	Runs map[string]Run
	// Stops by tunnel id: the STOP markers that drop pending steps.
	Stops map[string][]StopMarker
	// InboundMessages counts the messages the subscriber sent (message events).
	InboundMessages int
	// EmailAccount is the linked email account (the card's email tab), if any.
	EmailAccount *EmailAccount
	// Plans are the sales-plan memberships by plan id.
	Plans map[string]PlanMembership
	// CRM holds the amoCRM ids linked to the subscriber.
	CRM CRMLinks
	// Timezone is the subscriber's IANA time zone ("" when unknown): from
	// an event, or a custom field with the id "timezone".
	Timezone string
	// LastHTTPStatus is the status of the subscriber's last external request
	// (0: none ran, or it got no answer).
	LastHTTPStatus int
	// Waits are the message blocks waiting for the subscriber's answer, by
	// WaitKey(tunnel, block).
	Waits map[string]Wait
	// PausedUntil holds the subscriber's chat messages back while an
	// operator talks to them (zero: not paused).
	PausedUntil time.Time
	// Unreachable names the channels where the subscriber blocked the bot.
	Unreachable map[string]bool
}

// WaitKey names the wait of a message block; a block asks again only by
// replacing its earlier wait, so a subscriber has at most one per block.
func WaitKey(tunnel, block string) string { return tunnel + "#" + block }

// Wait is a message block waiting for the subscriber: a button press or a
// reply resumes the run, or the timeout step ends the wait. Ending it is one
// conditional write, so exactly one of them goes on.
type Wait struct {
	// ID is the step that asked; replies and the timeout name it.
	ID     string `dynamodbav:"id"`
	Tunnel string `dynamodbav:"tunnel"`
	Block  string `dynamodbav:"block"`
	Gen    int    `dynamodbav:"gen"`
	// At is the asking step's origin time: a STOP after it covers the wait.
	At      time.Time `dynamodbav:"at"`
	AskedAt time.Time `dynamodbav:"asked_at"`
	// Until is when the timeout fires (nil: never).
	Until *time.Time `dynamodbav:"until,omitempty"`
	// By is the step that ended the wait, How what it was (button, reply,
	// invalid, timeout); both empty while the wait is open.
	By  string `dynamodbav:"by,omitempty"`
	How string `dynamodbav:"how,omitempty"`
	// Invalid are the reply steps that brought an invalid answer.
	Invalid []string `dynamodbav:"invalid,omitempty,stringset"`
	// Replaced is set when this ask replaced a wait of the same block that
	// was still open: the ask ended it (and took over its pending count).
	Replaced bool `dynamodbav:"replaced,omitempty"`
}

// Open reports whether the wait still waits.
func (w Wait) Open() bool { return w.By == "" }

// EmailAccount is a subscriber's linked email account (SPEC 4.5). Stored on
// the profile as the map attribute email_account.
type EmailAccount struct {
	Email        string    `dynamodbav:"email" json:"email"`
	EmailBot     string    `dynamodbav:"email_bot" json:"email_bot"`
	LeadSource   string    `dynamodbav:"lead_source" json:"lead_source"`
	Tunnel       string    `dynamodbav:"tunnel" json:"tunnel"`
	Unsubscribed bool      `dynamodbav:"unsubscribed" json:"unsubscribed"`
	CreatedAt    time.Time `dynamodbav:"created_at" json:"created_at"`
}

// PlanMembership is a subscriber's deal in a sales plan. Stored on the
// profile in the map attribute plans, keyed by plan id.
type PlanMembership struct {
	Plan      string    `dynamodbav:"plan"`
	Status    string    `dynamodbav:"status"`
	Operator  string    `dynamodbav:"operator"`
	CreatedAt time.Time `dynamodbav:"created_at"`
	UpdatedAt time.Time `dynamodbav:"updated_at"`
}

// CRMLinks are the amoCRM ids on the card. Stored on the profile as
// amo_contact_id (number) and amo_lead_ids (list of numbers).
type CRMLinks struct {
	AmoContactID int64
	AmoLeadIDs   []int64
}

// RunKey names a run of a tunnel on a channel.
func RunKey(tunnel, channel string) string { return tunnel + "#" + channel }

// Run is the state of one (subscriber, tunnel, channel).
type Run struct {
	Tunnel    string    `dynamodbav:"tunnel"`
	Channel   string    `dynamodbav:"channel"`
	Gen       int       `dynamodbav:"gen"`
	Recorded  bool      `dynamodbav:"recorded"`
	Pending   int       `dynamodbav:"pending"`
	StartedAt time.Time `dynamodbav:"started_at"`
	// StartedBy is what began this generation (an event or a step id), so a
	// retried start finds its own generation instead of making another.
	StartedBy string `dynamodbav:"started_by"`
	// Moved lists the steps whose move of Pending this generation remembers
	// (MoveRun applies each once); Ended says the generation was marked
	// ended. Both are kept beside the run, not in it.
	Moved []string `dynamodbav:"-"`
	Ended bool     `dynamodbav:"-"`
}

// RunMove moves a run's pending count for a finished step, once per step.
type RunMove struct {
	Tunnel  string
	Channel string
	Gen     int
	By      string // the step's id: a repeat of the move changes nothing
	Delta   int
	// Seen is the run as the step read it, when known. If its count plus
	// Delta is 0 the run ends with this move, and the end is marked in the
	// same write (it still is, apart, when the guess was wrong).
	Seen *Run
}

// Status of a run as the client card shows it.
func (r Run) Status(stops []StopMarker) string {
	for _, m := range stops {
		if m.Block == "" && m.At.After(r.StartedAt) {
			return "stopped"
		}
	}
	if r.Pending > 0 {
		return "active"
	}
	return "done"
}

// StopMarker records a STOP: steps of the tunnel at Block or reachable from it
// (every block when Block is empty) that came into being at or before At are
// dropped. The stopping block's own remaining actions are exempt: an action
// block always runs its list to the end.
type StopMarker struct {
	At       time.Time `dynamodbav:"at"`
	Block    string    `dynamodbav:"block,omitempty"`
	ByTunnel string    `dynamodbav:"by_tunnel,omitempty"`
	ByBlock  string    `dynamodbav:"by_block,omitempty"`
	ByGen    int       `dynamodbav:"by_gen,omitempty"`
	ByChan   string    `dynamodbav:"by_channel,omitempty"`
	// Gens are the generations of the tunnel's runs, by channel, when the STOP
	// ran: steps of a later generation are a new sending and proceed.
	Gens map[string]int `dynamodbav:"gens,omitempty"`
	// StepID is the stop step that wrote the marker: a retry adds no second one.
	StepID   string `dynamodbav:"step_id,omitempty"`
	ByAction int    `dynamodbav:"by_action,omitempty"`
}

// RunStart asks to begin a new generation of a run.
type RunStart struct {
	Tunnel   string
	Channel  string
	Recorded bool
	By       string // idempotency: the event or step that starts it
	At       time.Time
	Pending  int // steps the new generation starts with (0 for an empty tunnel)
}

// Outgoing is a step on its way to a queue (or a timer, when Due is far).
type Outgoing struct {
	Kind Kind `json:"kind"`
	Step Step `json:"step"`
}

// StepRecord is a finished step: its journey entry and, for duplicates, the
// children to re-emit.
type StepRecord struct {
	Step       Step
	Type       string
	Status     string
	Reason     string
	Attempts   int
	StartedAt  time.Time
	FinishedAt time.Time
	Detail     map[string]any
	Children   []Outgoing
	// RunDelta is how the step moves its run's pending count (MoveRun), kept
	// so a delivery that finds the step recorded can finish the move.
	RunDelta int
	// Chat is the chat message the step sent, stored in the same item when
	// Step.InChat.
	Chat *ChatMessage
	// Inline are the records of the delay steps that ran within this step
	// (see Processor.inlineDelays): each its own step of the journey, kept
	// in this step's item.
	Inline []StepRecord
}

// ClaimState is what ClaimStep found.
type ClaimState int

const (
	// Claimed: this invocation owns the step now.
	Claimed ClaimState = iota
	// Completed: the step already ran; Record holds what it did.
	Completed
	// Busy: another invocation holds a live lease.
	Busy
)

// Claim is the answer of ClaimStep.
type Claim struct {
	State     ClaimState
	Token     string    // proves ownership when completing
	Attempts  int       // attempts including this one
	StartedAt time.Time // when this attempt began
	FirstAt   time.Time // when the first attempt began (stable across retries)
	Record    *StepRecord
}

// ChatMessage is one entry of a subscriber's chat.
type ChatMessage struct {
	ID        string
	Direction string // inbound, outbound, comment
	Text      string
	Tunnel    string
	Block     string
	StepID    string
	Operator  string
	// Delivery says what became of an outbound message: delivered, failed, no_channel.
	Delivery  string
	CreatedAt time.Time
}

// ChatDelivery is a chat message on its way to the channel connector.
type ChatDelivery struct {
	StepID       string
	SubscriberID string
	Channel      string
	ExternalID   string
	Tunnel       string
	Block        string
	Text         string
	// Buttons are a message block's reply buttons (funnel logic); the channel
	// shows them with the text (an inline keyboard on Telegram).
	Buttons []ChatButton
}

// ChatButton is one reply button of a message: the id a button event names
// and the label the subscriber sees.
type ChatButton struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// ErrNoChannel: the workspace has no channel connector to deliver chat messages.
var ErrNoChannel = errors.New("no channel connector is configured")

// ErrUnreachable: the subscriber cannot be reached on that channel (they
// blocked the bot). The step is skipped, not retried.
var ErrUnreachable = errors.New("the subscriber blocked the bot on this channel")
