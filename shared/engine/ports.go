package engine

import (
	"context"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// Store is the engine's view of the database.
type Store interface {
	// Subscriber reads the subscriber with a consistent read; ErrNotFound if absent.
	Subscriber(ctx context.Context, ws, id string) (*Subscriber, error)
	// ClaimStep takes the step for this invocation until leaseUntil, unless it
	// is completed (Completed) or leased by another live invocation (Busy).
	ClaimStep(ctx context.Context, s Step, now, leaseUntil time.Time) (Claim, error)
	// PeekStep looks, without writing, whether a step that needs no claim
	// (its effect is idempotent: see claimFree) already ran: Completed with
	// its record, Busy when an invocation holds a live claim on it, else
	// Claimed with an empty Token, and the step's record is created by
	// CompleteStep only if none exists by then.
	PeekStep(ctx context.Context, s Step, now time.Time) (Claim, error)
	// StepsRecorded answers, by step id, which of the steps have a record
	// (claimed or finished); it is asked only when a finished step is
	// delivered again.
	StepsRecorded(ctx context.Context, ws, sub string, steps []Step) (map[string]bool, error)
	// ReleaseStep gives a claimed step back after a transient failure so the
	// retry need not wait for the lease to run out.
	ReleaseStep(ctx context.Context, s Step, token string) error
	// CompleteStep records the outcome if token still owns the step (an
	// empty token: if the step has no record yet). It reports false when
	// another invocation completed it.
	CompleteStep(ctx context.Context, rec StepRecord, token string) (bool, error)
	// MoveRun moves a run's pending count by m.Delta, once per step (m.By),
	// when the run is still generation m.Gen and not ended. ended reports
	// that this move brought the count to 0 and marked the generation ended
	// (see EndRun).
	MoveRun(ctx context.Context, ws, sub string, m RunMove) (ended bool, err error)
	// StartRun begins a new generation of a run, once per r.By.
	StartRun(ctx context.Context, ws, sub string, r RunStart) (gen int, err error)
	// AddStop records a STOP marker for a tunnel.
	AddStop(ctx context.Context, ws, sub, tunnel string, m StopMarker) error
	// JoinBlock records that block finished at a priority join of total action
	// blocks; release is true for the one completion that lets the held blocks go.
	JoinBlock(ctx context.Context, ws, sub, join, block string, total int, by string) (release bool, err error)
	// SaveChatMessage stores a chat message (idempotent on its id).
	SaveChatMessage(ctx context.Context, ws, sub string, m ChatMessage) error
	// PutTimer keeps a step whose Due is too far for a queue delay.
	PutTimer(ctx context.Context, o Outgoing) error
	// OpenWait records that a message block waits for the subscriber,
	// replacing the block's earlier wait: when w.Replaced, the open wait prev
	// (and only while it is still open); otherwise an ended wait or none. It
	// fails (to be retried after reading the profile again) when the stored
	// wait is not what the caller saw.
	OpenWait(ctx context.Context, ws, sub string, w Wait, prev string) error
	// EndWait ends the wait w.ID of key for step by (how: button, reply,
	// invalid, timeout). It reports false when the wait is gone, replaced, or
	// was ended by another step; by ending it again is true (a retry).
	EndWait(ctx context.Context, ws, sub, key, id, by, how string) (bool, error)
	// CountInvalid adds reply step by to the invalid answers of the open wait
	// id and answers how many there are (a retry counts once); ok is false
	// when the wait is no longer open.
	CountInvalid(ctx context.Context, ws, sub, key, id, by string) (n int, ok bool, err error)
	// EndRun marks generation gen of a run ended, once: when its pending
	// count is 0 (idle), or because a later generation replaced it
	// (superseded). It reports whether this call marked it.
	EndRun(ctx context.Context, ws, sub, tunnel, channel string, gen int, superseded bool) (bool, error)
}

// FieldWriter stores a subscriber's reply in a custom field.
type FieldWriter interface {
	// FieldType answers the type of a catalog field; ErrNotFound if absent.
	FieldType(ctx context.Context, ws, id string) (string, error)
	SetFields(ctx context.Context, ws, sub string, values map[string]any) error
}

// Queue sends steps to the queue of their kind. A step with Due in the future
// (at most MaxQueueDelay away) is delayed by the queue.
type Queue interface {
	Send(ctx context.Context, now time.Time, out []Outgoing) error
}

// MaxQueueDelay is the longest delay a queue can hold (SQS DelaySeconds).
const MaxQueueDelay = 15 * time.Minute

// Tunnels reads tunnel definitions; ErrNotFound if the tunnel does not exist.
type Tunnels interface {
	Tunnel(ctx context.Context, ws, id string) (*tunnel.Tunnel, error)
}

// Messenger delivers chat messages to the workspace's channel connector.
// ErrPermanent-wrapped errors fail the step; ErrNoChannel skips it; other
// errors are retried.
type Messenger interface {
	Deliver(ctx context.Context, ws string, m ChatDelivery) (detail map[string]any, err error)
}
