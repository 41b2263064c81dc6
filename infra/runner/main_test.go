package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDev runs the runner the way `make dev` does, with SPEC section 7's
// variables, waits for .tunnels/dev.json, uses the system, then stops it with
// SIGTERM and checks that every process it started is gone.
func TestMakeDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local system")
	}
	bin := filepath.Join(t.TempDir(), "runner")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "-dir", dir)
	cmd.Env = append(os.Environ(), "TUNNELS_HTTP_ADDR=127.0.0.1:0", "TUNNELS_DEV_API_KEY=key-from-env",
		"TUNNELS_ADMIN_TOKEN=admin-from-env", "TUNNELS_EGRESS_ALLOW=127.0.0.1:9")
	logs, _ := os.Create(filepath.Join(dir, "runner.log"))
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}()

	var dev struct {
		APIURL      string            `json:"api_url"`
		APIKey      string            `json:"api_key"`
		WorkspaceID string            `json:"workspace_id"`
		Endpoints   map[string]string `json:"endpoints"`
	}
	path := filepath.Join(dir, ".tunnels", "dev.json")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, &dev); err != nil {
				t.Fatalf("dev.json: %v\n%s", err, b)
			}
			var keys map[string]any
			_ = json.Unmarshal(b, &keys)
			if len(keys) != 4 {
				t.Errorf("dev.json has keys %v, want api_url, api_key, workspace_id, endpoints", keys)
			}
			break
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "runner.log"))
			t.Fatalf("runner exited early: %v\n%s", err, b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no dev.json after 3 minutes")
		}
	}
	if dev.APIKey != "key-from-env" || dev.WorkspaceID == "" || !strings.HasPrefix(dev.APIURL, "http://127.0.0.1:") {
		t.Fatalf("dev.json = %+v", dev)
	}
	for _, name := range []string{"dynamodb", "sqs", "sesv2"} {
		if !strings.HasPrefix(dev.Endpoints[name], "http://127.0.0.1:") {
			t.Errorf("endpoint %s = %q", name, dev.Endpoints[name])
		}
	}
	get := func(url, auth string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := get(dev.APIURL+"/v1/health", ""); s != 200 {
		t.Errorf("health = %d", s)
	}
	if s := get(dev.APIURL+"/v1/tunnels/default", "key-from-env"); s != 200 {
		t.Errorf("the dev workspace's default tunnel = %d", s)
	}
	req, _ := http.NewRequest(http.MethodPost, dev.APIURL+"/v1/workspaces", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Authorization", "Bearer admin-from-env")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusCreated {
		t.Errorf("POST /v1/workspaces with the admin token from the environment: %v %v", res, err)
	}
	if s := get(dev.Endpoints["sesv2"]+"/store", ""); s != 200 {
		t.Errorf("SES store = %d", s)
	}
	// A pasted bot token connects against the local fake Bot API.
	req, _ = http.NewRequest(http.MethodPut, dev.APIURL+"/v1/channels/tg", strings.NewReader(`{"kind": "telegram", "bot_token": "12345:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"}`))
	req.Header.Set("Authorization", "Bearer key-from-env")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("PUT a telegram channel under make dev: %v %v", res, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the runner did not stop within a minute of SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	// Every emulator it started is gone: their ports no longer answer.
	for name, url := range dev.Endpoints {
		host := strings.TrimPrefix(url, "http://")
		if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s at %s still answers after the runner stopped", name, host)
		}
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(dev.APIURL, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("the API still answers after the runner stopped")
	}
}
