package queue

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// DLQAPI is the part of the SQS client dead-letter housekeeping uses.
type DLQAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// DeadLetterQueues removes re-driven steps' copies from the dead-letter
// queues, which all workspaces share.
type DeadLetterQueues struct {
	API  DLQAPI
	URLs map[engine.Kind]string
}

// Remove deletes the DLQ copies of the given steps of one kind and hands
// every other message back at once. It looks at a bounded number of
// messages: a copy it misses stays in the DLQ, harmless, since a step that
// took effect never takes effect again.
func (d *DeadLetterQueues) Remove(ctx context.Context, kind engine.Kind, stepIDs map[string]bool) (removed int, err error) {
	url := d.URLs[kind]
	if url == "" || len(stepIDs) == 0 {
		return 0, nil
	}
	// Never a long poll: an abandoned long poll may still take a message.
	for round := 0; round < 10 && removed < len(stepIDs); round++ {
		out, err := d.API.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 30, WaitTimeSeconds: 0,
		})
		if err != nil {
			return removed, fmt.Errorf("read the %s dead-letter queue: %w", kind, err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if err := d.settle(ctx, url, m, stepIDs, &removed); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

func (d *DeadLetterQueues) settle(ctx context.Context, url string, m types.Message, ids map[string]bool, removed *int) error {
	s, err := engine.Decode([]byte(aws.ToString(m.Body)))
	if err == nil && ids[s.ID] {
		if _, err := d.API.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			return fmt.Errorf("delete a re-driven dead letter: %w", err)
		}
		*removed++
		return nil
	}
	_, err = d.API.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	})
	return err
}
