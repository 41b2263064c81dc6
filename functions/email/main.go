// Command email is the Lambda function that runs email steps (SES v2) from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/email"
)

func main() {
	h := email.Handler(wire.Init())
	// SIGTERM at shutdown writes the step counts still waiting.
	lambda.StartWithOptions(h.Handle, lambda.WithEnableSIGTERM(h.Shutdown))
}
