// Command tags is the Lambda function that runs tag, custom field, sales plan, mention and unread steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/tags"
)

func main() {
	h := tags.Handler(wire.Init())
	// SIGTERM at shutdown writes the step counts still waiting.
	lambda.StartWithOptions(h.Handle, lambda.WithEnableSIGTERM(h.Shutdown))
}
