package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// A wait lives on the profile as the map attribute "wait#<tunnel>#<block>":
// one per block, so asking again replaces it and the profile stays bounded.
// Every change is one conditional UpdateItem on that attribute.

// OpenWait implements engine.Store.
func (st *Store) OpenWait(ctx context.Context, ws, sub string, w engine.Wait, prev string) error {
	av, err := attributevalue.Marshal(w)
	if err != nil {
		return err
	}
	cond := "attribute_exists(pk) AND (attribute_not_exists(#w) OR (attribute_exists(#w.#by) AND #w.#id <> :id))"
	vals := map[string]types.AttributeValue{":w": av, ":id": s(w.ID)}
	if w.Replaced {
		cond = "#w.#id = :prev AND attribute_not_exists(#w.#by) AND :id <> :prev"
		vals[":prev"] = s(prev)
	}
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String("SET #w = :w"),
		ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: map[string]string{
			"#w": waitPrefix + engine.WaitKey(w.Tunnel, w.Block), "#id": "id", "#by": "by",
		},
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if isConditionFailed(err) {
		if len(conditionItem(err)) == 0 {
			return engine.ErrNotFound
		}
		return fmt.Errorf("open wait %s: the block's wait changed since the profile was read", w.ID)
	}
	return err
}

// EndWait implements engine.Store.
func (st *Store) EndWait(ctx context.Context, ws, sub, waitKey, id, by, how string) (bool, error) {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String("SET #w.#by = :by, #w.#how = :how"),
		ConditionExpression: aws.String("#w.#id = :id AND (attribute_not_exists(#w.#by) OR #w.#by = :by)"),
		ExpressionAttributeNames: map[string]string{
			"#w": waitPrefix + waitKey, "#id": "id", "#by": "by", "#how": "how",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": s(id), ":by": s(by), ":how": s(how)},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, err
}

// CountInvalid implements engine.Store. The invalid replies are a string set
// of step ids: adding the same step twice counts it once.
func (st *Store) CountInvalid(ctx context.Context, ws, sub, waitKey, id, by string) (int, bool, error) {
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String("ADD #w.#inv :by"),
		ConditionExpression: aws.String("#w.#id = :id AND attribute_not_exists(#w.#by)"),
		ExpressionAttributeNames: map[string]string{
			"#w": waitPrefix + waitKey, "#id": "id", "#by": "by", "#inv": "invalid",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":id": s(id), ":by": &types.AttributeValueMemberSS{Value: []string{by}},
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if isConditionFailed(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	w, _ := out.Attributes[waitPrefix+waitKey].(*types.AttributeValueMemberM)
	if w == nil {
		return 0, false, fmt.Errorf("count invalid reply: no wait in the answer")
	}
	set, _ := w.Value["invalid"].(*types.AttributeValueMemberSS)
	if set == nil {
		return 0, false, fmt.Errorf("count invalid reply: no invalid set in the answer")
	}
	return len(set.Value), true, nil
}

// conditionItem is the item a failed condition saw (ReturnValuesOnConditionCheckFailure).
func conditionItem(err error) map[string]types.AttributeValue {
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return cf.Item
	}
	return nil
}

// FieldType answers the type of a catalog field (engine.FieldWriter).
func (st *Store) FieldType(ctx context.Context, ws, id string) (string, error) {
	e, err := st.GetEntity(ctx, ws, KindField, id)
	if err != nil {
		return "", err
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(e.Doc, &f); err != nil {
		return "", fmt.Errorf("field %s: %w", strconv.Quote(id), err)
	}
	return f.Type, nil
}

// RecordRequestStatus keeps the HTTP status of the subscriber's last external
// request (0: no answer came) for conditions on last_request.
func (st *Store) RecordRequestStatus(ctx context.Context, ws, sub string, status int) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String("SET last_http_status = :st"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":st": n(int64(status))},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// SetPause holds the subscriber's chat messages until until; a zero until
// resumes them.
func (st *Store) SetPause(ctx context.Context, ws, sub string, until time.Time) error {
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String("REMOVE paused_until"),
		ConditionExpression: aws.String("attribute_exists(pk)"),
	}
	if !until.IsZero() {
		in.UpdateExpression = aws.String("SET paused_until = :u")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":u": s(ts(until))}
	}
	_, err := st.db.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// SetUnreachable records that the subscriber blocked the bot of a channel
// (or unblocked it: on false).
func (st *Store) SetUnreachable(ctx context.Context, ws, sub, channel string, on bool) error {
	op := "ADD"
	if !on {
		op = "DELETE"
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String(op + " unreachable :ch"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":ch": &types.AttributeValueMemberSS{Value: []string{channel}}},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}
