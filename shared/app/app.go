// Package app puts every kind of function together, for the local runner
// and the tests: the same wiring each functions/<name>/main.go uses on
// Lambda (packages wire and wire/<kind>), behind one switch over the kinds.
// No function links this package: each links only its own kind's wiring.
package app

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/api"
	"github.com/tunnels/tunnels/shared/wire/crm"
	"github.com/tunnels/tunnels/shared/wire/editor"
	"github.com/tunnels/tunnels/shared/wire/email"
	"github.com/tunnels/tunnels/shared/wire/flow"
	"github.com/tunnels/tunnels/shared/wire/scheduler"
	"github.com/tunnels/tunnels/shared/wire/tags"
	"github.com/tunnels/tunnels/shared/wire/webhook"
)

// Deps are the configuration and clients a function is built from.
type Deps = wire.Deps

// CRMConcurrency is the crm function's MaximumConcurrency (see crm.Concurrency).
const CRMConcurrency = crm.Concurrency

// New makes the clients from an AWS configuration (the local runner passes
// one pointed at the emulators).
func New(cfg config.Config, awsCfg aws.Config, log *slog.Logger, dynamoOpts ...func(*dynamodb.Options)) Deps {
	return wire.New(cfg, awsCfg, log, dynamoOpts...)
}

// StepHandler builds the SQS batch handler of a step kind, as that kind's
// function does.
func StepHandler(d Deps, kind engine.Kind) *stepbatch.Handler {
	switch kind {
	case engine.KindFlow:
		return flow.Handler(d)
	case engine.KindTags:
		return tags.Handler(d)
	case engine.KindEmail:
		return email.Handler(d)
	case engine.KindCRM:
		return crm.Handler(d)
	case engine.KindWebhook:
		return webhook.Handler(d)
	}
	// A kind no function runs: its actions are recorded "not implemented".
	return wire.StepHandler(d, d.Store(), kind, wire.Kind{})
}

// SchedulerHandler moves due long-delay timers to their queues.
func SchedulerHandler(d Deps) func(ctx context.Context, ev events.EventBridgeEvent) error {
	return scheduler.Handler(d)
}

// HTTPHandler builds the HTTP handler of a function behind the HTTP API, by
// its Go package name (functions/<name>): api, with the browser console at
// GET /, or editor. ok is false for a name that serves no HTTP.
func HTTPHandler(d Deps, name string) (h http.Handler, ok bool) {
	switch name {
	case "api":
		return api.Handler(d), true
	case "editor":
		return editor.Handler(d), true
	}
	return nil, false
}
