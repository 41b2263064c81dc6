package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCostPerMillion(t *testing.T) {
	tests := []struct {
		name string
		p    perStep
		a    assumptions
		want cost
	}{
		{
			name: "design minimum, full batches",
			p:    designMinimum(),
			a:    defaultAssumptions,
			// 1.75 RRU x $0.125 + 4.3 WRU x $0.625; 1.1 SQS requests x $0.40;
			// 0.1 invocations x $0.20; 3 rounds x 30 ms / 10 records x 0.25 GB x $0.0000133334 x 1e6.
			want: cost{DynamoDB: 0.21875 + 2.6875, SQS: 0.44, LambdaRequests: 0.02, LambdaCompute: 0.009 * 0.25 * 0.0000133334 * 1e6},
		},
		{
			name: "one record per invocation, an email each",
			p:    perStep{RRU: 1, WRU: 2, Send: 1, Receive: 1, Delete: 1, SES: 1, Invocations: 1, RecordsPerInvocation: 1},
			a:    assumptions{StepMS: 100, MemoryMB: 512, RecordsAtOnce: 4},
			want: cost{DynamoDB: 0.125 + 1.25, SQS: 1.2, LambdaRequests: 0.2, LambdaCompute: 0.1 * 0.5 * 0.0000133334 * 1e6, SES: 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := costPerMillion(tt.p, tt.a)
			if !near(got.DynamoDB, tt.want.DynamoDB) || !near(got.SQS, tt.want.SQS) || !near(got.LambdaRequests, tt.want.LambdaRequests) ||
				!near(got.LambdaCompute, tt.want.LambdaCompute) || !near(got.SES, tt.want.SES) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMeasuredPerStep(t *testing.T) {
	k := func(label, svc, op string) localstack.CallKey {
		return localstack.CallKey{Label: label, Service: svc, Operation: op}
	}
	calls := map[localstack.CallKey]localstack.CallStats{
		k("FlowFunction", "DynamoDB", "GetItem"):             {Calls: 20, ReadUnits: 20},
		k("FlowFunction", "DynamoDB", "UpdateItem"):          {Calls: 21, Errors: 1, ConditionFailed: 1, WriteUnits: 20},
		k("FlowFunction", "DynamoDB", "TransactWriteItems"):  {Calls: 1, Entries: 2, WriteUnits: 4},
		k("FlowFunction", "SQS", "SendMessageBatch"):         {Calls: 9, Entries: 9},
		k("EventSourceMapping", "SQS", "ReceiveMessage"):     {Calls: 7, Messages: 10, Empty: 5},
		k("EventSourceMapping", "SQS", "DeleteMessageBatch"): {Calls: 2, Entries: 10},
		k("ApiFunction", "DynamoDB", "PutItem"):              {Calls: 100, WriteUnits: 100},
	}
	p := measuredPerStep(calls, 10, stepLabel)
	// WRU: 20 reported + 1 failed condition + the 2-item transaction by
	// AWS's rule (6, not the 4 reported) = 27.
	want := perStep{RRU: 2, WRU: 2.7, Send: 0.9, SendEntries: 0.9, Receive: 0.2, Empty: 0.5, Delete: 0.2, Invocations: 0.2, RecordsPerInvocation: 5, ConditionFailed: 0.1}
	if !p.UnitsMeasured || !near(p.RRU, want.RRU) || !near(p.WRU, want.WRU) || !near(p.Send, want.Send) || !near(p.SendEntries, want.SendEntries) ||
		!near(p.Receive, want.Receive) || !near(p.Empty, want.Empty) || !near(p.Delete, want.Delete) || !near(p.Invocations, want.Invocations) ||
		!near(p.RecordsPerInvocation, want.RecordsPerInvocation) || !near(p.ConditionFailed, want.ConditionFailed) {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	if !near(p.Reads["GetItem"], 2) || !near(p.Writes["UpdateItem"], 2.1) || !near(p.Writes["TransactWriteItems"], 0.1) || p.Writes["PutItem"] != 0 {
		t.Errorf("calls per step: reads %v writes %v (the api function's calls are not a step's)", p.Reads, p.Writes)
	}

	// Without ConsumedCapacity answers the units are estimated from the calls.
	for key, v := range calls {
		v.ReadUnits, v.WriteUnits = 0, 0
		calls[key] = v
	}
	p = measuredPerStep(calls, 10, stepLabel)
	// reads: 20 GetItem -> 2; writes: 20 UpdateItem ok + 1 failed + 1 transaction (6) = 27 -> 2.7
	if p.UnitsMeasured || !near(p.RRU, 2) || !near(p.WRU, 2.7) {
		t.Errorf("estimated units: %+v", p)
	}
}

func TestReportMentionsEverything(t *testing.T) {
	r := &report{Began: time.Unix(0, 0), Machine: machine{CPUs: 2, CPUModel: "Test CPU", MemTotal: "1 GiB"}, Command: "go run ./infra/bench",
		Engine: engineResult{Runs: 10, Steps: 100, StepsPerSec: 1234}, PerStep: designMinimum(), Minimum: designMinimum(),
		Functions: []fnResult{{ID: "FlowFunction", SizeARM64: 10 << 20, ColdStarts: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}, PeakRSS: 20 << 20, Burst: 5, BurstWhat: "x"}}}
	md := r.markdown()
	for _, want := range []string{"| engine in process | 1234 |", "2 CPUs (`nproc`), Test CPU, 1 GiB", "`go run ./infra/bench`",
		"| FlowFunction | 10.0 MB | 2ms | 20.0 MB |", "checked " + pricesChecked, "**total per million steps** | **$3.40** | **$3.40** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
