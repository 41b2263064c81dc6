// Package awsenv makes a Lambda function's AWS configuration from its
// environment alone.
//
// Why not config.LoadDefaultConfig: it links the whole credential chain
// (SSO, SSO-OIDC, STS, sign-in, IMDS, process and container credentials,
// shared-file parsing) — about 1.6 MB of every binary — and reads the shared
// config files at every cold start. A Lambda function has none of that: the
// runtime puts the execution role's credentials and the region in the
// environment, which is the first source the default chain would use anyway.
// The local runner and the tests build their own aws.Config and do not come
// through here.
package awsenv

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Config reads, through getenv, what the SDK's environment source reads on
// Lambda: the region (AWS_REGION, else AWS_DEFAULT_REGION), the credentials
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_ACCOUNT_ID) and the endpoints (AWS_ENDPOINT_URL_<SERVICE>,
// AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true), so
// the same binary runs on AWS and against the local emulators.
func Config(getenv func(string) string) (aws.Config, error) {
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		return aws.Config{}, errors.New("no AWS region in the environment (AWS_REGION)")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Config{}, errors.New("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	}
	cfg := aws.Config{
		Region: region,
		Credentials: credentials.StaticCredentialsProvider{Value: aws.Credentials{
			AccessKeyID: id, SecretAccessKey: secret, SessionToken: getenv("AWS_SESSION_TOKEN"),
			AccountID: getenv("AWS_ACCOUNT_ID"),
			Source:    "EnvConfigCredentials", // what the default chain names this source
		}},
	}
	if !strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		if u := getenv("AWS_ENDPOINT_URL"); u != "" {
			cfg.BaseEndpoint = aws.String(u)
		}
		cfg.ConfigSources = []any{endpoints(getenv)}
	}
	return cfg, nil
}

// endpoints answers each service client's lookup of its own endpoint (the
// method the SDK's environment source implements), by the SDK's naming:
// the service id upper-cased, spaces to underscores.
type endpoints func(string) string

// GetServiceBaseEndpoint is called by a client with its SDK id ("DynamoDB").
func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v := e("AWS_ENDPOINT_URL_" + strings.ToUpper(strings.ReplaceAll(sdkID, " ", "_")))
	return v, v != "", nil
}
