package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tunnels/tunnels/infra/load"
)

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	p("# Benchmarks\n\n")
	p("Written by `make bench` (infra/bench). Every figure below comes from one run.\n\n")
	p("| | |\n| --- | --- |\n")
	p("| date | %s (took %s) |\n", r.Began.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	p("| command | `make bench` = `%s` |\n", r.Command)
	p("| machine | %d CPUs (`nproc`), %s, %s memory, %s |\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel)
	p("| Go | %s |\n", m.GoVersion)
	p("| load average | %s before, %s after (other work on the machine shares the CPUs and skews the timings) |\n\n", m.LoadBefore, m.LoadAfter)

	p("## Steps per second\n\n")
	var dt, qt string
	var ceiling float64
	if r.Load != nil && r.Load.Steps > 0 {
		dt, qt, ceiling = ceilingParts(r.Raw, r.PerStep)
	}
	var head []string
	if e := r.EngineOne; e.Steps > 0 {
		head = append(head, fmt.Sprintf("**engine in process, one core: %.0f steps/s**", e.StepsPerSec))
	}
	if l := r.Load; l != nil && ceiling > 0 {
		head = append(head, fmt.Sprintf("**local stack: %.0f steps/s = %.0f%% of the emulators' ceiling %.0f measured in this run**", l.StepsPerSec99, 100*l.StepsPerSec99/ceiling, ceiling))
	}
	if len(head) > 0 {
		p("%s\n\n", strings.Join(head, " · "))
	}
	p("| where | steps/s | what |\n| --- | ---: | --- |\n")
	if e := r.EngineOne; e.Steps > 0 {
		p("| engine in process, one core | %.0f | the real `engine.Processor` and tag actions over in-memory ports, %d runs x %d steps, GOMAXPROCS 1 (the garbage collector on the same core), 1 worker; the median of %s steps/s, timed after one run of the same size to warm the process up (that first run, in a fresh process whose heap grows as the in-memory store fills: %.0f steps/s); steps pass through a channel in their wire form (JSON, encoded and decoded); the step's log line formatted and discarded; delays not waited out |\n",
			e.StepsPerSec, e.Runs, load.StepsPerRun, rates(e.Repeats), e.WarmUp)
	}
	p("| engine in process, all cores | %.0f | the same, GOMAXPROCS %d, %d workers, one run |\n", r.Engine.StepsPerSec, r.Engine.Procs, r.Engine.Workers)
	if l := r.Load; l != nil {
		share := ""
		if ceiling > 0 {
			share = fmt.Sprintf(" — %.0f%% of the emulators' ceiling of %.0f steps/s measured in this run (below)", 100*l.StepsPerSec99/ceiling, ceiling)
		}
		p("| local stack | %.0f | %d subscribers through the %d-step tunnel: `POST /v1/events`, the step functions in process fed by the SQS pollers, DynamoDB Local, fauxqs, a bot gateway on loopback (every message delivered and signed); first event to 99%% of the runs finished (%.0f steps/s to the very last step)%s |\n",
			l.StepsPerSec99, l.Subscribers, load.StepsPerRun, l.StepsPerSec, share)
	}
	for _, raw := range r.Raw {
		p("| ceiling: %s | %.0f | the emulator alone, %d concurrent clients for %s%s |\n", raw.What, raw.PerSec, raw.Clients, raw.Elapsed.Round(100*time.Millisecond), errNote(raw.Errors))
	}
	if r.Load != nil && r.Load.Steps > 0 {
		ps := r.PerStep
		dyn := ps.DynamoCalls(ps.Reads) + ps.DynamoCalls(ps.Writes)
		p("\nA step made %.1f DynamoDB calls and %.1f SQS requests here (below). At the emulators' raw rates, the DynamoDB calls of one step take %s of the emulator's time and its message's trip through fauxqs %s: a ceiling of about %.0f steps/s for the local stack. ",
			dyn, ps.SQSRequests()+ps.Empty, dt, qt, ceiling)
		if ceiling > 0 {
			p("The local stack ran at %.0f steps/s, %.0f%% of it. ", r.Load.StepsPerSec99, 100*r.Load.StepsPerSec99/ceiling)
		}
		p("Everything — emulators, functions, load generator, and whatever else runs on the machine — shares the same %d CPUs.\n\n", m.CPUs)
	} else {
		p("\n")
	}

	if l := r.Load; l != nil {
		p("## Load test (local stack)\n\n")
		p("| | |\n| --- | --- |\n")
		p("| subscribers | %d (events posted 16 at a time) |\n", l.Subscribers)
		p("| steps recorded | %d (want %d) |\n", l.Steps, l.Subscribers*load.StepsPerRun)
		p("| throughput | %.0f steps/s: 99%% of the runs finished %s after the first event was posted; %.0f steps/s to the last step of all (%s) |\n",
			l.StepsPerSec99, l.Elapsed99.Round(time.Millisecond), l.StepsPerSec, l.Elapsed.Round(time.Millisecond))
		p("| ingest | %.0f events/s (%s for all events) |\n", l.EventsPerSec, l.IngestElapsed.Round(time.Millisecond))
		p("| latency, event accepted to the run's last step finished | p50 %s, p90 %s, p99 %s, max %s (includes the tunnel's 1 s delay, and the wait behind earlier runs: the events are posted as fast as 16 clients can, faster than the stack runs them) |\n",
			l.Latency.P50.Round(time.Millisecond), l.Latency.P90.Round(time.Millisecond), l.Latency.P99.Round(time.Millisecond), l.Latency.Max.Round(time.Millisecond))
		if pl := r.Paced; pl != nil {
			p("| latency at a steady %.0f events/s (%.0f steps/s, below capacity; %d subscribers) | p50 %s, p90 %s, p99 %s, max %s; %d errors |\n",
				r.PacedRate, r.PacedRate*load.StepsPerRun, pl.Subscribers, pl.Latency.P50.Round(time.Millisecond), pl.Latency.P90.Round(time.Millisecond),
				pl.Latency.P99.Round(time.Millisecond), pl.Latency.Max.Round(time.Millisecond), len(pl.Errors))
		}
		p("| messages at the bot gateway | %d (want %d) |\n", l.Deliveries, l.Subscribers*load.MessagesPerRun)
		p("| errors | %d%s |\n", len(l.Errors), firstErrors(l.Errors))
		p("| event retries (5xx or cut) | %d |\n\n", l.EventRetries)
		p("The tunnel (infra/load `Tunnel`): m1 message -> add_tags -> m2 -> 1 s delay -> m3 -> add_tags + remove_tags -> m4 -> m5 -> m6.\n\n")
	}

	p("## AWS calls per step\n\n")
	p("Counted by an SDK middleware (infra/localstack `CallCounter`) on every client of the step functions and of the SQS pollers (which on AWS are Lambda's, and billed), while the load ran; divided by the steps recorded. ")
	if r.PerStep.UnitsMeasured {
		p("Capacity units are DynamoDB Local's `ConsumedCapacity` answers — they count the Journey index entry a completion writes — with failed conditions added at 1 WRU as AWS bills them, and transactions at AWS's rule (2 WRU per item and per index entry: 6 for the 2-item completion; DynamoDB Local answered %.2f WRU per step for them, which matches no rule).\n\n", r.PerStep.LocalTxWRU)
	} else {
		p("DynamoDB Local reported no `ConsumedCapacity`: the units are estimated from the calls (1 per read <= 4 KB, 1 per write <= 1 KB, 2 per transactional item, failed conditions included).\n\n")
	}
	ms, mn, fl := r.PerStep, r.Minimum, physicalFloor()
	p("| kind | measured | design minimum | floor (1 record + 1 hop) |\n| --- | ---: | ---: | ---: |\n")
	p("| DynamoDB reads | %.2f | %.2f | %.2f |\n", ms.DynamoCalls(ms.Reads), mn.DynamoCalls(mn.Reads), fl.DynamoCalls(fl.Reads))
	for _, op := range unionKeys(ms.Reads, mn.Reads, fl.Reads) {
		p("| &nbsp;&nbsp;%s | %.2f | %.2f | %.2f |\n", op, ms.Reads[op], mn.Reads[op], fl.Reads[op])
	}
	p("| DynamoDB writes | %.2f | %.2f | %.2f |\n", ms.DynamoCalls(ms.Writes), mn.DynamoCalls(mn.Writes), fl.DynamoCalls(fl.Writes))
	for _, op := range unionKeys(ms.Writes, mn.Writes, fl.Writes) {
		p("| &nbsp;&nbsp;%s | %.2f | %.2f | %.2f |\n", op, ms.Writes[op], mn.Writes[op], fl.Writes[op])
	}
	p("| &nbsp;&nbsp;of which failed conditions | %.3f | 0 | 0 |\n", ms.ConditionFailed)
	p("| DynamoDB read request units | %.2f | %.2f | %.2f |\n", ms.RRU, mn.RRU, fl.RRU)
	p("| DynamoDB write request units | %.2f | %.2f | %.2f |\n", ms.WRU, mn.WRU, fl.WRU)
	p("| SQS sends (SendMessageBatch calls) | %.2f | %.2f | %.2f |\n", ms.Send, mn.Send, fl.Send)
	p("| &nbsp;&nbsp;messages sent | %.2f | %.2f | %.2f |\n", ms.SendEntries, mn.SendEntries, fl.SendEntries)
	p("| SQS receives that brought messages | %.2f | %.2f | %.2f |\n", ms.Receive, mn.Receive, fl.Receive)
	p("| SQS deletes (DeleteMessageBatch) | %.2f | %.2f | %.2f |\n", ms.Delete, mn.Delete, fl.Delete)
	p("| SQS requests | %.2f | %.2f | %.2f |\n", ms.SQSRequests(), mn.SQSRequests(), fl.SQSRequests())
	p("| SQS other (ChangeMessageVisibility...) | %.3f | 0 | 0 |\n", ms.SQSOther)
	p("| SES sends | %.2f | %.2f | 0 |\n", ms.SES, mn.SES)
	p("| function invocations | %.3f (%.1f records each) | %.3f (%.0f records each) | %.3f (%.0f records each) |\n", ms.Invocations, ms.RecordsPerInvocation, mn.Invocations, mn.RecordsPerInvocation, fl.Invocations, fl.RecordsPerInvocation)
	p("| idle receives (empty long polls; a fixed cost per poller, not per step) | %.2f | — | — |\n\n", ms.Empty)
	p("The design minimum (infra/bench `designMinimum`, read off shared/engine/processor.go and shared/store/steps.go), for this tunnel:\n\n")
	p("- every step: 1 consistent GetItem of the profile (generation, STOP markers and placeholder data in one read: 1 RRU); 1 conditional UpdateItem claiming the step (1 WRU); 1 completion — a conditional UpdateItem when the step has one child (2 WRU: the ~0.7 KB record and its Journey index entry), a 2-item TransactWriteItems with the run's pending count for the leaf (1 step in 10 here; 6 WRU); 1 SendMessageBatch of its children (none for the leaf); a tenth of the pollers' ReceiveMessage and DeleteMessageBatch at full batches of 10; the tunnel definition cached (~0);\n")
	p("- a message (6 in 10) adds the channel connector's settings (1 consistent GetItem) and the chat item (1 conditional PutItem);\n")
	p("- add_tags / remove_tags (3 in 10) add the tag catalog (1 eventually consistent Query: 0.5 RRU) and the tag-set UpdateItem.\n\n")
	p("The physical floor (infra/bench `physicalFloor`) is what any durable design needs per step: one record — 1 PutItem of an item under 1 KB, 1 WRU, no read — and one queue hop amortised over batches of 10 — 1 SendMessageBatch, 1 ReceiveMessage and 1 DeleteMessageBatch per 10 messages, %.1f SQS requests per step — with 1 function invocation per 10 records. ", fl.SQSRequests())
	p("Measured, a step makes %.1fx the floor's write units and %.1fx its SQS requests, and reads %.2f RRU where the floor reads none.\n\n", ratio(ms.WRU, fl.WRU), ratio(ms.SQSRequests(), fl.SQSRequests()), ms.RRU)
	if len(r.Ingest) > 0 {
		p("Ingest (`POST /v1/events`, the api function) made per event: %s.\n\n", describeCalls(r.Ingest))
	}

	p("## Cost per million steps on AWS\n\n")
	a := defaultAssumptions
	w := loadWorkflow
	cm, cmin, cfl := costPerMillion(ms, a), costPerMillion(mn, a), costPerMillion(fl, a)
	std, exp := stepFunctionsStandard(w, a), stepFunctionsExpress(w, a)
	fs := costPerMillion(funnelState(), a)
	p("| | measured calls | design minimum | floor (1 record + 1 hop) | Step Functions Standard | Step Functions Express |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	p("| DynamoDB on-demand | $%.3f | $%.3f | $%.3f | not included | not included |\n", cm.DynamoDB, cmin.DynamoDB, cfl.DynamoDB)
	p("| SQS standard | $%.3f | $%.3f | $%.3f | — | — |\n", cm.SQS, cmin.SQS, cfl.SQS)
	p("| Lambda requests | $%.3f | $%.3f | $%.3f | $%.3f | $%.3f |\n", cm.LambdaRequests, cmin.LambdaRequests, cfl.LambdaRequests, std.LambdaRequests, exp.LambdaRequests)
	p("| Lambda compute (arm64) | $%.3f | $%.3f | $%.3f | $%.3f | $%.3f |\n", cm.LambdaCompute, cmin.LambdaCompute, cfl.LambdaCompute, std.LambdaCompute, exp.LambdaCompute)
	p("| SES | $%.3f | $%.3f | — | — | — |\n", cm.SES, cmin.SES)
	p("| Step Functions | — | — | — | $%.3f | $%.3f |\n", std.StepFunctions, exp.StepFunctions)
	p("| **total per million steps** | **$%.2f** | **$%.2f** | **$%.2f** | **$%.2f** + DynamoDB | **$%.2f** + DynamoDB |\n", cm.Total(), cmin.Total(), cfl.Total(), std.Total(), exp.Total())
	p("| times the floor | %.1fx | %.1fx | 1x | %.1fx + DynamoDB | %.1fx + DynamoDB |\n\n", ratio(cm.Total(), cfl.Total()), ratio(cmin.Total(), cfl.Total()), ratio(std.Total(), cfl.Total()), ratio(exp.Total(), cfl.Total()))
	p("The floor column prices the physical floor above: %.0f WRU x $%.3f per million = $%.3f; %.1f SQS requests x $%.2f per million = $%.3f; %.1f invocations x $%.2f per million = $%.3f; and the invocation's compute as in the other columns (full batches of %.0f, %.0f ms a step).\n\n",
		fl.WRU, prices.DynamoWRU*1e6, cfl.DynamoDB, fl.SQSRequests(), prices.SQSRequest*1e6, cfl.SQS, fl.Invocations, prices.LambdaRequest*1e6, cfl.LambdaRequests, fl.RecordsPerInvocation, a.StepMS)
	p("What an AWS user would pick instead: the same %d-step tunnel as a Step Functions state machine of %d states (%d Task states invoking a Lambda function each — the 6 messages and 3 tag actions — and a %.0f s Wait state) in a line. ",
		w.Steps, w.States, w.Tasks, w.WaitSeconds)
	p("**Standard**: $%.3f per 1,000 state transitions, a transition each time a state is entered, retries included: %d states plus the execution's start and end = %d per run, %.1f per step, $%.2f per million steps ($%.2f at %d per run, if the start and end are not billed). ",
		prices.SFNTransition*1e3, w.States, w.States+w.StartEnd, w.TransitionsPerStep(), std.StepFunctions, std.StepFunctions*float64(w.States)/float64(w.States+w.StartEnd), w.States)
	p("**Express**: $%.2f per million requests (one per run, %.1f per step) plus $%.10f per GB-second ($%.2f per GB-hour, the first 1,000 GB-hours a month; less beyond) of the run's duration rounded up to 100 ms — %d tasks x %.0f ms + the %.0f s wait = %.1f s — at %.0f MB (50 MB + definition + data, billed in 64 MB chunks): $%.3f per million steps. Express runs last at most 5 minutes and run at least once, not exactly once: a funnel whose delays last hours or days cannot be one Express execution. ",
		prices.SFNExpressRequest*1e6, 1/float64(w.Steps), prices.SFNExpressGBs, prices.SFNExpressGBs*3600, w.Tasks, a.StepMS, w.WaitSeconds, w.ExpressDuration(a), w.ExpressGB()*1024, exp.StepFunctions)
	p("Both columns add the Task states' Lambda functions (%.1f invocations per step, one record each, %.0f ms at %.0f MB). ", float64(w.Tasks)/float64(w.Steps), a.StepMS, a.MemoryMB)
	p("**Neither includes the DynamoDB state the funnel still needs** — the subscriber's profile, tags, chat items: for this tunnel at least the chat item of each message and the tag set of each tag action (%.1f WRU per step) and the tag catalog and one profile read per run (%.2f RRU), $%.3f per million steps (infra/bench `funnelState`), which would make Standard $%.2f and Express $%.2f. ",
		funnelState().WRU, funnelState().RRU, fs.DynamoDB, std.Total()+fs.DynamoDB, exp.Total()+fs.DynamoDB)
	p("Step Functions prices checked %s at %s (us-east-1).\n\n", stepFunctionsChecked, stepFunctionsSource)
	p("Prices (us-east-1 list prices, checked %s; DynamoDB on-demand as cut on 2024-11-01): DynamoDB $%.3f per million write request units and $%.3f per million read request units (a transactional write is 2 WRU per item per KB); SQS standard $%.2f per million requests (each 64 KB of payload is a request; a step message is ~0.3 KB); Lambda arm64 $%.10f per GB-second and $%.2f per million requests; SES $%.2f per 1,000 emails. Free tiers left out.\n\n",
		pricesChecked, prices.DynamoWRU*1e6, prices.DynamoRRU*1e6, prices.SQSRequest*1e6, prices.LambdaGBs, prices.LambdaRequest*1e6, prices.SESEmail*1e3)
	p("Assumptions: memory %.0f MB (the template's); a step takes %.0f ms on AWS (about five calls to DynamoDB and SQS in-region plus, for a message, the connector's HTTP call — not measured here); an invocation runs its records %.0f at a time (stepbatch's concurrency) so it bills ceil(records/%.0f) x %.0f ms; records per invocation as measured (%.1f; the minimum column assumes full batches of 10). ",
		a.MemoryMB, a.StepMS, a.RecordsAtOnce, a.RecordsAtOnce, a.StepMS, ms.RecordsPerInvocation)
	p("Not included: the pollers' idle receives (a fixed cost per queue, not per step), ingest (API Gateway HTTP API at $%.2f per million requests plus the api function's calls above), storage, data transfer, CloudWatch Logs.\n\n", prices.HTTPAPI*1e6)

	p("## Functions: size, cold start, memory\n\n")
	p("Each built by its `make build-<Id>` target (`-tags lambda.norpc -trimpath -ldflags='-s -w'`, CGO off): for arm64 (what Lambda runs: the size) and for this machine (what runs under the runtime interface emulator here). ")
	p("Cold start: the init duration RIE reports for a fresh start with the function's `events/` sample (median of the starts). Peak memory: VmHWM of the bootstrap process (RIE's child) after a burst of invocations, one at a time as one sandbox runs them.\n\n")
	p("| function | arm64 binary | cold start (init) | peak RSS | burst |\n| --- | ---: | ---: | ---: | --- |\n")
	for _, f := range r.Functions {
		if f.Err != "" {
			p("| %s | %.1f MB | — | — | error: %s |\n", f.ID, mb(f.SizeARM64), oneLine(f.Err))
			continue
		}
		p("| %s | %.1f MB | %s | %.1f MB | %d x %s in %s |\n", f.ID, mb(f.SizeARM64), f.ColdStart().Round(10*time.Microsecond), mb(f.PeakRSS), f.Burst, f.BurstWhat, f.BurstTime.Round(10*time.Millisecond))
	}
	p("\n")
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("<!-- raw: %s -->\n", jsonLine(map[string]any{"engine": r.Engine, "engine_one_core": r.EngineOne, "raw": r.Raw, "per_step": r.PerStep, "minimum": r.Minimum, "functions": r.Functions}))
	return b.String()
}

// ratio is a/b, 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func errNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d errors)", n)
}

func firstErrors(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return ": " + oneLine(strings.Join(errs[:min(3, len(errs))], "; "))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func unionKeys(ms ...map[string]float64) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func describeCalls(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%.2f %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// ceilingParts: the emulator time a step's calls take at the raw rates
// measured (reads at the GetItem rate, PutItem at its own, every other write
// at the conditional UpdateItem rate; a step's message at the SQS cycle
// rate), and the ceiling that makes.
func ceilingParts(raw []rawResult, ps perStep) (dynamo, sqs string, ceiling float64) {
	rate := map[string]float64{}
	for _, r := range raw {
		switch {
		case strings.HasPrefix(r.What, "DynamoDB PutItem"):
			rate["put"] = r.PerSec
		case strings.HasPrefix(r.What, "DynamoDB UpdateItem"):
			rate["update"] = r.PerSec
		case strings.HasPrefix(r.What, "DynamoDB GetItem"):
			rate["get"] = r.PerSec
		case strings.HasPrefix(r.What, "SQS"):
			rate["sqs"] = r.PerSec
		}
	}
	if rate["put"] == 0 || rate["update"] == 0 || rate["get"] == 0 || rate["sqs"] == 0 {
		return "?", "?", 0
	}
	var d float64
	for _, v := range ps.Reads {
		d += v / rate["get"]
	}
	for op, v := range ps.Writes {
		if op == "PutItem" {
			d += v / rate["put"]
		} else {
			d += v / rate["update"]
		}
	}
	q := max(ps.SendEntries, 1) / rate["sqs"]
	ms := func(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) }
	return ms(d), ms(q), 1 / (d + q)
}
