// Command invoke runs one function of template.yaml under the Lambda runtime
// interface emulator, like `sam local invoke` without a container:
//
//	go run ./infra/invoke -fn ApiFunction -event events/api-health.json
//
// It builds the function with the Makefile's build-<LogicalId> target for
// this machine's architecture (GOARCH=<host> overrides build.mk's arm64),
// gives it the environment the template declares — resolved against the
// local stack of `make dev` when .tunnels/dev.json names one, else against
// dummy endpoints — posts the event, prints the response on stdout and the
// function's logs and init duration on stderr.
package main

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

type params map[string]string

func (p params) String() string { return "" }
func (p params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want Name=Value")
	}
	p[k] = v
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fn := fs.String("fn", "", "function: logical id in the template (ApiFunction) or short name (api)")
	eventPath := fs.String("event", "", "event JSON file (- for stdin); default {}")
	tplFlag := fs.String("template", "", "template path (default <repo>/template.yaml)")
	devFlag := fs.String("dev", "", "dev state naming a running local stack (default <repo>/.tunnels/dev.json)")
	bootstrap := fs.String("bootstrap", "", "use this bootstrap instead of building one")
	prm := params{}
	fs.Var(prm, "param", "template parameter Name=Value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *fn == "" {
		fs.Usage()
		return errors.New("-fn is required")
	}
	root, err := localstack.RepoRoot()
	if err != nil {
		return err
	}
	tpl := *tplFlag
	if tpl == "" {
		tpl = filepath.Join(root, "template.yaml")
	}
	dev := *devFlag
	if dev == "" {
		dev = filepath.Join(root, ".tunnels", "dev.json")
	}
	event := []byte("{}")
	switch *eventPath {
	case "":
	case "-":
		if event, err = io.ReadAll(os.Stdin); err != nil {
			return err
		}
	default:
		if event, err = os.ReadFile(*eventPath); err != nil {
			return err
		}
	}
	if !json.Valid(event) {
		return fmt.Errorf("event %s is not valid JSON", *eventPath)
	}
	devDefaults(prm)

	res, ep, err := resources(ctx, dev, tpl, prm, stderr)
	if err != nil {
		return err
	}
	f, ok := findFunction(res, *fn)
	if !ok {
		return fmt.Errorf("no AWS::Serverless::Function %s in %s", *fn, tpl)
	}
	env, err := res.FunctionEnv(f.LogicalID)
	if err != nil {
		return err
	}
	for k, v := range ep.Env() {
		env[k] = v
	}
	env["AWS_LAMBDA_FUNCTION_NAME"] = f.LogicalID
	env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = strconv.Itoa(int(f.Timeout / time.Second))
	env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(f.MemorySize)

	bin := *bootstrap
	if bin == "" {
		dir, err := os.MkdirTemp("", "tunnels-invoke-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if bin, err = build(ctx, root, f.LogicalID, dir, stderr); err != nil {
			return err
		}
	}

	rie, err := localstack.StartRIE(ctx, bin, localstack.RIEOptions{Env: env, Logs: stderr})
	if err != nil {
		return err
	}
	resp, rep, err := rie.Invoke(ctx, event)
	// Stop before writing to stderr ourselves: RIE's output is copied there
	// from another goroutine until it has stopped.
	_ = rie.Stop()
	if len(resp) > 0 {
		stdout.Write(resp)
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stderr, "init duration: %s, duration: %s\n", rep.InitDuration, rep.Duration)
	return err
}

// findFunction accepts the logical id (ApiFunction) or the short name (api).
func findFunction(res *localstack.Resources, name string) (localstack.Function, bool) {
	if f, ok := res.Function(name); ok {
		return f, true
	}
	for _, f := range res.Functions() {
		if f.Name == strings.ToLower(name) {
			return f, true
		}
	}
	return localstack.Function{}, false
}

// devDefaults fills the parameters `make dev` would, from the local dev
// variables, unless given with -param.
func devDefaults(p params) {
	defaults := map[string]string{
		"AdminToken":  envOr("TUNNELS_ADMIN_TOKEN", "dev-admin"),
		"EgressAllow": os.Getenv("TUNNELS_EGRESS_ALLOW"),
	}
	for k, v := range defaults {
		if _, ok := p[k]; !ok {
			p[k] = v
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// dummyEndpoints reach nothing (port 9, discard): a function that touches
// AWS fails fast instead of reaching real AWS.
var dummyEndpoints = localstack.Endpoints{
	DynamoDB: "http://127.0.0.1:9", SQS: "http://127.0.0.1:9", SESv2: "http://127.0.0.1:9",
}

// resources attaches to the stack `make dev` runs (.tunnels/dev.json), or
// plans names against dummy endpoints when there is none.
func resources(ctx context.Context, devPath, tpl string, p params, stderr io.Writer) (*localstack.Resources, localstack.Endpoints, error) {
	b, err := os.ReadFile(devPath)
	if err == nil {
		var dev struct {
			Endpoints localstack.Endpoints `json:"endpoints"`
		}
		if err := json.Unmarshal(b, &dev); err != nil {
			return nil, localstack.Endpoints{}, fmt.Errorf("%s: %w", devPath, err)
		}
		c, err := localstack.NewClients(ctx, dev.Endpoints)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, aerr := localstack.Attach(actx, tpl, c, p)
			cancel()
			if aerr == nil {
				fmt.Fprintf(stderr, "invoke: using the local stack of %s\n", devPath)
				return res, dev.Endpoints, nil
			}
			err = aerr
		}
		fmt.Fprintf(stderr, "invoke: %s names no running stack (%v); using dummy endpoints\n", devPath, err)
	}
	res, err := localstack.Plan(tpl, dummyEndpoints, p)
	return res, dummyEndpoints, err
}

// build runs `make build-<fn> ARTIFACTS_DIR=<dir> GOARCH=<host arch>`, as
// `sam build` would but for this machine, since RIE runs the bootstrap natively.
func build(ctx context.Context, root, fn, dir string, stderr io.Writer) (string, error) {
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "build-"+fn, "ARTIFACTS_DIR="+dir, "GOARCH="+runtime.GOARCH)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make build-%s: %w", fn, err)
	}
	bin := filepath.Join(dir, "bootstrap")
	f, err := elf.Open(bin)
	if err != nil {
		return "", fmt.Errorf("make build-%s wrote no usable bootstrap: %w", fn, err)
	}
	defer f.Close()
	if want := hostMachine[runtime.GOARCH]; want != 0 && f.Machine != want {
		return "", fmt.Errorf("make build-%s built for %s, not this machine's %s: the build target must honour GOARCH (GOARCH ?= arm64 in build.mk)", fn, f.Machine, runtime.GOARCH)
	}
	return bin, nil
}

var hostMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
