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

// The floor and Step Functions, from the price constants.
func TestFloorAndStepFunctions(t *testing.T) {
	a := defaultAssumptions
	lambdaCompute := func(seconds float64) float64 { return seconds * 0.25 * 0.0000133334 * 1e6 }
	// 1 WRU x $0.625; (1 send + 1 receive + 1 delete) / 10 = 0.3 requests x $0.40; 0.1 invocations x $0.20;
	// 3 rounds x 30 ms / 10 records of compute.
	floor := costPerMillion(physicalFloor(), a)
	want := cost{DynamoDB: 0.625, SQS: 0.12, LambdaRequests: 0.02, LambdaCompute: lambdaCompute(0.009)}
	if floor != want && !(near(floor.DynamoDB, want.DynamoDB) && near(floor.SQS, want.SQS) && near(floor.LambdaRequests, want.LambdaRequests) &&
		near(floor.LambdaCompute, want.LambdaCompute) && floor.SES == 0 && floor.StepFunctions == 0) {
		t.Errorf("floor: got %+v, want %+v", floor, want)
	}

	w := loadWorkflow
	if w.States != 10 || w.Steps != 10 || w.Tasks+1 != w.States {
		t.Fatalf("the load tunnel is 10 steps in a line, 9 tasks and a wait: %+v", w)
	}
	// Standard: (10 states + start + end) / 10 steps = 1.2 transitions per step x $0.025 per 1,000 = $30 per million steps;
	// the tasks: 0.9 invocations x $0.20, 0.9 x 30 ms at 256 MB.
	std := stepFunctionsStandard(w, a)
	if !near(w.TransitionsPerStep(), 1.2) || !near(std.StepFunctions, 30) || !near(std.LambdaRequests, 0.18) ||
		!near(std.LambdaCompute, lambdaCompute(0.9*0.030)) || std.DynamoDB != 0 || std.SQS != 0 {
		t.Errorf("standard: %+v", std)
	}
	// Express: 9 x 30 ms + 1 s = 1.27 s, billed 1.3 s at 64 MB = 0.0625 GB; per run $1.00 / 1e6 + 1.3 x 0.0625 x $0.06 / 3600;
	// 0.1 runs per step.
	exp := stepFunctionsExpress(w, a)
	if d := w.ExpressDuration(a); !near(d, 1.3) {
		t.Errorf("express duration %v, want 1.3 s", d)
	}
	if g := w.ExpressGB(); !near(g, 0.0625) {
		t.Errorf("express memory %v GB, want 0.0625", g)
	}
	if wantExp := 1e5 * (1e-6 + 1.3*0.0625*0.06/3600); !near(exp.StepFunctions, wantExp) || !near(exp.LambdaRequests, 0.18) || exp.DynamoDB != 0 {
		t.Errorf("express: %+v, want Step Functions $%v", exp, wantExp)
	}
	// Rounding up to 100 ms, billing 64 MB chunks.
	if d := (workflow{Tasks: 2, WaitSeconds: 0.1}).ExpressDuration(assumptions{StepMS: 50}); !near(d, 0.2) {
		t.Errorf("2 x 50 ms + 0.1 s billed %v s, want 0.2", d)
	}
	if d := (workflow{Tasks: 3, WaitSeconds: 0}).ExpressDuration(assumptions{StepMS: 34}); !near(d, 0.2) {
		t.Errorf("3 x 34 ms billed %v s, want 0.2", d)
	}
	if g := (workflow{MemoryMB: 65}).ExpressGB(); !near(g, 0.125) {
		t.Errorf("65 MB billed %v GB, want 0.125", g)
	}
	// What the funnel keeps in DynamoDB whatever runs it: 0.9 WRU and 0.25 RRU per step.
	if fs := costPerMillion(funnelState(), a); !near(fs.DynamoDB, 0.9*0.625+0.25*0.125) {
		t.Errorf("funnel state: %+v", fs)
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
		Engine:    engineResult{Runs: 10, Steps: 100, StepsPerSec: 1234, Procs: 2, Workers: 8},
		EngineOne: engineResult{Runs: 10, Steps: 100, StepsPerSec: 567, Procs: 1, Workers: 1, WarmUp: 400, Repeats: []float64{500, 567, 600}},
		Load:      &load.Result{Subscribers: 10, Steps: 100, StepsPerSec99: 50, StepsPerSec: 49},
		Raw: []rawResult{{What: "DynamoDB PutItem", PerSec: 1000}, {What: "DynamoDB UpdateItem (conditional, like a claim)", PerSec: 1000},
			{What: "DynamoDB GetItem (consistent)", PerSec: 2000}, {What: "SQS SendMessageBatch(10) + ReceiveMessage + DeleteMessageBatch, messages", PerSec: 10000}},
		PerStep: designMinimum(), Minimum: designMinimum(),
		Functions: []fnResult{{ID: "FlowFunction", SizeARM64: 10 << 20, ColdStarts: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}, PeakRSS: 20 << 20, Burst: 5, BurstWhat: "x"}}}
	md := r.markdown()
	// design minimum: 1.9 reads / 2000 + 2.3 other writes / 1000 + 0.6 PutItem / 1000 = 3.85 ms; 0.9 messages (at least 1) / 10000 = 0.1 ms:
	// a ceiling of 1 / 3.95 ms = 253 steps/s; 50 of it is 20%.
	for _, want := range []string{"**engine in process, one core: 567 steps/s**", "**local stack: 50 steps/s = 20% of the emulators' ceiling 253 measured in this run**",
		"| engine in process, one core | 567 |", "the median of 500, 567, 600 steps/s", "that first run, in a fresh process whose heap grows as the in-memory store fills: 400 steps/s",
		"| engine in process, all cores | 1234 | the same, GOMAXPROCS 2, 8 workers", "The local stack ran at 50 steps/s, 20% of it.",
		"2 CPUs (`nproc`), Test CPU, 1 GiB", "`go run ./infra/bench`",
		"| FlowFunction | 10.0 MB | 2ms | 20.0 MB |", "checked " + pricesChecked,
		"| DynamoDB write request units | 4.30 | 4.30 | 1.00 |", "| SQS requests | 1.10 | 1.10 | 0.30 |",
		"**total per million steps** | **$3.40** | **$3.40** | **$0.80** | **$30.27** + DynamoDB | **$0.51** + DynamoDB |",
		"| times the floor | 4.3x | 4.3x | 1x | 38.1x + DynamoDB | 0.6x + DynamoDB |",
		"12 per run, 1.2 per step, $30.00 per million steps ($25.00 at 10 per run", "= 1.3 s — at 64 MB", "$0.235 per million steps",
		"Neither includes the DynamoDB state the funnel still needs", "checked " + stepFunctionsChecked + " at " + stepFunctionsSource} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
