package localstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"
)

// fakeAWS answers DynamoDB and SQS JSON calls by their X-Amz-Target and
// remembers the request bodies.
type fakeAWS struct {
	mu     sync.Mutex
	bodies map[string][]map[string]any
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndex(target, ".")+1:]
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.bodies[op] = append(f.bodies[op], body)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	switch op {
	case "GetItem":
		fmt.Fprint(w, `{"Item":{"pk":{"S":"a"}},"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}`)
	case "UpdateItem":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}`)
	case "TransactWriteItems":
		fmt.Fprint(w, `{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":4,"WriteCapacityUnits":4}]}`)
	case "ReceiveMessage":
		if len(f.bodies[op]) == 1 {
			fmt.Fprint(w, `{"Messages":[{"MessageId":"1","ReceiptHandle":"r1","Body":"x"},{"MessageId":"2","ReceiptHandle":"r2","Body":"y"}]}`)
		} else {
			fmt.Fprint(w, `{}`)
		}
	case "SendMessageBatch":
		fmt.Fprint(w, `{"Successful":[],"Failed":[]}`)
	default:
		fmt.Fprint(w, `{}`)
	}
}

func TestCallCounter(t *testing.T) {
	fake := &fakeAWS{bodies: map[string][]map[string]any{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	counter := NewCallCounter()
	counter.Capacity, counter.Permits = true, true
	cfg := aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		APIOptions: []func(*middleware.Stack) error{counter.APIOption("FlowFunction")}}
	db := dynamodb.NewFromConfig(cfg, WithDynamoDBEndpoint(srv.URL), WithoutResponseChecksum)
	q := sqs.NewFromConfig(cfg, WithSQSEndpoint(srv.URL))
	ctx := context.Background()
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}}

	get := &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key, ConsistentRead: aws.Bool(true)}
	if _, err := db.GetItem(ctx, get); err != nil {
		t.Fatal(err)
	}
	if get.ReturnConsumedCapacity != "" {
		t.Errorf("the caller's input was changed: %q", get.ReturnConsumedCapacity)
	}
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("t"), Key: key, UpdateExpression: aws.String("SET x = :x"),
		ConditionExpression: aws.String("attribute_not_exists(pk)"), ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":x": &ddbtypes.AttributeValueMemberN{Value: "1"}}}); err == nil {
		t.Fatal("want the conditional check failure")
	}
	upd := func() ddbtypes.TransactWriteItem {
		return ddbtypes.TransactWriteItem{Update: &ddbtypes.Update{TableName: aws.String("t"), Key: key, UpdateExpression: aws.String("SET x = :x"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":x": &ddbtypes.AttributeValueMemberN{Value: "1"}}}}
	}
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{upd(), upd()}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.URL + "/q")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(srv.URL + "/q"), Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String("a")}, {Id: aws.String("1"), MessageBody: aws.String("b")}, {Id: aws.String("2"), MessageBody: aws.String("c")}}}); err != nil {
		t.Fatal(err)
	}

	got := counter.Snapshot()
	k := func(svc, op string) CallKey { return CallKey{"FlowFunction", svc, op} }
	want := map[CallKey]CallStats{
		k("DynamoDB", "GetItem"):            {Calls: 1, Attempts: 1, ReadUnits: 0.5},
		k("DynamoDB", "UpdateItem"):         {Calls: 1, Attempts: 1, Errors: 1, ConditionFailed: 1},
		k("DynamoDB", "TransactWriteItems"): {Calls: 1, Attempts: 1, Entries: 2, WriteUnits: 4},
		k("SQS", "ReceiveMessage"):          {Calls: 2, Attempts: 2, Messages: 2, Empty: 1},
		k("SQS", "SendMessageBatch"):        {Calls: 1, Attempts: 1, Entries: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counted\n%+v\nwant\n%+v", got, want)
	}
	for _, op := range []string{"GetItem", "UpdateItem", "TransactWriteItems"} {
		if b := fake.bodies[op][0]; b["ReturnConsumedCapacity"] != "TOTAL" {
			t.Errorf("%s sent without ReturnConsumedCapacity: %v", op, b)
		}
	}
	if keys := Keys(got); keys[0].Operation != "GetItem" || keys[len(keys)-1].Operation != "SendMessageBatch" {
		t.Errorf("keys not in order: %v", keys)
	}

	// What IAM would check: the transaction item by item, the batch by its
	// single-message action.
	wantPerms := map[Permission]int64{{Action: "dynamodb:GetItem"}: 1, {Action: "dynamodb:UpdateItem"}: 3,
		{Action: "sqs:ReceiveMessage"}: 2, {Action: "sqs:SendMessage"}: 1}
	if perms := counter.Permissions()["FlowFunction"]; !reflect.DeepEqual(perms, wantPerms) {
		t.Errorf("permissions %v, want %v", perms, wantPerms)
	}

	before := counter.Snapshot()
	if _, err := db.GetItem(ctx, get); err != nil {
		t.Fatal(err)
	}
	if d := Diff(counter.Snapshot(), before); !reflect.DeepEqual(d, map[CallKey]CallStats{k("DynamoDB", "GetItem"): {Calls: 1, Attempts: 1, ReadUnits: 0.5}}) {
		t.Errorf("diff %+v", d)
	}
	counter.Reset()
	if len(counter.Snapshot()) != 0 || len(counter.Permissions()) != 0 {
		t.Error("Reset kept counts")
	}
	// Without Permits, no permission is recorded.
	counter.Permits = false
	if _, err := db.GetItem(ctx, get); err != nil {
		t.Fatal(err)
	}
	if len(counter.Permissions()) != 0 {
		t.Errorf("permissions recorded without Permits: %v", counter.Permissions())
	}
}
