// Command bench is `make bench`. In one run it measures, prints side by side
// and writes to BENCHMARKS.md at the repository root: steps per second of
// the engine in process (pure Go ports in memory) and through the local stack
// against the emulators (the load run of infra/load), with the emulators' own
// raw throughput as the ceiling; the AWS API calls per step by kind, counted
// by an SDK middleware during the load run, next to the minimum the design
// needs; the cost per million steps on AWS from those counts and public
// prices; each function's cold start (init under the runtime interface
// emulator) and binary size next to a minimal aws-lambda-go function, and its
// peak memory after a burst of invocations.
//
// Usage:
//
//	go run ./infra/bench [-subscribers 2000] [-out BENCHMARKS.md]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tunnels/tunnels/infra/load"
	"github.com/tunnels/tunnels/infra/localstack"
)

type options struct {
	Subscribers int
	Paced       int
	PacedRate   float64
	EngineRuns  int
	EngineReps  int
	Burst       int
	ColdRuns    int
	RawSeconds  time.Duration
	LoadTimeout time.Duration
	Out         string
	Command     string
	// BurstSubscribers subscribe at once to one tunnel that joins one
	// sales plan (load.Burst); 0 skips the burst.
	BurstSubscribers int
	// EngineOnly measures the engine in process and stops (no report).
	EngineOnly bool
}

func main() {
	var o options
	flag.IntVar(&o.Subscribers, "subscribers", 2000, "subscribers of the load run through the local stack (10 steps each)")
	flag.IntVar(&o.Paced, "paced", 300, "subscribers of the paced load run (latency below capacity); 0 skips it")
	flag.Float64Var(&o.PacedRate, "paced-rate", 5, "events per second of the paced load run")
	flag.IntVar(&o.EngineRuns, "engine-runs", 20000, "runs of the in-process engine measurement (10 steps each)")
	flag.IntVar(&o.EngineReps, "engine-repeats", 3, "timed runs of the one-core engine measurement (after one to warm up; the median is reported)")
	flag.IntVar(&o.Burst, "burst", 200, "invocations of each function before its peak memory is read")
	flag.IntVar(&o.ColdRuns, "cold", 7, "cold starts per function, in rounds over every function (the median is reported)")
	flag.DurationVar(&o.RawSeconds, "raw", 4*time.Second, "time each raw emulator measurement runs")
	flag.DurationVar(&o.LoadTimeout, "load-timeout", 8*time.Minute, "bound of the load run")
	flag.StringVar(&o.Out, "out", "", "report file (default <repo>/BENCHMARKS.md; - for none)")
	flag.StringVar(&o.Command, "command", "", "the command to record in the report (default: this one's command line)")
	flag.IntVar(&o.BurstSubscribers, "burst-subscribers", 10000, "subscriptions of the burst into one tunnel and one sales plan; 0 skips it")
	flag.BoolVar(&o.EngineOnly, "engine-only", false, "measure the engine in process only, print it and stop")
	flag.Parse()
	if o.Command == "" {
		o.Command = strings.TrimSpace("go run ./infra/bench " + strings.Join(os.Args[1:], " "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// report is everything measured.
type report struct {
	Machine machine
	Began   time.Time
	Took    time.Duration
	Command string
	Engine  engineResult
	// OneCore is the engine on one core (GOMAXPROCS=1, one worker).
	OneCore   engineResult
	Raw       []rawResult
	Burst     *load.BurstResult
	Load      *load.Result
	Paced     *load.Result
	PacedRate float64
	PerStep   perStep
	Minimum   perStep
	Ingest    map[string]float64 // API function calls per event, by service/operation
	Functions []fnResult
	Notes     []string
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	root, err := localstack.RepoRoot()
	if err != nil {
		return err
	}
	if o.Out == "" {
		o.Out = filepath.Join(root, "BENCHMARKS.md")
	}
	rep := &report{Began: time.Now(), Command: o.Command, Machine: describeMachine(ctx)}
	say := func(format string, args ...any) {
		fmt.Fprintf(stdout, "[%s] %s\n", time.Since(rep.Began).Round(time.Second), fmt.Sprintf(format, args...))
	}
	say("machine: %s", rep.Machine.oneLine())
	if o.EngineOnly {
		return measureEngine(ctx, o, rep, say)
	}

	// Builds first: the heaviest CPU work, done before anything is timed.
	work, err := os.MkdirTemp("", "tunnels-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	say("building every function for arm64 and %s (make build-<Id>) and the minimal function", runtime.GOARCH)
	arm, err := buildAll(ctx, root, work, "arm64")
	if err != nil {
		return err
	}
	host := arm
	if runtime.GOARCH != "arm64" {
		if host, err = buildAll(ctx, root, work, runtime.GOARCH); err != nil {
			return err
		}
	}

	if err := measureEngine(ctx, o, rep, say); err != nil {
		return err
	}

	say("starting the local stack (emulators, API, pollers) with counted AWS calls")
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	env, err := load.Start(sctx, load.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer env.Close()
	say("  system log: %s", env.LogPath)

	table, _ := env.Sys.Resources.Get("Table")
	say("emulators' raw throughput: 4 clients, %s each", o.RawSeconds)
	if rep.Raw, err = measureEmulators(ctx, env.Sys.Clients, table.Name, 4, o.RawSeconds); err != nil {
		return err
	}
	for _, r := range rep.Raw {
		say("  %-72s %8.0f/s", r.What, r.PerSec)
	}

	say("load: %d subscribers through the %d-step tunnel on the local stack", o.Subscribers, load.StepsPerRun)
	rep.Load, err = env.Run(ctx, load.Config{Subscribers: o.Subscribers, Timeout: o.LoadTimeout, Progress: stdout})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(rep.Load.Summary()), "\n") {
		say("  %s", line)
	}
	if gap := rep.Load.Elapsed - rep.Load.Elapsed99; rep.Load.Elapsed99 > 0 && gap > time.Minute {
		rep.Notes = append(rep.Notes, fmt.Sprintf("The load run's slowest run finished %s after 99%% of them had. A gap of minutes fits a receive whose answer was lost "+
			"(the SDK retries it; the messages it took stay hidden for the queue's 180 s visibility timeout, as they would on AWS): the run still completed, "+
			"but the to-the-last-step throughput undercounts, hence the 99%% figure.", gap.Round(time.Second)))
	}
	rep.PerStep = measuredPerStep(rep.Load.Calls, rep.Load.Steps, stepLabel)
	rep.Minimum = designMinimum()
	rep.Ingest = map[string]float64{}
	for k, v := range rep.Load.Calls {
		if k.Label == "ApiFunction" && len(rep.Load.SubscriberIDs) > 0 {
			rep.Ingest[k.Service+" "+k.Operation] += float64(v.Calls) / float64(len(rep.Load.SubscriberIDs))
		}
	}

	if o.Paced > 0 {
		say("paced load: %d subscribers at %.0f events/s (%.0f steps/s), below the stack's capacity: the latency of an unhurried run", o.Paced, o.PacedRate, o.PacedRate*load.StepsPerRun)
		rep.PacedRate = o.PacedRate
		rep.Paced, err = env.Run(ctx, load.Config{Subscribers: o.Paced, Rate: o.PacedRate, Timeout: o.LoadTimeout, Progress: stdout})
		if err != nil {
			return fmt.Errorf("paced load: %w", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(rep.Paced.Summary()), "\n") {
			say("  %s", line)
		}
	}

	if o.BurstSubscribers > 0 {
		say("burst: %d subscriptions at once to one tunnel that joins one evenly distributed sales plan", o.BurstSubscribers)
		rep.Burst, err = env.Burst(ctx, load.BurstConfig{Subscribers: o.BurstSubscribers, Timeout: 3 * o.LoadTimeout, Progress: func(f string, a ...any) { say("  "+f, a...) }})
		if err != nil {
			return fmt.Errorf("burst: %w", err)
		}
		say("  %s", rep.Burst.Summary())
	}

	say("functions: %d cold starts each under the runtime interface emulator, then %d invocations for the peak memory", o.ColdRuns, o.Burst)
	burst, err := probes(ctx, env, rep.Load)
	if err != nil {
		rep.Notes = append(rep.Notes, "the step-function bursts used the sample events: "+err.Error())
	}
	rep.Functions = measureFunctions(ctx, root, arm, host, func(id string) map[string]string {
		return functionEnv(env, id)
	}, o.ColdRuns, o.Burst, burst, func(s string) { say("  %s", s) })

	rep.Took = time.Since(rep.Began)
	rep.Machine.LoadAfter = loadAverage()
	md := rep.markdown()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, md)
	if o.Out != "-" {
		if err := os.WriteFile(o.Out, []byte(md), 0o644); err != nil {
			return err
		}
		say("wrote %s", o.Out)
	}
	return nil
}

// functionEnv is the environment Lambda would give a function, pointed at
// the local stack's emulators.
func functionEnv(env *load.Env, id string) map[string]string {
	out := map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "minimal", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
	if id == minimalID {
		return out
	}
	fenv, err := env.Sys.Resources.FunctionEnv(id)
	if err == nil {
		for k, v := range fenv {
			out[k] = v
		}
	}
	for k, v := range env.Sys.Endpoints.Env() {
		out[k] = v
	}
	out["TUNNELS_ADMIN_TOKEN"] = env.Sys.AdminToken
	out["AWS_LAMBDA_FUNCTION_NAME"] = id
	if fn, ok := env.Sys.Resources.Function(id); ok {
		out["AWS_LAMBDA_FUNCTION_TIMEOUT"] = strconv.Itoa(int(fn.Timeout / time.Second))
		if fn.MemorySize > 0 {
			out["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(fn.MemorySize)
		}
	}
	return out
}

// probes makes the flow and tags functions' bursts real work: one-block
// tunnels in the load run's workspace (a message to the gateway; add_tags),
// and batches of 10 new steps on its subscribers. The other functions get
// their sample events (a step of a subscriber that does not exist: read and
// dropped), the api function alternates its health and create-tag events.
func probes(ctx context.Context, env *load.Env, res *load.Result) (burstFor, error) {
	if res == nil || len(res.SubscriberIDs) == 0 {
		return nil, errors.New("no subscribers from the load run")
	}
	put := func(path, body string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, env.Sys.APIURL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+res.APIKey)
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		if r.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(r.Body)
			return fmt.Errorf("PUT %s = %d %s", path, r.StatusCode, b)
		}
		return nil
	}
	if err := put("/v1/tunnels/probe-flow", `{"name": "Probe flow", "entry": "p", "blocks": [{"id": "p", "type": "message", "text": "Probe {{subscriber.first_name}}"}]}`); err != nil {
		return nil, err
	}
	if err := put("/v1/tunnels/probe-tags", `{"name": "Probe tags", "entry": "p", "blocks": [{"id": "p", "type": "action", "actions": [{"type": "add_tags", "tags": ["lead"]}]}]}`); err != nil {
		return nil, err
	}
	root, _ := localstack.RepoRoot()
	health, _ := os.ReadFile(filepath.Join(root, "events", "api-health.json"))
	tag, _ := os.ReadFile(filepath.Join(root, "events", "api-create-tag.json"))
	return func(id string, i int) ([]byte, string, bool) {
		switch id {
		case "FlowFunction":
			return stepBatch(res.WorkspaceID, "probe-flow", "p", res.SubscriberIDs, i), "batches of 10 new message steps (delivered to the gateway)", true
		case "TagsFunction":
			return stepBatch(res.WorkspaceID, "probe-tags", "p", res.SubscriberIDs, i), "batches of 10 new add_tags steps", true
		case "ApiFunction":
			if i%2 == 1 && len(tag) > 0 {
				return tag, "health and create-tag events in turn", true
			}
			return health, "health and create-tag events in turn", len(health) > 0
		}
		return nil, "", false
	}, nil
}

// machine describes where the figures were taken.
type machine struct {
	CPUs       int
	CPUModel   string
	MemTotal   string
	GoVersion  string
	Kernel     string
	LoadBefore string
	LoadAfter  string
}

func describeMachine(ctx context.Context) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			m.CPUs = n
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

func (m machine) oneLine() string {
	return fmt.Sprintf("%d CPUs (%s), %s, %s, load average %s", m.CPUs, m.CPUModel, m.MemTotal, m.GoVersion, m.LoadBefore)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// jsonLine is for the machine-readable tail of the report.
func jsonLine(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error() // said, so a gap in the raw line is never silent
	}
	return string(b)
}

// measureEngine runs the engine in process on every core (4 workers a core)
// and on one core (GOMAXPROCS=1, one worker: the figure a single Lambda
// vCPU would give).
func measureEngine(ctx context.Context, o options, rep *report, say func(string, ...any)) error {
	var err error
	say("engine in process: %d runs x %d steps over memory ports", o.EngineRuns, load.StepsPerRun)
	if rep.Engine, err = runEngine(ctx, o.EngineRuns, 4*runtime.GOMAXPROCS(0)); err != nil {
		return fmt.Errorf("engine in process: %w", err)
	}
	say("  %.0f steps/s (%d steps in %s, %d workers)", rep.Engine.StepsPerSec, rep.Engine.Steps, rep.Engine.Elapsed.Round(time.Millisecond), rep.Engine.Workers)
	if rep.OneCore, err = runEngineOneCore(ctx, o.EngineRuns, o.EngineReps); err != nil {
		return fmt.Errorf("engine on one core: %w", err)
	}
	say("  one core: %.0f steps/s, the median of %v after a warm-up run (GOMAXPROCS=1, 1 worker); the first run, in a fresh process: %.0f steps/s",
		rep.OneCore.StepsPerSec, rep.OneCore.Repeats, rep.OneCore.WarmUp)
	return nil
}
