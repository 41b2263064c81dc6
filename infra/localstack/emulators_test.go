package localstack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestEnsureEmulatorsOnceUnderConcurrency runs EnsureEmulators from several
// goroutines (flock conflicts between separate opens, even in one process)
// with a fake npm that counts its runs.
func TestEnsureEmulatorsOnceUnderConcurrency(t *testing.T) {
	tmp := t.TempDir()
	infra := filepath.Join(tmp, "infra")
	bin := filepath.Join(tmp, "bin")
	for _, d := range []string{infra, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(infra, "package.json"), []byte(`{"name":"x"}`), 0o644)
	os.WriteFile(filepath.Join(infra, "package-lock.json"), []byte(`{"lockfileVersion":3}`), 0o644)
	count := filepath.Join(tmp, "npm-runs")
	npm := `#!/bin/sh
set -e
[ "$1 $2 $3" = "ci --no-audit --no-fund" ] || { echo "unexpected args: $*" >&2; exit 2; }
[ -f package.json ] && [ -f package-lock.json ] || { echo "no package files in $PWD" >&2; exit 3; }
echo run >> ` + count + `
sleep 0.3
mkdir -p node_modules/amplify-dynamodb-simulator/emulator node_modules/.bin
touch node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar node_modules/.bin/fauxqs node_modules/.bin/aws-ses-v2-local
`
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(npm), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("TUNNELS_CACHE_DIR", filepath.Join(tmp, "cache"))

	var wg sync.WaitGroup
	dirs := make([]string, 4)
	errs := make([]error, 4)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = ensureEmulatorsFrom(context.Background(), infra)
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Errorf("dirs differ: %v", dirs)
		}
	}
	// first 12 hex of sha256(`{"lockfileVersion":3}`)
	if want := filepath.Join(tmp, "cache", "emulators", "2086223f909e"); dirs[0] != want {
		t.Errorf("dir %s, want %s", dirs[0], want)
	}
	runs, _ := os.ReadFile(count)
	if got := strings.Count(string(runs), "run"); got != 1 {
		t.Errorf("npm ran %d times, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], completeMarker)); err != nil {
		t.Errorf("marker: %v", err)
	}
	// A later call finds the install and runs nothing.
	if _, err := ensureEmulatorsFrom(context.Background(), infra); err != nil {
		t.Fatal(err)
	}
	runs, _ = os.ReadFile(count)
	if got := strings.Count(string(runs), "run"); got != 1 {
		t.Errorf("npm ran %d times after a complete install, want 1", got)
	}
}

func TestEnsureEmulatorsRedoesIncompleteInstall(t *testing.T) {
	tmp := t.TempDir()
	infra := filepath.Join(tmp, "infra")
	os.MkdirAll(infra, 0o755)
	os.WriteFile(filepath.Join(infra, "package.json"), []byte(`{}`), 0o644)
	os.WriteFile(filepath.Join(infra, "package-lock.json"), []byte(`{}`), 0o644)
	bin := filepath.Join(tmp, "bin")
	os.MkdirAll(bin, 0o755)
	// This npm "succeeds" without installing anything.
	os.WriteFile(filepath.Join(bin, "npm"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("TUNNELS_CACHE_DIR", filepath.Join(tmp, "cache"))
	_, err := ensureEmulatorsFrom(context.Background(), infra)
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("err = %v, want a missing-file error", err)
	}
}
