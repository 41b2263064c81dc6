package localstack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS client a Poller uses; *sqs.Client has it.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// SQSHandler is a step function's handler as aws-lambda-go calls it.
type SQSHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Poller delivers a queue's messages to a handler the way Lambda's SQS event
// source mapping does: batches of up to BatchSize gathered for at most
// Window, records shaped as Lambda shapes them, and after the call: an error
// (or a timeout, or a panic) deletes nothing; success deletes the batch, or,
// with ReportBatchItemFailures, every message except the reported ones — and
// a report naming an empty or unknown message id fails the whole batch, as
// Lambda does. Messages not deleted come back after their visibility timeout.
type Poller struct {
	Client   SQSAPI
	QueueURL string
	QueueARN string
	// BatchSize is the most records in one call (default 10).
	BatchSize int32
	// Window is MaximumBatchingWindowInSeconds: how long to keep gathering a
	// batch after the first message arrived (0: call with what one receive got).
	Window time.Duration
	// VisibilityTimeout for received messages in seconds (0: the queue's).
	VisibilityTimeout int32
	// Concurrency is the number of batches in flight at once (default 1).
	Concurrency             int
	ReportBatchItemFailures bool
	Handler                 SQSHandler
	// Timeout is the function timeout: the handler's context deadline
	// (default 3 s, SAM's default). A call that outlives it counts as failed.
	Timeout time.Duration
	Logger  *slog.Logger
	// FunctionName goes into the invoked function ARN of the Lambda context.
	FunctionName string
	// Faults, when not nil, duplicates, reorders and crashes deliveries
	// (see Faults); nil delivers as Lambda does.
	Faults *Injector
}

// NewPoller configures a Poller for an SQS event of a template function.
func NewPoller(client SQSAPI, fn Function, ev SQSEvent, h SQSHandler, logger *slog.Logger) *Poller {
	conc := ev.MaximumConcurrency
	if conc <= 0 {
		conc = 2
	}
	return &Poller{
		Client: client, QueueURL: ev.QueueURL, QueueARN: ev.QueueARN,
		BatchSize: ev.BatchSize, Window: time.Duration(ev.MaximumBatchingWindowInSeconds) * time.Second,
		Concurrency: conc, ReportBatchItemFailures: ev.ReportBatchItemFailures,
		Handler: h, Timeout: fn.Timeout, Logger: logger, FunctionName: fn.LogicalID,
	}
}

// pollWait is the long-poll wait of one ReceiveMessage. Short, so that a
// cancelled Run returns within about a second: a receive in flight is let
// finish (not cancelled) because the emulator would still take messages off
// the queue for a caller that left, hiding them for a visibility timeout.
const pollWait = 1

// Run polls until ctx is cancelled, then finishes the batches in flight and
// returns nil. It returns an error only for a Poller that cannot run.
func (p *Poller) Run(ctx context.Context) error {
	if p.Client == nil || p.QueueURL == "" || p.Handler == nil {
		return errors.New("localstack: Poller needs Client, QueueURL and Handler")
	}
	if p.BatchSize <= 0 {
		p.BatchSize = 10
	}
	if p.Concurrency <= 0 {
		p.Concurrency = 1
	}
	if p.Timeout <= 0 {
		p.Timeout = 3 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.Logger = p.Logger.With("queue", p.QueueURL)
	var wg sync.WaitGroup
	for i := range p.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx, p.Faults.forPoller(p.FunctionName+"/"+p.QueueARN+"/"+strconv.Itoa(i)))
		}()
	}
	wg.Wait()
	return nil
}

func (p *Poller) loop(ctx context.Context, faults *deliveryFaults) {
	backoff := 100 * time.Millisecond
	// Messages a fault held back are delivered before the loop ends.
	defer func() {
		if faults != nil && len(faults.held) > 0 {
			p.invoke(ctx, faults.next(nil), faults)
		}
	}()
	for ctx.Err() == nil {
		msgs, err := p.collect(ctx)
		if err != nil {
			p.Logger.Warn("receive failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if msgs = faults.next(msgs); len(msgs) > 0 {
			p.invoke(ctx, msgs, faults)
		}
	}
}

// collect gathers one batch. An empty batch with no error means nothing came
// within the poll wait.
func (p *Poller) collect(ctx context.Context) ([]sqstypes.Message, error) {
	bg := context.WithoutCancel(ctx)
	var batch []sqstypes.Message
	var deadline time.Time
	for {
		wait := int32(pollWait)
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return batch, nil
			}
			if left < time.Second {
				wait = 0
			}
		}
		rctx, cancel := context.WithTimeout(bg, time.Duration(wait)*time.Second+10*time.Second)
		out, err := p.Client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.QueueURL),
			MaxNumberOfMessages:         min(10, p.BatchSize-int32(len(batch))),
			WaitTimeSeconds:             wait,
			VisibilityTimeout:           p.VisibilityTimeout,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		cancel()
		if err != nil {
			if len(batch) > 0 {
				p.Logger.Warn("receive failed; invoking with the batch so far", "err", err)
				return batch, nil
			}
			return nil, err
		}
		batch = append(batch, out.Messages...)
		switch {
		case len(batch) == 0:
			return nil, nil
		case len(batch) >= int(p.BatchSize), p.Window <= 0, ctx.Err() != nil:
			return batch, nil
		case deadline.IsZero():
			deadline = time.Now().Add(p.Window)
		}
		if wait == 0 && len(out.Messages) == 0 {
			// The window's last fraction of a second: a short poll found
			// nothing more.
			return batch, nil
		}
	}
}

// invoke calls the handler with one batch and deletes what succeeded. Under
// faults the batch may be delivered twice (a message is deleted when either
// delivery succeeded with it) and the acknowledgement may be lost.
func (p *Poller) invoke(ctx context.Context, msgs []sqstypes.Message, faults *deliveryFaults) {
	plan := faults.plan(msgs)
	var del []sqstypes.Message
	switch {
	case plan.Again == nil:
		del = p.call(ctx, msgs)
	case plan.Concurrent:
		var wg sync.WaitGroup
		var again []sqstypes.Message
		wg.Add(1)
		go func() {
			defer wg.Done()
			again = p.call(ctx, plan.Again)
		}()
		del = p.call(ctx, msgs)
		wg.Wait()
		del = union(del, again)
	default:
		del = p.call(ctx, msgs)
		del = union(del, p.call(ctx, plan.Again))
	}
	if plan.Crash {
		p.Logger.Debug("fault: invocation crashed before acknowledging", "records", len(msgs))
		p.comeBack(ctx, msgs, faults.in.cfg.CrashVisibility)
		return
	}
	p.delete(ctx, del)
}

// call invokes the handler once and answers the messages to delete.
func (p *Poller) call(ctx context.Context, msgs []sqstypes.Message) []sqstypes.Message {
	ev := SQSEventFor(msgs, p.QueueARN)
	reqID := newRequestID()
	// The batch in hand is finished even if Run is being stopped.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.Timeout)
	hctx = lambdacontext.NewContext(hctx, &lambdacontext.LambdaContext{
		AwsRequestID:       reqID,
		InvokedFunctionArn: "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + p.FunctionName,
	})
	start := time.Now()
	resp, err := callSafely(hctx, p.Handler, ev)
	timedOut := errors.Is(hctx.Err(), context.DeadlineExceeded)
	cancel()
	del, why := settle(msgs, resp, err, timedOut, p.ReportBatchItemFailures)
	log := p.Logger.With("request_id", reqID, "records", len(msgs), "duration", time.Since(start))
	if why != "" {
		log.Warn("batch settled with failures", "reason", why, "deleted", len(del))
	} else {
		log.Debug("batch done", "deleted", len(del))
	}
	return del
}

// comeBack makes messages visible again after d (a crashed invocation's
// batch), when the client can; otherwise they wait out their visibility
// timeout.
func (p *Poller) comeBack(ctx context.Context, msgs []sqstypes.Message, d time.Duration) {
	api, ok := p.Client.(visibilityBatchAPI)
	if !ok {
		return
	}
	bg := context.WithoutCancel(ctx)
	for chunk := range slices.Chunk(msgs, 10) {
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, 0, len(chunk))
		for i, m := range chunk {
			entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(d.Round(time.Second) / time.Second),
			})
		}
		cctx, cancel := context.WithTimeout(bg, 10*time.Second)
		_, err := api.ChangeMessageVisibilityBatch(cctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
		cancel()
		if err != nil {
			p.Logger.Warn("fault: could not shorten a crashed batch's visibility", "err", err)
		}
	}
}

// callSafely turns a handler panic into an error, as Lambda reports a
// crashed invocation as a function error.
func callSafely(ctx context.Context, h SQSHandler, ev events.SQSEvent) (resp events.SQSEventResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, ev)
}

// settle decides which messages to delete after a call, by Lambda's rules.
// why is empty when every message succeeded.
func settle(msgs []sqstypes.Message, resp events.SQSEventResponse, err error, timedOut, reportFailures bool) (del []sqstypes.Message, why string) {
	switch {
	case err != nil:
		return nil, "function error: " + err.Error()
	case timedOut:
		return nil, "function timed out"
	case !reportFailures:
		return msgs, ""
	}
	if len(resp.BatchItemFailures) == 0 {
		return msgs, ""
	}
	inBatch := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		inBatch[aws.ToString(m.MessageId)] = true
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == "" || !inBatch[f.ItemIdentifier] {
			return nil, fmt.Sprintf("batchItemFailures names %q, not a message of the batch: whole batch failed", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		if !failed[aws.ToString(m.MessageId)] {
			del = append(del, m)
		}
	}
	return del, fmt.Sprintf("%d of %d reported failed", len(failed), len(msgs))
}

func (p *Poller) delete(ctx context.Context, msgs []sqstypes.Message) {
	bg := context.WithoutCancel(ctx)
	for len(msgs) > 0 {
		n := min(10, len(msgs))
		chunk := msgs[:n]
		msgs = msgs[n:]
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, 0, n)
		for i, m := range chunk {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		dctx, cancel := context.WithTimeout(bg, 10*time.Second)
		out, err := p.Client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
		cancel()
		if err != nil {
			p.Logger.Error("delete failed; messages will be redelivered", "err", err, "count", n)
			continue
		}
		for _, f := range out.Failed {
			p.Logger.Error("delete failed; message will be redelivered", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
		}
	}
}

// SQSEventFor builds the event Lambda would pass for these received messages.
func SQSEventFor(msgs []sqstypes.Message, queueARN string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             make(map[string]string, len(m.Attributes)),
			MessageAttributes:      make(map[string]events.SQSMessageAttribute, len(m.MessageAttributes)),
			EventSourceARN:         queueARN,
			EventSource:            "aws:sqs",
			AWSRegion:              Region,
		}
		for k, v := range m.Attributes {
			rec.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			// Lambda sends empty lists, not nulls, for the list values.
			a := events.SQSMessageAttribute{
				StringValue:      v.StringValue,
				BinaryValue:      v.BinaryValue,
				StringListValues: append([]string{}, v.StringListValues...),
				BinaryListValues: append([][]byte{}, v.BinaryListValues...),
				DataType:         aws.ToString(v.DataType),
			}
			rec.MessageAttributes[k] = a
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// newRequestID returns a random UUID (version 4), the shape of Lambda's ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
