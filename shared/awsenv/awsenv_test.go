package awsenv

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromLambdaEnvironment(t *testing.T) {
	cfg, err := Config(env(map[string]string{
		"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "token", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q", cfg.Region)
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "AKID" || c.SecretAccessKey != "secret" || c.SessionToken != "token" {
		t.Errorf("credentials %+v, %v", c, err)
	}
	// Each client finds its own endpoint the way it does under LoadDefaultConfig.
	if got := aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint); got != "http://127.0.0.1:8000" {
		t.Errorf("DynamoDB endpoint %q", got)
	}
	if got := sqs.NewFromConfig(cfg).Options().BaseEndpoint; got != nil {
		t.Errorf("SQS endpoint %q, want AWS's", *got)
	}
}

func TestConfigRegionFallbackAndIgnoredEndpoints(t *testing.T) {
	cfg, err := Config(env(map[string]string{
		"AWS_DEFAULT_REGION": "us-east-2", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
		"AWS_ENDPOINT_URL_SQS": "http://x", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-2" {
		t.Errorf("region %q", cfg.Region)
	}
	if got := sqs.NewFromConfig(cfg).Options().BaseEndpoint; got != nil {
		t.Errorf("SQS endpoint %q, want none (ignored)", *got)
	}
}

func TestConfigRefusesAnIncompleteEnvironment(t *testing.T) {
	for _, m := range []map[string]string{
		{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
		{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a"},
	} {
		if _, err := Config(env(m)); err == nil {
			t.Errorf("%v: want an error", m)
		}
	}
}
