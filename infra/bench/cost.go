package main

import (
	"math"
	"strings"

	"github.com/tunnels/tunnels/infra/localstack"
)

// Public list prices, AWS us-east-1, as published on aws.amazon.com/<service>/pricing
// and checked on pricesChecked. DynamoDB's on-demand prices are those in force
// since 2024-11-01 (the on-demand price cut); the others have not moved since.
// Free tiers are left out: this is the marginal cost of a step.
const pricesChecked = "2026-11-26"

var prices = struct {
	DynamoWRU     float64 // $ per write request unit (on-demand): $0.625 per million
	DynamoRRU     float64 // $ per read request unit (on-demand): $0.125 per million
	SQSRequest    float64 // $ per standard-queue request (each 64 KB chunk of payload is a request): $0.40 per million
	LambdaGBs     float64 // $ per GB-second, arm64: $0.0000133334
	LambdaRequest float64 // $ per invocation: $0.20 per million
	SESEmail      float64 // $ per email sent: $0.10 per 1,000
	HTTPAPI       float64 // API Gateway HTTP API, $ per request (first 300 million a month): $1.00 per million

	// AWS Step Functions, what an AWS user would pick instead (checked on
	// stepFunctionsChecked at stepFunctionsSource).
	SFNTransition     float64 // Standard workflows, $ per state transition: $0.025 per 1,000 (us-east-1)
	SFNExpressRequest float64 // Express workflows, $ per request (an execution started): $1.00 per million
	SFNExpressGBs     float64 // Express workflows, $ per GB-second of duration: $0.06 per GB-hour for the first 1,000 GB-hours a month ($0.03 for the next 4,000, $0.01642 beyond)
}{
	DynamoWRU: 0.625e-6, DynamoRRU: 0.125e-6, SQSRequest: 0.40e-6,
	LambdaGBs: 0.0000133334, LambdaRequest: 0.20e-6, SESEmail: 0.10e-3, HTTPAPI: 1.00e-6,
	SFNTransition: 0.025e-3, SFNExpressRequest: 1.00e-6, SFNExpressGBs: 0.06 / 3600,
}

// The Step Functions prices: checked on this date at this page (us-east-1).
// Express: "Duration is calculated from the time your workflow begins
// executing until it completes or otherwise terminates, rounded up to the
// nearest 100ms, and the amount of memory used [...], billed in 64-MB
// chunks"; memory is 50 MB plus the definition plus the execution data, so
// a small workflow bills 64 MB.
const (
	stepFunctionsChecked = "2026-12-05"
	stepFunctionsSource  = "https://aws.amazon.com/step-functions/pricing/"
)

// Units DynamoDB charges (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):
// a write is 1 WRU per KB of the larger of the item before and after, a
// transactional write 2 WRU per KB per item, a failed condition still 1 WRU
// (transactions: 2 per item); a strongly consistent read 1 RRU per 4 KB, an
// eventually consistent one half, a query per 4 KB of what it read.

// assumptions of the Lambda compute figure (what is not measured here).
type assumptions struct {
	StepMS          float64 // wall time of one step on AWS, in milliseconds
	MemoryMB        float64 // the template's MemorySize
	RecordsAtOnce   float64 // records of a batch run side by side (stepbatch's Concurrency)
	RecordsPerBatch float64 // records per invocation (measured: messages per non-empty receive)
}

// defaultAssumptions: a step is about five calls to DynamoDB and SQS in the
// same region (single-digit milliseconds each) plus, for a message, the
// channel connector's HTTP call: 30 ms on average is the assumption.
var defaultAssumptions = assumptions{StepMS: 30, MemoryMB: 256, RecordsAtOnce: 4, RecordsPerBatch: 10}

// perStep is what one step costs in calls and units.
type perStep struct {
	Reads, Writes          map[string]float64 // DynamoDB calls per step by operation
	RRU, WRU               float64            // DynamoDB units per step
	UnitsMeasured          bool               // RRU/WRU from DynamoDB's ConsumedCapacity answers
	ConditionFailed        float64            // failed conditions per step (counted in WRU)
	Send, SendEntries      float64            // SQS SendMessage(Batch) calls and messages per step
	Receive, Empty, Delete float64            // the event source mapping's calls per step (Empty: receives that got nothing)
	SQSOther               float64            // ChangeMessageVisibility and the like
	SES                    float64            // emails sent per step
	Invocations            float64            // handler invocations per step (non-empty receives)
	RecordsPerInvocation   float64
	LocalTxWRU             float64 // what DynamoDB Local answered for the transactions (not used)
}

// transactionWRU is what AWS charges for TransactWriteItems calls: 2 WRU per
// item (all items here are under 1 KB) and 2 for the Journey index entry the
// step record's completion writes (the step functions' only transaction is
// that 2-item completion: 6 WRU); a cancelled one still 2 per item.
func transactionWRU(v localstack.CallStats, ok float64) float64 {
	perCall := 0.0
	if v.Calls > 0 {
		perCall = float64(v.Entries) / float64(v.Calls)
	}
	return ok*(2*perCall+2) + float64(v.ConditionFailed)*2*perCall
}

func (p perStep) SQSRequests() float64 { return p.Send + p.Receive + p.Delete + p.SQSOther }

func (p perStep) DynamoCalls(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

var (
	readOps  = map[string]bool{"GetItem": true, "Query": true, "Scan": true, "BatchGetItem": true, "TransactGetItems": true}
	writeOps = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true, "TransactWriteItems": true, "BatchWriteItem": true}
)

// stepFunctions are the labels whose calls are the steps' cost: the step
// functions and Lambda's pollers (the event source mapping).
func stepLabel(label string) bool {
	switch label {
	case "FlowFunction", "TagsFunction", "EmailFunction", "CrmFunction", "WebhookFunction", "EventSourceMapping":
		return true
	}
	return false
}

// measuredPerStep divides the counted calls of the step functions by steps.
func measuredPerStep(calls map[localstack.CallKey]localstack.CallStats, steps int, include func(string) bool) perStep {
	p := perStep{Reads: map[string]float64{}, Writes: map[string]float64{}, UnitsMeasured: true}
	if steps <= 0 {
		return p
	}
	n := float64(steps)
	var estRRU, estWRU, gotRRU, gotWRU, reported, localTx, messages float64
	for k, v := range calls {
		if !include(k.Label) {
			continue
		}
		switch k.Service {
		case "DynamoDB":
			ok := float64(v.Calls - v.Errors)
			switch {
			case readOps[k.Operation]:
				p.Reads[k.Operation] += float64(v.Calls) / n
				if strings.HasPrefix(k.Operation, "Transact") {
					estRRU += 2 * float64(v.Entries)
				} else {
					estRRU += ok
				}
			case writeOps[k.Operation]:
				p.Writes[k.Operation] += float64(v.Calls) / n
				if k.Operation == "TransactWriteItems" {
					estWRU += transactionWRU(v, ok)
				} else {
					estWRU += ok + float64(v.ConditionFailed)
				}
			}
			gotRRU += v.ReadUnits
			reported += v.ReadUnits + v.WriteUnits
			if k.Operation == "TransactWriteItems" {
				// DynamoDB Local's units for transactions do not follow
				// AWS's rule (it answers 12 for the 2-item completion, 4
				// for the 3-item StartRun): AWS's rule is used instead.
				localTx += v.WriteUnits
				gotWRU += transactionWRU(v, ok)
			} else if writeOps[k.Operation] {
				gotWRU += v.WriteUnits + float64(v.ConditionFailed)
			}
			p.ConditionFailed += float64(v.ConditionFailed) / n
		case "SQS":
			switch k.Operation {
			case "SendMessage", "SendMessageBatch":
				p.Send += float64(v.Calls) / n
				p.SendEntries += float64(max(v.Entries, v.Calls-v.Errors)) / n
			case "ReceiveMessage":
				p.Receive += float64(v.Calls-v.Empty) / n
				p.Empty += float64(v.Empty) / n
				p.Invocations += float64(v.Calls-v.Empty) / n
				messages += float64(v.Messages)
			case "DeleteMessage", "DeleteMessageBatch":
				p.Delete += float64(v.Calls) / n
			default:
				p.SQSOther += float64(v.Calls) / n
			}
		case "SESv2", "SES":
			if strings.HasPrefix(k.Operation, "Send") {
				p.SES += float64(v.Calls-v.Errors) / n
			}
		}
	}
	// DynamoDB Local may leave ConsumedCapacity out of some answers: fall
	// back to the documented units when it reported nothing.
	if reported == 0 {
		p.UnitsMeasured = false
		gotRRU, gotWRU = estRRU, estWRU
	}
	p.RRU, p.WRU = gotRRU/n, gotWRU/n
	p.LocalTxWRU = localTx / n
	if p.Invocations > 0 {
		p.RecordsPerInvocation = messages / n / p.Invocations
	}
	return p
}

// designMinimum is the least the design needs per step of the load tunnel
// (load.Tunnel: 10 steps in a line, 6 messages, 3 tag actions, 1 delay),
// read off shared/engine/processor.go and shared/store/steps.go:
//
// Every step:
//   - 1 consistent GetItem of the subscriber's profile: the generation check,
//     the STOP markers and the placeholder data in one read (1 RRU, < 4 KB);
//   - 1 conditional UpdateItem claiming the step (new, or lease expired): 1 WRU;
//   - 1 completion: a conditional UpdateItem of the step record when the step
//     has exactly one child — 2 WRU: the record (~0.7 KB with its children)
//     and its entry in the Journey local index, which the completion's jsk
//     creates — or, for a leaf or a fan-out (here 1 step in 10), a
//     TransactWriteItems of the record and the run's pending count on the
//     profile: 2 WRU per item and per index entry, 6 WRU;
//   - 1 SendMessageBatch of its children (none for the leaf): 0.9 per step;
//   - its share of the event source mapping's ReceiveMessage and
//     DeleteMessageBatch: 1/10 each at full batches of 10;
//   - the tunnel definition: cached 5 s per instance, ~0 per step.
//
// What the actions of this tunnel add:
//   - a message (6 in 10): the channel connector's settings (1 consistent
//     GetItem) and the chat item (1 conditional PutItem);
//   - add_tags / remove_tags (3 in 10): the tag catalog (1 eventually
//     consistent Query, < 4 KB: 0.5 RRU) and the profile's tag set (1 UpdateItem).
func designMinimum() perStep {
	const leaf = 0.1
	p := perStep{
		Reads: map[string]float64{"GetItem": 1 + 0.6, "Query": 0.3},
		Writes: map[string]float64{
			"UpdateItem":         1 + (1 - leaf) + 0.3,
			"TransactWriteItems": leaf,
			"PutItem":            0.6,
		},
		Send: 1 - leaf, SendEntries: 1 - leaf, Receive: 0.1, Delete: 0.1,
		Invocations: 0.1, RecordsPerInvocation: 10, UnitsMeasured: true,
	}
	p.RRU = 1 + 0.6 + 0.3*0.5
	p.WRU = 1 + (1-leaf)*2 + leaf*6 + 0.6 + 0.3
	return p
}

// physicalFloor is the least any durable design can do per step: one record
// and one queue hop.
//
//   - one durable record: 1 PutItem of a <= 1 KB item, 1 WRU ($0.625 per
//     million steps on demand); no read (the step carries what it needs);
//   - one queue hop, amortised over batches of 10: 1 SendMessageBatch, 1
//     ReceiveMessage and 1 DeleteMessageBatch per 10 messages, 0.3 SQS
//     requests per step ($0.12 per million steps);
//   - the Lambda share: 1 invocation per batch of 10 records (0.1 per step),
//     billed like the design's (defaultAssumptions, full batches).
func physicalFloor() perStep {
	const batch = 10
	return perStep{
		Reads: map[string]float64{}, Writes: map[string]float64{"PutItem": 1},
		WRU: 1, Send: 1.0 / batch, SendEntries: 1, Receive: 1.0 / batch, Delete: 1.0 / batch,
		Invocations: 1.0 / batch, RecordsPerInvocation: batch, UnitsMeasured: true,
	}
}

// workflow is the load tunnel (load.Tunnel) as an AWS Step Functions state
// machine: one state per step — 9 Task states (6 messages, 3 tag actions:
// add_tags, then add_tags and remove_tags) and 1 Wait state of 1 s — in a
// line.
type workflow struct {
	Steps       int     // steps of the tunnel a run takes (load.StepsPerRun)
	States      int     // states entered per run
	StartEnd    int     // transitions counted for the execution's start and end
	Tasks       int     // Task states: each invokes a Lambda function
	WaitSeconds float64 // time spent in Wait states
	MemoryMB    float64 // Express: 50 MB + definition + execution data, billed in 64 MB chunks
}

// loadWorkflow: Step Functions bills a state transition "each time a step
// of your workflow is executed" (retries included): the 10 states of a run.
// The execution's start and end are counted too (2): 12 per run, 1.2 per
// step. That is the upper count; if only the states' entries are billed it
// is 10 per run and the Standard figure 5/6 of the one reported (the report
// says both).
var loadWorkflow = workflow{Steps: 10, States: 10, StartEnd: 2, Tasks: 9, WaitSeconds: 1, MemoryMB: 64}

// TransitionsPerStep of a Standard workflow.
func (w workflow) TransitionsPerStep() float64 {
	return float64(w.States+w.StartEnd) / float64(w.Steps)
}

// ExpressDuration is an Express execution's billed duration: its tasks at
// a.StepMS each plus its waits, rounded up to 100 ms.
func (w workflow) ExpressDuration(a assumptions) float64 {
	d := float64(w.Tasks)*a.StepMS/1000 + w.WaitSeconds
	return math.Ceil(math.Round(d*1e6)/1e5) / 10 // to 100 ms, above float noise
}

// ExpressGB is an Express execution's billed memory: 64 MB chunks.
func (w workflow) ExpressGB() float64 {
	return math.Ceil(max(w.MemoryMB, 1)/64) * 64 / 1024
}

// taskLambda is what the Task states' Lambda functions cost per million
// steps: one invocation per task (Step Functions invokes one at a time, no
// batches), a.StepMS each at the template's memory.
func (w workflow) taskLambda(a assumptions) (requests, compute float64) {
	perStep := float64(w.Tasks) / float64(w.Steps)
	return 1e6 * perStep * prices.LambdaRequest, 1e6 * perStep * a.StepMS / 1000 * a.MemoryMB / 1024 * prices.LambdaGBs
}

// stepFunctionsStandard is the tunnel on a Standard workflow, per million
// steps: state transitions and the tasks' Lambda functions. It leaves out
// the DynamoDB the funnel still needs (see funnelState).
func stepFunctionsStandard(w workflow, a assumptions) cost {
	req, comp := w.taskLambda(a)
	return cost{StepFunctions: 1e6 * w.TransitionsPerStep() * prices.SFNTransition, LambdaRequests: req, LambdaCompute: comp}
}

// stepFunctionsExpress is the tunnel on an Express workflow, per million
// steps: one request per run, the run's duration (its wait included) at 64
// MB, and the tasks' Lambda functions. Express runs last at most 5 minutes
// and run at least once (not exactly once): a funnel that waits a day
// cannot be one Express execution.
func stepFunctionsExpress(w workflow, a assumptions) cost {
	req, comp := w.taskLambda(a)
	runs := 1e6 / float64(w.Steps)
	return cost{
		StepFunctions:  runs * (prices.SFNExpressRequest + w.ExpressDuration(a)*w.ExpressGB()*prices.SFNExpressGBs),
		LambdaRequests: req, LambdaCompute: comp,
	}
}

// funnelState is the DynamoDB a funnel keeps whatever runs it, per step of
// the load tunnel, and which Step Functions' price does not include: the
// chat item of each message (6 in 10: 1 WRU) and the subscriber's tag set
// (3 in 10: 1 WRU), the tag catalog read by a tag action (0.5 RRU) and the
// profile read once per run for the placeholders (0.1 RRU per step).
func funnelState() perStep {
	return perStep{
		Reads: map[string]float64{"GetItem": 0.1, "Query": 0.3}, Writes: map[string]float64{"PutItem": 0.6, "UpdateItem": 0.3},
		RRU: 0.1 + 0.3*0.5, WRU: 0.6 + 0.3, UnitsMeasured: true,
	}
}

// cost is dollars per million steps, by service.
type cost struct {
	DynamoDB, SQS, LambdaRequests, LambdaCompute, SES, StepFunctions float64
}

func (c cost) Total() float64 {
	return c.DynamoDB + c.SQS + c.LambdaRequests + c.LambdaCompute + c.SES + c.StepFunctions
}

// costPerMillion prices a step's calls (a million times).
func costPerMillion(p perStep, a assumptions) cost {
	const m = 1e6
	batch := a.RecordsPerBatch
	if p.RecordsPerInvocation > 0 {
		batch = p.RecordsPerInvocation
	}
	// One invocation runs its records RecordsAtOnce at a time: its billed
	// time is the rounds it takes, shared by its records.
	rounds := math.Ceil(batch / a.RecordsAtOnce)
	secondsPerStep := a.StepMS / 1000 * rounds / batch
	invocations := p.Invocations
	if invocations == 0 {
		invocations = 1 / batch
	}
	return cost{
		DynamoDB:       m * (p.RRU*prices.DynamoRRU + p.WRU*prices.DynamoWRU),
		SQS:            m * p.SQSRequests() * prices.SQSRequest,
		LambdaRequests: m * invocations * prices.LambdaRequest,
		LambdaCompute:  m * secondsPerStep * a.MemoryMB / 1024 * prices.LambdaGBs,
		SES:            m * p.SES * prices.SESEmail,
	}
}
