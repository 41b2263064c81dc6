// Command webhook is the Lambda function that runs webhook steps from its SQS queue.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/tunnels/tunnels/shared/app"
	"github.com/tunnels/tunnels/shared/engine"
)

func main() {
	log := lambdacontext.NewLogger()
	deps, err := app.Load(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("configuration", "error", err)
		os.Exit(1)
	}
	lambda.Start(app.StepHandler(deps, engine.KindWebhook).Handle)
}
