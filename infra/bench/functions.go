package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

// Each function built the way `sam build` builds it (its build-<LogicalId>
// target), for arm64 (what Lambda runs: the size) and for this machine (what
// the runtime interface emulator runs here: cold start and memory), next to
// a minimal aws-lambda-go function built with the same flags as the floor.

// functionIDs are the template's functions with their sample events.
var functionIDs = []struct{ ID, Event string }{
	{"ApiFunction", "api-health.json"},
	{"EditorFunction", "editor-save-tunnel.json"},
	{"FlowFunction", "flow-step.json"},
	{"TagsFunction", "tags-step.json"},
	{"EmailFunction", "email-step.json"},
	{"CrmFunction", "crm-step.json"},
	{"WebhookFunction", "webhook-step.json"},
	{"SchedulerFunction", "scheduler-tick.json"},
}

const minimalID = "minimal (floor)"

// fnResult is what was measured of one function.
type fnResult struct {
	ID         string
	SizeARM64  int64           // bytes of the arm64 bootstrap
	SizeHost   int64           // bytes of the host build
	ColdStarts []time.Duration // init durations of fresh starts
	Burst      int             // invocations of the burst
	BurstWhat  string          // what the burst invoked with
	BurstTime  time.Duration   // wall time of the burst
	PeakRSS    int64           // VmHWM of the bootstrap after the burst, bytes
	Err        string
}

func (f fnResult) ColdStart() time.Duration {
	if len(f.ColdStarts) == 0 {
		return 0
	}
	s := slices.Clone(f.ColdStarts)
	slices.Sort(s)
	return s[len(s)/2]
}

// buildAll builds every function (and the minimal one) for arch into
// dir/<arch>/<id>/bootstrap.
func buildAll(ctx context.Context, root, dir, arch string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range functionIDs {
		art := filepath.Join(dir, arch, f.ID)
		cmd := exec.CommandContext(ctx, "make", "-s", "build-"+f.ID, "ARTIFACTS_DIR="+art, "GOARCH="+arch)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("make build-%s GOARCH=%s: %v\n%s", f.ID, arch, err, b)
		}
		out[f.ID] = filepath.Join(art, "bootstrap")
	}
	art := filepath.Join(dir, arch, "minimal")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w",
		"-o", filepath.Join(art, "bootstrap"), "./infra/bench/testdata/minimal")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the minimal function for %s: %v\n%s", arch, err, b)
	}
	out[minimalID] = filepath.Join(art, "bootstrap")
	return out, nil
}

// burstFor makes the i-th event of a function's burst and says what it is;
// ok false means the function's sample event.
type burstFor func(id string, i int) (event []byte, what string, ok bool)

// measureFunctions measures sizes, cold starts (coldRuns fresh starts each)
// and the peak memory after a burst of n invocations. The cold starts come
// first, in rounds that start every function once (the floor included), so
// whatever else the machine does at a moment weighs on all of them alike
// rather than on the one measured then; the bursts come after.
func measureFunctions(ctx context.Context, root string, arm, host map[string]string, envFor func(id string) map[string]string,
	coldRuns, n int, burst burstFor, progress func(string)) []fnResult {
	ids := []string{}
	for _, f := range functionIDs {
		ids = append(ids, f.ID)
	}
	ids = append(ids, minimalID)
	sample := map[string][]byte{minimalID: []byte(`{}`)}
	for _, f := range functionIDs {
		b, err := os.ReadFile(filepath.Join(root, "events", f.Event))
		if err != nil {
			return []fnResult{{ID: f.ID, Err: err.Error()}}
		}
		sample[f.ID] = b
	}
	out := make([]fnResult, len(ids))
	for i, id := range ids {
		out[i] = fnResult{ID: id, Burst: n}
		if st, err := os.Stat(arm[id]); err == nil {
			out[i].SizeARM64 = st.Size()
		}
		if st, err := os.Stat(host[id]); err == nil {
			out[i].SizeHost = st.Size()
		}
	}
	for range coldRuns {
		for i, id := range ids {
			r := &out[i]
			if r.Err != "" {
				continue
			}
			_, init, err := localstack.InvokeRIE(ctx, host[id], envFor(id), sample[id])
			if err != nil && !isFunctionError(err) {
				r.Err = err.Error()
				continue
			}
			if init > 0 {
				r.ColdStarts = append(r.ColdStarts, init)
			}
		}
	}
	for i, id := range ids {
		r := &out[i]
		if r.Err == "" {
			r.BurstWhat, r.BurstTime, r.PeakRSS, r.Err = runBurst(ctx, host[id], envFor(id), id, n, sample[id], burst)
		}
		progress(fmt.Sprintf("%s: cold start %s, peak RSS %.1f MB, arm64 %.1f MB", id, r.ColdStart().Round(10*time.Microsecond), float64(r.PeakRSS)/(1<<20), float64(r.SizeARM64)/(1<<20)))
	}
	return out
}

func isFunctionError(err error) bool {
	_, ok := err.(*localstack.FunctionError)
	return ok
}

// runBurst starts one sandbox and invokes it n times (one at a time, as one
// Lambda sandbox runs its invocations), then reads the bootstrap's VmHWM.
func runBurst(ctx context.Context, bootstrap string, env map[string]string, id string, n int, sample []byte, burst burstFor) (what string, took time.Duration, peak int64, errText string) {
	r, err := localstack.StartRIE(ctx, bootstrap, localstack.RIEOptions{Env: env})
	if err != nil {
		return "", 0, 0, err.Error()
	}
	defer r.Stop()
	what = "its sample event"
	start := time.Now()
	fails := 0
	for i := range n {
		ev := sample
		if burst != nil {
			if b, w, ok := burst(id, i); ok {
				ev, what = b, w
			}
		}
		if _, _, err := r.Invoke(ctx, ev); err != nil {
			if !isFunctionError(err) {
				return what, 0, 0, err.Error()
			}
			fails++
		}
	}
	took = time.Since(start)
	child, err := childPid(r.Pid())
	if err != nil {
		return what, took, 0, err.Error()
	}
	peak, err = vmHWM(child)
	if err != nil {
		return what, took, 0, err.Error()
	}
	if fails > 0 {
		what += fmt.Sprintf(" (%d answered a function error)", fails)
	}
	return what, took, peak, ""
}

// childPid finds RIE's child process: the bootstrap.
func childPid(pid int) (int, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("peak memory is read from /proc (Linux only)")
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				return c, nil
			}
		}
	}
	return 0, fmt.Errorf("no child process of RIE (pid %d)", pid)
}

// vmHWM reads a process's peak resident set size.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(v)
			if len(fs) == 2 && fs[1] == "kB" {
				kb, err := strconv.ParseInt(fs[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// stepBatch is an SQS event of 10 records, each a new step of tunnel at
// block for one of subs.
func stepBatch(ws, tunnelID, block string, subs []string, i int) []byte {
	type rec struct {
		MessageID      string            `json:"messageId"`
		ReceiptHandle  string            `json:"receiptHandle"`
		Body           string            `json:"body"`
		Attributes     map[string]string `json:"attributes"`
		EventSource    string            `json:"eventSource"`
		EventSourceARN string            `json:"eventSourceARN"`
		AWSRegion      string            `json:"awsRegion"`
	}
	var ev struct {
		Records []rec `json:"Records"`
	}
	now := time.Now().UTC()
	for j := range 10 {
		k := i*10 + j
		body, _ := json.Marshal(map[string]any{"v": 1, "id": fmt.Sprintf("bench%x%06d", now.UnixNano(), k), "ws": ws, "sub": subs[k%len(subs)],
			"tunnel": tunnelID, "channel": "chat", "gen": 1, "block": block, "action": 0, "at": now})
		ev.Records = append(ev.Records, rec{
			MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", k), ReceiptHandle: "bench",
			Body: string(body), Attributes: map[string]string{"ApproximateReceiveCount": "1"},
			EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:bench", AWSRegion: "us-east-1",
		})
	}
	b, _ := json.Marshal(ev)
	return b
}
