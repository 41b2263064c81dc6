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
	// time/tzdata embeds the zone database uncompressed: package
	// schedule/zonedata carries it compressed. text/template (and html/template over it) calls
	// methods by name through reflection, which makes the linker keep every
	// exported method of every reachable type: the whole DynamoDB client.
	// The SDK's schema-serde service versions link a schema of every shape of
	// the service and build them at init (3.6 ms and 180 KB for DynamoDB):
	// go.mod keeps the versions before it.
	schemas := []string{"github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas", "github.com/aws/aws-sdk-go-v2/service/sqs/schemas",
		"github.com/aws/aws-sdk-go-v2/service/sesv2/schemas", "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/schemas"}
	everywhere := append([]string{"time/tzdata", "text/template", "html/template"}, schemas...)
	join := func(ls ...[]string) []string { return slices.Concat(ls...) }
	return map[string][]string{
		"api":       join(sdk, everywhere),
		"editor":    join(sdk, ses, everywhere),
		"flow":      join(api, sdk, ses, external, actions, everywhere),
		"tags":      join(api, sdk, ses, chat, external, everywhere),
		"email":     join(api, sdk, chat, external, everywhere),
		"crm":       join(api, sdk, ses, chat, external, everywhere),
		"webhook":   join(api, sdk, ses, chat, everywhere),
		"scheduler": join(api, sdk, ses, chat, external, actions, everywhere),
	}
}()

// imported: packages a function must depend on (so the lists above are not
// vacuous).
var imported = map[string][]string{
	"api":       {module + "shared/api", module + "shared/console"},
	"editor":    {module + "shared/api", module + "shared/actions/external"},
	"flow":      {module + "shared/messenger"},
	"tags":      {module + "shared/actions"},
	"email":     {"github.com/aws/aws-sdk-go-v2/service/sesv2"},
	"crm":       {module + "shared/actions"},
	"webhook":   {module + "shared/actions/external"},
	"scheduler": {module + "shared/store"},
}

// notLinked: symbol prefixes that must not be in a binary although its
// package is imported (the linker drops unreachable code): amoCRM's client
// outside crm and the API, the connector's client outside flow and the API,
// the zone database outside flow (delay windows; the API and the editor
// check names only), the tunnel validator and the external-request client
// outside the editor, the console and the documentation outside the API, and
// everywhere a DynamoDB operation no function calls (it is there only if
// something keeps methods by reflection).
var notLinked = func() map[string][]string {
	unused := []string{"github.com/aws/aws-sdk-go-v2/service/dynamodb.(*Client).DeleteTable"}
	amo, conn, zones := module+"shared/amocrm.(*Client)", module+"shared/connector.(*Client)", module+"shared/schedule/zonedata.zoneinfoGzip"
	validator, external := module+"shared/tunnel.Validate", module+"shared/httpreq.Do"
	return map[string][]string{
		"api":       slices.Concat(unused, []string{zones, validator, external}),
		"editor":    slices.Concat(unused, []string{zones, amo, conn, module + "shared/console.", module + "shared/apidoc.", module + "shared/messenger."}),
		"flow":      slices.Concat(unused, []string{amo}),
		"tags":      slices.Concat(unused, []string{amo, conn, zones}),
		"email":     slices.Concat(unused, []string{amo, conn, zones}),
		"crm":       slices.Concat(unused, []string{conn, zones}),
		"webhook":   slices.Concat(unused, []string{amo, conn, zones}),
		"scheduler": slices.Concat(unused, []string{amo, conn, zones}),
	}
}()

// linked: symbols a binary must hold (so the lists above are not vacuous).
var linked = map[string][]string{
	"api": {module + "shared/schedule/zonenames.names", module + "shared/console.(*Console).Index", module + "shared/apidoc.Gzip",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb.(*Client).Query"},
	"editor": {module + "shared/schedule/zonenames.names", module + "shared/tunnel.Validate", module + "shared/httpreq.Do"},
	"flow":   {module + "shared/schedule/zonedata.zoneinfoGzip"},
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
			found := map[string]bool{}
			for line := range strings.Lines(string(out)) {
				f := strings.Fields(line)
				if len(f) < 3 {
					continue
				}
				found[f[2]] = true
				for _, p := range banned {
					if strings.HasPrefix(f[2], p) {
						t.Errorf("functions/%s links %s", fn, f[2])
						break
					}
				}
			}
			for _, s := range linked[fn] {
				if !found[s] {
					t.Errorf("functions/%s does not link %s", fn, s)
				}
			}
		})
	}
}
