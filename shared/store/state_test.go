package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Joins of one plan write no plan-wide item: the round-robin position is
// reserved k slots at a time, and each operator's open deals are counted in
// the joining subscriber's shard. Counts stay exact under concurrent joins,
// moves, and the open map earlier versions kept on the plan's state.
func TestSalesPlanJoinsSpread(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	doc, _ := json.Marshal(map[string]any{"name": "Q4", "statuses": []string{"new", "won"}, "operators": []string{"anna", "boris"}, "distribution": "evenly"})
	if _, err := st.PutEntity(ctx, ws, Entity{Kind: KindSalesPlan, ID: "q4", Doc: doc}); err != nil {
		t.Fatal(err)
	}
	plan, err := st.GetSalesPlan(ctx, ws, "q4")
	if err != nil {
		t.Fatal(err)
	}

	// Slots: consecutive ranges, whoever asks.
	first, err := st.ReservePlanSlots(ctx, ws, "q4", 3)
	if err != nil || first != 0 {
		t.Fatalf("first reservation = %d, %v; want 0", first, err)
	}
	if next, err := st.ReservePlanSlots(ctx, ws, "q4", 2); err != nil || next != 3 {
		t.Fatalf("second reservation = %d, %v; want 3", next, err)
	}

	const joins = 40
	var wg sync.WaitGroup
	errs := make(chan error, joins)
	subs := make([]string, joins)
	for i := range joins {
		subs[i] = newSubscriber(t, st, ws, fmt.Sprint(i))
		op := plan.Operators[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.JoinSalesPlan(ctx, ws, subs[i], plan, op)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.JoinSalesPlan(ctx, ws, subs[0], plan, "anna"); !errors.Is(err, ErrAlreadyMember) {
		t.Errorf("a second join = %v, want ErrAlreadyMember", err)
	}
	other := newSubscriber(t, st, ws, "outsider")
	if m, err := st.PlanMembers(ctx, ws, "q4", []string{subs[0], other, subs[1], subs[0]}); err != nil || !m[subs[0]] || !m[subs[1]] || m[other] {
		t.Errorf("PlanMembers = %v, %v; want the two joined, not the outsider", m, err)
	}
	open, err := st.PlanOpen(ctx, ws, "q4")
	if err != nil || open["anna"] != joins/2 || open["boris"] != joins/2 {
		t.Fatalf("open = %v, %v; want %d each", open, err, joins/2)
	}
	// No item took every join: the plan's state was not written by them,
	// and the open counts are spread over the shards.
	state, _ := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: key(planPK(ws, "q4"), planStateSK), ConsistentRead: aws.Bool(true)})
	if a := num(state.Item, "assigned"); a != 5 {
		t.Errorf("assigned = %d, want 5 (the reservations only)", a)
	}
	busiest := int64(0)
	for i := range planOpenShards {
		out, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: planOpenShardKey(ws, "q4", i)})
		if err != nil {
			t.Fatal(err)
		}
		busiest = max(busiest, num(out.Item, openPrefix+"anna")+num(out.Item, openPrefix+"boris"))
	}
	if busiest > joins/2 {
		t.Errorf("one shard counted %d of %d deals", busiest, joins)
	}

	// Closing a deal takes it off its operator's open count; an open map of
	// an earlier version still counts.
	if _, err := st.MoveDeal(ctx, ws, subs[0], plan, "won"); err != nil {
		t.Fatal(err)
	}
	if _, err := testDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(testTable), Key: key(planPK(ws, "q4"), planStateSK),
		UpdateExpression:          aws.String("SET #open = :m"),
		ExpressionAttributeNames:  map[string]string{"#open": "open"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"boris": n(3)}}},
	}); err != nil {
		t.Fatal(err)
	}
	open, err = st.PlanOpen(ctx, ws, "q4")
	if err != nil || open["anna"] != joins/2-1 || open["boris"] != joins/2+3 {
		t.Errorf("open after a close and a legacy map = %v, %v; want anna %d, boris %d", open, err, joins/2-1, joins/2+3)
	}
}
