// Package wire builds what every function is made of: the configuration, the
// DynamoDB and SQS clients, the store, the queues and the SQS batch handler
// around the engine. What one kind of function adds (its actions, its
// messenger, its other clients) is wired in the package of that kind
// (wire/flow, wire/tags, wire/email, wire/crm, wire/webhook, wire/scheduler,
// wire/api, wire/editor), so each function's binary links only its own kind's code and
// makes only the clients it uses. Package app puts every kind together for
// the local runner and the tests, from the same packages Lambda runs.
package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/shared/awsenv"
	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/queue"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/store"
)

// Deps are the configuration and the clients every function has, made once
// at init. A kind that needs another client (SES) makes it from AWS.
type Deps struct {
	Config config.Config
	Dynamo *dynamodb.Client
	SQS    *sqs.Client
	AWS    aws.Config
	Log    *slog.Logger
}

// Load reads the configuration and the AWS settings through getenv and
// makes the clients. Endpoints come from the SDK's own variables
// (AWS_ENDPOINT_URL_DYNAMODB, …), so the same code runs on AWS and against
// the local emulators.
func Load(getenv func(string) string, log *slog.Logger) (Deps, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return Deps{}, err
	}
	awsCfg, err := awsenv.Config(getenv)
	if err != nil {
		return Deps{}, fmt.Errorf("aws configuration: %w", err)
	}
	return New(cfg, awsCfg, log), nil
}

// New makes the clients from an AWS configuration (the local runner passes
// one pointed at the emulators).
func New(cfg config.Config, awsCfg aws.Config, log *slog.Logger, dynamoOpts ...func(*dynamodb.Options)) Deps {
	if log == nil {
		log = slog.Default()
	}
	return Deps{
		Config: cfg, AWS: awsCfg, Log: log,
		Dynamo: dynamodb.NewFromConfig(awsCfg, dynamoOpts...), SQS: sqs.NewFromConfig(awsCfg),
	}
}

// Init is what every functions/<name>/main.go does first: a JSON logger with
// the Lambda request id, the configuration from the environment and the
// clients, once per cold start. A function that cannot start exits at init.
func Init() Deps {
	log := lambdacontext.NewLogger()
	deps, err := Load(os.Getenv, log)
	if err != nil {
		log.Error("configuration", "error", err)
		os.Exit(1)
	}
	return deps
}

// Store is the DynamoDB store of the deployment's table.
func (d Deps) Store() *store.Store { return store.New(d.Dynamo, d.Config.Table) }

// Queues sends steps to the deployment's queues.
func (d Deps) Queues() *queue.Queues { return &queue.Queues{API: d.SQS, URLs: d.Config.Queues} }

// Kind is what one kind of step function adds to the engine: the actions it
// runs (action types of the kind with no entry are recorded failed "not
// implemented"), the messenger of chat message blocks (flow) and the sender
// of email message blocks (email). Only the flow function runs chat message
// blocks (engine.StepKind), so the others leave Messenger nil.
type Kind struct {
	Actions      map[string]engine.ActionFunc
	Messenger    engine.Messenger
	EmailMessage engine.ActionFunc
	// Prepare runs over a batch's steps of an action type before any runs
	// (engine.Processor.Prepare: steps that share one write).
	Prepare map[string]engine.PrepareFunc
}

// StatsEvery is the least time between two writes of a step function
// instance's counters.
const StatsEvery = time.Second

// StepHandler builds the SQS batch handler of a step kind over st (the
// store the kind's parts were built on).
func StepHandler(d Deps, st *store.Store, kind engine.Kind, k Kind) *stepbatch.Handler {
	// The counters of a tunnel are written at most once a second per
	// instance: under load one write per second instead of one per batch.
	stats := &store.StatsBuffer{Store: st, Every: StatsEvery}
	m := k.Messenger
	if m == nil {
		m = noMessenger{}
	}
	p := &engine.Processor{
		Kind:         kind,
		Store:        st,
		Queue:        d.Queues(),
		Tunnels:      &engine.CachedTunnels{Source: st, TTL: 5 * time.Second},
		Vars:         st,
		Messenger:    m,
		Actions:      k.Actions,
		EmailMessage: k.EmailMessage,
		Prepare:      k.Prepare,
		Fields:       st,
		Stats:        stats,
		MaxAttempts:  d.Config.MaxReceives,
		Log:          d.Log,

		MaxStepsWithoutWait: d.Config.MaxStepsWithoutWait,
	}
	return &stepbatch.Handler{
		Process:     p.Process,
		Visibility:  d.SQS,
		QueueURL:    d.Config.Queues[kind],
		Log:         d.Log,
		DeadLetters: st,
		MaxReceives: d.Config.MaxReceives,
		Kind:        kind,
		BeforeBatch: p.BeforeBatch,
		AfterBatch:  stats.AfterBatch,
		Background:  stats.Run,
		OnShutdown:  stats.Shutdown,
	}
}

// noMessenger stands in for a kind that delivers no chat messages, so a
// step that reached the wrong function fails instead of panicking.
type noMessenger struct{}

func (noMessenger) Deliver(_ context.Context, _ string, _ engine.ChatDelivery) (map[string]any, error) {
	return nil, errors.New("chat messages are delivered by the flow function")
}
