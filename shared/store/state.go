package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// PlanState is what a plan's distribution decides with: the round-robin
// slot of the new deal (evenly) and each operator's open deals (fewest).
type PlanState struct {
	Assigned int64
	Open     map[string]int64
}

func planPK(ws, plan string) string { return "WS#" + ws + "#PLAN#" + plan }

// planStateSK holds the plan's round-robin position (assigned) and, from
// earlier versions, an open-deals map; open deals are now counted in
// planOpenShards items, a subscriber's deals in its own one, so a broadcast
// into one plan spreads its writes instead of queueing on one item.
const (
	planStateSK    = "STATE"
	planOpenShards = 8
	openPrefix     = "op#"
)

func planOpenKey(ws, plan, sub string) map[string]types.AttributeValue {
	return planOpenShardKey(ws, plan, subscriberShard(sub))
}

func planOpenShardKey(ws, plan string, shard int) map[string]types.AttributeValue {
	return key(planPK(ws, plan)+"#OPEN#"+strconv.Itoa(shard), "OPEN")
}

// ReservePlanSlots takes k consecutive round-robin slots of a plan in one
// write and answers the first: the steps of a batch that join the plan
// share it, so the plan's position takes a write per batch, not per deal.
func (st *Store) ReservePlanSlots(ctx context.Context, ws, plan string, k int) (int64, error) {
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(planPK(ws, plan), planStateSK),
		UpdateExpression:          aws.String("ADD assigned :k"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": n(int64(k))},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, err
	}
	return num(out.Attributes, "assigned") - int64(k), nil
}

// PlanMembers answers which of the subscribers already have a deal in a plan
// (from their cards, read consistently, at most 100 at a time).
func (st *Store) PlanMembers(ctx context.Context, ws, plan string, subs []string) (map[string]bool, error) {
	seen := map[string]bool{}
	var keys []map[string]types.AttributeValue
	for _, sub := range subs {
		if !seen[sub] {
			seen[sub] = true
			keys = append(keys, key(subPK(ws, sub), profileSK))
		}
	}
	out := map[string]bool{}
	err := st.batchGet(ctx, keys, "id, #plans.#p", map[string]string{"#plans": "plans", "#p": plan}, func(it map[string]types.AttributeValue) error {
		if _, ok := it["plans"]; ok {
			out[str(it, "id")] = true
		}
		return nil
	})
	return out, err
}

// PlanOpen answers each operator's open deals in a plan.
func (st *Store) PlanOpen(ctx context.Context, ws, plan string) (map[string]int64, error) {
	keys := []map[string]types.AttributeValue{key(planPK(ws, plan), planStateSK)}
	for i := range planOpenShards {
		keys = append(keys, planOpenShardKey(ws, plan, i))
	}
	open := map[string]int64{}
	err := st.batchGet(ctx, keys, "", nil, func(it map[string]types.AttributeValue) error {
		if v, ok := it["open"]; ok { // the map of earlier versions
			var legacy map[string]int64
			if err := attributevalue.Unmarshal(v, &legacy); err != nil {
				return err
			}
			for op, c := range legacy {
				open[op] += c
			}
		}
		for name, v := range it {
			if op, ok := strings.CutPrefix(name, openPrefix); ok {
				if nv, ok := v.(*types.AttributeValueMemberN); ok {
					c, _ := strconv.ParseInt(nv.Value, 10, 64)
					open[op] += c
				}
			}
		}
		return nil
	})
	return open, err
}

// ErrAlreadyMember: the subscriber already has a deal in the plan.
var ErrAlreadyMember = errors.New("already in the sales plan")

// JoinSalesPlan adds the subscriber to a plan once, as a deal in its first
// status assigned to operator (chosen by the caller). The deal and the card
// change in one transaction that holds no plan-wide item, so joins never
// conflict with each other; the operator's open count (in the subscriber's
// shard) follows.
func (st *Store) JoinSalesPlan(ctx context.Context, ws, sub string, plan SalesPlan, operator string) (engine.PlanMembership, error) {
	for attempt := 0; ; attempt++ {
		now := st.now()
		m := engine.PlanMembership{Plan: plan.ID, Status: plan.Statuses[0], Operator: operator, CreatedAt: now, UpdatedAt: now}
		mav, err := attributevalue.Marshal(m)
		if err != nil {
			return engine.PlanMembership{}, err
		}
		member := map[string]types.AttributeValue{
			"pk": s(planPK(ws, plan.ID)), "sk": s("SUB#" + sub), "sub": s(sub), "plan": s(plan.ID),
			"status": s(m.Status), "operator": s(m.Operator), "created_at": s(ts(now)), "updated_at": s(ts(now)),
		}
		items := []types.TransactWriteItem{
			{Put: &types.Put{TableName: aws.String(st.table), Item: member, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
			{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
				UpdateExpression:          aws.String("SET #plans.#p = :m"),
				ConditionExpression:       aws.String("attribute_exists(pk)"),
				ExpressionAttributeNames:  map[string]string{"#plans": "plans", "#p": plan.ID},
				ExpressionAttributeValues: map[string]types.AttributeValue{":m": mav},
			}},
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			if m.Operator != "" && !plan.Closed(m.Status) {
				// The operator's open deals (for "fewest"), counted after the
				// join and outside its transaction, so joins share no item. A
				// crash right here, or a failed write, leaves the count one
				// short: a hint for the next choice, not worth failing a join
				// that is made.
				_, _ = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
					TableName: aws.String(st.table), Key: planOpenKey(ws, plan.ID, sub),
					UpdateExpression:          aws.String("ADD #op :one"),
					ExpressionAttributeNames:  map[string]string{"#op": openPrefix + m.Operator},
					ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1)},
				})
			}
			return m, nil
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) || len(tc.CancellationReasons) != len(items) {
			return engine.PlanMembership{}, err
		}
		switch {
		case aws.ToString(tc.CancellationReasons[0].Code) == "ConditionalCheckFailed":
			return engine.PlanMembership{}, ErrAlreadyMember
		case aws.ToString(tc.CancellationReasons[1].Code) == "ConditionalCheckFailed":
			return engine.PlanMembership{}, engine.ErrNotFound
		}
		// A conflict with a transaction on the same item: try again.
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
				TableName: aws.String(st.table), Key: planOpenKey(ws, plan.ID, sub),
				UpdateExpression:          aws.String("ADD #op :d"),
				ExpressionAttributeNames:  map[string]string{"#op": openPrefix + d.Operator},
				ExpressionAttributeValues: map[string]types.AttributeValue{":d": n(delta)},
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
