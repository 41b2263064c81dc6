// Command webhook is the Lambda function that runs external request steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/webhook"
)

func main() {
	lambda.Start(webhook.Handler(wire.Init()).Handle)
}
