package localstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The runtime interface emulator: what `sam local invoke` runs inside its
// container, here run natively against a bootstrap built for the host.
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// EnsureRIE installs aws-lambda-rie into <CacheDir>/bin with `go install`
// (once; a version file beside it records what is there) and returns its path.
func EnsureRIE(ctx context.Context) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "bin")
	path := filepath.Join(bin, "aws-lambda-rie")
	stamp := path + ".version"
	current := func() bool {
		v, err := os.ReadFile(stamp)
		if err != nil || strings.TrimSpace(string(v)) != RIEVersion {
			return false
		}
		_, err = os.Stat(path)
		return err == nil
	}
	if current() {
		return path, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(bin, ".aws-lambda-rie.lock"))
	if err != nil {
		return "", fmt.Errorf("rie: %w", err)
	}
	defer unlock()
	if current() {
		return path, nil
	}
	cmd := exec.CommandContext(ctx, "go", "install", RIEModule+"@"+RIEVersion)
	cmd.Dir = bin // outside any module or workspace
	// RIE runs here, natively: never inherit a cross-compilation target.
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rie: go install %s@%s: %w\n%s", RIEModule, RIEVersion, err, tail(out, 4000))
	}
	if err := writeFileSync(stamp, []byte(RIEVersion+"\n")); err != nil {
		return "", err
	}
	return path, nil
}

// RIEOptions configure StartRIE.
type RIEOptions struct {
	// Env is the function's environment. RIE passes its own environment to
	// the bootstrap, so nothing of this process's environment leaks in
	// except PATH, HOME and TMPDIR. AWS_LAMBDA_FUNCTION_TIMEOUT,
	// AWS_LAMBDA_FUNCTION_MEMORY_SIZE and AWS_LAMBDA_FUNCTION_NAME are read by
	// RIE itself.
	Env map[string]string
	// Logs receives RIE's and the function's output as it comes, written
	// from another goroutine until Stop returns.
	Logs io.Writer
	// StartTimeout bounds the wait for RIE to listen (default 20 s).
	StartTimeout time.Duration
}

// RIE is a running aws-lambda-rie with one function.
type RIE struct {
	// URL is the invoke endpoint base, http://127.0.0.1:<port>.
	URL string

	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex // one invoke at a time, as one Lambda sandbox
	out     *lineLog
	invokes int
}

// Report is what RIE logged about an invocation.
type Report struct {
	RequestID string
	// InitDuration is the runtime's init (the bootstrap's start up to its
	// first request for work); first invocation only.
	InitDuration time.Duration
	// Duration is the handler's run, init excluded.
	Duration time.Duration
}

// FunctionError is returned with the response when the function failed
// (the response is Lambda's {"errorMessage", "errorType"} body).
type FunctionError struct {
	Status int
	Body   string
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error (HTTP %d): %s", e.Status, e.Body)
}

// StartRIE runs aws-lambda-rie for bootstrap (a binary built for this host's
// OS and architecture) on two free loopback ports: its invoke API and the
// runtime API the bootstrap talks to (RIE's default, 127.0.0.1:9001, is
// replaced, so concurrent RIEs do not clash). The bootstrap starts on the
// first Invoke, as a cold start.
func StartRIE(ctx context.Context, bootstrap string, opts RIEOptions) (*RIE, error) {
	rieBin, err := EnsureRIE(ctx)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(bootstrap)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("rie: bootstrap %s is not an executable file", abs)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	env := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(opts.Env) {
		env = append(env, k+"="+opts.Env[k])
	}
	const attempts = 4
	for attempt := 1; ; attempt++ {
		apiPort, err := pickPort()
		if err != nil {
			return nil, err
		}
		rtPort, err := pickPort()
		if err != nil {
			return nil, err
		}
		if rtPort == apiPort {
			continue
		}
		r, err := startRIE(ctx, rieBin, abs, env, apiPort, rtPort, opts.Logs, timeout)
		if err == nil {
			return r, nil
		}
		if attempt < attempts && errors.Is(err, errPortLost) {
			continue
		}
		return nil, err
	}
}

func startRIE(ctx context.Context, rieBin, bootstrap string, env []string, apiPort, rtPort int, logs io.Writer, timeout time.Duration) (*RIE, error) {
	cmd := exec.Command(rieBin,
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(rtPort),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap) // Lambda's cwd is the code folder
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr() // the bootstrap is RIE's child: one group
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("rie: %w", err)
	}
	pw.Close()
	r := &RIE{URL: "http://127.0.0.1:" + strconv.Itoa(apiPort), cmd: cmd, done: make(chan struct{}), out: newLineLog(pr, logs)}
	go func() { _ = cmd.Wait(); close(r.done) }()

	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			r.out.wait()
			out := r.out.bytes()
			if bytes.Contains(out, []byte("address already in use")) {
				return nil, fmt.Errorf("rie: %w", errPortLost)
			}
			return nil, fmt.Errorf("rie: %w (%s):\n%s", errExited, cmd.ProcessState, tail(out, 3000))
		case <-sctx.Done():
			_ = r.Stop()
			return nil, fmt.Errorf("rie: not listening on 127.0.0.1:%d: %w:\n%s", apiPort, sctx.Err(), tail(r.out.bytes(), 3000))
		case <-tick.C:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(apiPort), time.Second)
		if err != nil {
			continue
		}
		c.Close()
		if owns, err := listensOn(cmd.Process.Pid, apiPort); err != nil || owns {
			return r, nil
		}
	}
}

var (
	reportLine = regexp.MustCompile(`^REPORT RequestId: (\S+)`)
	runDur     = regexp.MustCompile(`\tDuration: ([0-9.]+) ms`)
	// RIE initializes the runtime lazily, inside the first invoke, so the
	// "Init Duration" of its REPORT line measures nothing (~0.03 ms) and its
	// "Duration" includes the init. The rapid log lines have the real
	// numbers.
	initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	invokeDone = regexp.MustCompile(`INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)`)
)

// Invoke posts event to the function and returns its response and RIE's
// report. A function error comes back as a *FunctionError together with the
// response body.
func (r *RIE) Invoke(ctx context.Context, event []byte) ([]byte, Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.out.count(reportLine)
	from := r.out.len()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/2015-03-31/functions/function/invocations", bytes.NewReader(event))
	if err != nil {
		return nil, Report{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, Report{}, fmt.Errorf("rie: invoke: %w\n%s", err, tail(r.out.bytes(), 3000))
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, Report{}, fmt.Errorf("rie: read response: %w", err)
	}
	r.invokes++
	// RIE prints its REPORT line around the time it answers; give the pipe a
	// moment to deliver it.
	var rep Report
	if _, ok := r.out.waitFor(reportLine, seen, 2*time.Second); ok {
		rep = parseReport(r.out.since(from))
	}
	if resp.StatusCode != http.StatusOK {
		return body, rep, &FunctionError{Status: resp.StatusCode, Body: string(body)}
	}
	if isLambdaError(body) {
		return body, rep, &FunctionError{Status: resp.StatusCode, Body: string(body)}
	}
	return body, rep, nil
}

// isLambdaError recognizes the body Lambda returns for a failed invocation.
func isLambdaError(body []byte) bool {
	b := bytes.TrimSpace(body)
	return bytes.HasPrefix(b, []byte("{")) && bytes.Contains(b, []byte(`"errorMessage"`)) && bytes.Contains(b, []byte(`"errorType"`))
}

// parseReport reads the output lines of one invocation.
func parseReport(lines []string) Report {
	var rep Report
	for _, line := range lines {
		if m := reportLine.FindStringSubmatch(line); m != nil {
			rep.RequestID = m[1]
			if m := runDur.FindStringSubmatch(line); m != nil && rep.Duration == 0 {
				rep.Duration = msDuration(m[1])
			}
		}
		if m := initReport.FindStringSubmatch(line); m != nil {
			rep.InitDuration = msDuration(m[1])
		}
		if m := invokeDone.FindStringSubmatch(line); m != nil {
			rep.Duration = msDuration(m[1])
		}
	}
	return rep
}

func msDuration(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

// Output is everything RIE and the function printed so far.
func (r *RIE) Output() []byte { return r.out.bytes() }

// Pid is RIE's process id (leader of a group holding the bootstrap too).
func (r *RIE) Pid() int { return r.cmd.Process.Pid }

// Stop ends RIE and the bootstrap: SIGTERM to the group, SIGKILL after 2 s.
func (r *RIE) Stop() error {
	stopProc(&proc{cmd: r.cmd, done: r.done}, 2*time.Second)
	r.out.wait()
	return nil
}

// InvokeRIE starts RIE for bootstrap with env, invokes it once with event
// (a cold start), stops it, and returns the response and the init duration
// RIE reported (0 if it printed none).
func InvokeRIE(ctx context.Context, bootstrapPath string, env map[string]string, event []byte) ([]byte, time.Duration, error) {
	r, err := StartRIE(ctx, bootstrapPath, RIEOptions{Env: env})
	if err != nil {
		return nil, 0, err
	}
	defer r.Stop()
	resp, rep, err := r.Invoke(ctx, event)
	return resp, rep.InitDuration, err
}

// lineLog collects a process's output, copying it to an optional writer,
// and lets callers wait for a line matching a pattern.
type lineLog struct {
	mu    sync.Mutex
	cond  *sync.Cond
	buf   bytes.Buffer
	lines []string
	eof   bool
}

func newLineLog(r io.ReadCloser, copyTo io.Writer) *lineLog {
	l := &lineLog{}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if copyTo != nil {
				fmt.Fprintln(copyTo, line)
			}
			l.mu.Lock()
			l.buf.WriteString(line + "\n")
			l.lines = append(l.lines, line)
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	return l
}

func (l *lineLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf.Bytes()...)
}

func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *lineLog) since(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[i:]...)
}

func (l *lineLog) count(re *regexp.Regexp) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if re.MatchString(s) {
			n++
		}
	}
	return n
}

// waitFor returns the (skip+1)-th line matching re, waiting up to d.
func (l *lineLog) waitFor(re *regexp.Regexp, skip int, d time.Duration) (string, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		n := 0
		for _, s := range l.lines {
			if re.MatchString(s) {
				if n == skip {
					return s, true
				}
				n++
			}
		}
		if l.eof || !time.Now().Before(deadline) {
			return "", false
		}
		l.cond.Wait()
	}
}

// wait blocks until the output pipe is closed (every writer in the process
// group is gone), at most 2 s.
func (l *lineLog) wait() {
	timer := time.AfterFunc(2*time.Second, func() {
		l.mu.Lock()
		l.eof = true // give up waiting; the reader goroutine ends with the pipe
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.eof {
		l.cond.Wait()
	}
}
