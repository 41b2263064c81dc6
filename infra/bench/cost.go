package main

import (
	"fmt"
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
}{
	DynamoWRU: 0.625e-6, DynamoRRU: 0.125e-6, SQSRequest: 0.40e-6,
	LambdaGBs: 0.0000133334, LambdaRequest: 0.20e-6, SESEmail: 0.10e-3, HTTPAPI: 1.00e-6,
}

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
// item (all items here are under 1 KB); a cancelled one still 2 per item.
// (The step functions write no transactions on the load tunnel's path.)
func transactionWRU(v localstack.CallStats, ok float64) float64 {
	perCall := 0.0
	if v.Calls > 0 {
		perCall = float64(v.Entries) / float64(v.Calls)
	}
	return ok*2*perCall + float64(v.ConditionFailed)*2*perCall
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
// Every step but the delay (which runs within the message before it, see
// below):
//   - 1 consistent GetItem of the subscriber's profile: the generation check,
//     the STOP markers and the placeholder data in one read (1 RRU, < 4 KB);
//   - its record, written once (1 WRU, < 1 KB); no index entry (the journey
//     is read from the records themselves);
//   - 1 SendMessageBatch of its children (none for the leaf): 0.8 per step;
//   - its share of the event source mapping's ReceiveMessage and
//     DeleteMessageBatch: 1/10 each at full batches of 10;
//   - its share of the tunnel's counters: 1 UpdateItem per tunnel per
//     second per instance (store.StatsBuffer), ~0 per step under load;
//   - the tunnel definition: cached 5 s per instance, ~0 per step.
//
// What the blocks of this tunnel add:
//   - a message (6 in 10) talks to the outside, so it is claimed first: the
//     claim creates its chat item and the completion fills it with the
//     message and the record (1 + 1 WRU, one item); the channel's settings
//     (2 consistent GetItems: the identity's channel, then the default);
//   - add_tags / remove_tags (3 in 10) are set operations, run without a
//     claim: a consistent GetItem of the record first (1 RRU), the tag
//     catalog (1 eventually consistent Query, < 4 KB: 0.5 RRU), the tag set
//     (1 UpdateItem of the profile; the directory index projects no tags,
//     so a changed set writes no index entry);
//   - the delay (1 in 10) runs within the message before it
//     (engine.Processor.inlineDelays): its record rides in that message's
//     item, and the message sends the block after the delay itself — no
//     read, write, message or invocation of its own;
//   - the leaf (1 in 10) moves the run's pending count to 0 and marks the
//     run ended in the same UpdateItem of the profile (1 WRU).
func designMinimum() perStep {
	const leaf, msgs, tags, delay = 0.1, 0.6, 0.3, 0.1
	queued := 1 - delay // steps that pass through a queue
	p := perStep{
		Reads: map[string]float64{"GetItem": queued + 2*msgs + tags, "Query": tags},
		Writes: map[string]float64{
			"UpdateItem": 2*msgs + 2*tags + leaf,
		},
		Send: queued - leaf, SendEntries: queued - leaf, Receive: queued / 10, Delete: queued / 10,
		Invocations: queued / 10, RecordsPerInvocation: 10, UnitsMeasured: true,
	}
	p.RRU = queued + 2*msgs + tags + tags*0.5
	p.WRU = 2*msgs + 2*tags + leaf
	return p
}

// physicalFloor is what no design of a durable step can go below: one
// record written (1 WRU, < 1 KB) and one queue hop (the parent's send, and
// a tenth of a batch receive and delete), in one invocation of ten.
func physicalFloor() perStep {
	return perStep{
		Reads: map[string]float64{}, Writes: map[string]float64{"PutItem": 1},
		WRU: 1, Send: 1, SendEntries: 1, Receive: 0.1, Delete: 0.1,
		Invocations: 0.1, RecordsPerInvocation: 10, UnitsMeasured: true,
	}
}

// Step Functions prices (us-east-1, https://aws.amazon.com/step-functions/pricing/,
// checked on stepFunctionsChecked): Standard $0.025 per 1,000 state
// transitions; Express $1.00 per million requests and $0.00001667 per
// GB-second, a run's duration rounded up to 100 ms and its memory billed in
// 64 MB chunks. Express runs last at most 5 minutes.
const stepFunctionsChecked = "2026-12-05"

var sfn = struct {
	Transition, ExpressRequest, ExpressGBs, ExpressChunkGB, ExpressRound float64
	ExpressMaxSeconds                                                    float64
}{Transition: 0.025e-3, ExpressRequest: 1.00e-6, ExpressGBs: 0.00001667, ExpressChunkGB: 64.0 / 1024, ExpressRound: 0.1, ExpressMaxSeconds: 300}

// alternative is the price of the same tunnel on another AWS service.
type alternative struct {
	Name string
	// Orchestration is what the service itself charges per million steps;
	// Tasks what the Lambda invocations of its Task states add (one per
	// step, unbatched: a request and the step's compute).
	Orchestration, Tasks float64
	How                  string
}

func (a alternative) Total() float64 { return a.Orchestration + a.Tasks }

// stepFunctionsAlternatives prices a run of stepsPerRun steps that lasts
// runSeconds from its start to its end (waits included) as a Step Functions
// state machine with one Task state a step. Neither figure includes the
// DynamoDB the funnel's own state (tags, profiles, chats) still needs.
func stepFunctionsAlternatives(stepsPerRun int, runSeconds float64, a assumptions) []alternative {
	n := float64(stepsPerRun)
	const m = 1e6
	task := m * (prices.LambdaRequest + a.StepMS/1000*a.MemoryMB/1024*prices.LambdaGBs)
	billed := math.Ceil(runSeconds/sfn.ExpressRound-1e-9) * sfn.ExpressRound
	express := alternative{
		Name:          "Step Functions Express",
		Orchestration: m * (sfn.ExpressRequest + billed*sfn.ExpressChunkGB*sfn.ExpressGBs) / n,
		Tasks:         task,
		How: fmt.Sprintf("1 request per run + %.1f s (the run with its 1 s delay, rounded up to 100 ms) at 64 MB, over %d steps; a run may last 5 minutes at most, so a funnel with a longer delay cannot run on it",
			billed, stepsPerRun),
	}
	standard := alternative{
		Name:          "Step Functions Standard",
		Orchestration: m * sfn.Transition,
		Tasks:         task,
		How:           fmt.Sprintf("1 state transition per step (%d states, one per block or action)", stepsPerRun),
	}
	return []alternative{standard, express}
}

// cost is dollars per million steps, by service.
type cost struct {
	DynamoDB, SQS, LambdaRequests, LambdaCompute, SES float64
}

func (c cost) Total() float64 {
	return c.DynamoDB + c.SQS + c.LambdaRequests + c.LambdaCompute + c.SES
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
