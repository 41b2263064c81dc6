package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/store"
)

// StateStore is what the subscriber-state actions need: the card's custom
// fields, sales plans, the chat's comments and unread mark.
type StateStore interface {
	GetEntity(ctx context.Context, ws, kind, id string) (store.Entity, error)
	SetFields(ctx context.Context, ws, sub string, values map[string]any) error
	GetSalesPlan(ctx context.Context, ws, id string) (store.SalesPlan, error)
	JoinSalesPlan(ctx context.Context, ws, sub string, plan store.SalesPlan, operator string) (engine.PlanMembership, error)
	ReservePlanSlots(ctx context.Context, ws, plan string, k int) (first int64, err error)
	PlanMembers(ctx context.Context, ws, plan string, subs []string) (map[string]bool, error)
	PlanOpen(ctx context.Context, ws, plan string) (map[string]int64, error)
	SaveMention(ctx context.Context, ws, sub string, m engine.ChatMessage) error
	MarkUnread(ctx context.Context, ws, sub string) (string, error)
}

// SubscriberState runs set_field, add_to_sales_plan, mention and mark_unread.
func SubscriberState(st StateStore) map[string]engine.ActionFunc {
	a := stateActions{st: st}
	return map[string]engine.ActionFunc{
		"set_field":         a.setField,
		"add_to_sales_plan": a.addToSalesPlan,
		"mention":           a.mention,
		"mark_unread":       a.markUnread,
	}
}

type stateActions struct{ st StateStore }

// setField renders the value, converts it to the field's type and writes it;
// a value that does not convert fails the step and leaves the field as it was.
func (a stateActions) setField(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	s, act := ac.Step, ac.Action
	e, err := a.st.GetEntity(ctx, s.WS, store.KindField, act.Field)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Skipped(fmt.Sprintf("field %q no longer exists", act.Field)), nil
	}
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("read field: %w", err)
	}
	fieldType := fieldTypeOf(e)
	text, err := ac.Render(ctx, act.Value)
	if err != nil {
		return engine.Outcome{}, err
	}
	value, err := fields.Convert(fieldType, text)
	if err != nil {
		return engine.Failed(fmt.Sprintf("field %q (%s): %v", act.Field, fieldType, err)), nil
	}
	if err := a.st.SetFields(ctx, s.WS, s.Sub, map[string]any{act.Field: value}); err != nil {
		return engine.Outcome{}, fmt.Errorf("set field: %w", err)
	}
	return engine.Done(map[string]any{"field": act.Field, "type": fieldType, "value": value}), nil
}

func fieldTypeOf(e store.Entity) string {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e.Doc, &f)
	return f.Type
}

// addToSalesPlan makes the subscriber a deal in the plan's first status,
// once, assigned by the plan's distribution.
func (a stateActions) addToSalesPlan(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	s, id := ac.Step, ac.Action.Plan
	if m, ok := ac.Subscriber.Plans[id]; ok {
		return engine.Done(map[string]any{"plan": id, "status": m.Status, "operator": m.Operator, "already": true}), nil
	}
	plan, err := a.st.GetSalesPlan(ctx, s.WS, id)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Skipped(fmt.Sprintf("sales plan %q no longer exists", id)), nil
	}
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("read sales plan: %w", err)
	}
	if len(plan.Statuses) == 0 {
		return engine.Failed(fmt.Sprintf("sales plan %q has no statuses", id)), nil
	}
	var state store.PlanState
	if len(plan.Operators) > 0 {
		switch plan.Distribution {
		case "evenly":
			slot, ok := ac.Prepared.(int64) // reserved with the batch's other joins
			if !ok {
				first, err := a.st.ReservePlanSlots(ctx, s.WS, id, 1)
				if err != nil {
					return engine.Outcome{}, fmt.Errorf("take a round-robin slot: %w", err)
				}
				slot = first
			}
			state.Assigned = slot
		case "fewest":
			if state.Open, err = a.st.PlanOpen(ctx, s.WS, id); err != nil {
				return engine.Outcome{}, fmt.Errorf("read open deals: %w", err)
			}
		}
	}
	m, err := a.st.JoinSalesPlan(ctx, s.WS, s.Sub, plan, ChooseOperator(plan.Distribution, plan.Operators, state))
	if errors.Is(err, store.ErrAlreadyMember) {
		return engine.Done(map[string]any{"plan": id, "already": true}), nil
	}
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("join sales plan: %w", err)
	}
	return engine.Done(map[string]any{"plan": id, "status": m.Status, "operator": m.Operator}), nil
}

// PrepareSalesPlans reserves, for the add_to_sales_plan steps of a batch,
// their round-robin slots of each evenly distributed plan in one write per
// plan: a broadcast into one plan writes its position once a batch, not
// once a subscriber, and the deals still go round the operators in turn.
// Subscribers already in the plan take no slot; a slot reserved for a step
// that then does not join (a duplicate delivery, a retry after a failure)
// is skipped, which shifts the turn by one.
func PrepareSalesPlans(st StateStore) engine.PrepareFunc {
	return func(ctx context.Context, steps []engine.PreparedStep) (map[string]any, error) {
		type planKey struct{ ws, plan string }
		groups := map[planKey][]engine.Step{}
		var order []planKey
		for _, ps := range steps {
			k := planKey{ps.Step.WS, ps.Action.Plan}
			if groups[k] == nil {
				order = append(order, k)
			}
			groups[k] = append(groups[k], ps.Step)
		}
		out := map[string]any{}
		for _, k := range order {
			plan, err := st.GetSalesPlan(ctx, k.ws, k.plan)
			if errors.Is(err, engine.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read sales plan %s: %w", k.plan, err)
			}
			if plan.Distribution != "evenly" || len(plan.Operators) == 0 {
				continue
			}
			// Only subscribers not yet in the plan take a slot (a funnel may
			// pass the same action again), each once.
			subs := make([]string, 0, len(groups[k]))
			for _, s := range groups[k] {
				subs = append(subs, s.Sub)
			}
			members, err := st.PlanMembers(ctx, k.ws, k.plan, subs)
			if err != nil {
				return nil, fmt.Errorf("read members of %s: %w", k.plan, err)
			}
			var joining []string
			taken := map[string]bool{}
			for _, s := range groups[k] {
				if !members[s.Sub] && !taken[s.Sub] {
					taken[s.Sub] = true
					joining = append(joining, s.ID)
				}
			}
			if len(joining) == 0 {
				continue
			}
			first, err := st.ReservePlanSlots(ctx, k.ws, k.plan, len(joining))
			if err != nil {
				return nil, fmt.Errorf("reserve round-robin slots of %s: %w", k.plan, err)
			}
			for i, id := range joining {
				out[id] = first + int64(i)
			}
		}
		return out, nil
	}
}

// ChooseOperator picks the operator of a new deal: none; random; evenly
// (round-robin: the deal's slot, state.Assigned); fewest (open deals,
// ties to the earlier operator in the plan's list).
func ChooseOperator(distribution string, operators []string, state store.PlanState) string {
	if len(operators) == 0 {
		return ""
	}
	switch distribution {
	case "random":
		return operators[rand.IntN(len(operators))]
	case "evenly":
		return operators[int(state.Assigned%int64(len(operators)))]
	case "fewest":
		best := operators[0]
		for _, op := range operators[1:] {
			if state.Open[op] < state.Open[best] {
				best = op
			}
		}
		return best
	}
	return ""
}

// mention adds an operator comment to the chat, filed under the operator's
// mentions. Its id and time come from the step, so a retry writes nothing new.
func (a stateActions) mention(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	s, act := ac.Step, ac.Action
	if _, err := a.st.GetEntity(ctx, s.WS, store.KindOperator, act.Operator); errors.Is(err, engine.ErrNotFound) {
		return engine.Skipped(fmt.Sprintf("operator %q no longer exists", act.Operator)), nil
	} else if err != nil {
		return engine.Outcome{}, fmt.Errorf("read operator: %w", err)
	}
	text, err := ac.Render(ctx, act.Comment)
	if err != nil {
		return engine.Outcome{}, err
	}
	if strings.TrimSpace(text) == "" {
		return engine.Skipped("the comment is empty for this subscriber"), nil
	}
	msg := engine.ChatMessage{
		ID: "c" + s.ID, Direction: "comment", Text: text, Tunnel: s.Tunnel, Block: s.Block, StepID: s.ID,
		Operator: act.Operator, CreatedAt: ac.FirstAt,
	}
	if err := a.st.SaveMention(ctx, s.WS, s.Sub, msg); err != nil {
		return engine.Outcome{}, fmt.Errorf("save mention: %w", err)
	}
	return engine.Done(map[string]any{"operator": act.Operator, "comment": text, "message_id": msg.ID}), nil
}

// markUnread moves the chat to the unread tab, if the subscriber ever wrote.
func (a stateActions) markUnread(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	if ac.Subscriber.InboundMessages == 0 {
		return engine.Skipped("the subscriber has not sent any message"), nil
	}
	id, err := a.st.MarkUnread(ctx, ac.Step.WS, ac.Step.Sub)
	if errors.Is(err, engine.ErrNotFound) {
		return engine.Skipped("the chat has no messages"), nil
	}
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("mark unread: %w", err)
	}
	return engine.Done(map[string]any{"message_id": id}), nil
}
