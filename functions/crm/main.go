// Command crm is the Lambda function that runs amoCRM steps from its SQS queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/app"
	"github.com/tunnels/tunnels/shared/engine"
)

func main() {
	lambda.Start(app.StepHandler(app.Init(), engine.KindCRM).Handle)
}
