// Command scheduler is the Lambda function that, every minute, moves steps
// delayed beyond a queue's 15 minutes from their timers to their queues.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/tunnels/tunnels/shared/app"
)

func main() {
	log := lambdacontext.NewLogger()
	deps, err := app.Load(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("configuration", "error", err)
		os.Exit(1)
	}
	lambda.Start(app.SchedulerHandler(deps))
}
