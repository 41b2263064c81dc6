package localstack

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestAWSConfigPerServiceEndpoints(t *testing.T) {
	// The process environment names other endpoints; the config must win.
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "someone-else")
	ep := Endpoints{DynamoDB: "http://127.0.0.1:4001", SQS: "http://127.0.0.1:4002", SESv2: "http://127.0.0.1:4003"}
	cfg, err := AWSConfig(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-1" {
		t.Errorf("region %q", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "local" || creds.SecretAccessKey != "local" {
		t.Errorf("credentials %+v %v", creds, err)
	}
	got := map[string]string{
		"dynamodb": aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint),
		"sqs":      aws.ToString(sqs.NewFromConfig(cfg).Options().BaseEndpoint),
		"sesv2":    aws.ToString(sesv2.NewFromConfig(cfg).Options().BaseEndpoint),
	}
	want := map[string]string{"dynamodb": ep.DynamoDB, "sqs": ep.SQS, "sesv2": ep.SESv2}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s endpoint %q, want %q", k, got[k], want[k])
		}
	}
}

func TestAWSConfigRefusesGlobalEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	if _, err := AWSConfig(context.Background(), Endpoints{}); err == nil {
		t.Fatal("want an error while AWS_ENDPOINT_URL is set")
	}
}

func TestEndpointsEnv(t *testing.T) {
	env := Endpoints{DynamoDB: "d", SQS: "s", SESv2: "e"}.Env()
	want := map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": "d", "AWS_ENDPOINT_URL_SQS": "s", "AWS_ENDPOINT_URL_SESV2": "e",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("env has %d entries, want %d", len(env), len(want))
	}
}
