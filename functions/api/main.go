// Command api is the Lambda function behind API Gateway's HTTP API: one
// net/http handler serves every route but the editor's (functions/editor).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/apigw"
	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/api"
)

func main() {
	lambda.Start(apigw.Handler(api.Handler(wire.Init())))
}
