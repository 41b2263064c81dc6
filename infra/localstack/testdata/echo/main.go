// Command echo is a tiny Lambda handler for InvokeRIE tests: it answers with
// the event it got, its request id and the environment variables the test
// names in "env"; an event with "fail" set makes it return an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Fail bool     `json:"fail"`
	Env  []string `json:"env"`
}

type response struct {
	Event     json.RawMessage   `json:"event"`
	RequestID string            `json:"request_id"`
	Env       map[string]string `json:"env"`
}

func handle(ctx context.Context, raw json.RawMessage) (response, error) {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return response{}, err
	}
	if req.Fail {
		return response{}, errors.New("asked to fail")
	}
	resp := response{Event: raw, Env: map[string]string{}}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		resp.RequestID = lc.AwsRequestID
	}
	for _, k := range req.Env {
		resp.Env[k] = os.Getenv(k)
	}
	return resp, nil
}

func main() {
	lambda.Start(handle)
}
