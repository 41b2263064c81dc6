// Command editor is the Lambda function behind the HTTP API's editor routes:
// PUT /v1/tunnels/{id} and POST /v1/external-requests/{preview,check}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tunnels/tunnels/shared/apigw"
	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/editor"
)

func main() {
	lambda.Start(apigw.Handler(editor.Handler(wire.Init())))
}
