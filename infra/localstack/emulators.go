// Package localstack runs the Tunnels system on one machine: it installs and
// starts the AWS API emulators (DynamoDB Local, fauxqs for SQS,
// aws-ses-v2-local for SES v2), provisions what template.yaml declares, and
// drives handlers the way Lambda would (SQS event source mapping, EventBridge
// schedules, the runtime interface emulator).
//
// Nothing here is used in AWS; functions only see the standard
// AWS_ENDPOINT_URL_* variables and dummy credentials (see Endpoints.Env).
package localstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// completeMarker is written last by EnsureEmulators; its presence means the
// install in that folder finished.
const completeMarker = ".tunnels-complete"

// emulatorFiles are the files an install must contain, relative to its folder.
var emulatorFiles = []string{
	dynamoJarPath,
	fauxqsBinPath,
	sesBinPath,
}

const (
	dynamoEmulatorDir = "node_modules/amplify-dynamodb-simulator/emulator"
	dynamoJarPath     = dynamoEmulatorDir + "/DynamoDBLocal.jar"
	fauxqsBinPath     = "node_modules/.bin/fauxqs"
	sesBinPath        = "node_modules/.bin/aws-ses-v2-local"
)

// CacheDir is ${TUNNELS_CACHE_DIR:-$HOME/.cache/tunnels}.
func CacheDir() (string, error) {
	if d := os.Getenv("TUNNELS_CACHE_DIR"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w (set TUNNELS_CACHE_DIR)", err)
	}
	return filepath.Join(home, ".cache", "tunnels"), nil
}

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// InfraDir is <repo root>/infra, where package.json and package-lock.json live.
func InfraDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "infra"), nil
}

// EnsureEmulators installs the pinned emulator packages (infra/package.json and
// infra/package-lock.json) with `npm ci` into
// <CacheDir>/emulators/<first 12 hex of sha256(package-lock.json)>/ and returns
// that folder. The node_modules (hundreds of MB) stay out of the repo tree
// because SAM's makefile build copies the whole CodeUri.
//
// An install that finished is reused (a marker file is written last). Several
// test binaries run in parallel by `go test ./...` may call this at once: an
// exclusive flock on a lock file beside the folder serializes them, and the
// ones that waited find the marker and return.
func EnsureEmulators(ctx context.Context) (string, error) {
	infra, err := InfraDir()
	if err != nil {
		return "", err
	}
	return ensureEmulatorsFrom(ctx, infra)
}

func ensureEmulatorsFrom(ctx context.Context, infra string) (string, error) {
	pkg, err := os.ReadFile(filepath.Join(infra, "package.json"))
	if err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	lock, err := os.ReadFile(filepath.Join(infra, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(lock)
	hash := hex.EncodeToString(sum[:])[:12]
	base := filepath.Join(cache, "emulators")
	dir := filepath.Join(base, hash)
	if installed(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(base, hash+".lock"))
	if err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	defer unlock()
	// Another process may have finished the install while we waited.
	if installed(dir) {
		return dir, nil
	}
	// A folder without the marker is a broken earlier attempt: start over so
	// npm ci sees exactly package.json + package-lock.json.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("emulators: clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	// npm may start helpers (node-gyp, install scripts); kill them with npm.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("emulators: npm ci in %s: %w\n%s", dir, err, tail(out.Bytes(), 4000))
	}
	for _, f := range emulatorFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("emulators: npm ci finished but %s is missing: %w", f, err)
		}
	}
	if err := writeFileSync(filepath.Join(dir, completeMarker), []byte(hash+"\n")); err != nil {
		return "", fmt.Errorf("emulators: %w", err)
	}
	return dir, nil
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}

// lockFile takes an exclusive flock on path, giving up when ctx ends. flock is
// released by the kernel if the process dies, so a crashed install never
// leaves the lock held.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- flockRetry(f) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		}, nil
	case <-ctx.Done():
		// The goroutine still waits on the lock; closing the file when it
		// gets it releases the lock again.
		go func() {
			if <-done == nil {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			}
			f.Close()
		}()
		return nil, ctx.Err()
	}
}

func flockRetry(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tail returns at most the last n bytes of b, starting at a line boundary when
// one is near.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < 200 {
		b = b[i+1:]
	}
	return "…" + string(b)
}

// fileTail reads the last n bytes of a file, for error messages.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "(no log)"
		}
		return "(log unreadable: " + err.Error() + ")"
	}
	if len(b) == 0 {
		return "(log empty)"
	}
	return tail(b, n)
}
