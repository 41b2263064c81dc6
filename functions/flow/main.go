// Command flow is the Lambda function that runs message, delay, START and STOP steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/flow"
)

func main() {
	lambda.Start(flow.Handler(wire.Init()).Handle)
}
