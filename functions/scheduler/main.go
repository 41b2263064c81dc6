// Command scheduler is the Lambda function that, every minute, moves steps
// delayed beyond a queue's 15 minutes from their timers to their queues.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/scheduler"
)

func main() {
	lambda.Start(scheduler.Handler(wire.Init()))
}
