package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

var _ engine.Store = (*Store)(nil)

const (
	runPrefix  = "run#"
	stopPrefix = "stops#"
	waitPrefix = "wait#"
	// maxStops bounds the STOP markers kept per tunnel on a subscriber.
	maxStops = 50
	// stepInProgress is a claimed step that has not finished.
	stepInProgress = "in_progress"
)

// Subscriber reads a subscriber's profile with a consistent read.
func (st *Store) Subscriber(ctx context.Context, ws, id string) (*engine.Subscriber, error) {
	item, err := st.profile(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	return decodeSubscriber(ws, item)
}

func (st *Store) profile(ctx context.Context, ws, id string) (map[string]types.AttributeValue, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, id), profileSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, engine.ErrNotFound
	}
	return out.Item, nil
}

func decodeSubscriber(ws string, item map[string]types.AttributeValue) (*engine.Subscriber, error) {
	sub := &engine.Subscriber{
		ID: str(item, "id"), WS: ws,
		FirstName: str(item, "first_name"), LastName: str(item, "last_name"),
		Email: str(item, "email"), Phone: str(item, "phone"),
		InboundMessages: int(num(item, "inbound")),
		Runs:            map[string]engine.Run{}, Stops: map[string][]engine.StopMarker{},
		Fields: map[string]any{},
	}
	// Channel identities are a string set of "channel:external_id"; the one
	// the subscriber first came through is primary and comes first.
	primary := str(item, "primary_channel")
	if v, ok := item["channels"].(*types.AttributeValueMemberSS); ok {
		ids := append([]string(nil), v.Value...)
		sort.Slice(ids, func(i, j int) bool {
			if (ids[i] == primary) != (ids[j] == primary) {
				return ids[i] == primary
			}
			return ids[i] < ids[j]
		})
		for _, id := range ids {
			ch, ext, _ := strings.Cut(id, ":")
			sub.Channels = append(sub.Channels, engine.Identity{Channel: ch, ExternalID: ext})
		}
	}
	if v, ok := item["tags"].(*types.AttributeValueMemberSS); ok {
		sub.Tags = append([]string(nil), v.Value...)
		sort.Strings(sub.Tags)
	}
	if v, ok := item["fields"]; ok {
		if err := attributevalue.Unmarshal(v, &sub.Fields); err != nil {
			return nil, fmt.Errorf("subscriber %s fields: %w", sub.ID, err)
		}
	}
	if v, ok := item["email_account"]; ok {
		sub.EmailAccount = &engine.EmailAccount{}
		if err := attributevalue.Unmarshal(v, sub.EmailAccount); err != nil {
			return nil, fmt.Errorf("subscriber %s email account: %w", sub.ID, err)
		}
	}
	if v, ok := item["plans"]; ok {
		if err := attributevalue.Unmarshal(v, &sub.Plans); err != nil {
			return nil, fmt.Errorf("subscriber %s plans: %w", sub.ID, err)
		}
	}
	sub.CRM.AmoContactID = num(item, "amo_contact_id")
	if v, ok := item["amo_lead_ids"]; ok {
		if err := attributevalue.Unmarshal(v, &sub.CRM.AmoLeadIDs); err != nil {
			return nil, fmt.Errorf("subscriber %s amo lead ids: %w", sub.ID, err)
		}
	}
	for name, v := range item {
		switch {
		case strings.HasPrefix(name, runPrefix):
			var r engine.Run
			if err := attributevalue.Unmarshal(v, &r); err != nil {
				return nil, fmt.Errorf("subscriber %s %s: %w", sub.ID, name, err)
			}
			sub.Runs[strings.TrimPrefix(name, runPrefix)] = r
		case strings.HasPrefix(name, stopPrefix):
			var ms []engine.StopMarker
			if err := attributevalue.Unmarshal(v, &ms); err != nil {
				return nil, fmt.Errorf("subscriber %s %s: %w", sub.ID, name, err)
			}
			sub.Stops[strings.TrimPrefix(name, stopPrefix)] = ms
		case strings.HasPrefix(name, movedPrefix), strings.HasPrefix(name, "ended#"):
			// read below, once the runs are known
		case strings.HasPrefix(name, waitPrefix):
			var w engine.Wait
			if err := attributevalue.Unmarshal(v, &w); err != nil {
				return nil, fmt.Errorf("subscriber %s %s: %w", sub.ID, name, err)
			}
			if sub.Waits == nil {
				sub.Waits = map[string]engine.Wait{}
			}
			sub.Waits[strings.TrimPrefix(name, waitPrefix)] = w
		}
	}
	for k, r := range sub.Runs {
		if v, ok := item[movedPrefix+k].(*types.AttributeValueMemberSS); ok {
			r.Moved = v.Value
		}
		if v, ok := item["ended#"+k].(*types.AttributeValueMemberNS); ok {
			r.Ended = slices.Contains(v.Value, strconv.Itoa(r.Gen))
		}
		sub.Runs[k] = r
	}
	sub.Timezone = str(item, "timezone")
	if tz, ok := sub.Fields["timezone"].(string); ok && sub.Timezone == "" {
		sub.Timezone = tz // a custom field "timezone" (set_field) when no event said
	}
	sub.LastHTTPStatus = int(num(item, "last_http_status"))
	if v := str(item, "paused_until"); v != "" {
		sub.PausedUntil = parseTS(v)
	}
	if v, ok := item["unreachable"].(*types.AttributeValueMemberSS); ok {
		sub.Unreachable = map[string]bool{}
		for _, ch := range v.Value {
			sub.Unreachable[ch] = true
		}
	}
	return sub, nil
}

func stepSK(id string) string { return "STEP#" + id }

// recordKey is where a step's record lives: its own item, or, for a step
// that sends a chat message (Step.InChat), that message's chat item, so the
// message and the record are one write.
func recordKey(step engine.Step) map[string]types.AttributeValue {
	if step.InChat {
		return key(subPK(step.WS, step.Sub), chatSK(step.ChatTime(), chatID(step.ID)))
	}
	return key(subPK(step.WS, step.Sub), stepSK(step.ID))
}

// chatID is the chat message id of a step's message.
func chatID(stepID string) string { return "m" + stepID }

// stepIDOf answers the step id of a record item (either kind of key).
func stepIDOf(item map[string]types.AttributeValue) string {
	sk := str(item, "sk")
	if id, ok := strings.CutPrefix(sk, "STEP#"); ok {
		return id
	}
	return strings.TrimPrefix(sk[strings.LastIndex(sk, "#")+1:], "m")
}

// ClaimStep takes a step: a new one, or one whose lease ran out.
func (st *Store) ClaimStep(ctx context.Context, step engine.Step, now, leaseUntil time.Time) (engine.Claim, error) {
	token := newToken()
	expr := "SET #st = :prog, #tok = :tok, lease_until = :lease, started_at = :now, " +
		"first_at = if_not_exists(first_at, :now), attempts = if_not_exists(attempts, :zero) + :one"
	vals := map[string]types.AttributeValue{
		":prog": s(stepInProgress), ":tok": s(token), ":lease": n(leaseUntil.UnixMilli()),
		":now": s(ts(now)), ":nowms": n(now.UnixMilli()), ":zero": n(0), ":one": n(1),
	}
	if !step.InChat { // a chat message is kept as long as the chat, not the journey
		expr += ", expires_at = :exp"
		vals[":exp"] = st.ttl(now)
	}
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: recordKey(step),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR (#st = :prog AND lease_until < :nowms)"),
		ExpressionAttributeNames:  map[string]string{"#st": "status", "#tok": "token"},
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err == nil {
		return engine.Claim{
			State: engine.Claimed, Token: token, Attempts: int(num(out.Attributes, "attempts")),
			StartedAt: now, FirstAt: parseTS(str(out.Attributes, "first_at")),
		}, nil
	}
	if !isConditionFailed(err) {
		return engine.Claim{}, err
	}
	got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: recordKey(step), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return engine.Claim{}, err
	}
	if str(got.Item, "status") == stepInProgress || len(got.Item) == 0 {
		return engine.Claim{State: engine.Busy}, nil
	}
	rec, err := decodeStepRecord(got.Item)
	if err != nil {
		return engine.Claim{}, err
	}
	return engine.Claim{State: engine.Completed, Record: rec}, nil
}

// PeekStep reads a step's record (consistently) for a step that runs
// without a claim.
func (st *Store) PeekStep(ctx context.Context, step engine.Step, now time.Time) (engine.Claim, error) {
	got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: recordKey(step), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return engine.Claim{}, err
	}
	switch {
	case len(got.Item) == 0:
		return engine.Claim{State: engine.Claimed}, nil
	case str(got.Item, "status") == stepInProgress:
		// Claimed when the step still needed a claim (the tunnel was edited).
		if num(got.Item, "lease_until") < now.UnixMilli() {
			return engine.Claim{State: engine.Claimed}, nil
		}
		return engine.Claim{State: engine.Busy}, nil
	}
	rec, err := decodeStepRecord(got.Item)
	if err != nil {
		return engine.Claim{}, err
	}
	return engine.Claim{State: engine.Completed, Record: rec}, nil
}

// ReleaseStep ends a lease early after a transient failure.
func (st *Store) ReleaseStep(ctx context.Context, step engine.Step, token string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(st.table),
		Key:                       recordKey(step),
		UpdateExpression:          aws.String("SET lease_until = :zero"),
		ConditionExpression:       aws.String("#tok = :tok"),
		ExpressionAttributeNames:  map[string]string{"#tok": "token"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": n(0), ":tok": s(token)},
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// CompleteStep records a step's outcome and, atomically with it, moves the
// run's pending count. Only a change of the count needs the transaction; the
// common single-child step is one conditional write.
func (st *Store) CompleteStep(ctx context.Context, rec engine.StepRecord, token string) (bool, error) {
	step := rec.Step
	children, err := json.Marshal(rec.Children)
	if err != nil {
		return false, err
	}
	detail, err := attributevalue.Marshal(rec.Detail)
	if err != nil {
		return false, fmt.Errorf("step detail: %w", err)
	}
	if rec.Detail == nil {
		detail = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
	}
	stepUpdate := types.Update{
		TableName: aws.String(st.table),
		Key:       recordKey(step),
		// Every name is aliased: several (status, type, action, block, ...) are
		// DynamoDB reserved words.
		// No jsk: the journey is read from the table itself (see Journey), so
		// a record writes no index entry and costs one write unit.
		UpdateExpression: aws.String("SET #st = :st, #reason = :reason, #detail = :detail, #children = :children, " +
			"#fin = :fin, #ty = :type, #tunnel = :tunnel, #channel = :channel, #gen = :gen, " +
			"#block = :block, #act = :action, run_delta = :delta REMOVE #tok, #lease"),
		ConditionExpression: aws.String("#tok = :tok"),
		ExpressionAttributeNames: map[string]string{
			"#st": "status", "#tok": "token", "#ty": "type", "#act": "action", "#reason": "reason",
			"#detail": "detail", "#children": "children", "#fin": "finished_at",
			"#tunnel": "tunnel", "#channel": "channel", "#gen": "gen", "#block": "block", "#lease": "lease_until",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":st": s(rec.Status), ":reason": s(rec.Reason), ":detail": detail, ":children": s(string(children)),
			":fin": s(ts(rec.FinishedAt)), ":type": s(rec.Type),
			":tunnel": s(step.Tunnel), ":channel": s(step.Channel), ":gen": n(int64(step.Gen)),
			":block": s(step.Block), ":action": n(int64(step.Action)), ":tok": s(token), ":delta": n(int64(rec.RunDelta)),
		},
	}
	if m := rec.Chat; m != nil && step.InChat {
		// The record is the chat message: its attributes go in the same write
		// (the text once: the journey reads it from the message).
		set := ", #cid = :cid, #dir = :dir, #text = :text, #cat = :cat, #sid = :sid"
		for k, v := range map[string]string{"#cid": "id", "#dir": "direction", "#text": "text", "#cat": "created_at", "#sid": "step_id"} {
			stepUpdate.ExpressionAttributeNames[k] = v
		}
		vals := stepUpdate.ExpressionAttributeValues
		vals[":cid"], vals[":dir"], vals[":text"], vals[":cat"], vals[":sid"] = s(m.ID), s(m.Direction), s(m.Text), s(ts(m.CreatedAt)), s(step.ID)
		if m.Delivery != "" {
			set += ", #dlv = :dlv"
			stepUpdate.ExpressionAttributeNames["#dlv"] = "delivery"
			vals[":dlv"] = s(m.Delivery)
		}
		stepUpdate.UpdateExpression = aws.String(strings.Replace(*stepUpdate.UpdateExpression, " REMOVE ", set+" REMOVE ", 1))
		if t, ok := rec.Detail["text"].(string); ok && t == m.Text {
			d := maps.Clone(rec.Detail)
			delete(d, "text")
			if vals[":detail"], err = attributevalue.Marshal(d); err != nil {
				return false, fmt.Errorf("step detail: %w", err)
			}
		}
	}
	if len(rec.Inline) > 0 {
		inline, err := encodeInline(step, rec.Inline)
		if err != nil {
			return false, err
		}
		stepUpdate.ExpressionAttributeNames["#inline"] = "inline"
		stepUpdate.ExpressionAttributeValues[":inline"] = s(inline)
		stepUpdate.UpdateExpression = aws.String(strings.Replace(*stepUpdate.UpdateExpression, " REMOVE ", ", #inline = :inline REMOVE ", 1))
	}
	if token == "" {
		// A step that ran without a claim: its record is created here, once;
		// a copy that got here first (or a claim still live) wins.
		stepUpdate.UpdateExpression = aws.String(strings.Replace(*stepUpdate.UpdateExpression, " REMOVE ",
			", started_at = :start, first_at = :start, attempts = :attempts, expires_at = :exp REMOVE ", 1))
		stepUpdate.ConditionExpression = aws.String("attribute_not_exists(pk) OR (#st = :prog AND #lease < :startms)")
		delete(stepUpdate.ExpressionAttributeValues, ":tok")
		for k, v := range map[string]types.AttributeValue{
			":start": s(ts(rec.StartedAt)), ":attempts": n(int64(max(rec.Attempts, 1))), ":exp": st.ttl(rec.StartedAt),
			":prog": s(stepInProgress), ":startms": n(rec.StartedAt.UnixMilli()),
		} {
			stepUpdate.ExpressionAttributeValues[k] = v
		}
	}
	return st.updateOwned(ctx, stepUpdate)
}

// movedPrefix names the set of steps whose move of a run's count the run
// remembers (MoveRun), beside the run: "moved#<tunnel>#<channel>".
const movedPrefix = "moved#"

// maxMoved bounds that set: past it, the set starts again from the newest
// move. A move is repeated only by a delivery of its step that died between
// the move and its acknowledgement, minutes later at most, by when a run
// has not made a hundred more.
const maxMoved = 100

// MoveRun moves a run's pending count for a recorded step, once per step,
// in one conditional write on the profile (not a transaction with the
// record: half the write units). When the step's view of the run says the
// count reaches 0, the end is marked in the same write; otherwise a move
// that leaves 0 marks it next (EndRun).
func (st *Store) MoveRun(ctx context.Context, ws, sub string, m engine.RunMove) (bool, error) {
	rk := engine.RunKey(m.Tunnel, m.Channel)
	names := map[string]string{"#r": runPrefix + rk, "#moved": movedPrefix + rk, "#ended": "ended#" + rk}
	cond := "#r.gen = :gen AND NOT contains(#moved, :by) AND NOT contains(#ended, :gen)"
	seen := m.Seen
	for attempt := 0; ; attempt++ {
		vals := map[string]types.AttributeValue{":gen": n(int64(m.Gen)), ":by": s(m.By)}
		in := &dynamodb.UpdateItemInput{
			TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
			ExpressionAttributeNames: names, ExpressionAttributeValues: vals,
		}
		fold := seen != nil && seen.Gen == m.Gen && seen.Pending+m.Delta == 0
		if !fold {
			vals[":d"], vals[":bys"] = n(int64(m.Delta)), &types.AttributeValueMemberSS{Value: []string{m.By}}
		}
		switch {
		case fold:
			// The last move of the run: the count, the end, and the moves it
			// no longer needs to remember, in one write.
			in.UpdateExpression = aws.String("SET #r.pending = :zero ADD #ended :gens REMOVE #moved")
			in.ConditionExpression = aws.String(cond + " AND #r.pending = :seen")
			vals[":zero"], vals[":seen"] = n(0), n(int64(seen.Pending))
			vals[":gens"] = &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(m.Gen)}}
		case seen != nil && len(seen.Moved) >= maxMoved:
			in.UpdateExpression = aws.String("SET #r.pending = #r.pending + :d, #moved = :bys")
			in.ConditionExpression = aws.String(cond)
			in.ReturnValues = types.ReturnValueUpdatedNew
		default:
			in.UpdateExpression = aws.String("SET #r.pending = #r.pending + :d ADD #moved :bys")
			in.ConditionExpression = aws.String(cond)
			in.ReturnValues = types.ReturnValueUpdatedNew
		}
		out, err := st.db.UpdateItem(ctx, in)
		if err == nil {
			if fold {
				return true, nil
			}
			if r, ok := out.Attributes[runPrefix+rk].(*types.AttributeValueMemberM); ok && num(r.Value, "pending") <= 0 {
				return st.EndRun(ctx, ws, sub, m.Tunnel, m.Channel, m.Gen, false)
			}
			return false, nil
		}
		if !isConditionFailed(err) {
			return false, err
		}
		// Moved already, ended, another generation, or (folding) the count
		// was not what the step saw: look, and move it plainly in that case.
		cur, err := st.Subscriber(ctx, ws, sub)
		if err != nil {
			return false, err
		}
		r, ok := cur.Runs[rk]
		if !ok || r.Gen != m.Gen || r.Ended || slices.Contains(r.Moved, m.By) || attempt > 0 {
			return false, nil
		}
		seen = &r
	}
}

func (st *Store) updateOwned(ctx context.Context, u types.Update) (bool, error) {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
		ConditionExpression: u.ConditionExpression, ExpressionAttributeNames: u.ExpressionAttributeNames,
		ExpressionAttributeValues: u.ExpressionAttributeValues,
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, err
}

func decodeStepRecord(item map[string]types.AttributeValue) (*engine.StepRecord, error) {
	rec := &engine.StepRecord{
		Type: str(item, "type"), Status: str(item, "status"), Reason: str(item, "reason"),
		Attempts:  int(num(item, "attempts")),
		StartedAt: parseTS(str(item, "started_at")), FinishedAt: parseTS(str(item, "finished_at")),
	}
	rec.Step = engine.Step{
		V: engine.MessageVersion, ID: stepIDOf(item),
		Tunnel: str(item, "tunnel"), Channel: str(item, "channel"), Gen: int(num(item, "gen")),
		Block: str(item, "block"), Action: int(num(item, "action")),
	}
	if v, ok := item["detail"]; ok {
		if err := attributevalue.Unmarshal(v, &rec.Detail); err != nil {
			return nil, fmt.Errorf("step detail: %w", err)
		}
	}
	if _, ok := item["direction"]; ok {
		// A chat message step: its text is the message's, stored once.
		if rec.Detail == nil {
			rec.Detail = map[string]any{}
		}
		if _, ok := rec.Detail["text"]; !ok {
			rec.Detail["text"] = str(item, "text")
		}
		rec.Step.InChat = true
	}
	if c := str(item, "children"); c != "" {
		if err := json.Unmarshal([]byte(c), &rec.Children); err != nil {
			return nil, fmt.Errorf("step children: %w", err)
		}
	}
	if in := str(item, "inline"); in != "" {
		inline, err := decodeInline(in, rec)
		if err != nil {
			return nil, err
		}
		rec.Inline = inline
	}
	return rec, nil
}

// inlineRecord is how the record of a delay that ran within its parent is
// kept in the parent's item (the "inline" attribute, a JSON list), as small
// as it can be, for the parent's item (a chat message with its children)
// must stay under the 1 KB of one write unit. What the parent's item says
// already is left out: the delay is of the parent's run (tunnel, channel,
// generation), ran when the parent finished, at its first attempt; its id,
// when derived from the parent's as a next block's is (engine.Advance); its
// status when done.
type inlineRecord struct {
	ID     string         `json:"i,omitempty"`
	Block  string         `json:"b"`
	Status string         `json:"s,omitempty"`
	Reason string         `json:"r,omitempty"`
	Detail map[string]any `json:"d,omitempty"`
}

func encodeInline(parent engine.Step, recs []engine.StepRecord) (string, error) {
	out := make([]inlineRecord, len(recs))
	for i, r := range recs {
		in := inlineRecord{Block: r.Step.Block, Reason: r.Reason, Detail: r.Detail}
		if r.Status != engine.StatusDone {
			in.Status = r.Status
		}
		if r.Step.ID != engine.DeriveID(parent.ID, "next", r.Step.Block) {
			in.ID = r.Step.ID
		}
		out[i] = in
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("inline step records: %w", err)
	}
	return string(b), nil
}

// decodeInline reads the inline records of parent's item.
func decodeInline(s string, parent *engine.StepRecord) ([]engine.StepRecord, error) {
	var in []inlineRecord
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("inline step records: %w", err)
	}
	out := make([]engine.StepRecord, len(in))
	for i, r := range in {
		p := parent.Step
		step := engine.Step{V: engine.MessageVersion, ID: r.ID, WS: p.WS, Sub: p.Sub, Tunnel: p.Tunnel, Channel: p.Channel, Gen: p.Gen, Block: r.Block}
		if step.ID == "" {
			step.ID = engine.DeriveID(p.ID, "next", r.Block)
		}
		status := r.Status
		if status == "" {
			status = engine.StatusDone
		}
		out[i] = engine.StepRecord{Step: step, Type: tunnel.BlockDelay, Status: status, Reason: r.Reason, Detail: r.Detail,
			Attempts: 1, StartedAt: parent.FinishedAt, FinishedAt: parent.FinishedAt}
	}
	return out, nil
}

// StartRun begins a new generation of a run, once per r.By: a starter
// record keyed by r.By, written in the same transaction as the run, answers a
// retry with the generation it made, however many generations came since.
// Recording the subscriber in the tunnel (its count) follows the
// transaction: a retry never doubles it.
func (st *Store) StartRun(ctx context.Context, ws, sub string, r engine.RunStart) (int, error) {
	attr := runPrefix + engine.RunKey(r.Tunnel, r.Channel)
	starter := key(subPK(ws, sub), "RUNSTART#"+engine.RunKey(r.Tunnel, r.Channel)+"#"+r.By)
	count := r.Recorded
	for attempt := 0; ; attempt++ {
		got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.table), Key: starter, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return 0, err
		}
		if len(got.Item) > 0 {
			return int(num(got.Item, "gen")), nil
		}
		cur, err := st.Subscriber(ctx, ws, sub)
		if err != nil {
			return 0, err
		}
		old, exists := cur.Runs[engine.RunKey(r.Tunnel, r.Channel)]
		run := engine.Run{
			Tunnel: r.Tunnel, Channel: r.Channel, Gen: old.Gen + 1, Recorded: old.Recorded || r.Recorded,
			Pending: r.Pending, StartedAt: r.At, StartedBy: r.By,
		}
		av, err := attributevalue.Marshal(run)
		if err != nil {
			return 0, err
		}
		cond := "attribute_exists(pk) AND attribute_not_exists(#r)"
		vals := map[string]types.AttributeValue{":run": av, ":now": s(ts(r.At))}
		if exists {
			cond = "attribute_exists(pk) AND #r.gen = :old"
			vals[":old"] = n(int64(old.Gen))
		}
		starterItem := map[string]types.AttributeValue{"gen": n(int64(run.Gen)), "expires_at": st.ttl(r.At)}
		for k, v := range starter {
			starterItem[k] = v
		}
		items := []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
				UpdateExpression:          aws.String("SET #r = :run, updated_at = :now REMOVE #moved"),
				ConditionExpression:       aws.String(cond),
				ExpressionAttributeNames:  map[string]string{"#r": attr, "#moved": movedPrefix + engine.RunKey(r.Tunnel, r.Channel)},
				ExpressionAttributeValues: vals,
			}},
			{Put: &types.Put{TableName: aws.String(st.table), Item: starterItem, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		}
		_, err = st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			if count && !old.Recorded {
				// The tunnel's count is one of its stats, written after the
				// start and outside its transaction: a broadcast into one
				// tunnel neither queues on one item nor conflicts there. A
				// crash right here, or a failed write, loses the count (a retry
				// finds the start made): like every stat it is never counted
				// twice, and never fails what it counts.
				_ = st.AddStats(ctx, ws, r.Tunnel, map[string]int64{"recorded": 1})
			}
			return run.Gen, nil
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) {
			return 0, err
		}
		// Another start got there first: look again after a short random pause.
		if err := backoff(ctx, attempt); err != nil {
			return 0, fmt.Errorf("start run %s: %w", attr, ErrConflict)
		}
	}
}

// backoff waits a little longer at each attempt; it gives up when ctx ends
// or after many tries.
func backoff(ctx context.Context, attempt int) error {
	if attempt >= 60 {
		return ErrConflict
	}
	d := time.Duration(1+mrand.IntN(5+min(attempt, 20)*5)) * time.Millisecond
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// AddStop appends a STOP marker, once per stop step, keeping the newest ones.
func (st *Store) AddStop(ctx context.Context, ws, sub, tunnelID string, m engine.StopMarker) error {
	attr := stopPrefix + tunnelID
	// The list is rewritten whole (to keep it bounded), so a version number
	// beside it makes concurrent writers take turns instead of overwriting.
	version := "stopsv#" + tunnelID
	for attempt := 0; ; attempt++ {
		item, err := st.profile(ctx, ws, sub)
		if err != nil {
			return err
		}
		cur, err := decodeSubscriber(ws, item)
		if err != nil {
			return err
		}
		list := cur.Stops[tunnelID]
		ver := num(item, version)
		for _, old := range list {
			if m.StepID != "" && old.StepID == m.StepID {
				return nil
			}
		}
		next := append(append([]engine.StopMarker(nil), list...), m)
		if len(next) > maxStops {
			next = next[len(next)-maxStops:]
		}
		av, err := attributevalue.Marshal(next)
		if err != nil {
			return err
		}
		cond := "attribute_not_exists(#v)"
		vals := map[string]types.AttributeValue{":list": av, ":next": n(ver + 1)}
		if ver > 0 {
			cond = "#v = :ver"
			vals[":ver"] = n(ver)
		}
		_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
			UpdateExpression:          aws.String("SET #s = :list, #v = :next"),
			ConditionExpression:       aws.String(cond),
			ExpressionAttributeNames:  map[string]string{"#s": attr, "#v": version},
			ExpressionAttributeValues: vals,
		})
		if !isConditionFailed(err) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("record stop: %w", ErrConflict)
		}
	}
}

// JoinBlock counts a finished action block at a priority join. The set of
// finished blocks makes it idempotent; released_by picks exactly one releaser,
// stable across that releaser's retries.
func (st *Store) JoinBlock(ctx context.Context, ws, sub, join, block string, total int, by string) (bool, error) {
	k := key(subPK(ws, sub), "JOIN#"+join)
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: k,
		UpdateExpression:         aws.String("ADD done_blocks :b SET #total = :total, expires_at = :exp"),
		ExpressionAttributeNames: map[string]string{"#total": "total"}, // a reserved word
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":b": &types.AttributeValueMemberSS{Value: []string{block}}, ":total": n(int64(total)),
			":exp": st.ttl(st.now()),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return false, err
	}
	done, _ := out.Attributes["done_blocks"].(*types.AttributeValueMemberSS)
	if done == nil || len(done.Value) < total {
		return false, nil
	}
	out, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: k,
		UpdateExpression:          aws.String("SET released_by = if_not_exists(released_by, :by)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":by": s(by)},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return false, err
	}
	return str(out.Attributes, "released_by") == by, nil
}

func chatSK(at time.Time, id string) string { return "CHAT#" + ts(at) + "#" + id }

// chatItem is a chat message as stored.
func chatItem(ws, sub string, m engine.ChatMessage) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"pk": s(subPK(ws, sub)), "sk": s(chatSK(m.CreatedAt, m.ID)),
		"id": s(m.ID), "direction": s(m.Direction), "text": s(m.Text), "created_at": s(ts(m.CreatedAt)),
	}
	for name, v := range map[string]string{"tunnel": m.Tunnel, "block": m.Block, "step_id": m.StepID, "operator": m.Operator, "delivery": m.Delivery} {
		if v != "" {
			item[name] = s(v)
		}
	}
	return item
}

// SaveChatMessage stores a chat message once per (CreatedAt, ID): the engine
// passes the step's first claim time, stable across retries, so a repeat
// changes nothing. (Inbound messages, whose time is not stable, go through
// RecordInbound, which guards on the id alone.)
func (st *Store) SaveChatMessage(ctx context.Context, ws, sub string, m engine.ChatMessage) error {
	_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table), Item: chatItem(ws, sub, m), ConditionExpression: aws.String("attribute_not_exists(sk)"),
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// Timers: steps due further ahead than a queue can delay wait here, in
// minute buckets, until the scheduler moves them to their queues.
func timerPK(due time.Time) string { return "TIMER#" + due.UTC().Format("2006-01-02T15:04") }

// PutTimer stores a delayed step (idempotent on its step id).
func (st *Store) PutTimer(ctx context.Context, o engine.Outgoing) error {
	due := o.Step.NotBefore()
	if due == nil {
		return errors.New("timer without due time")
	}
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table),
		Item: map[string]types.AttributeValue{
			"pk": s(timerPK(*due)), "sk": s(ts(*due) + "#" + o.Step.ID),
			"outgoing": s(string(body)), "expires_at": st.ttl(*due),
		},
	})
	return err
}

// DueTimers lists the timers of one minute bucket.
func (st *Store) DueTimers(ctx context.Context, bucket time.Time) ([]engine.Timer, error) {
	items, err := st.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(timerPK(bucket))},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	out := make([]engine.Timer, 0, len(items))
	for _, it := range items {
		var o engine.Outgoing
		if err := json.Unmarshal([]byte(str(it, "outgoing")), &o); err != nil {
			return nil, fmt.Errorf("timer %s: %w", str(it, "sk"), err)
		}
		out = append(out, engine.Timer{Key: str(it, "pk") + "|" + str(it, "sk"), Outgoing: o})
	}
	return out, nil
}

// DeleteTimer removes a timer once its step is on a queue.
func (st *Store) DeleteTimer(ctx context.Context, t engine.Timer) error {
	pk, sk, _ := strings.Cut(t.Key, "|")
	_, err := st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(st.table), Key: key(pk, sk)})
	return err
}

// SchedulerCursor is the first minute bucket not yet fully moved.
func (st *Store) SchedulerCursor(ctx context.Context) (time.Time, bool, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key("SCHEDULER", "CURSOR"), ConsistentRead: aws.Bool(true),
	})
	if err != nil || len(out.Item) == 0 {
		return time.Time{}, false, err
	}
	return parseTS(str(out.Item, "bucket")), true, nil
}

// SetSchedulerCursor moves the cursor forward (never back).
func (st *Store) SetSchedulerCursor(ctx context.Context, bucket time.Time) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key("SCHEDULER", "CURSOR"),
		UpdateExpression:          aws.String("SET #b = :b"),
		ConditionExpression:       aws.String("attribute_not_exists(#b) OR #b < :b"),
		ExpressionAttributeNames:  map[string]string{"#b": "bucket"}, // a reserved word
		ExpressionAttributeValues: map[string]types.AttributeValue{":b": s(ts(bucket))},
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StepsRecorded answers which steps have a record, in batches of 100 keys
// (BatchGetItem's limit), retrying what DynamoDB leaves unprocessed.
func (st *Store) StepsRecorded(ctx context.Context, ws, sub string, steps []engine.Step) (map[string]bool, error) {
	keys := make([]map[string]types.AttributeValue, 0, len(steps))
	for _, step := range steps {
		step.WS, step.Sub = ws, sub
		keys = append(keys, recordKey(step))
	}
	seen := make(map[string]bool, len(steps))
	err := st.batchGet(ctx, keys, "sk", nil, func(it map[string]types.AttributeValue) error {
		seen[stepIDOf(it)] = true
		return nil
	})
	return seen, err
}
