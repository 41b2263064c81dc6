package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildEcho builds testdata/echo for this machine, as RIE runs it natively.
func buildEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", bin, "./testdata/echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echo: %v\n%s", err, out)
	}
	return bin
}

type echoResponse struct {
	Event     json.RawMessage   `json:"event"`
	RequestID string            `json:"request_id"`
	Env       map[string]string `json:"env"`
}

func TestInvokeRIE(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: installs and runs aws-lambda-rie")
	}
	ctx := context.Background()
	bin := buildEcho(t)
	t.Setenv("TUNNELS_HOST_ONLY", "leak") // must not reach the function

	event := `{"env":["TUNNELS_TABLE","AWS_LAMBDA_FUNCTION_NAME","TUNNELS_HOST_ONLY"],"n":1}`
	env := map[string]string{"TUNNELS_TABLE": "tunnels-Table", "AWS_LAMBDA_FUNCTION_NAME": "EchoFunction", "AWS_LAMBDA_FUNCTION_TIMEOUT": "5"}
	resp, initDur, err := InvokeRIE(ctx, bin, env, []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	var got echoResponse
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatalf("response %s: %v", resp, err)
	}
	if string(got.Event) != event {
		t.Errorf("event %s, want %s", got.Event, event)
	}
	wantEnv := map[string]string{"TUNNELS_TABLE": "tunnels-Table", "AWS_LAMBDA_FUNCTION_NAME": "EchoFunction", "TUNNELS_HOST_ONLY": ""}
	for k, v := range wantEnv {
		if got.Env[k] != v {
			t.Errorf("function env %s = %q, want %q", k, got.Env[k], v)
		}
	}
	if len(got.RequestID) != 36 {
		t.Errorf("request id %q", got.RequestID)
	}
	if initDur <= 0 {
		t.Errorf("init duration %v, want RIE's report of the cold start", initDur)
	}
	t.Logf("cold start init duration %v", initDur)

	t.Run("function error", func(t *testing.T) {
		resp, _, err := InvokeRIE(ctx, bin, nil, []byte(`{"fail":true}`))
		var fe *FunctionError
		if !errors.As(err, &fe) || !strings.Contains(string(resp), "asked to fail") {
			t.Fatalf("err = %v, response %s; want a FunctionError with the message", err, resp)
		}
	})

	t.Run("concurrent runs do not clash", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = InvokeRIE(ctx, bin, nil, []byte(`{}`))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("warm invocations and stop", func(t *testing.T) {
		r, err := StartRIE(ctx, bin, RIEOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, cold, err := r.Invoke(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		_, warm, err := r.Invoke(ctx, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if cold.InitDuration <= 0 || warm.InitDuration != 0 || warm.RequestID == "" || warm.RequestID == cold.RequestID {
			t.Errorf("reports cold %+v warm %+v", cold, warm)
		}
		pid := r.Pid()
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("RIE's process group %d (RIE and bootstrap) still there: %v", pid, err)
		}
	})

	t.Run("not a bootstrap", func(t *testing.T) {
		_, _, err := InvokeRIE(ctx, filepath.Join(t.TempDir(), "missing"), nil, []byte(`{}`))
		if err == nil || !strings.Contains(err.Error(), "not an executable") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseReport(t *testing.T) {
	// Lines as aws-lambda-rie prints them around a cold invocation.
	lines := []string{
		"START RequestId: f080b99b-0ac2-4669-97d0-dfade0f80144 Version: $LATEST",
		"26 Nov 2026 14:43:37,459 [INFO] (rapid) INIT START(type: on-demand, phase: init)",
		"26 Nov 2026 14:43:37,468 [INFO] (rapid) INIT REPORT(durationMs: 9.154000)",
		"26 Nov 2026 14:43:37,469 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 1.068000ms)",
		"END RequestId: f080b99b-0ac2-4669-97d0-dfade0f80144",
		"REPORT RequestId: f080b99b-0ac2-4669-97d0-dfade0f80144\tInit Duration: 0.03 ms\tDuration: 10.49 ms\tBilled Duration: 11 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t",
	}
	got := parseReport(lines)
	want := Report{RequestID: "f080b99b-0ac2-4669-97d0-dfade0f80144", InitDuration: 9154 * time.Microsecond, Duration: 1068 * time.Microsecond}
	if got != want {
		t.Errorf("cold: got %+v, want %+v", got, want)
	}
	warm := parseReport([]string{"REPORT RequestId: x\tDuration: 1.39 ms\tBilled Duration: 2 ms\t"})
	if warm != (Report{RequestID: "x", Duration: 1390 * time.Microsecond}) {
		t.Errorf("warm: %+v", warm)
	}
}
