// Command crm is the Lambda function that runs amoCRM steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/crm"
)

func main() {
	h := crm.Handler(wire.Init())
	// SIGTERM at shutdown writes the step counts still waiting.
	lambda.StartWithOptions(h.Handle, lambda.WithEnableSIGTERM(h.Shutdown))
}
