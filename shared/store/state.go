package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// The subscriber-state part of the store: custom fields, sales plans and
// their deals, mentions and the unread mark (the tags function's actions).

// SetFields writes custom field values (already converted to their types) on
// the card. Each value is its own map member, so concurrent writes of other
// fields are not lost.
func (st *Store) SetFields(ctx context.Context, ws, sub string, values map[string]any) error {
	if len(values) == 0 {
		return nil
	}
	names := map[string]string{"#fields": "fields"}
	vals := map[string]types.AttributeValue{":now": s(ts(st.now()))}
	expr := "SET updated_at = :now"
	i := 0
	for id, v := range values {
		av, err := attributevalue.Marshal(v)
		if err != nil {
			return fmt.Errorf("field %s: %w", id, err)
		}
		names[fmt.Sprintf("#f%d", i)] = id
		vals[fmt.Sprintf(":v%d", i)] = av
		expr += fmt.Sprintf(", #fields.#f%d = :v%d", i, i)
		i++
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression: aws.String(expr), ConditionExpression: aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: names, ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// SalesPlan is a sales plan of the catalog.
type SalesPlan struct {
	ID           string
	Name         string   `json:"name"`
	Statuses     []string `json:"statuses"`
	Operators    []string `json:"operators"`
	Distribution string   `json:"distribution"`
}

// Closed tells whether a status ends a deal: the plan's last status (a deal
// there no longer counts as open for the "fewest" distribution).
func (p SalesPlan) Closed(status string) bool {
	return len(p.Statuses) > 1 && status == p.Statuses[len(p.Statuses)-1]
}

// GetSalesPlan reads a sales plan, or ErrNotFound.
func (st *Store) GetSalesPlan(ctx context.Context, ws, id string) (SalesPlan, error) {
	e, err := st.GetEntity(ctx, ws, KindSalesPlan, id)
	if err != nil {
		return SalesPlan{}, err
	}
	p := SalesPlan{ID: id}
	if err := json.Unmarshal(e.Doc, &p); err != nil {
		return SalesPlan{}, fmt.Errorf("sales plan %s: %w", id, err)
	}
	return p, nil
}

// PlanState is a plan's distribution state: how many deals were assigned
// (the round-robin position) and each operator's open deals.
type PlanState struct {
	Version  int64
	Assigned int64
	Open     map[string]int64
}

func planPK(ws, plan string) string { return "WS#" + ws + "#PLAN#" + plan }

const planStateSK = "STATE"

func (st *Store) planState(ctx context.Context, ws, plan string) (PlanState, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(planPK(ws, plan), planStateSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return PlanState{}, err
	}
	ps := PlanState{Version: num(out.Item, "version"), Assigned: num(out.Item, "assigned"), Open: map[string]int64{}}
	if v, ok := out.Item["open"]; ok {
		if err := attributevalue.Unmarshal(v, &ps.Open); err != nil {
			return PlanState{}, err
		}
	}
	return ps, nil
}

// ErrAlreadyMember: the subscriber already has a deal in the plan.
var ErrAlreadyMember = errors.New("already in the sales plan")

// JoinSalesPlan adds the subscriber to a plan once, as a deal in its first
// status assigned by choose (which sees the plan's distribution state). The
// deal, the card and the state change in one transaction conditioned on the
// state's version, so concurrent joins take turns and round-robin stays even.
func (st *Store) JoinSalesPlan(ctx context.Context, ws, sub string, plan SalesPlan, choose func(PlanState) string) (engine.PlanMembership, error) {
	for attempt := 0; ; attempt++ {
		state, err := st.planState(ctx, ws, plan.ID)
		if err != nil {
			return engine.PlanMembership{}, err
		}
		now := st.now()
		m := engine.PlanMembership{Plan: plan.ID, Status: plan.Statuses[0], Operator: choose(state), CreatedAt: now, UpdatedAt: now}
		mav, err := attributevalue.Marshal(m)
		if err != nil {
			return engine.PlanMembership{}, err
		}
		member := map[string]types.AttributeValue{
			"pk": s(planPK(ws, plan.ID)), "sk": s("SUB#" + sub), "sub": s(sub), "plan": s(plan.ID),
			"status": s(m.Status), "operator": s(m.Operator), "created_at": s(ts(now)), "updated_at": s(ts(now)),
		}
		stateCond := "attribute_not_exists(version)"
		stateVals := map[string]types.AttributeValue{":next": n(state.Version + 1), ":one": n(1)}
		if state.Version > 0 {
			stateCond = "version = :ver"
			stateVals[":ver"] = n(state.Version)
		}
		stateExpr := "SET version = :next ADD assigned :one"
		stateNames := map[string]string{}
		if m.Operator != "" && !plan.Closed(m.Status) {
			if len(state.Open) == 0 {
				stateExpr = "SET version = :next, #open = :open ADD assigned :one"
				stateVals[":open"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{m.Operator: n(1)}}
			} else {
				stateExpr = "SET version = :next, #open.#op = if_not_exists(#open.#op, :zero) + :one ADD assigned :one"
				stateNames["#op"] = m.Operator
				stateVals[":zero"] = n(0)
			}
			stateNames["#open"] = "open"
		}
		update := &types.Update{
			TableName: aws.String(st.table), Key: key(planPK(ws, plan.ID), planStateSK),
			UpdateExpression: aws.String(stateExpr), ConditionExpression: aws.String(stateCond),
			ExpressionAttributeValues: stateVals,
		}
		if len(stateNames) > 0 {
			update.ExpressionAttributeNames = stateNames
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: aws.String(st.table), Item: member, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
			{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
				UpdateExpression:          aws.String("SET #plans.#p = :m"),
				ConditionExpression:       aws.String("attribute_exists(pk)"),
				ExpressionAttributeNames:  map[string]string{"#plans": "plans", "#p": plan.ID},
				ExpressionAttributeValues: map[string]types.AttributeValue{":m": mav},
			}},
			{Update: update},
		}})
		if err == nil {
			return m, nil
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) || len(tc.CancellationReasons) != 3 {
			return engine.PlanMembership{}, err
		}
		switch {
		case aws.ToString(tc.CancellationReasons[0].Code) == "ConditionalCheckFailed":
			return engine.PlanMembership{}, ErrAlreadyMember
		case aws.ToString(tc.CancellationReasons[1].Code) == "ConditionalCheckFailed":
			return engine.PlanMembership{}, engine.ErrNotFound
		}
		// Another join moved the state: choose again.
		if err := backoff(ctx, attempt); err != nil {
			return engine.PlanMembership{}, fmt.Errorf("join sales plan %s: %w", plan.ID, ErrConflict)
		}
	}
}

// Deal is a subscriber's deal in a sales plan, as the plan's list shows it.
type Deal struct {
	SubscriberID string
	Plan         string
	Status       string
	Operator     string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func decodeDeal(it map[string]types.AttributeValue) Deal {
	return Deal{
		SubscriberID: str(it, "sub"), Plan: str(it, "plan"), Status: str(it, "status"), Operator: str(it, "operator"),
		CreatedAt: parseTS(str(it, "created_at")), UpdatedAt: parseTS(str(it, "updated_at")),
	}
}

// Deals pages through a plan's deals, ordered by subscriber id.
func (st *Store) Deals(ctx context.Context, ws, plan string, p Page) ([]Deal, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(planPK(ws, plan)), ":p": s("SUB#"),
		},
		ConsistentRead: aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]Deal, 0, len(items))
	for _, it := range items {
		out = append(out, decodeDeal(it))
	}
	return out, next, nil
}

// MoveDeal moves a deal to another status of its plan, keeping the card and
// the operators' open-deal counts in step, in one transaction.
func (st *Store) MoveDeal(ctx context.Context, ws, sub string, plan SalesPlan, status string) (Deal, error) {
	for attempt := 0; ; attempt++ {
		out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(st.table), Key: key(planPK(ws, plan.ID), "SUB#"+sub), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return Deal{}, err
		}
		if len(out.Item) == 0 {
			return Deal{}, engine.ErrNotFound
		}
		d := decodeDeal(out.Item)
		if d.Status == status {
			return d, nil
		}
		now := st.now()
		items := []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(planPK(ws, plan.ID), "SUB#"+sub),
				UpdateExpression:          aws.String("SET #st = :st, updated_at = :now"),
				ConditionExpression:       aws.String("#st = :old"),
				ExpressionAttributeNames:  map[string]string{"#st": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":st": s(status), ":old": s(d.Status), ":now": s(ts(now))},
			}},
			{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
				UpdateExpression:         aws.String("SET #plans.#p.#st = :st, #plans.#p.updated_at = :now"),
				ExpressionAttributeNames: map[string]string{"#plans": "plans", "#p": plan.ID, "#st": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":st": s(status), ":now": s(ts(now)),
				},
			}},
		}
		if d.Operator != "" && plan.Closed(d.Status) != plan.Closed(status) {
			delta := int64(1)
			if plan.Closed(status) {
				delta = -1
			}
			items = append(items, types.TransactWriteItem{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(planPK(ws, plan.ID), planStateSK),
				UpdateExpression:          aws.String("SET #open.#op = if_not_exists(#open.#op, :zero) + :d ADD version :one"),
				ConditionExpression:       aws.String("attribute_exists(#open)"),
				ExpressionAttributeNames:  map[string]string{"#open": "open", "#op": d.Operator},
				ExpressionAttributeValues: map[string]types.AttributeValue{":d": n(delta), ":zero": n(0), ":one": n(1)},
			}})
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			d.Status, d.UpdatedAt = status, now
			return d, nil
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) {
			return Deal{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return Deal{}, fmt.Errorf("move deal: %w", ErrConflict)
		}
	}
}

// SaveMention stores an operator comment in the subscriber's chat and files
// it under the operator's mentions (the Inbox index), once per message id.
func (st *Store) SaveMention(ctx context.Context, ws, sub string, m engine.ChatMessage) error {
	item := chatItem(ws, sub, m)
	item["ipk"] = s(mentionPK(ws, m.Operator))
	item["isk"] = s(ts(m.CreatedAt) + "#" + m.ID)
	_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(sk)"),
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// MarkUnread puts the chat on the unread tab as of its last message, whose
// id it answers. The tab orders chats by that message's time.
func (st *Store) MarkUnread(ctx context.Context, ws, sub string) (string, error) {
	last, err := st.LastChatMessage(ctx, ws, sub)
	if err != nil {
		return "", err
	}
	if last == nil {
		return "", engine.ErrNotFound
	}
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String("SET unread = :t, ipk = :ipk, isk = :isk"),
		ConditionExpression: aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": boolean(true), ":ipk": s(unreadPK(ws)), ":isk": s(ts(last.CreatedAt) + "#" + sub),
		},
	})
	if isConditionFailed(err) {
		return "", engine.ErrNotFound
	}
	return last.ID, err
}
