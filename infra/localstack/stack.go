package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// DefaultJavaOptions make DynamoDB Local start about twice as fast on a
// 2-core machine (measured: ~10-17 s -> ~4-5 s to the first answer): its
// start is dominated by class loading and JIT of the AWS SDK it embeds, and
// C1-only compilation with the serial collector cuts that. An emulator does
// not need C2's peak throughput.
var DefaultJavaOptions = []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"}

// Options configure Start. The zero value is ready to use.
type Options struct {
	// EmulatorsDir is a folder prepared by EnsureEmulators; empty means
	// Start calls EnsureEmulators itself.
	EmulatorsDir string
	// LogDir receives dynamodb.log, sqs.log and sesv2.log. Empty means a new
	// temporary folder, removed by Stop unless KeepLogs is set.
	LogDir   string
	KeepLogs bool
	// StartupTimeout bounds the wait for every emulator to answer (default 2 min).
	StartupTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL (default 5 s).
	StopGrace time.Duration
	// JavaOptions go before -jar on DynamoDB Local's command line; nil means
	// DefaultJavaOptions.
	JavaOptions []string
	// VerboseLogs keeps fauxqs's per-request log lines (two per API call:
	// pollers alone write megabytes an hour). Its errors are logged anyway.
	VerboseLogs bool
}

// Logs are the log files of a stack's emulators.
type Logs struct {
	DynamoDB string
	SQS      string
	SESv2    string
}

// Stack is a set of running emulators. Stop it when done.
type Stack struct {
	Endpoints Endpoints
	Logs      Logs
	LogDir    string

	procs      []*proc
	grace      time.Duration
	removeLogs bool
	stopOnce   sync.Once
	stopErr    error
}

// proc is one emulator process, leader of its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	port int
	log  string
	done chan struct{} // closed when cmd.Wait returned
}

// service says how to run and probe one emulator.
type service struct {
	name  string
	log   string
	start func(port int) *exec.Cmd
	probe func(ctx context.Context, base string) error
	// bindFailure recognizes, in the log, a start that lost its port to
	// another process between our pick and its bind.
	bindFailure []string
}

// Start runs DynamoDB Local, fauxqs and aws-ses-v2-local on free loopback
// ports and returns once each one answers a real API call. The processes live
// until Stack.Stop (ctx bounds only the start). If the calling process dies,
// the kernel kills them (parent-death signal).
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	dir := opts.EmulatorsDir
	if dir == "" {
		if dir, err = EnsureEmulators(ctx); err != nil {
			return nil, err
		}
	}
	for _, f := range emulatorFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("localstack: emulators in %s incomplete: %w", dir, err)
		}
	}
	s := &Stack{grace: opts.StopGrace}
	if s.grace <= 0 {
		s.grace = 5 * time.Second
	}
	s.LogDir = opts.LogDir
	if s.LogDir == "" {
		if s.LogDir, err = os.MkdirTemp("", "tunnels-stack-"); err != nil {
			return nil, err
		}
		s.removeLogs = !opts.KeepLogs
	} else if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
		return nil, err
	}
	timeout := opts.StartupTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	javaOpts := opts.JavaOptions
	if javaOpts == nil {
		javaOpts = DefaultJavaOptions
	}
	s.Logs = Logs{
		DynamoDB: filepath.Join(s.LogDir, "dynamodb.log"),
		SQS:      filepath.Join(s.LogDir, "sqs.log"),
		SESv2:    filepath.Join(s.LogDir, "sesv2.log"),
	}
	emu := filepath.Join(dir, dynamoEmulatorDir)
	services := []service{
		{
			name: "dynamodb", log: s.Logs.DynamoDB,
			start: func(port int) *exec.Cmd {
				args := append([]string{}, javaOpts...)
				args = append(args,
					"-Djava.library.path="+filepath.Join(emu, "DynamoDBLocal_lib"),
					"-jar", filepath.Join(emu, "DynamoDBLocal.jar"),
					"-inMemory", "-port", strconv.Itoa(port), "-disableTelemetry")
				return exec.Command("java", args...)
			},
			probe: probeDynamoDB,
			// On a taken port DynamoDB Local's main thread dies with a
			// BindException but the JVM lives on: the log is the only sign.
			bindFailure: []string{"BindException", "Failed to bind"},
		},
		{
			name: "sqs", log: s.Logs.SQS,
			start: func(port int) *exec.Cmd {
				cmd := exec.Command(filepath.Join(dir, fauxqsBinPath))
				cmd.Env = append(os.Environ(), "FAUXQS_PORT="+strconv.Itoa(port),
					"FAUXQS_LOGGER="+strconv.FormatBool(opts.VerboseLogs))
				return cmd
			},
			probe:       probeSQS,
			bindFailure: []string{"EADDRINUSE"},
		},
		{
			name: "sesv2", log: s.Logs.SESv2,
			start: func(port int) *exec.Cmd {
				return exec.Command(filepath.Join(dir, sesBinPath), "--host", "127.0.0.1", "--port", strconv.Itoa(port))
			},
			probe: probeSES,
			// aws-ses-v2-local reports a taken port only as this.
			bindFailure: []string{"EADDRINUSE", "Server does not have an address"},
		},
	}

	startCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		p   *proc
		err error
	}
	results := make([]result, len(services))
	var wg sync.WaitGroup
	for i, svc := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := startService(startCtx, svc, s.LogDir)
			results[i] = result{p, err}
		}()
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.p != nil {
			s.procs = append(s.procs, r.p)
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		// Keep the logs of a failed start: the error names them.
		s.removeLogs = false
		return nil, errors.Join(append(errs, s.Stop())...)
	}
	for _, p := range s.procs {
		base := "http://127.0.0.1:" + strconv.Itoa(p.port)
		switch p.name {
		case "dynamodb":
			s.Endpoints.DynamoDB = base
		case "sqs":
			s.Endpoints.SQS = base
		case "sesv2":
			s.Endpoints.SESv2 = base
		}
	}
	return s, nil
}

// startService starts svc and waits until it answers, retrying with a new
// port when the one picked was taken in between. On error the process is
// already stopped and not returned.
func startService(ctx context.Context, svc service, dir string) (*proc, error) {
	const attempts = 4
	logf, err := os.OpenFile(svc.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy of the descriptor
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc.name, err)
		}
		fmt.Fprintf(logf, "--- tunnels: starting %s on 127.0.0.1:%d (attempt %d)\n", svc.name, port, attempt)
		cmd := svc.start(port)
		cmd.Dir = dir
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: start %s: %w", svc.name, cmd.Path, err)
		}
		p := &proc{name: svc.name, cmd: cmd, port: port, log: svc.log, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()

		err = waitReady(ctx, p, svc.probe, func() bool { return logMentions(svc.log, svc.bindFailure) })
		if err == nil {
			return p, nil
		}
		stopProc(p, 2*time.Second)
		if errors.Is(err, errPortLost) && attempt < attempts {
			fmt.Fprintf(logf, "--- tunnels: port %d was taken by another process; retrying on another\n", port)
			continue
		}
		return nil, fmt.Errorf("%s (pid %d, port %d): %w; log %s:\n%s",
			svc.name, cmd.Process.Pid, port, err, svc.log, fileTail(svc.log, 3000))
	}
}

var (
	errExited   = errors.New("exited before it answered")
	errPortLost = errors.New("could not bind its port")
)

// waitReady polls until the probe succeeds against the process's port and
// that port is really held by the process (so a stranger that took the port
// is never mistaken for our emulator). bindFailed tells from the log that the
// process lost its port.
func waitReady(ctx context.Context, p *proc, probe func(context.Context, string) error, bindFailed func() bool) error {
	base := "http://127.0.0.1:" + strconv.Itoa(p.port)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			if bindFailed() {
				return errPortLost
			}
			return fmt.Errorf("%w (%s)", errExited, p.cmd.ProcessState)
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not ready: %w (last probe: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
		if bindFailed() {
			return errPortLost
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx, base)
		cancel()
		if last != nil {
			continue
		}
		owns, err := listensOn(p.cmd.Process.Pid, p.port)
		if err != nil || owns {
			return nil
		}
		last = fmt.Errorf("port %d answers but is not held by pid %d", p.port, p.cmd.Process.Pid)
	}
}

func logMentions(path string, needles []string) bool {
	b, _ := os.ReadFile(path)
	// Only the last attempt's output matters.
	if i := strings.LastIndex(string(b), "--- tunnels: starting"); i >= 0 {
		b = b[i:]
	}
	for _, n := range needles {
		if strings.Contains(string(b), n) {
			return true
		}
	}
	return false
}

// pickPort is freePort; tests replace it to hand out a taken port.
var pickPort = freePort

// freePort asks the kernel for a free loopback port. Another process can take
// it before the emulator binds; startService retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

func probePOST(ctx context.Context, url, target, auth string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", target)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return doProbe(req)
}

func doProbe(req *http.Request) error {
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, body)
	}
	return nil
}

// probeDynamoDB calls ListTables. DynamoDB Local rejects a request without an
// access key in the Authorization header (it keys its databases by it); the
// signature itself is not checked.
func probeDynamoDB(ctx context.Context, base string) error {
	return probePOST(ctx, base+"/", "DynamoDB_20120810.ListTables",
		"AWS4-HMAC-SHA256 Credential="+AccessKeyID+"/20200101/"+Region+"/dynamodb/aws4_request, SignedHeaders=host, Signature=0")
}

// probeSQS calls ListQueues in the JSON protocol, the one the SDK uses.
func probeSQS(ctx context.Context, base string) error {
	return probePOST(ctx, base+"/", "AmazonSQS.ListQueues", "")
}

// probeSES reads the sent-mail store.
func probeSES(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/store", nil)
	if err != nil {
		return err
	}
	return doProbe(req)
}

// Env is Endpoints.Env of the stack.
func (s *Stack) Env() map[string]string { return s.Endpoints.Env() }

// AWSConfig is AWSConfig for the stack's endpoints.
func (s *Stack) AWSConfig(ctx context.Context) (aws.Config, error) {
	return AWSConfig(ctx, s.Endpoints)
}

// Clients returns SDK clients bound to the stack.
func (s *Stack) Clients(ctx context.Context) (*Clients, error) {
	return NewClients(ctx, s.Endpoints)
}

// Pids are the process ids of the emulators (each the leader of its group).
func (s *Stack) Pids() []int {
	var pids []int
	for _, p := range s.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Stop ends every emulator: SIGTERM to its process group, SIGKILL after the
// grace period, and waits for it. Safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, p := range s.procs {
			wg.Add(1)
			go func() { defer wg.Done(); stopProc(p, s.grace) }()
		}
		wg.Wait()
		if s.removeLogs {
			s.stopErr = os.RemoveAll(s.LogDir)
		}
	})
	return s.stopErr
}

// stopProc signals p's process group by its pid and waits for the leader.
// Members left after the leader exits are killed too.
func stopProc(p *proc, grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // ESRCH when the group is gone
}
