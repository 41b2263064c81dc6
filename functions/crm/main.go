// Command crm is the Lambda function that runs amoCRM steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/crm"
)

func main() {
	lambda.Start(crm.Handler(wire.Init()).Handle)
}
