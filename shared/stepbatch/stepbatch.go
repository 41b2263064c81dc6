// Package stepbatch is the SQS batch handler every step function shares: it
// decodes each record, runs it, and reports failures per record, so one
// poison message never fails its batch (ReportBatchItemFailures).
package stepbatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/shared/engine"
)

// VisibilityAPI lets the handler space out retries.
type VisibilityAPI interface {
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Handler runs the records of an SQS event.
type Handler struct {
	// Process runs one step; attempt is the record's receive count.
	Process func(ctx context.Context, s engine.Step, attempt int) error
	// Visibility, when set, delays each failed record's next delivery with
	// exponential back-off instead of the queue's full visibility timeout.
	Visibility VisibilityAPI
	// QueueURL is the URL of the queue the records came from (for Visibility).
	QueueURL string
	// Concurrency bounds records run at once (default 10, a whole batch: a
	// step mostly waits on the network, and a batch must fit the timeout).
	Concurrency int
	Log         *slog.Logger
	// DeadLetters, when set, records a step whose attempt MaxReceives (the
	// queue's maxReceiveCount) failed: SQS moves it to the DLQ next, and the
	// record makes it visible and re-drivable through the API.
	DeadLetters DeadLetterRecorder
	MaxReceives int
	Kind        engine.Kind
	// BeforeBatch, when set, sees every step of a batch (those that decode)
	// before any runs, and answers the context they run with (the engine's
	// Processor.BeforeBatch: steps that share a write).
	BeforeBatch func(ctx context.Context, steps []engine.Step) context.Context
	// AfterBatch, when set, runs once every record of a batch ran (the
	// tunnels' counters are written then when due); its error is only
	// logged.
	AfterBatch func(ctx context.Context) error
	// Background, when set, is work a host that keeps running between
	// batches runs beside the handler until its context ends (the local
	// stack: counters waiting for their next write). Lambda freezes an
	// instance between batches, so there Shutdown does the last of it.
	Background func(ctx context.Context) error
	// OnShutdown, when set, runs when the instance is shut down (Lambda's
	// SIGTERM, see Shutdown).
	OnShutdown func()
}

// Shutdown runs OnShutdown: give it to lambda.WithEnableSIGTERM.
func (h *Handler) Shutdown() {
	if h.OnShutdown != nil {
		h.OnShutdown()
	}
}

// DeadLetterRecorder records a step's last failed attempt.
type DeadLetterRecorder interface {
	RecordDeadLetter(ctx context.Context, kind engine.Kind, s engine.Step, reason string, attempts int) error
}

// ErrAllFailed is returned when every record of a non-empty batch failed, so
// Lambda counts the invocation as failed (as Powertools does).
var ErrAllFailed = errors.New("every record of the batch failed")

// ErrUnnamedFailure is returned when a failed record has no message id to
// report (never an empty id): the whole batch is retried instead.
var ErrUnnamedFailure = errors.New("a failed record has no message id")

// Handle is the Lambda handler.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	workers := h.Concurrency
	if workers <= 0 {
		workers = 10
	}
	var (
		mu       sync.Mutex
		failures []events.SQSBatchItemFailure
		unnamed  int
		wg       sync.WaitGroup
		sem      = make(chan struct{}, workers)
	)
	if h.BeforeBatch != nil {
		steps := make([]engine.Step, 0, len(ev.Records))
		for _, rec := range ev.Records {
			if s, err := engine.Decode([]byte(rec.Body)); err == nil {
				steps = append(steps, s)
			}
		}
		ctx = h.BeforeBatch(ctx, steps)
	}
	for _, rec := range ev.Records {
		wg.Add(1)
		sem <- struct{}{}
		go func(rec events.SQSMessage) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := h.run(ctx, rec); err != nil {
				attempt := receiveCount(rec)
				lvl := slog.LevelWarn
				if errors.Is(err, engine.ErrBusy) {
					lvl = slog.LevelInfo
				}
				log.Log(ctx, lvl, "step failed; it will be retried", "message_id", rec.MessageId, "attempt", attempt, "error", err)
				h.deadLetter(ctx, rec, err, attempt, log)
				h.backOff(ctx, rec, err, attempt, log)
				mu.Lock()
				if rec.MessageId != "" {
					failures = append(failures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
				} else {
					unnamed++
				}
				mu.Unlock()
			}
		}(rec)
	}
	wg.Wait()
	if h.AfterBatch != nil {
		if err := h.AfterBatch(ctx); err != nil {
			log.Warn("after the batch", "error", err)
		}
	}
	if unnamed > 0 {
		// A failed record Lambda cannot be told about would be deleted as a
		// success: fail the whole batch instead, so nothing is lost.
		return events.SQSEventResponse{}, ErrUnnamedFailure
	}
	if len(ev.Records) > 0 && len(failures) == len(ev.Records) {
		return events.SQSEventResponse{BatchItemFailures: failures}, ErrAllFailed
	}
	return events.SQSEventResponse{BatchItemFailures: failures}, nil
}

func (h *Handler) run(ctx context.Context, rec events.SQSMessage) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	s, err := engine.Decode([]byte(rec.Body))
	if err != nil {
		return err // poison: retried until it reaches the dead-letter queue
	}
	return h.Process(ctx, s, receiveCount(rec))
}

func receiveCount(rec events.SQSMessage) int {
	n, err := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Backoff is the wait before the next delivery after attempt failed: a step
// held by a live lease is looked at again soon; other failures back off
// exponentially with jitter, from 2 s up to 5 minutes.
func Backoff(err error, attempt int) time.Duration {
	if errors.Is(err, engine.ErrBusy) {
		return 2 * time.Second
	}
	if ra, ok := retryAfter(err); ok {
		return min(ra, 12*time.Hour)
	}
	d := 2 * time.Second << min(attempt-1, 8)
	d = min(d, 5*time.Minute)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// RetryAfter is an error that knows when to try again (a 429's Retry-After).
type RetryAfter interface{ RetryAfter() time.Duration }

func retryAfter(err error) (time.Duration, bool) {
	var ra RetryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter(), true
	}
	return 0, false
}

func (h *Handler) backOff(ctx context.Context, rec events.SQSMessage, err error, attempt int, log *slog.Logger) {
	if h.Visibility == nil || rec.ReceiptHandle == "" {
		return
	}
	url := h.QueueURL
	if url == "" {
		return
	}
	secs := int32(Backoff(err, attempt).Round(time.Second) / time.Second)
	_, cerr := h.Visibility.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: secs,
	})
	if cerr != nil && !strings.Contains(cerr.Error(), "context canceled") {
		log.Warn("could not shorten the retry wait; the queue's visibility timeout applies", "message_id", rec.MessageId, "error", cerr)
	}
}

// deadLetter records a step whose last attempt failed. A message that is not
// a step (a poison body) cannot be placed in a workspace: it is only logged,
// and stays in the DLQ for the operators.
func (h *Handler) deadLetter(ctx context.Context, rec events.SQSMessage, err error, attempt int, log *slog.Logger) {
	if h.DeadLetters == nil || h.MaxReceives <= 0 || attempt < h.MaxReceives || errors.Is(err, engine.ErrBusy) {
		return
	}
	s, derr := engine.Decode([]byte(rec.Body))
	if derr != nil {
		log.Error("a message that is not a step goes to the dead-letter queue", "message_id", rec.MessageId, "error", derr)
		return
	}
	if rerr := h.DeadLetters.RecordDeadLetter(ctx, h.Kind, s, err.Error(), attempt); rerr != nil {
		log.Error("could not record a dead letter; it is still in the DLQ", "step_id", s.ID, "error", rerr)
	}
}
