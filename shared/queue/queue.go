// Package queue sends steps to their SQS queues.
package queue

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// API is the part of the SQS client the queue uses.
type API interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Queues sends each step to the queue of its kind.
type Queues struct {
	API  API
	URLs map[engine.Kind]string
}

var _ engine.Queue = (*Queues)(nil)

// maxBatch is SQS's limit of entries per SendMessageBatch.
const maxBatch = 10

// Send enqueues steps, grouped by queue, ten to a call. A step due in the
// future is delayed by up to 15 minutes (the caller keeps longer ones as timers).
func (q *Queues) Send(ctx context.Context, now time.Time, out []engine.Outgoing) error {
	byURL := map[string][]types.SendMessageBatchRequestEntry{}
	var order []string
	for i, o := range out {
		url, ok := q.URLs[o.Kind]
		if !ok || url == "" {
			return fmt.Errorf("no queue configured for step kind %q", o.Kind)
		}
		if _, seen := byURL[url]; !seen {
			order = append(order, url)
		}
		byURL[url] = append(byURL[url], types.SendMessageBatchRequestEntry{
			Id:           aws.String(strconv.Itoa(i)),
			MessageBody:  aws.String(string(o.Step.Encode())),
			DelaySeconds: delaySeconds(now, o.Step.NotBefore()),
		})
	}
	for _, url := range order {
		entries := byURL[url]
		for len(entries) > 0 {
			n := min(len(entries), maxBatch)
			res, err := q.API.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries[:n]})
			if err != nil {
				return fmt.Errorf("send steps: %w", err)
			}
			if len(res.Failed) > 0 {
				f := res.Failed[0]
				return fmt.Errorf("send steps: %d of %d refused (first: %s %s)", len(res.Failed), n, aws.ToString(f.Code), aws.ToString(f.Message))
			}
			entries = entries[n:]
		}
	}
	return nil
}

func delaySeconds(now time.Time, due *time.Time) int32 {
	if due == nil {
		return 0
	}
	d := due.Sub(now).Seconds()
	if d <= 0 {
		return 0
	}
	return int32(min(math.Ceil(d), engine.MaxQueueDelay.Seconds()))
}
