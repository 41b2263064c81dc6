// Command api is the Lambda function behind API Gateway's HTTP API: one
// net/http handler serves every route.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/apigw"
	"github.com/tunnels/tunnels/shared/app"
)

func main() {
	lambda.Start(apigw.Handler(app.API(app.Init())))
}
