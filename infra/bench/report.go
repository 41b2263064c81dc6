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
	p("| where | steps/s | what |\n| --- | ---: | --- |\n")
	if r.OneCore.Steps > 0 {
		p("| engine in process, one core | %.0f | the real `engine.Processor` and tag actions over in-memory ports, %d runs x %d steps, `GOMAXPROCS=1` and 1 worker (what one Lambda vCPU gives); steps pass through a queue in their wire form; delays not waited out; the median of %s after a warm-up run of the same size (%.0f steps/s: a fresh process first grows its heap) |\n",
			r.OneCore.StepsPerSec, r.OneCore.Runs, load.StepsPerRun, fmtRates(r.OneCore.Repeats), r.OneCore.WarmUp)
	}
	p("| engine in process, every core | %.0f | the same, %d workers over %d CPUs |\n", r.Engine.StepsPerSec, r.Engine.Workers, m.CPUs)
	var ceiling float64
	if r.Load != nil && r.Load.Steps > 0 {
		_, _, ceiling = ceilingParts(r.Raw, r.PerStep)
	}
	if l := r.Load; l != nil {
		ratio := ""
		if ceiling > 0 {
			ratio = fmt.Sprintf(" = **%.0f%% of the emulators' ceiling** of %.0f steps/s measured in this run (below)", 100*l.StepsPerSec99/ceiling, ceiling)
		}
		p("| local stack | %.0f | %d subscribers through the %d-step tunnel: `POST /v1/events`, the step functions in process fed by the SQS pollers, DynamoDB Local, fauxqs, a bot gateway on loopback (every message delivered and signed); first event to 99%% of the runs finished (%.0f steps/s to the very last step)%s |\n",
			l.StepsPerSec99, l.Subscribers, load.StepsPerRun, l.StepsPerSec, ratio)
	}
	for _, raw := range r.Raw {
		p("| ceiling: %s | %.0f | the emulator alone, %d concurrent clients for %s%s |\n", raw.What, raw.PerSec, raw.Clients, raw.Elapsed.Round(100*time.Millisecond), errNote(raw.Errors))
	}
	if r.Load != nil && r.Load.Steps > 0 {
		ps := r.PerStep
		dyn := ps.DynamoCalls(ps.Reads) + ps.DynamoCalls(ps.Writes)
		dt, qt, ceiling := ceilingParts(r.Raw, ps)
		p("\nA step made %.1f DynamoDB calls and %.1f SQS requests here (below). At the emulators' raw rates, the DynamoDB calls of one step take %s of the emulator's time and its message's trip through fauxqs %s: a ceiling of about %.0f steps/s for the local stack. ",
			dyn, ps.SQSRequests()+ps.Empty, dt, qt, ceiling)
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

	if b := r.Burst; b != nil {
		p("## Burst: one tunnel, one sales plan (local stack)\n\n")
		p("%d subscriptions posted at once (16 clients) to one tunnel whose first block adds the subscriber to one sales plan with `evenly` distribution over %d operators, then sends a welcome (infra/load `Burst`, %d steps a subscriber). ",
			b.Subscribers, len(load.BurstOperators), load.BurstStepsPerRun)
		p("No item is written once per subscriber: the tunnel's count goes to one of its 8 stats shards, the plan's round-robin position is reserved once a batch for the batch's joins, and each operator's open deals are counted in the subscriber's shard.\n\n")
		p("| | |\n| --- | --- |\n")
		p("| time, first event to the last welcome | %s (%.0f subscriptions/s) |\n", b.Elapsed.Round(time.Millisecond), float64(b.Subscribers)/b.Elapsed.Seconds())
		p("| subscribers the tunnel recorded | %d (want %d) |\n", b.Recorded, b.Subscribers)
		p("| deals in the plan | %d (want %d) |\n", b.Deals, b.Subscribers)
		ops := make([]string, 0, len(load.BurstOperators))
		for _, op := range load.BurstOperators {
			ops = append(ops, fmt.Sprintf("%s %d", op, b.PerOperator[op]))
		}
		p("| deals per operator | %s: spread %d (round-robin wants at most 1) |\n", strings.Join(ops, ", "), b.Spread())
		p("| refused writes (failed conditions and cancelled transactions, every function) | %d over %d steps = **%.4f per step** (target < 0.05) |\n", b.Conflicts, b.Steps, b.ConflictsPerStep())
		p("| welcomes at the gateway | %d |\n", b.Welcomes)
		p("| errors | %d%s |\n\n", len(b.Errors), firstErrors(b.Errors))
	}

	p("## AWS calls per step\n\n")
	p("Counted by an SDK middleware (infra/localstack `CallCounter`) on every client of the step functions and of the SQS pollers (which on AWS are Lambda's, and billed), while the load ran; divided by the steps recorded. ")
	if r.PerStep.UnitsMeasured {
		p("Capacity units are DynamoDB Local's `ConsumedCapacity` answers — they would count index entries too (none is written by these steps: the directory index projects no tags) — with failed conditions added at 1 WRU as AWS bills them, and transactions at AWS's rule (2 WRU per item; DynamoDB Local answered %.2f WRU per step for them).\n\n", r.PerStep.LocalTxWRU)
	} else {
		p("DynamoDB Local reported no `ConsumedCapacity`: the units are estimated from the calls (1 per read <= 4 KB, 1 per write <= 1 KB, 2 per transactional item, failed conditions included).\n\n")
	}
	ms, mn := r.PerStep, r.Minimum
	p("| kind | measured | design minimum |\n| --- | ---: | ---: |\n")
	p("| DynamoDB reads | %.2f | %.2f |\n", ms.DynamoCalls(ms.Reads), mn.DynamoCalls(mn.Reads))
	for _, op := range unionKeys(ms.Reads, mn.Reads) {
		p("| &nbsp;&nbsp;%s | %.2f | %.2f |\n", op, ms.Reads[op], mn.Reads[op])
	}
	p("| DynamoDB writes | %.2f | %.2f |\n", ms.DynamoCalls(ms.Writes), mn.DynamoCalls(mn.Writes))
	for _, op := range unionKeys(ms.Writes, mn.Writes) {
		p("| &nbsp;&nbsp;%s | %.2f | %.2f |\n", op, ms.Writes[op], mn.Writes[op])
	}
	p("| &nbsp;&nbsp;of which failed conditions | %.3f | 0 |\n", ms.ConditionFailed)
	p("| DynamoDB read request units | %.2f | %.2f |\n", ms.RRU, mn.RRU)
	p("| DynamoDB write request units | %.2f | %.2f |\n", ms.WRU, mn.WRU)
	p("| SQS sends (SendMessageBatch calls) | %.2f | %.2f |\n", ms.Send, mn.Send)
	p("| &nbsp;&nbsp;messages sent | %.2f | %.2f |\n", ms.SendEntries, mn.SendEntries)
	p("| SQS receives that brought messages | %.2f | %.2f |\n", ms.Receive, mn.Receive)
	p("| SQS deletes (DeleteMessageBatch) | %.2f | %.2f |\n", ms.Delete, mn.Delete)
	p("| SQS other (ChangeMessageVisibility...) | %.3f | 0 |\n", ms.SQSOther)
	p("| SES sends | %.2f | %.2f |\n", ms.SES, mn.SES)
	p("| function invocations | %.3f (%.1f records each) | %.3f (%.0f records each) |\n", ms.Invocations, ms.RecordsPerInvocation, mn.Invocations, mn.RecordsPerInvocation)
	p("| idle receives (empty long polls; a fixed cost per poller, not per step) | %.2f | — |\n\n", ms.Empty)
	p("The design minimum (infra/bench `designMinimum`, read off shared/engine/processor.go and shared/store/steps.go), for this tunnel:\n\n")
	p("- every step but the delay: 1 consistent GetItem of the profile (generation, STOP markers and placeholder data in one read: 1 RRU); its record, written once (1 WRU, under 1 KB, no index entry: the journey reads the records themselves); 1 SendMessageBatch of its children (none for the leaf); a tenth of the pollers' ReceiveMessage and DeleteMessageBatch at full batches of 10; the tunnel's counters, written once a second per instance (~0 per step under load); the tunnel definition cached (~0);\n")
	p("- a message (6 in 10) talks to the outside, so it is claimed first: the claim creates its chat item and the completion fills it with the message and the record — 2 WRU for one item; the channel's settings (2 consistent GetItems);\n")
	p("- add_tags / remove_tags (3 in 10) are set operations and run without a claim: a consistent look at the record (1 RRU), the tag catalog (1 eventually consistent Query: 0.5 RRU), the tag set (1 WRU: the directory index projects no tags, so a changed set writes no index entry);\n")
	p("- the delay (1 in 10) runs within the message before it (`engine.Processor.inlineDelays`): its record rides in that message's item and the message sends the block after the delay itself — no read, write, queue message or invocation of its own;\n")
	p("- the leaf (1 in 10) moves the run's pending count to 0 and marks the run ended in one UpdateItem of the profile (1 WRU).\n\n")
	if len(r.Ingest) > 0 {
		p("Ingest (`POST /v1/events`, the api function) made per event: %s.\n\n", describeCalls(r.Ingest))
	}

	p("## Cost per million steps on AWS\n\n")
	a := defaultAssumptions
	cm, cmin := costPerMillion(ms, a), costPerMillion(mn, a)
	p("| | measured calls | design minimum |\n| --- | ---: | ---: |\n")
	p("| DynamoDB on-demand | $%.3f | $%.3f |\n", cm.DynamoDB, cmin.DynamoDB)
	p("| SQS standard | $%.3f | $%.3f |\n", cm.SQS, cmin.SQS)
	p("| Lambda requests | $%.3f | $%.3f |\n", cm.LambdaRequests, cmin.LambdaRequests)
	p("| Lambda compute (arm64) | $%.3f | $%.3f |\n", cm.LambdaCompute, cmin.LambdaCompute)
	p("| SES | $%.3f | $%.3f |\n", cm.SES, cmin.SES)
	p("| **total per million steps** | **$%.2f** | **$%.2f** |\n\n", cm.Total(), cmin.Total())
	p("Prices (us-east-1 list prices, checked %s; DynamoDB on-demand as cut on 2024-11-01): DynamoDB $%.3f per million write request units and $%.3f per million read request units (a transactional write is 2 WRU per item per KB); SQS standard $%.2f per million requests (each 64 KB of payload is a request; a step message is ~0.3 KB); Lambda arm64 $%.10f per GB-second and $%.2f per million requests; SES $%.2f per 1,000 emails. Free tiers left out.\n\n",
		pricesChecked, prices.DynamoWRU*1e6, prices.DynamoRRU*1e6, prices.SQSRequest*1e6, prices.LambdaGBs, prices.LambdaRequest*1e6, prices.SESEmail*1e3)
	p("Assumptions: memory %.0f MB (the template's); a step takes %.0f ms on AWS (about five calls to DynamoDB and SQS in-region plus, for a message, the connector's HTTP call — not measured here); an invocation runs its records %.0f at a time (stepbatch's concurrency) so it bills ceil(records/%.0f) x %.0f ms; records per invocation as measured (%.1f; the minimum column assumes full batches of 10). ",
		a.MemoryMB, a.StepMS, a.RecordsAtOnce, a.RecordsAtOnce, a.StepMS, ms.RecordsPerInvocation)
	p("Not included: the pollers' idle receives (a fixed cost per queue, not per step), ingest (API Gateway HTTP API at $%.2f per million requests plus the api function's calls above), storage, data transfer, CloudWatch Logs.\n\n", prices.HTTPAPI*1e6)

	p("## Against the floor and the alternatives\n\n")
	fl := physicalFloor()
	cf := costPerMillion(fl, a)
	p("The physical floor of a durable step is **one record and one queue hop**: 1 WRU (a record under 1 KB), the parent's send of the message and a tenth of a batch receive and delete (1.2 SQS requests), and a tenth of an invocation, with the same compute as above. Nothing that keeps a step once and hands it on can cost less on these services.\n\n")
	p("| per step | measured | design minimum | physical floor |\n| --- | ---: | ---: | ---: |\n")
	p("| DynamoDB write request units | %.2f | %.2f | %.2f |\n", ms.WRU, mn.WRU, fl.WRU)
	p("| DynamoDB read request units | %.2f | %.2f | %.2f |\n", ms.RRU, mn.RRU, fl.RRU)
	p("| SQS requests | %.2f | %.2f | %.2f |\n", ms.SQSRequests(), mn.SQSRequests(), fl.SQSRequests())
	p("| function invocations | %.3f | %.3f | %.3f |\n", ms.Invocations, mn.Invocations, fl.Invocations)
	p("| **$ per million steps** | **$%.2f** | **$%.2f** | **$%.2f** |\n", cm.Total(), cmin.Total(), cf.Total())
	p("| times the floor | %.1fx | %.1fx | 1x |\n\n", cm.Total()/cf.Total(), cmin.Total()/cf.Total())
	runSeconds := 1 + float64(load.StepsPerRun)*a.StepMS/1000
	p("What an AWS user would pick instead for the same %d-step tunnel, one Task state (a Lambda invocation) a step — prices us-east-1, https://aws.amazon.com/step-functions/pricing/, checked %s: Standard $0.025 per 1,000 state transitions; Express $1.00 per million requests and $0.00001667 per GB-second, rounded up to 100 ms, 64 MB chunks. Neither includes the DynamoDB the funnel's own state (tags, profiles, chats) still needs, nor the duplicate handling Express leaves to the tasks (at-least-once).\n\n",
		load.StepsPerRun, stepFunctionsChecked)
	p("| per million steps | orchestration | Lambda tasks | total | vs this design (measured) | how |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	p("| this design (measured) | $%.2f | (in it) | $%.2f | 1x | the figures above |\n", cm.Total(), cm.Total())
	for _, alt := range stepFunctionsAlternatives(load.StepsPerRun, runSeconds, a) {
		p("| %s | $%.2f | $%.2f | $%.2f | %.1fx | %s |\n", alt.Name, alt.Orchestration, alt.Tasks, alt.Total(), alt.Total()/cm.Total(), alt.How)
	}
	p("\n")

	p("## Functions: size, cold start, memory\n\n")
	p("Each built by its `make build-<Id>` target (`-tags lambda.norpc -trimpath -ldflags='-s -w'`, CGO off): for arm64 (what Lambda runs: the size) and for this machine (what runs under the runtime interface emulator here). ")
	p("Cold start: the init duration RIE reports for a fresh start with the function's `events/` sample (median of the starts, taken in rounds that start every function and the floor once each). Peak memory: VmHWM of the bootstrap process (RIE's child) after a burst of invocations, one at a time as one sandbox runs them.\n\n")
	var bare *fnResult
	for i := range r.Functions {
		if r.Functions[i].ID == minimalID && r.Functions[i].Err == "" {
			bare = &r.Functions[i]
		}
	}
	p("Beside each figure, its ratio to the minimal aws-lambda-go function measured in the same run (targets: binary at most 1.6x, init at most 2x).\n\n")
	p("| function | arm64 binary | x bare | cold start (init) | x bare | peak RSS | burst |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, f := range r.Functions {
		if f.Err != "" {
			p("| %s | %.1f MB | | — | | — | error: %s |\n", f.ID, mb(f.SizeARM64), oneLine(f.Err))
			continue
		}
		sizeX, initX := "", ""
		if bare != nil && bare.SizeARM64 > 0 && bare.ColdStart() > 0 {
			sizeX = fmt.Sprintf("%.2f", float64(f.SizeARM64)/float64(bare.SizeARM64))
			initX = fmt.Sprintf("%.2f", float64(f.ColdStart())/float64(bare.ColdStart()))
		}
		p("| %s | %.2f MB | %s | %s | %s | %.1f MB | %d x %s in %s |\n", f.ID, mb(f.SizeARM64), sizeX, f.ColdStart().Round(10*time.Microsecond), initX, mb(f.PeakRSS), f.Burst, f.BurstWhat, f.BurstTime.Round(10*time.Millisecond))
	}
	p("\n")
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("<!-- raw: %s -->\n", jsonLine(map[string]any{"engine": r.Engine, "one_core": r.OneCore, "raw": r.Raw, "per_step": r.PerStep, "minimum": r.Minimum, "functions": r.Functions, "burst": r.Burst}))
	return b.String()
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func fmtRates(rs []float64) string {
	if len(rs) == 0 {
		return "1 run"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.0f", r)
	}
	return strings.Join(parts, ", ")
}

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

func unionKeys(a, b map[string]float64) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]float64{a, b} {
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
