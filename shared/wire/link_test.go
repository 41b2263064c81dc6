package wire_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each function links only its own kind's code: what it links costs binary
// size and cold start on every instance (see package wire). These tests
// build and list every function as build.mk does, for the same target.

const module = "github.com/tunnels/tunnels/"

// notImported: packages a function must not depend on at all, by function.
// Every function depends on amocrm, connector and mail through the store;
// notLinked checks that their code stays out of the binary.
var notImported = func() map[string][]string {
	api := []string{module + "shared/api", module + "shared/console", module + "shared/apidoc", module + "shared/app"}
	// The SDK's default configuration (its credential chain: SSO, STS, IMDS…):
	// the functions read Lambda's environment (package awsenv).
	sdk := []string{"github.com/aws/aws-sdk-go-v2/config", "github.com/aws/aws-sdk-go-v2/service/sts", "github.com/aws/aws-sdk-go-v2/service/sso"}
	ses := []string{"github.com/aws/aws-sdk-go-v2/service/sesv2", module + "shared/mail/sesmail"}
	chat := []string{module + "shared/telegram", module + "shared/messenger"}
	external := []string{module + "shared/actions/external", module + "shared/httpreq", "github.com/tidwall/gjson"}
	actions := []string{module + "shared/actions"}
	tz := []string{"time/tzdata"}
	join := func(ls ...[]string) []string { return slices.Concat(ls...) }
	return map[string][]string{
		"api":       sdk,
		"flow":      join(api, sdk, ses, external, actions),
		"tags":      join(api, sdk, ses, chat, external, tz),
		"email":     join(api, sdk, chat, external, tz),
		"crm":       join(api, sdk, ses, chat, external, tz),
		"webhook":   join(api, sdk, ses, chat, tz),
		"scheduler": join(api, sdk, ses, chat, external, actions, tz),
	}
}()

// imported: packages a function must depend on (so the lists above are not
// vacuous, and the zone database is where delays and validation need it).
var imported = map[string][]string{
	"api":       {module + "shared/api", module + "shared/console", "time/tzdata"},
	"flow":      {module + "shared/messenger", "time/tzdata"},
	"tags":      {module + "shared/actions"},
	"email":     {"github.com/aws/aws-sdk-go-v2/service/sesv2"},
	"crm":       {module + "shared/actions"},
	"webhook":   {module + "shared/actions/external"},
	"scheduler": {module + "shared/store"},
}

// notLinked: symbol prefixes that must not be in a binary although its
// package is imported (the linker drops unreachable code): amoCRM's client
// outside crm and the API, the connector's client outside flow and the API.
var notLinked = map[string][]string{
	"flow":      {module + "shared/amocrm.(*Client)"},
	"tags":      {module + "shared/amocrm.(*Client)", module + "shared/connector.(*Client)"},
	"email":     {module + "shared/amocrm.(*Client)", module + "shared/connector.(*Client)"},
	"crm":       {module + "shared/connector.(*Client)"},
	"webhook":   {module + "shared/amocrm.(*Client)", module + "shared/connector.(*Client)"},
	"scheduler": {module + "shared/amocrm.(*Client)", module + "shared/connector.(*Client)"},
}

// lambdaEnv is build.mk's target: Lambda's arm64 Linux, no cgo, no RPC.
func lambdaEnv() []string {
	return append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
}

func TestEachFunctionImportsOnlyItsKind(t *testing.T) {
	for fn, banned := range notImported {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "list", "-tags", "lambda.norpc", "-deps", module+"functions/"+fn)
			cmd.Env = lambdaEnv()
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			deps := strings.Fields(string(out))
			for _, p := range banned {
				if slices.Contains(deps, p) {
					t.Errorf("functions/%s imports %s (see `go list -deps`); it belongs to another kind", fn, p)
				}
			}
			for _, p := range imported[fn] {
				if !slices.Contains(deps, p) {
					t.Errorf("functions/%s does not import %s", fn, p)
				}
			}
		})
	}
}

func TestEachFunctionLinksOnlyItsKind(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function")
	}
	dir := t.TempDir()
	for fn, banned := range notLinked {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(dir, fn)
			cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", bin, module+"functions/"+fn)
			cmd.Env = lambdaEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			out, err := exec.Command("go", "tool", "nm", bin).Output()
			if err != nil {
				t.Fatalf("go tool nm: %v", err)
			}
			for line := range strings.Lines(string(out)) {
				f := strings.Fields(line)
				if len(f) < 3 {
					continue
				}
				for _, p := range banned {
					if strings.HasPrefix(f[2], p) {
						t.Errorf("functions/%s links %s", fn, f[2])
						break
					}
				}
			}
		})
	}
}
