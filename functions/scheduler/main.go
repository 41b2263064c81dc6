// Command scheduler is the Lambda function that, every minute, moves steps
// delayed beyond a queue's 15 minutes from their timers to their queues.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/app"
)

func main() {
	lambda.Start(app.SchedulerHandler(app.Init()))
}
