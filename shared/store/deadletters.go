package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// Dead letters: a step that failed its last attempt is recorded here, under
// its workspace, as SQS moves it to the dead-letter queue. The API lists and
// re-drives them per workspace; the DLQ itself is shared by all workspaces.

// DeadLetter is a step that went to a dead-letter queue.
type DeadLetter struct {
	ID            string // the step id
	Kind          engine.Kind
	Step          engine.Step
	Reason        string
	Attempts      int
	FirstFailedAt time.Time
}

const (
	deadPrefix    = "DEAD#"
	deadStatus    = "dead"
	redrivenState = "redriven"
)

// RecordDeadLetter notes a step's last failed attempt. A step dead-lettered
// again after a re-drive keeps its first failure time.
func (st *Store) RecordDeadLetter(ctx context.Context, kind engine.Kind, step engine.Step, reason string, attempts int) error {
	body, err := json.Marshal(step)
	if err != nil {
		return err
	}
	now := st.now()
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(step.WS), deadPrefix+step.ID),
		UpdateExpression: aws.String("SET #st = :dead, #kind = :kind, #step = :step, #reason = :reason, attempts = :n, " +
			"first_failed_at = if_not_exists(first_failed_at, :now), last_failed_at = :now, expires_at = :exp"),
		ExpressionAttributeNames: map[string]string{"#st": "status", "#kind": "kind", "#step": "step", "#reason": "reason"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":dead": s(deadStatus), ":kind": s(string(kind)), ":step": s(string(body)), ":reason": s(reason),
			":n": n(int64(attempts)), ":now": s(ts(now)), ":exp": n(now.Add(14 * 24 * time.Hour).Unix()),
		},
	})
	return err
}

// DeadLetters pages through a workspace's dead letters, ordered by step id.
func (st *Store) DeadLetters(ctx context.Context, ws string, p Page) ([]DeadLetter, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
		FilterExpression:          aws.String("#st = :dead"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(wsPK(ws)), ":p": s(deadPrefix), ":dead": s(deadStatus)},
		ConsistentRead:            aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]DeadLetter, 0, len(items))
	for _, it := range items {
		d, err := decodeDeadLetter(it)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, d)
	}
	return out, next, nil
}

func decodeDeadLetter(it map[string]types.AttributeValue) (DeadLetter, error) {
	d := DeadLetter{
		Kind: engine.Kind(str(it, "kind")), Reason: str(it, "reason"), Attempts: int(num(it, "attempts")),
		FirstFailedAt: parseTS(str(it, "first_failed_at")),
	}
	if err := json.Unmarshal([]byte(str(it, "step")), &d.Step); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %s: %w", str(it, "sk"), err)
	}
	d.ID = d.Step.ID
	return d, nil
}

// TakeDeadLetter marks a dead letter re-driven and answers it; ErrNotFound
// when it is not (or no longer) a dead letter of the workspace.
func (st *Store) TakeDeadLetter(ctx context.Context, ws, id string) (DeadLetter, error) {
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), deadPrefix+id),
		UpdateExpression:          aws.String("SET #st = :redriven, redriven_at = :now"),
		ConditionExpression:       aws.String("#st = :dead"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":redriven": s(redrivenState), ":dead": s(deadStatus), ":now": s(ts(st.now()))},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return DeadLetter{}, engine.ErrNotFound
	}
	if err != nil {
		return DeadLetter{}, err
	}
	return decodeDeadLetter(out.Attributes)
}

// ReturnDeadLetter undoes TakeDeadLetter when the step could not be sent.
func (st *Store) ReturnDeadLetter(ctx context.Context, ws, id string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), deadPrefix+id),
		UpdateExpression:          aws.String("SET #st = :dead"),
		ExpressionAttributeNames:  map[string]string{"#st": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":dead": s(deadStatus)},
	})
	return err
}
