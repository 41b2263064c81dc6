// Package devstack runs the whole system on one machine: the emulators,
// the tables and queues template.yaml declares, the HTTP API and every step
// function fed by its queue the way Lambda's event source mapping feeds it.
// `make dev` (infra/runner) and the end-to-end tests both start it here.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/app"
	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// Options configure a local system. Zero values take the SPEC section 7 defaults.
type Options struct {
	HTTPAddr    string // TUNNELS_HTTP_ADDR, default 127.0.0.1:3000 ("127.0.0.1:0" picks a port)
	DevAPIKey   string // TUNNELS_DEV_API_KEY, default dev-key
	AdminToken  string // TUNNELS_ADMIN_TOKEN, default dev-admin
	EgressAllow string // TUNNELS_EGRESS_ALLOW, default empty
	// Template is template.yaml's path (default: the repository's).
	Template string
	// SchedulerInterval overrides the scheduler's rate(1 minute) (tests).
	SchedulerInterval time.Duration
	// Env overrides function environment variables (after the template's).
	Env map[string]string
	Log *slog.Logger
	// Faults switches on fault injection (TUNNELS_FAULTS, see
	// localstack.ParseFaults); the zero value injects nothing. The pollers
	// duplicate, reorder and crash deliveries, and the functions' AWS calls
	// are throttled; the API's own workspace set-up at start is not.
	Faults localstack.Faults
	// CountCalls, when set, counts every AWS call the functions make (labelled
	// with the function's logical id) and the pollers' SQS calls (labelled
	// EventSourceMapping: on AWS, Lambda's pollers make and bill them).
	CountCalls *localstack.CallCounter

	faultsErr error // a TUNNELS_FAULTS that FromEnv could not read
}

// System is a running local deployment.
type System struct {
	APIURL      string
	APIKey      string
	WorkspaceID string
	AdminToken  string
	Endpoints   localstack.Endpoints
	Stack       *localstack.Stack
	Resources   *localstack.Resources
	Clients     *localstack.Clients
	Store       *store.Store
	// Faults injects the faults of Options.Faults (nil when there are none);
	// its Stats say what was injected.
	Faults *localstack.Injector

	server *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	// shutdowns write what the step functions hold (their counts) once the
	// pollers have stopped, before the emulators do.
	shutdowns []func()
	err       error
}

// FromEnv reads the Options of SPEC section 7 from the environment.
func FromEnv() Options {
	o := Options{
		HTTPAddr:    os.Getenv("TUNNELS_HTTP_ADDR"),
		DevAPIKey:   os.Getenv("TUNNELS_DEV_API_KEY"),
		AdminToken:  os.Getenv("TUNNELS_ADMIN_TOKEN"),
		EgressAllow: os.Getenv("TUNNELS_EGRESS_ALLOW"),
	}
	o.Faults, o.faultsErr = localstack.ParseFaults(os.Getenv("TUNNELS_FAULTS"))
	return o
}

func (o *Options) defaults() error {
	if o.faultsErr != nil {
		return fmt.Errorf("TUNNELS_FAULTS: %w", o.faultsErr)
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:3000"
	}
	if o.DevAPIKey == "" {
		o.DevAPIKey = "dev-key"
	}
	if o.AdminToken == "" {
		o.AdminToken = "dev-admin"
	}
	if o.Template == "" {
		root, err := localstack.RepoRoot()
		if err != nil {
			return err
		}
		o.Template = filepath.Join(root, "template.yaml")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

// Start brings the whole system up from a clean slate. Close stops all of it.
func Start(ctx context.Context, opts Options) (_ *System, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	log := opts.Log
	stack, err := localstack.Start(ctx, localstack.Options{})
	if err != nil {
		return nil, fmt.Errorf("start emulators: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	sys := &System{Stack: stack, Endpoints: stack.Endpoints, cancel: cancel, APIKey: opts.DevAPIKey, AdminToken: opts.AdminToken,
		Faults: localstack.NewInjector(opts.Faults)}
	defer func() {
		if err != nil {
			_ = sys.Close()
		}
	}()
	if sys.Clients, err = stack.Clients(ctx); err != nil {
		return nil, err
	}
	params := map[string]string{"AdminToken": opts.AdminToken, "EgressAllow": opts.EgressAllow}
	if sys.Resources, err = localstack.Provision(ctx, opts.Template, sys.Clients, params); err != nil {
		return nil, fmt.Errorf("provision %s: %w", opts.Template, err)
	}
	awsCfg, err := stack.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	pollSQS := sys.Clients.SQS
	if opts.CountCalls != nil {
		cfg := awsCfg.Copy()
		cfg.APIOptions = append(slices.Clone(cfg.APIOptions), opts.CountCalls.APIOption("EventSourceMapping"))
		pollSQS = sqs.NewFromConfig(cfg, localstack.WithSQSEndpoint(stack.Endpoints.SQS))
	}

	// Listen first: the API's own address is the public URL Telegram is told.
	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.HTTPAddr, err)
	}
	sys.APIURL = "http://" + ln.Addr().String()
	keepListener := false
	defer func() {
		if !keepListener {
			ln.Close()
		}
	}()

	httpHandlers := map[string]http.Handler{} // by function logical id
	for _, fn := range sys.Resources.Functions() {
		env, err := sys.Resources.FunctionEnv(fn.LogicalID)
		if err != nil {
			return nil, err
		}
		env["TUNNELS_ADMIN_TOKEN"] = opts.AdminToken
		env["TUNNELS_EGRESS_ALLOW"] = opts.EgressAllow
		env["TUNNELS_PUBLIC_URL"] = sys.APIURL
		for k, v := range opts.Env {
			env[k] = v
		}
		cfg, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn.LogicalID, err)
		}
		flog := log.With("function", fn.LogicalID)
		fnCfg := awsCfg.Copy()
		fnCfg.APIOptions = slices.Clone(fnCfg.APIOptions) // Copy shares the slice
		if opts.CountCalls != nil {
			fnCfg.APIOptions = append(fnCfg.APIOptions, opts.CountCalls.APIOption(fn.LogicalID))
		}
		if sys.Faults != nil {
			fnCfg.APIOptions = append(fnCfg.APIOptions, sys.Faults.APIOption(fn.LogicalID))
		}
		// DynamoDB Local's error answers carry a CRC32 the SDK cannot match
		// (it warns on every conditional-check failure); AWS's are fine.
		deps := app.New(cfg, fnCfg, flog, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
		if sys.Store == nil {
			// The system's own store: neither counted nor throttled.
			sys.Store = store.New(sys.Clients.DynamoDB, cfg.Table)
		}
		switch {
		case len(fn.HTTP) > 0:
			h, ok := app.HTTPHandler(deps, fn.Name)
			if !ok {
				return nil, fmt.Errorf("%s: functions/%s serves no HTTP", fn.LogicalID, fn.Name)
			}
			httpHandlers[fn.LogicalID] = h
		case len(fn.SQS) > 0:
			h := app.StepHandler(deps, engine.Kind(fn.Name))
			if h.Background != nil {
				sys.goRun(func() error { return h.Background(runCtx) })
			}
			// Counts of the batches that end while the system stops are
			// written once every poller has stopped (Close).
			sys.shutdowns = append(sys.shutdowns, h.Shutdown)
			for _, ev := range fn.SQS {
				p := localstack.NewPoller(pollSQS, fn, ev, h.Handle, flog)
				p.Faults = sys.Faults
				sys.goRun(func() error { return p.Run(runCtx) })
			}
		case len(fn.Schedules) > 0:
			handler := app.SchedulerHandler(deps)
			for _, sc := range fn.Schedules {
				s := &localstack.Scheduler{Expression: sc.Expression, Interval: opts.SchedulerInterval,
					Handler: handler, Timeout: fn.Timeout, RuleName: fn.LogicalID, Logger: flog}
				sys.goRun(func() error { return s.Run(runCtx) })
			}
		}
	}
	// One address for the HTTP API, routed to its functions as API Gateway
	// does from the template's HttpApi events.
	api, err := localstack.NewHTTPRouter(sys.Resources.Functions(), func(fn localstack.Function) (http.Handler, error) {
		return httpHandlers[fn.LogicalID], nil
	})
	if err != nil {
		return nil, err
	}

	sys.WorkspaceID = store.NewID(time.Now())
	if err := sys.Store.CreateWorkspace(ctx, sys.WorkspaceID, "Dev workspace", opts.DevAPIKey); err != nil {
		return nil, fmt.Errorf("create the dev workspace: %w", err)
	}

	keepListener = true
	sys.server = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	sys.goRun(func() error {
		if err := sys.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if err := waitHealthy(ctx, sys.APIURL); err != nil {
		return nil, err
	}
	return sys, nil
}

func (s *System) goRun(f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil {
			slog.Error("local runner component stopped", "error", err)
		}
	}()
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/health", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the API at %s did not answer /v1/health", url)
}

// DevFile is .tunnels/dev.json (SPEC section 7).
type DevFile struct {
	APIURL      string               `json:"api_url"`
	APIKey      string               `json:"api_key"`
	WorkspaceID string               `json:"workspace_id"`
	Endpoints   localstack.Endpoints `json:"endpoints"`
}

// WriteDevFile writes .tunnels/dev.json under root, atomically.
func (s *System) WriteDevFile(root string) (string, error) {
	dir := filepath.Join(root, ".tunnels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(DevFile{APIURL: s.APIURL, APIKey: s.APIKey, WorkspaceID: s.WorkspaceID, Endpoints: s.Endpoints}, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "dev.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// Close stops the API, the pollers and schedulers (finishing batches in
// flight), then the emulators.
func (s *System) Close() error {
	s.once.Do(func() {
		if s.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.server.Shutdown(ctx)
			cancel()
		}
		s.cancel()
		s.wg.Wait()
		for _, f := range s.shutdowns {
			f()
		}
		if s.Stack != nil {
			s.err = s.Stack.Stop()
		}
	})
	return s.err
}

// Env is what a separate process needs to reach this system's emulators.
func (s *System) Env() []string {
	var out []string
	for k, v := range s.Endpoints.Env() {
		out = append(out, k+"="+v)
	}
	return out
}
