package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/tunnels/tunnels/infra/localstack"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := localstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not there yet: %v", rel, err)
	}
	return p
}

func writeDev(t *testing.T, ep localstack.Endpoints) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"api_url": "http://127.0.0.1:3000", "endpoints": ep})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dev.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A dev.json left by a stopped stack must not stop invoke: it falls back to
// dummy endpoints.
func TestStaleDevJSONFallsBack(t *testing.T) {
	tpl := repoFile(t, "template.yaml")
	dead := localstack.Endpoints{DynamoDB: "http://127.0.0.1:9", SQS: "http://127.0.0.1:9", SESv2: "http://127.0.0.1:9"}
	var stderr bytes.Buffer
	res, ep, err := resources(context.Background(), writeDev(t, dead), tpl, params{"AdminToken": "dev-admin-token"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if ep != dummyEndpoints || !strings.Contains(stderr.String(), "names no running stack") {
		t.Errorf("endpoints %+v, stderr %q", ep, stderr.String())
	}
	if _, ok := findFunction(res, "api"); !ok {
		t.Error("short name api not found")
	}
	if f, ok := findFunction(res, "FlowFunction"); !ok || f.Name != "flow" {
		t.Errorf("FlowFunction: %+v %v", f, ok)
	}
}

func TestParams(t *testing.T) {
	p := params{}
	if err := p.Set("AdminToken=a=b"); err != nil || p["AdminToken"] != "a=b" {
		t.Errorf("Set: %v %v", err, p)
	}
	if err := p.Set("novalue"); err == nil {
		t.Error("want an error without =")
	}
	devDefaults(p)
	if p["AdminToken"] != "a=b" {
		t.Errorf("a given parameter was overridden: %v", p)
	}
}

// TestInvokeAgainstStack builds real functions with the Makefile, runs them
// under RIE against a provisioned local stack found through a dev.json.
func TestInvokeAgainstStack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: emulators, make build, RIE")
	}
	tpl := repoFile(t, "template.yaml")
	health := repoFile(t, "events/api-health.json")
	ctx := context.Background()
	st, err := localstack.Start(ctx, localstack.Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	c, err := st.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localstack.Provision(ctx, tpl, c, map[string]string{"AdminToken": "dev-admin-token"}); err != nil {
		t.Fatal(err)
	}
	dev := writeDev(t, st.Endpoints)

	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-fn", "ApiFunction", "-event", health, "-template", tpl, "-dev", dev}, &stdout, io.MultiWriter(&stderr))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "using the local stack of "+dev) {
		t.Errorf("stderr does not say it used the stack:\n%s", stderr.String())
	}
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil || resp.StatusCode != 200 {
		t.Errorf("response %s (%v)", stdout.String(), err)
	}

	// What the function is given: -bootstrap runs the echo handler of
	// infra/localstack/testdata under FlowFunction's name and environment.
	echo := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", echo, "../localstack/testdata/echo")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build echo: %v\n%s", err, out)
	}
	event := filepath.Join(t.TempDir(), "event.json")
	names := []string{"TUNNELS_TABLE", "TUNNELS_QUEUE_FLOW", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS",
		"AWS_ENDPOINT_URL_SESV2", "AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_TIMEOUT"}
	eb, _ := json.Marshal(map[string]any{"env": names})
	os.WriteFile(event, eb, 0o644)
	stdout.Reset()
	stderr.Reset()
	if err := run(ctx, []string{"-fn", "flow", "-template", tpl, "-dev", dev, "-bootstrap", echo, "-event", event}, &stdout, &stderr); err != nil {
		t.Fatalf("echo: %v\n%s", err, stderr.String())
	}
	var got struct {
		Env map[string]string `json:"env"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("echo response %s: %v", stdout.String(), err)
	}
	flowURL, err := c.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("tunnels-FlowQueue")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TUNNELS_TABLE": "tunnels-Table", "TUNNELS_QUEUE_FLOW": aws.ToString(flowURL.QueueUrl),
		"AWS_ENDPOINT_URL_DYNAMODB": st.Endpoints.DynamoDB, "AWS_ENDPOINT_URL_SQS": st.Endpoints.SQS,
		"AWS_ENDPOINT_URL_SESV2": st.Endpoints.SESv2, "AWS_ACCESS_KEY_ID": "local", "AWS_REGION": "us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME": "FlowFunction", "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
	}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, got.Env[k], v)
		}
	}
}
