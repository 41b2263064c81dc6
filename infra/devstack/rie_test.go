package devstack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

// bootstrapUnderRIE builds a function the way `sam build` does (its
// build-<LogicalId> target, for this host's architecture) and runs the real
// bootstrap under the Lambda runtime interface emulator, against the running
// system's emulators. invoke posts an events/ file, as `sam local invoke -e`
// would, and answers the HTTP API response; the first one is a cold start,
// whose init RIE must report.
func bootstrapUnderRIE(t *testing.T, logicalID string) (invoke func(file string) (status int, body map[string]any, rep localstack.Report)) {
	t.Helper()
	root, err := localstack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("make", "-s", "build-"+logicalID, "ARTIFACTS_DIR="+dir, "GOARCH="+runtime.GOARCH)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build-%s: %v\n%s", logicalID, err, out)
	}
	env, err := sys.Resources.FunctionEnv(logicalID)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sys.Endpoints.Env() {
		env[k] = v
	}
	env["TUNNELS_ADMIN_TOKEN"] = sys.AdminToken
	env["AWS_LAMBDA_FUNCTION_NAME"] = logicalID
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	rie, err := localstack.StartRIE(ctx, filepath.Join(dir, "bootstrap"), localstack.RIEOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rie.Stop() })
	cold := true
	return func(file string) (status int, body map[string]any, rep localstack.Report) {
		t.Helper()
		event, err := os.ReadFile(filepath.Join(root, "events", file))
		if err != nil {
			t.Fatal(err)
		}
		out, rep, err := rie.Invoke(ctx, event)
		if err != nil {
			t.Fatalf("invoke %s: %v\n%s", file, err, rie.Output())
		}
		var res struct {
			StatusCode int    `json:"statusCode"`
			Body       string `json:"body"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%s: not an HTTP API answer: %s", file, out)
		}
		_ = json.Unmarshal([]byte(res.Body), &body)
		if cold {
			cold = false
			if rep.InitDuration <= 0 {
				t.Errorf("no init duration reported for the cold start: %+v", rep)
			}
			t.Logf("%s bootstrap cold start: init %s, first request %s", logicalID, rep.InitDuration, rep.Duration)
		}
		return res.StatusCode, body, rep
	}
}

// TestAPIBootstrapUnderRIE runs the api function's real bootstrap with its
// events/ files.
func TestAPIBootstrapUnderRIE(t *testing.T) {
	needSystem(t)
	invoke := bootstrapUnderRIE(t, "ApiFunction")
	status, body, _ := invoke("api-health.json")
	if status != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("health under RIE = %d %v", status, body)
	}

	// The sample PUT /v1/tags/lead (with the dev key; one plain, one base64
	// body) writes through the real table; the running API then sees it.
	for _, file := range []string{"api-create-tag.json", "api-create-tag-base64.json"} {
		status, body, _ = invoke(file)
		if status != http.StatusOK || body["id"] != "lead" {
			t.Fatalf("%s under RIE = %d %v", file, status, body)
		}
	}
	dev := &api{t: t, key: sys.APIKey}
	var tag map[string]any
	dev.must(http.MethodGet, "/v1/tags/lead", nil, http.StatusOK, &tag)
	if tag["id"] != "lead" {
		t.Errorf("tag written under RIE reads back as %v", tag)
	}
}

// TestEditorBootstrapUnderRIE runs the editor function's real bootstrap: the
// sample PUT /v1/tunnels/welcome (with the dev key) validates and saves the
// tunnel, which the running API then serves.
func TestEditorBootstrapUnderRIE(t *testing.T) {
	needSystem(t)
	invoke := bootstrapUnderRIE(t, "EditorFunction")
	status, body, _ := invoke("editor-save-tunnel.json")
	if status != http.StatusOK || body["id"] != "welcome" {
		t.Fatalf("save under RIE = %d %v", status, body)
	}
	dev := &api{t: t, key: sys.APIKey}
	var saved map[string]any
	dev.must(http.MethodGet, "/v1/tunnels/welcome", nil, http.StatusOK, &saved)
	if saved["name"] != "Welcome" {
		t.Errorf("the tunnel saved under RIE reads back as %v", saved)
	}
}
