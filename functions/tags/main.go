// Command tags is the Lambda function that runs tag, custom field, sales plan, mention and unread steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/tags"
)

func main() {
	lambda.Start(tags.Handler(wire.Init()).Handle)
}
