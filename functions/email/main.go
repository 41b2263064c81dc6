// Command email is the Lambda function that runs email steps (SES v2) from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/email"
)

func main() {
	lambda.Start(email.Handler(wire.Init()).Handle)
}
