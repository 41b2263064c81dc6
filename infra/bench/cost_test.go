package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/load"
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
			// 2.55 RRU x $0.125 + 1.9 WRU x $0.625; 0.98 SQS requests x $0.40 (0.8
			// sends, 0.09 receives and deletes: the delay never passes through a
			// queue); 0.09 invocations x $0.20; 3 rounds x 30 ms / 10 records x 0.25 GB x $0.0000133334 x 1e6
			// (compute is counted for every step, the delay's too).
			want: cost{DynamoDB: 0.31875 + 1.1875, SQS: 0.392, LambdaRequests: 0.018, LambdaCompute: 0.009 * 0.25 * 0.0000133334 * 1e6},
		},
		{
			name: "physical floor",
			p:    physicalFloor(),
			a:    defaultAssumptions,
			// 1 WRU x $0.625; 1.2 SQS requests x $0.40; 0.1 invocations x $0.20.
			want: cost{DynamoDB: 0.625, SQS: 0.48, LambdaRequests: 0.02, LambdaCompute: 0.009 * 0.25 * 0.0000133334 * 1e6},
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
	// AWS's rule (2 per item: 4) = 25.
	want := perStep{RRU: 2, WRU: 2.5, Send: 0.9, SendEntries: 0.9, Receive: 0.2, Empty: 0.5, Delete: 0.2, Invocations: 0.2, RecordsPerInvocation: 5, ConditionFailed: 0.1}
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
	// reads: 20 GetItem -> 2; writes: 20 UpdateItem ok + 1 failed + 1 transaction (4) = 25 -> 2.5
	if p.UnitsMeasured || !near(p.RRU, 2) || !near(p.WRU, 2.5) {
		t.Errorf("estimated units: %+v", p)
	}
}

func TestStepFunctionsAlternatives(t *testing.T) {
	alts := stepFunctionsAlternatives(10, 1.3, defaultAssumptions)
	if len(alts) != 2 {
		t.Fatalf("alternatives %+v", alts)
	}
	// A Task state a step: $0.20 per million invocations + 30 ms at 256 MB.
	task := 0.2 + 0.03*0.25*0.0000133334*1e6
	std, exp := alts[0], alts[1]
	if std.Name != "Step Functions Standard" || !near(std.Orchestration, 25) || !near(std.Tasks, task) {
		t.Errorf("standard = %+v, want $25 a million transitions, one a step", std)
	}
	// One request per 10-step run, 1.3 s at 64 MB.
	if want := (1.00 + 1.3*0.0625*0.00001667*1e6) / 10; exp.Name != "Step Functions Express" || !near(exp.Orchestration, want) || !near(exp.Tasks, task) {
		t.Errorf("express = %+v, want orchestration %v", exp, want)
	}
	// Rounded up to 100 ms.
	if a := stepFunctionsAlternatives(10, 1.21, defaultAssumptions)[1]; !near(a.Orchestration, exp.Orchestration) {
		t.Errorf("1.21 s is billed as 1.3 s: %v vs %v", a.Orchestration, exp.Orchestration)
	}
}

func TestReportMentionsEverything(t *testing.T) {
	r := &report{Began: time.Unix(0, 0), Machine: machine{CPUs: 2, CPUModel: "Test CPU", MemTotal: "1 GiB"}, Command: "go run ./infra/bench",
		Engine: engineResult{Runs: 10, Steps: 100, StepsPerSec: 1234}, PerStep: designMinimum(), Minimum: designMinimum(),
		Functions: []fnResult{{ID: "FlowFunction", SizeARM64: 10 << 20, ColdStarts: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}, PeakRSS: 20 << 20, Burst: 5, BurstWhat: "x"}}}
	r.OneCore = engineResult{Runs: 10, Steps: 100, StepsPerSec: 4321}
	r.Functions = append(r.Functions, fnResult{ID: minimalID, SizeARM64: 5 << 20, ColdStarts: []time.Duration{time.Millisecond}, PeakRSS: 8 << 20, Burst: 5, BurstWhat: "x"})
	r.Burst = &load.BurstResult{Subscribers: 9, Recorded: 9, Deals: 9, PerOperator: map[string]int{"anna": 3, "boris": 3, "carl": 3}, Welcomes: 9, Conflicts: 1, Steps: 18,
		Calls: map[localstack.CallKey]localstack.CallStats{{Label: "TagsFunction", Service: "DynamoDB", Operation: "UpdateItem"}: {Calls: 1}}}
	md := r.markdown()
	for _, want := range []string{"| engine in process, every core | 1234 |", "| engine in process, one core | 4321 |", "2 CPUs (`nproc`), Test CPU, 1 GiB", "`go run ./infra/bench`",
		"| FlowFunction | 10.00 MB | 2.00 | 2ms | 2.00 | 20.0 MB |", "checked " + pricesChecked, "**total per million steps** | **$1.95** | **$1.95** |",
		"| **$ per million steps** | **$1.95** | **$1.95** | **$1.16** |", "| Step Functions Standard | $25.00 |", "checked " + stepFunctionsChecked,
		"anna 3, boris 3, carl 3: spread 0", "1 over 18 steps = **0.0556 per step**", `"burst":{"Subscribers":9`} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
