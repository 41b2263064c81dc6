package samtemplate

import (
	"reflect"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation"
)

const smallTemplate = `
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Timeout: 30
    Layers: [g]
    Environment:
      Variables:
        A: global
        B: !Ref Q
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 180
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt D.Arn
        maxReceiveCount: 5
  D:
    Type: AWS::SQS::Queue
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
  WorkerFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      CodeUri: .
      Timeout: 10
      Layers: [l]
      Environment:
        Variables:
          A: local
          C: !GetAtt [Q, Arn]
      Events:
        Steps:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig:
              MaximumConcurrency: 2
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
            Enabled: false
        Web:
          Type: HttpApi
          Properties:
            Method: get
            Path: /x
`

func TestParseFunctions(t *testing.T) {
	tpl, err := Parse([]byte(smallTemplate))
	if err != nil {
		t.Fatal(err)
	}
	fns := tpl.Functions()
	if len(fns) != 2 || fns[0].LogicalID != "Plain" || fns[1].LogicalID != "WorkerFunction" {
		t.Fatalf("functions = %+v, want Plain and WorkerFunction in order", fns)
	}

	plain := fns[0]
	if plain.Timeout != 30 || plain.MemorySize != defaultMemorySize || plain.Runtime != "provided.al2023" || plain.BuildMethod != "" {
		t.Errorf("Plain = %+v, want globals' timeout and runtime, default memory, no build method", plain)
	}
	if plain.Dir != "functions/plain" {
		t.Errorf("Plain.Dir = %q", plain.Dir)
	}

	w, ok := tpl.Function("WorkerFunction")
	if !ok {
		t.Fatal("WorkerFunction not found")
	}
	want := Function{
		LogicalID:     "WorkerFunction",
		Dir:           "functions/worker",
		CodeURI:       ".",
		BuildMethod:   "makefile",
		Runtime:       "provided.al2023",
		Architectures: []string{"arm64"},
		MemorySize:    defaultMemorySize,
		Timeout:       10,
		Env: map[string]any{
			"A": "local",
			"B": map[string]any{"Ref": "Q"},
			"C": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
		},
		SQS: []SQSEvent{{Name: "Steps", Queue: "Q", BatchSize: 10, MaxBatchingWindow: 1,
			ReportBatchItemFailures: true, MaxConcurrency: 2, Enabled: true}},
		Schedules: []Schedule{{Name: "Tick", Expression: "rate(5 minutes)", Enabled: false}},
		HTTP:      []Route{{Name: "Web", Method: "GET", Path: "/x"}},
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("WorkerFunction =\n%+v\nwant\n%+v", w, want)
	}
}

func TestParseQueues(t *testing.T) {
	tpl, err := Parse([]byte(smallTemplate))
	if err != nil {
		t.Fatal(err)
	}
	want := []Queue{
		{LogicalID: "D", VisibilityTimeout: 30, RetentionPeriod: 345600},
		{LogicalID: "Q", VisibilityTimeout: 180, RetentionPeriod: 345600, DeadLetterQueue: "D", MaxReceiveCount: 5},
	}
	if got := tpl.Queues(); !reflect.DeepEqual(got, want) {
		t.Errorf("Queues() = %+v, want %+v", got, want)
	}
	if _, ok := tpl.Queue("nope"); ok {
		t.Error("Queue(nope) found")
	}
	if got := tpl.ResourceType("Q"); got != TypeQueue {
		t.Errorf("ResourceType(Q) = %q", got)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"queue by ref", `
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        S: {Type: SQS, Properties: {Queue: !Ref Q}}
`, "Queue"},
		{"timeout not a number", `
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: !Ref T
`, "Timeout"},
		{"redrive to a name", `
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: {deadLetterTargetArn: arn:aws:sqs:us-east-1:1:d, maxReceiveCount: 5}
`, "deadLetterTargetArn"},
		{"not yaml", "Resources: [", "YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestRefToAndGetAttOf(t *testing.T) {
	tests := []struct {
		name         string
		v            any
		ref          string
		res, attr    string
		isRef, isGet bool
	}{
		{"raw ref", map[string]any{"Ref": "Table"}, "Table", "", "", true, false},
		{"encoded ref", cloudformation.Ref("FlowQueue"), "FlowQueue", "", "", true, false},
		{"short getatt", map[string]any{"Fn::GetAtt": "FlowDLQ.Arn"}, "", "FlowDLQ", "Arn", false, true},
		{"long getatt", map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}}, "", "Table", "Arn", false, true},
		{"encoded getatt", cloudformation.GetAtt("CrmQueue", "Arn"), "", "CrmQueue", "Arn", false, true},
		{"plain string", "bootstrap", "", "", "", false, false},
		{"base64 but not json", "QUJD", "", "", "", false, false},
		{"two keys", map[string]any{"Ref": "A", "X": 1}, "", "", "", false, false},
		{"nil", nil, "", "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, ok := RefTo(tt.v)
			if ok != tt.isRef || ref != tt.ref {
				t.Errorf("RefTo = %q, %v; want %q, %v", ref, ok, tt.ref, tt.isRef)
			}
			res, attr, ok := GetAttOf(tt.v)
			if ok != tt.isGet || res != tt.res || attr != tt.attr {
				t.Errorf("GetAttOf = %q, %q, %v; want %q, %q, %v", res, attr, ok, tt.res, tt.attr, tt.isGet)
			}
		})
	}
}

func TestMergeGlobals(t *testing.T) {
	ref := map[string]any{"Ref": "X"}
	tests := []struct {
		name          string
		global, local any
		want          any
	}{
		{"local scalar wins", 30, 10, 10},
		{"global kept", map[string]any{"T": 30}, map[string]any{}, map[string]any{"T": 30}},
		{"maps merge deep",
			map[string]any{"E": map[string]any{"V": map[string]any{"A": "g", "B": "g"}}},
			map[string]any{"E": map[string]any{"V": map[string]any{"A": "l"}}},
			map[string]any{"E": map[string]any{"V": map[string]any{"A": "l", "B": "g"}}}},
		{"lists concatenate", []any{"g"}, []any{"l"}, []any{"g", "l"}},
		{"intrinsic is a value", map[string]any{"A": ref}, map[string]any{"A": "s"}, map[string]any{"A": "s"}},
		{"intrinsic not merged into map", ref, map[string]any{"Ref": "Y"}, map[string]any{"Ref": "Y"}},
		{"no local", []any{"g"}, nil, []any{"g"}},
		{"different kinds", []any{"g"}, "l", "l"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeGlobals(tt.global, tt.local); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeGlobals = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestIntProp(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		want    int
		wantErr bool
	}{
		{"missing", nil, 7, false},
		{"number", float64(180), 180, false},
		{"numeric string", "180", 180, false},
		{"fraction", 1.5, 0, true},
		{"word", "ten", 0, true},
		{"intrinsic", map[string]any{"Ref": "P"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := map[string]any{}
			if tt.v != nil {
				p["K"] = tt.v
			}
			got, err := intProp(p, "K", 7)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("intProp = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
