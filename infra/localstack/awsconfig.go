package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Local identity of the stack. The emulators accept any credentials, but
// DynamoDB Local keeps a separate database per access key and region, so
// every client of one stack must use the same pair: these.
const (
	Region          = "us-east-1"
	AccessKeyID     = "local"
	SecretAccessKey = "local"
	// AccountID is the account fauxqs puts in queue URLs and ARNs.
	AccountID = "000000000000"
)

// Endpoints are the base URLs of the three emulators.
type Endpoints struct {
	DynamoDB string `json:"dynamodb"`
	SQS      string `json:"sqs"`
	SESv2    string `json:"sesv2"`
}

// Env is what a process (a function under RIE, the dev runner) needs to reach
// the emulators through the SDK's standard configuration, with no endpoint
// code of its own.
func (e Endpoints) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": e.DynamoDB,
		"AWS_ENDPOINT_URL_SQS":      e.SQS,
		"AWS_ENDPOINT_URL_SESV2":    e.SESv2,
		"AWS_ACCESS_KEY_ID":         AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     SecretAccessKey,
		"AWS_REGION":                Region,
		"AWS_DEFAULT_REGION":        Region,
	}
}

// AWSConfig returns a config for the emulators at e: the stack's region, dummy
// static credentials, and e as the per-service base endpoints, so a plain
// dynamodb.NewFromConfig(cfg) / sqs.NewFromConfig(cfg) / sesv2.NewFromConfig(cfg)
// talks to the emulators without the process environment being touched.
//
// How: aws.Config has a single BaseEndpoint, but every service client asks the
// config's ConfigSources for a service-specific one (GetServiceBaseEndpoint,
// the method the SDK's own env and shared-config sources implement for
// AWS_ENDPOINT_URL_<SERVICE> and the `services` section). A source of ours is
// put first, so it wins over whatever the process environment says. The one
// case the SDK skips that lookup (AWS_ENDPOINT_URL set without the
// service-specific variable) is refused here; the With*Endpoint options below
// set a client's endpoint directly in any case, and NewClients uses them.
func AWSConfig(ctx context.Context, e Endpoints) (aws.Config, error) {
	if _, g := os.LookupEnv("AWS_ENDPOINT_URL"); g {
		return aws.Config{}, errors.New("localstack: AWS_ENDPOINT_URL is set in the environment; it would override the emulator endpoints, unset it")
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("localstack: aws config: %w", err)
	}
	cfg.ConfigSources = append([]any{endpointSource(e)}, cfg.ConfigSources...)
	return cfg, nil
}

// endpointSource answers the SDK's per-service endpoint lookup from Endpoints.
type endpointSource Endpoints

// GetServiceBaseEndpoint is called by each client with its SDK id.
func (s endpointSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	var v string
	switch sdkID {
	case "DynamoDB":
		v = s.DynamoDB
	case "SQS":
		v = s.SQS
	case "SESv2":
		v = s.SESv2
	}
	return v, v != "", nil
}

// WithDynamoDBEndpoint points a DynamoDB client at url.
func WithDynamoDBEndpoint(url string) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) }
}

// WithSQSEndpoint points an SQS client at url.
func WithSQSEndpoint(url string) func(*sqs.Options) {
	return func(o *sqs.Options) { o.BaseEndpoint = aws.String(url) }
}

// WithSESv2Endpoint points an SES v2 client at url.
func WithSESv2Endpoint(url string) func(*sesv2.Options) {
	return func(o *sesv2.Options) { o.BaseEndpoint = aws.String(url) }
}

// WithoutResponseChecksum turns off the DynamoDB client's CRC32 check of
// responses: DynamoDB Local's error answers carry a checksum the SDK cannot
// match, and it logs a warning on every one (each failed condition check).
func WithoutResponseChecksum(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true }

// Clients are SDK clients bound to one stack's emulators.
type Clients struct {
	Config   aws.Config
	DynamoDB *dynamodb.Client
	SQS      *sqs.Client
	SESv2    *sesv2.Client
}

// NewClients builds clients for the emulators at e.
func NewClients(ctx context.Context, e Endpoints) (*Clients, error) {
	if e.DynamoDB == "" || e.SQS == "" || e.SESv2 == "" {
		return nil, errors.New("localstack: endpoints incomplete")
	}
	cfg, err := AWSConfig(ctx, e)
	if err != nil {
		return nil, err
	}
	return &Clients{
		Config:   cfg,
		DynamoDB: dynamodb.NewFromConfig(cfg, WithDynamoDBEndpoint(e.DynamoDB), WithoutResponseChecksum),
		SQS:      sqs.NewFromConfig(cfg, WithSQSEndpoint(e.SQS)),
		SESv2:    sesv2.NewFromConfig(cfg, WithSESv2Endpoint(e.SESv2)),
	}, nil
}
