// Command minimal is the floor the functions are measured against: an
// aws-lambda-go function that does nothing, built with the same flags
// (-tags lambda.norpc -trimpath -ldflags='-s -w', CGO_ENABLED=0).
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, ev json.RawMessage) (string, error) { return "ok", nil })
}
