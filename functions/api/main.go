// Command api is the Lambda function behind API Gateway's HTTP API: one
// net/http handler serves every route.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/tunnels/tunnels/shared/apigw"
	"github.com/tunnels/tunnels/shared/app"
)

func main() {
	log := lambdacontext.NewLogger()
	deps, err := app.Load(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("configuration", "error", err)
		os.Exit(1)
	}
	lambda.Start(apigw.Handler(app.API(deps)))
}
