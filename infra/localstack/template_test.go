package localstack

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const fixture = "testdata/template.yaml"

var planEndpoints = Endpoints{DynamoDB: "http://127.0.0.1:1", SQS: "http://127.0.0.1:2", SESv2: "http://127.0.0.1:3"}

func TestShortTags(t *testing.T) {
	tpl, err := parseTemplate([]byte(`
Parameters:
  P: {Type: String, Default: pv}
  N: {Type: Number, Default: 7}
Resources:
  Q: {Type: AWS::SQS::Queue}
  T: {Type: AWS::DynamoDB::Table}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          REF: !Ref P
          NUM: !Ref N
          GETATT: !GetAtt Q.Arn
          GETATT_LIST: !GetAtt [Q, QueueName]
          GETATT_LONG: {"Fn::GetAtt": "Q.QueueUrl"}
          SUB: !Sub "${P}/${Q.QueueName}/${AWS::Region}/${!Literal}"
          SUB_VARS: !Sub ["${x}-${P}", {x: !Ref T}]
          JOIN: !Join [",", [a, !Ref P, 3]]
          SELECT: !Select [1, [a, b, c]]
          SPLIT_SELECT: !Select [2, !Split ["/", "x/y/z"]]
          GONE: !Ref AWS::NoValue
          BOOL: true
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &Resources{
		ByID: map[string]Resource{
			"Q": {LogicalID: "Q", Type: TypeQueue, Name: "tq", URL: "http://q/tq", ARN: "arn:q"},
			"T": {LogicalID: "T", Type: TypeTable, Name: "tt", ARN: "arn:t"},
		},
		tpl: tpl, params: map[string]string{"P": "pv", "N": "7"}, prefix: "x-",
	}
	got, err := r.FunctionEnv("F")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"REF": "pv", "NUM": "7", "GETATT": "arn:q", "GETATT_LIST": "tq", "GETATT_LONG": "http://q/tq",
		"SUB": "pv/tq/us-east-1/${Literal}", "SUB_VARS": "tt-pv", "JOIN": "a,pv,3", "SELECT": "b",
		"SPLIT_SELECT": "z", "BOOL": "true",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env:\n got %v\nwant %v", got, want)
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown tag", "Resources:\n  A: {Type: X, Properties: {P: !Nope x}}\n", "unknown tag !Nope"},
		{"getatt without dot", "Resources:\n  A: {Type: X, Properties: {P: !GetAtt Q}}\n", "want Resource.Attribute"},
		{"no resources", "Parameters: {}\n", "no Resources"},
		{"no type", "Resources:\n  A: {Properties: {}}\n", "A has no Type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTemplate([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestFunctionEnvFromFixture(t *testing.T) {
	r, err := Plan(fixture, planEndpoints, map[string]string{"AdminToken": "secret", "EgressAllow": "127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	globals := map[string]string{
		"TUNNELS_TABLE":        "tunnels-Table",
		"TUNNELS_QUEUE_FLOW":   "http://127.0.0.1:2/000000000000/tunnels-FlowQueue",
		"TUNNELS_QUEUE_TAGS":   "http://127.0.0.1:2/000000000000/tunnels-TagsQueue",
		"TUNNELS_DLQ_FLOW":     "http://127.0.0.1:2/000000000000/tunnels-FlowDLQ",
		"TUNNELS_DLQ_TAGS":     "http://127.0.0.1:2/000000000000/tunnels-TagsDLQ",
		"TUNNELS_EGRESS_ALLOW": "127.0.0.1:8080",       // given
		"TUNNELS_SES_IDENTITY": "noreply@example.test", // Default
		"TUNNELS_REGION":       "us-east-1",
		"TUNNELS_LITERAL":      "plain",
		"TUNNELS_NUMBER":       "42",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range globals {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		fn   string
		want map[string]string
	}{
		{"ApiFunction", with(map[string]string{"TUNNELS_ADMIN_TOKEN": "secret"})},
		{"FlowFunction", with(map[string]string{
			"TUNNELS_FLOW_ARN":  "arn:aws:sqs:us-east-1:000000000000:tunnels-FlowQueue",
			"TUNNELS_FLOW_NAME": "tunnels-FlowQueue",
			"TUNNELS_STAGE":     "tunnels-us-east-1-tunnels-FlowQueue",
		})},
		{"SchedulerFunction", globals},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			got, err := r.FunctionEnv(tt.fn)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestFunctionEnvErrors(t *testing.T) {
	r, err := Plan(fixture, planEndpoints, nil) // AdminToken has no Default
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ fn, want string }{
		{"ApiFunction", "TUNNELS_ADMIN_TOKEN: !Ref AdminToken: parameter has no value and no Default"},
		{"Table", "Table is a AWS::DynamoDB::Table, not a function"},
		{"Nope", "no resource Nope"},
	}
	for _, tt := range tests {
		_, err := r.FunctionEnv(tt.fn)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.fn, err, tt.want)
		}
	}
	// A reference to a resource without a local counterpart is named.
	r.tpl.Resources["FlowFunction"].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)["API"] = map[string]any{"Ref": "HttpApi"}
	_, err = r.FunctionEnv("FlowFunction")
	if err == nil || !strings.Contains(err.Error(), "API: !Ref HttpApi: resource HttpApi (AWS::Serverless::HttpApi) has no local counterpart") {
		t.Errorf("err = %v", err)
	}
}

func TestFunctions(t *testing.T) {
	r, err := Plan(fixture, planEndpoints, nil, WithPrefix("t1-"))
	if err != nil {
		t.Fatal(err)
	}
	flowURL := "http://127.0.0.1:2/000000000000/t1-FlowQueue"
	want := []Function{
		{LogicalID: "ApiFunction", Name: "api", Timeout: 10 * time.Second, MemorySize: 256, HTTP: []HTTPEvent{
			{EventName: "Proxy", Type: "HttpApi", Method: "ANY", Path: "/{proxy+}", APIID: "HttpApi"},
			{EventName: "Root", Type: "HttpApi", Method: "ANY", Path: "/", APIID: "HttpApi"},
		}},
		{LogicalID: "FlowFunction", Name: "flow", Timeout: 2 * time.Second, MemorySize: 256, SQS: []SQSEvent{{
			EventName: "Steps", QueueLogicalID: "FlowQueue", QueueURL: flowURL,
			QueueARN: "arn:aws:sqs:us-east-1:000000000000:t1-FlowQueue", BatchSize: 5,
			MaximumBatchingWindowInSeconds: 1, ReportBatchItemFailures: true, Enabled: true,
		}}},
		{LogicalID: "SchedulerFunction", Name: "scheduler", Timeout: 30 * time.Second, MemorySize: 256, Schedules: []ScheduleEvent{
			{EventName: "Tick", Type: "Schedule", Expression: "rate(1 minute)", Enabled: true},
		}},
		{LogicalID: "TagsFunction", Name: "tags", Timeout: 2 * time.Second, MemorySize: 256, SQS: []SQSEvent{{
			EventName: "Steps", QueueLogicalID: "TagsQueue", QueueURL: "http://127.0.0.1:2/000000000000/t1-TagsQueue",
			QueueARN: "arn:aws:sqs:us-east-1:000000000000:t1-TagsQueue", BatchSize: 10,
			ReportBatchItemFailures: true, Enabled: true,
		}}},
	}
	got := r.Functions()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n %+v\nwant\n %+v", got, want)
	}
}

func TestCreateTableInputFromFixture(t *testing.T) {
	r, err := load(fixture, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := r.resolver(nil)
	props, err := res.resolve(r.tpl.Resources["Table"].Properties)
	if err != nil {
		t.Fatal(err)
	}
	var ct cfnTable
	if err := decodeInto(props, &ct); err != nil {
		t.Fatal(err)
	}
	in, err := createTableInput("tunnels-Table", TypeTable, ct)
	if err != nil {
		t.Fatal(err)
	}
	if in.BillingMode != ddbtypes.BillingModePayPerRequest || in.ProvisionedThroughput != nil {
		t.Errorf("billing %v %v", in.BillingMode, in.ProvisionedThroughput)
	}
	keys := func(ks []ddbtypes.KeySchemaElement) string {
		var s []string
		for _, k := range ks {
			s = append(s, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
		}
		return strings.Join(s, ",")
	}
	if got := keys(in.KeySchema); got != "pk:HASH,sk:RANGE" {
		t.Errorf("key schema %s", got)
	}
	if len(in.LocalSecondaryIndexes) != 1 || aws.ToString(in.LocalSecondaryIndexes[0].IndexName) != "Journey" ||
		keys(in.LocalSecondaryIndexes[0].KeySchema) != "pk:HASH,jsk:RANGE" ||
		in.LocalSecondaryIndexes[0].Projection.ProjectionType != ddbtypes.ProjectionTypeAll {
		t.Errorf("LSI %+v", in.LocalSecondaryIndexes)
	}
	if len(in.GlobalSecondaryIndexes) != 1 || aws.ToString(in.GlobalSecondaryIndexes[0].IndexName) != "Inbox" ||
		keys(in.GlobalSecondaryIndexes[0].KeySchema) != "ipk:HASH,isk:RANGE" ||
		in.GlobalSecondaryIndexes[0].ProvisionedThroughput != nil {
		t.Errorf("GSI %+v", in.GlobalSecondaryIndexes)
	}
	if len(in.AttributeDefinitions) != 5 || ct.TimeToLiveSpecification == nil ||
		ct.TimeToLiveSpecification.AttributeName != "expires_at" || !bool(ct.TimeToLiveSpecification.Enabled) {
		t.Errorf("attributes %d, ttl %+v", len(in.AttributeDefinitions), ct.TimeToLiveSpecification)
	}
}

func TestQueueAttrsResolveRedrive(t *testing.T) {
	r, err := load(fixture, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{"FlowDLQ": true}
	res := r.resolver(pending)
	if _, err := queueAttrs(res, r.tpl.Resources["FlowQueue"].Properties); err == nil || !strings.Contains(err.Error(), errPending.Error()) {
		t.Fatalf("before the DLQ exists: err = %v, want pending", err)
	}
	r.ByID["FlowDLQ"] = Resource{LogicalID: "FlowDLQ", Type: TypeQueue, Name: "d", URL: "u", ARN: "arn:aws:sqs:us-east-1:000000000000:d"}
	delete(pending, "FlowDLQ")
	got, err := queueAttrs(res, r.tpl.Resources["FlowQueue"].Properties)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"VisibilityTimeout":      "2",
		"MessageRetentionPeriod": "1209600",
		"RedrivePolicy":          `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":3}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestPrefixValidated(t *testing.T) {
	if _, err := Plan(fixture, planEndpoints, nil, WithPrefix("bad prefix/")); err == nil {
		t.Fatal("want an error for a prefix with a space and a slash")
	}
}

// TestRealTemplate checks that template.yaml, read the local stack's way,
// has the fixed names of the brief: functions, their events, queues and the
// environment every function gets.
func TestRealTemplate(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := root + "/template.yaml"
	r, err := Plan(path, planEndpoints, map[string]string{"AdminToken": "dev-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]string{"FlowFunction": "FlowQueue", "TagsFunction": "TagsQueue", "EmailFunction": "EmailQueue",
		"CrmFunction": "CrmQueue", "WebhookFunction": "WebhookQueue"}
	names := map[string]string{"ApiFunction": "api", "EditorFunction": "editor", "FlowFunction": "flow", "TagsFunction": "tags", "EmailFunction": "email",
		"CrmFunction": "crm", "WebhookFunction": "webhook", "SchedulerFunction": "scheduler"}
	for id, name := range names {
		f, ok := r.Function(id)
		if !ok || f.Name != name {
			t.Errorf("%s: %+v", id, f)
			continue
		}
		env, err := r.FunctionEnv(id)
		if err != nil {
			t.Errorf("%s env: %v", id, err)
			continue
		}
		for _, k := range []string{"TUNNELS_TABLE", "TUNNELS_QUEUE_FLOW", "TUNNELS_QUEUE_TAGS", "TUNNELS_QUEUE_EMAIL",
			"TUNNELS_QUEUE_CRM", "TUNNELS_QUEUE_WEBHOOK", "TUNNELS_DLQ_FLOW", "TUNNELS_DLQ_TAGS", "TUNNELS_DLQ_EMAIL",
			"TUNNELS_DLQ_CRM", "TUNNELS_DLQ_WEBHOOK", "TUNNELS_EGRESS_ALLOW", "TUNNELS_SES_IDENTITY"} {
			if _, ok := env[k]; !ok {
				t.Errorf("%s: no %s", id, k)
			}
		}
		if env["TUNNELS_TABLE"] != "tunnels-Table" || env["TUNNELS_DLQ_CRM"] != "http://127.0.0.1:2/000000000000/tunnels-CrmDLQ" {
			t.Errorf("%s: TUNNELS_TABLE %q, TUNNELS_DLQ_CRM %q", id, env["TUNNELS_TABLE"], env["TUNNELS_DLQ_CRM"])
		}
		if _, has := env["TUNNELS_ADMIN_TOKEN"]; has != (id == "ApiFunction") {
			t.Errorf("%s: TUNNELS_ADMIN_TOKEN present = %v", id, has)
		}
		if q, ok := steps[id]; ok {
			if len(f.SQS) != 1 || f.SQS[0].QueueLogicalID != q || !f.SQS[0].ReportBatchItemFailures {
				t.Errorf("%s SQS events %+v", id, f.SQS)
			}
		}
	}
	if f, _ := r.Function("SchedulerFunction"); len(f.Schedules) != 1 || f.Schedules[0].Expression != "rate(1 minute)" {
		t.Errorf("scheduler schedules %+v", f.Schedules)
	}
	if f, _ := r.Function("ApiFunction"); len(f.HTTP) != 2 {
		t.Errorf("api HTTP events %+v", f.HTTP)
	}
	if f, _ := r.Function("EditorFunction"); len(f.HTTP) != 3 {
		t.Errorf("editor HTTP events %+v", f.HTTP)
	}
	// The local API routes the template's HTTP events as API Gateway would.
	router, err := NewHTTPRouter(r.Functions(), func(f Function) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, f.LogicalID) }), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for req, want := range map[[2]string]string{
		{"PUT", "/v1/tunnels/t"}: "EditorFunction", {"GET", "/v1/tunnels/t"}: "ApiFunction",
		{"POST", "/v1/external-requests/check"}: "EditorFunction", {"POST", "/v1/events"}: "ApiFunction", {"GET", "/"}: "ApiFunction",
	} {
		w := httptest.NewRecorder()
		router.ServeHTTP(w, httptest.NewRequest(req[0], req[1], nil))
		if w.Body.String() != want {
			t.Errorf("%s %s went to %q, want %s", req[0], req[1], w.Body.String(), want)
		}
	}
}

// TestConditions: Fn::If picks by the template's named conditions, which
// combine Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition; a false branch
// of AWS::NoValue drops a list item.
func TestConditions(t *testing.T) {
	tpl, err := parseTemplate([]byte(`
Parameters:
  Keep: {Type: String, Default: "false"}
  Name: {Type: String, Default: ""}
Conditions:
  KeepIt: !Equals [!Ref Keep, "true"]
  HasName: !Not [!Equals [!Ref Name, ""]]
  Both: !And [!Condition KeepIt, !Condition HasName]
  Either: !Or [!Condition KeepIt, !Condition HasName]
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          KEEP: !If [KeepIt, kept, dropped]
          BOTH: !If [Both, yes, no]
          EITHER: !If [Either, yes, no]
          GONE: !If [KeepIt, here, !Ref AWS::NoValue]
      List:
        - a
        - !If [KeepIt, b, !Ref AWS::NoValue]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		keep, name string
		want       map[string]string
		list       int
	}{
		{"false", "", map[string]string{"KEEP": "dropped", "BOTH": "no", "EITHER": "no"}, 1},
		{"true", "", map[string]string{"KEEP": "kept", "BOTH": "no", "EITHER": "yes", "GONE": "here"}, 2},
		{"true", "n", map[string]string{"KEEP": "kept", "BOTH": "yes", "EITHER": "yes", "GONE": "here"}, 2},
		{"false", "n", map[string]string{"KEEP": "dropped", "BOTH": "no", "EITHER": "yes"}, 1},
	} {
		r := &Resources{ByID: map[string]Resource{}, tpl: tpl, params: map[string]string{"Keep": c.keep, "Name": c.name}}
		got, err := r.FunctionEnv("F")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Keep=%s Name=%q: env %v, want %v", c.keep, c.name, got, c.want)
		}
		list, err := r.resolver(nil).resolve(tpl.Resources["F"].Properties["List"])
		if err != nil || len(list.([]any)) != c.list {
			t.Errorf("Keep=%s: list %v (%v), want %d items", c.keep, list, err, c.list)
		}
	}
	r := &Resources{ByID: map[string]Resource{}, tpl: tpl, params: map[string]string{"Keep": "x", "Name": ""}}
	if _, err := r.resolver(nil).resolve(map[string]any{"Fn::If": []any{"Nope", "a", "b"}}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("an unknown condition: %v", err)
	}
	tpl.Conditions["Loop"] = map[string]any{"Fn::Not": []any{map[string]any{"Condition": "Loop"}}}
	if _, err := r.resolver(nil).resolve(map[string]any{"Fn::If": []any{"Loop", "a", "b"}}); err == nil || !strings.Contains(err.Error(), "refers to itself") {
		t.Errorf("a condition that refers to itself: %v", err)
	}
}
