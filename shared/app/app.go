// Package app wires the functions: configuration, AWS clients, adapters and
// the engine. Each functions/<name>/main.go and the local runner build their
// handlers here, so the local stack runs exactly what Lambda runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/api"
	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/connector"
	"github.com/tunnels/tunnels/shared/console"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/queue"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// Deps are the clients a function is built from, made once at init.
type Deps struct {
	Config config.Config
	Dynamo *dynamodb.Client
	SQS    *sqs.Client
	SES    *sesv2.Client
	AWS    aws.Config
	Log    *slog.Logger
}

// Load reads the configuration through getenv and makes the AWS clients.
// Endpoints come from the SDK's own variables (AWS_ENDPOINT_URL_DYNAMODB, …),
// so the same code runs on AWS and against the local emulators.
func Load(ctx context.Context, getenv func(string) string, log *slog.Logger) (Deps, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return Deps{}, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
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
		SES: sesv2.NewFromConfig(awsCfg),
	}
}

// Store is the DynamoDB store of the deployment's table.
func (d Deps) Store() *store.Store { return store.New(d.Dynamo, d.Config.Table) }

// Queues sends steps to the deployment's queues.
func (d Deps) Queues() *queue.Queues { return &queue.Queues{API: d.SQS, URLs: d.Config.Queues} }

// StepHandler builds the SQS batch handler of a step kind.
func StepHandler(d Deps, kind engine.Kind) *stepbatch.Handler {
	st := d.Store()
	stats := &store.StatsBuffer{Store: st}
	p := &engine.Processor{
		Kind:        kind,
		Store:       st,
		Queue:       d.Queues(),
		Tunnels:     &engine.CachedTunnels{Source: st, TTL: 5 * time.Second},
		Vars:        st,
		Messenger:   messenger(d, st),
		Actions:     actionsFor(d, st, kind),
		Fields:      st,
		Stats:       stats,
		MaxAttempts: d.Config.MaxReceives,
		Log:         d.Log,

		MaxStepsWithoutWait: d.Config.MaxStepsWithoutWait,
	}
	if kind == engine.KindEmail {
		p.EmailMessage = emailMessage(d, st)
	}
	if kind == engine.KindTags {
		p.Prepare = map[string]engine.PrepareFunc{tunnel.ActionAddToSalesPlan: actions.PrepareSalesPlans(st)}
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
		AfterBatch:  stats.Flush,
	}
}

// actionsFor answers the actions a kind of function runs. Action types of a
// kind with no entry here are recorded failed "not implemented".
func actionsFor(d Deps, st *store.Store, kind engine.Kind) map[string]engine.ActionFunc {
	switch kind {
	case engine.KindTags:
		out := actions.Tags(st)
		maps.Copy(out, stateActions(d, st))
		return out
	case engine.KindEmail:
		return emailActions(d, st)
	case engine.KindCRM:
		return crmActions(d, st)
	case engine.KindWebhook:
		return webhookActions(d, st)
	}
	return nil
}

// SchedulerHandler moves due long-delay timers to their queues.
func SchedulerHandler(d Deps) func(ctx context.Context, ev events.EventBridgeEvent) error {
	sc := &engine.Scheduler{Timers: d.Store(), Queue: d.Queues()}
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		moved, err := sc.Tick(ctx)
		d.Log.Info("scheduler tick", "moved", moved, "error", err)
		return err
	}
}

// messenger is the Messenger of a function, with its egress client.
func messenger(d Deps, st *store.Store) *Messenger {
	hc := egress.NewClient(egress.Policy{Allow: d.Config.EgressAllow}, egress.Options{})
	return &Messenger{Store: st, Client: &connector.Client{HTTP: hc},
		Telegram: &TelegramSender{Store: st, API: d.Config.TelegramAPI, HTTP: hc}}
}

// Messenger delivers chat messages through the channel a subscriber's
// identity names: the signed webhook connector or a Telegram bot.
type Messenger struct {
	Store    *store.Store
	Client   *connector.Client
	Telegram *TelegramSender
}

// Deliver implements engine.Messenger.
func (m *Messenger) Deliver(ctx context.Context, ws string, d engine.ChatDelivery) (map[string]any, error) {
	cfg, err := m.Store.ChannelFor(ctx, ws, d.Channel)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, engine.ErrNoChannel
	}
	if err != nil {
		return nil, err
	}
	if cfg.Kind == "telegram" {
		return m.Telegram.Send(ctx, ws, cfg, d)
	}
	ch := connector.Channel{URL: cfg.URL, Secret: cfg.Secret}
	res, err := m.Client.Send(ctx, ch, connector.Message{
		StepID: d.StepID, SubscriberID: d.SubscriberID, Channel: d.Channel, ExternalID: d.ExternalID,
		Tunnel: d.Tunnel, Block: d.Block, Text: d.Text, Buttons: buttons(d.Buttons),
	})
	detail := map[string]any{"connector_status": res.Status}
	switch {
	case err == nil:
		return detail, nil
	case errors.Is(err, connector.ErrPermanent):
		return detail, fmt.Errorf("%w: %s", engine.ErrPermanent, err.Error())
	default:
		return detail, err
	}
}

func buttons(bs []engine.ChatButton) []connector.Button {
	if len(bs) == 0 {
		return nil
	}
	out := make([]connector.Button, len(bs))
	for i, b := range bs {
		out[i] = connector.Button{ID: b.ID, Text: b.Text}
	}
	return out
}

// API builds the HTTP API handler, with the browser console at GET /.
func API(d Deps) http.Handler {
	c, err := console.New()
	if err != nil {
		d.Log.Error("the console is not served", "error", err) // the API still is
		c = nil
	}
	return (&api.Server{
		Console: c,
		Store:   d.Store(), Queue: d.Queues(), AdminToken: d.Config.AdminToken,
		Egress: egress.Policy{Allow: d.Config.EgressAllow}, DLQ: &queue.DeadLetterQueues{API: d.SQS, URLs: d.Config.DLQs}, External: externalClient(d), Log: d.Log,
		Messenger: messenger(d, d.Store()), PublicURL: d.Config.PublicURL, TelegramAPI: d.Config.TelegramAPI,
		TelegramHTTP: egress.NewClient(egress.Policy{Allow: d.Config.EgressAllow}, egress.Options{}),
	}).Handler()
}

// Init is what every functions/<name>/main.go does first: a JSON logger with
// the Lambda request id, the configuration from the environment and the
// clients, once per cold start. A function that cannot start exits at init.
func Init() Deps {
	log := lambdacontext.NewLogger()
	deps, err := Load(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("configuration", "error", err)
		os.Exit(1)
	}
	return deps
}
