package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/tunnels/tunnels/infra/localstack"
)

// The emulators' own throughput: the ceiling the local stack runs under.
// A few concurrent clients each repeat one kind of call for a fixed time on
// the stack's table (items under a BENCH# key of their own) and on a queue
// made for it.

// rawResult is one kind of call's rate.
type rawResult struct {
	What    string
	Clients int
	Ops     int64
	Elapsed time.Duration
	PerSec  float64
	Errors  int64
}

func measureEmulators(ctx context.Context, c *localstack.Clients, table string, clients int, each time.Duration) ([]rawResult, error) {
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	n := func(v int) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(v)} }
	key := func(w, i int) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"pk": s(fmt.Sprintf("BENCH#%d", w)), "sk": s(fmt.Sprintf("ITEM#%08d", i))}
	}
	// A step record's size, roughly: the payload of the writes.
	payload := s(string(make([]byte, 300)))
	var out []rawResult
	offset := 0
	run := func(what string, op func(ctx context.Context, w, i int) (int, error)) {
		// A warm-up first: DynamoDB Local compiles its hot paths (JIT) on
		// first use, and an idle emulator answers its first calls slowly.
		var wg sync.WaitGroup
		warm := time.Now().Add(each / 2)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(warm) && ctx.Err() == nil; i++ {
					_, _ = op(ctx, w, 5_000_000+i)
				}
			}()
		}
		wg.Wait()
		offset += 100_000
		var ops, errs atomic.Int64
		start := time.Now()
		deadline := start.Add(each)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
					k, err := op(ctx, w, offset+i)
					if err != nil {
						errs.Add(1)
						continue
					}
					ops.Add(int64(k))
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		out = append(out, rawResult{What: what, Clients: clients, Ops: ops.Load(), Elapsed: el, PerSec: float64(ops.Load()) / el.Seconds(), Errors: errs.Load()})
	}

	run("DynamoDB PutItem", func(ctx context.Context, w, i int) (int, error) {
		item := key(w, i)
		item["payload"] = payload
		_, err := c.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
		return 1, err
	})
	run("DynamoDB UpdateItem (conditional, like a claim)", func(ctx context.Context, w, i int) (int, error) {
		_, err := c.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(table), Key: key(w, 1_000_000+i),
			UpdateExpression:          aws.String("SET #st = :st, attempts = if_not_exists(attempts, :zero) + :one"),
			ConditionExpression:       aws.String("attribute_not_exists(pk)"),
			ExpressionAttributeNames:  map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":st": s("in_progress"), ":zero": n(0), ":one": n(1)},
		})
		return 1, err
	})
	run("DynamoDB GetItem (consistent)", func(ctx context.Context, w, i int) (int, error) {
		_, err := c.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(w, 100_000+i%100), ConsistentRead: aws.Bool(true)})
		return 1, err
	})

	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench-raw-" + strconv.FormatInt(time.Now().UnixNano(), 36))})
	if err != nil {
		return out, fmt.Errorf("create the bench queue: %w", err)
	}
	body := `{"v":1,"id":"9b1f0c3e7a2d4b58","ws":"ws_dev","sub":"sub_7Qk2mX9p","tunnel":"webinar","channel":"chat","gen":1,"block":"hello","action":0,"at":"2026-11-24T10:00:00.123Z"}`
	run("SQS SendMessageBatch(10) + ReceiveMessage + DeleteMessageBatch, messages", func(ctx context.Context, w, i int) (int, error) {
		entries := make([]sqstypes.SendMessageBatchRequestEntry, 10)
		for j := range entries {
			entries[j] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(body)}
		}
		if _, err := c.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
			return 0, err
		}
		got, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return 0, err
		}
		if len(got.Messages) == 0 {
			return 0, nil
		}
		del := make([]sqstypes.DeleteMessageBatchRequestEntry, len(got.Messages))
		for j, m := range got.Messages {
			del[j] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: m.ReceiptHandle}
		}
		if _, err := c.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: del}); err != nil {
			return 0, err
		}
		return len(got.Messages), nil
	})
	_, _ = c.SQS.DeleteQueue(context.WithoutCancel(ctx), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	return out, nil
}
