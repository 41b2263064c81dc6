package samtemplate

// Contract tests of the project's real template.yaml, build.mk and function
// folders (the fixed names of the team brief).

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/api"
)

const (
	repoRoot     = "../.."
	templateFile = "../../template.yaml"
	buildMkFile  = "../../build.mk"
)

// The fixed names: function logical id -> Go main package folder.
var wantFunctions = map[string]string{
	"ApiFunction":       "functions/api",
	"EditorFunction":    "functions/editor",
	"FlowFunction":      "functions/flow",
	"TagsFunction":      "functions/tags",
	"EmailFunction":     "functions/email",
	"CrmFunction":       "functions/crm",
	"WebhookFunction":   "functions/webhook",
	"SchedulerFunction": "functions/scheduler",
}

// stepKind is one step kind: its function, queue, DLQ and env var suffix.
type stepKind struct{ fn, queue, dlq, env string }

var stepKinds = []stepKind{
	{"FlowFunction", "FlowQueue", "FlowDLQ", "FLOW"},
	{"TagsFunction", "TagsQueue", "TagsDLQ", "TAGS"},
	{"EmailFunction", "EmailQueue", "EmailDLQ", "EMAIL"},
	{"CrmFunction", "CrmQueue", "CrmDLQ", "CRM"},
	{"WebhookFunction", "WebhookQueue", "WebhookDLQ", "WEBHOOK"},
}

func stepQueues() []string {
	var qs []string
	for _, k := range stepKinds {
		qs = append(qs, k.queue)
	}
	return qs
}

func dlqs() []string {
	var qs []string
	for _, k := range stepKinds {
		qs = append(qs, k.dlq)
	}
	return qs
}

func openTemplate(t *testing.T) *Template {
	t.Helper()
	tpl, err := Open(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestTemplateFunctions(t *testing.T) {
	tpl := openTemplate(t)
	got := map[string]string{}
	for _, f := range tpl.Functions() {
		got[f.LogicalID] = f.Dir
	}
	if !reflect.DeepEqual(got, wantFunctions) {
		t.Fatalf("functions (logical id -> dir) = %v, want %v", got, wantFunctions)
	}
	for _, f := range tpl.Functions() {
		t.Run(f.LogicalID, func(t *testing.T) {
			if f.Runtime != "provided.al2023" {
				t.Errorf("Runtime = %q, want provided.al2023", f.Runtime)
			}
			if !slices.Equal(f.Architectures, []string{"arm64"}) {
				t.Errorf("Architectures = %v, want [arm64]", f.Architectures)
			}
			if f.Handler != "bootstrap" {
				t.Errorf("Handler = %q, want bootstrap", f.Handler)
			}
			if f.BuildMethod != "makefile" {
				t.Errorf("Metadata.BuildMethod = %q, want makefile", f.BuildMethod)
			}
			if f.CodeURI != "." {
				t.Errorf("CodeUri = %q, want . (the makefile builder runs in the module root)", f.CodeURI)
			}
			if f.MemorySize != 256 {
				t.Errorf("MemorySize = %d, want 256", f.MemorySize)
			}
			wantTimeout := 30
			if f.LogicalID == "ApiFunction" {
				wantTimeout = 10
			}
			if f.Timeout != wantTimeout {
				t.Errorf("Timeout = %d, want %d", f.Timeout, wantTimeout)
			}
		})
	}
	// LoggingConfig lives in Globals only (goformation rejects it on a function).
	lc, _ := tpl.globalFn["LoggingConfig"].(map[string]any)
	if lc["LogFormat"] != "JSON" {
		t.Errorf("Globals.Function.LoggingConfig = %v, want LogFormat JSON", tpl.globalFn["LoggingConfig"])
	}
}

// buildRecipeRE matches a target line and the first line of its recipe.
var buildRecipeRE = regexp.MustCompile(`(?m)^build-([A-Za-z0-9]+):[^\n]*\n\t([^\n]*)$`)

func TestBuildTargets(t *testing.T) {
	tpl := openTemplate(t)
	mk, err := os.ReadFile(buildMkFile)
	if err != nil {
		t.Fatal(err)
	}
	recipes := map[string]string{}
	for _, m := range buildRecipeRE.FindAllStringSubmatch(string(mk), -1) {
		recipes[m[1]] = m[2]
	}
	var names, ids []string
	for _, f := range tpl.Functions() {
		recipe, ok := recipes[f.LogicalID]
		if !ok {
			t.Errorf("build.mk has no target build-%s", f.LogicalID)
			continue
		}
		// GOARCH defaults to arm64 in build.mk (checked below); `make invoke`
		// overrides it to run the binary natively under the emulator.
		want := "GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./" + f.Dir
		if recipe != want {
			t.Errorf("build-%s recipe =\n  %s\nwant\n  %s", f.LogicalID, recipe, want)
		}
		names = append(names, path.Base(f.Dir))
		ids = append(ids, f.LogicalID)
	}
	if !regexp.MustCompile(`(?m)^GOARCH \?= arm64$`).Match(mk) {
		t.Error("build.mk must default GOARCH to arm64 (GOARCH ?= arm64)")
	}
	// FUNCTIONS and FUNCTION_IDS list the same functions, in the same order.
	mkNames := makeList(t, mk, "FUNCTIONS")
	mkIDs := makeList(t, mk, "FUNCTION_IDS")
	if len(mkNames) != len(mkIDs) {
		t.Fatalf("FUNCTIONS %v and FUNCTION_IDS %v differ in length", mkNames, mkIDs)
	}
	for i := range mkNames {
		if wantFunctions[mkIDs[i]] != "functions/"+mkNames[i] {
			t.Errorf("FUNCTIONS[%d] = %s but FUNCTION_IDS[%d] = %s", i, mkNames[i], i, mkIDs[i])
		}
	}
	sort.Strings(names)
	sort.Strings(mkNames)
	if !slices.Equal(names, mkNames) {
		t.Errorf("build.mk FUNCTIONS = %v, want the template's %v", mkNames, names)
	}
	sort.Strings(mkIDs)
	if !slices.Equal(ids, mkIDs) {
		t.Errorf("build.mk FUNCTION_IDS = %v, want the template's %v", mkIDs, ids)
	}
}

func makeList(t *testing.T, mk []byte, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` :?= (.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("build.mk does not set %s", name)
	}
	return strings.Fields(string(m[1]))
}

// Fails until the functions' main packages are written.
func TestFunctionPackagesExist(t *testing.T) {
	tpl := openTemplate(t)
	for _, f := range tpl.Functions() {
		main := filepath.Join(repoRoot, f.Dir, "main.go")
		if _, err := os.Stat(main); err != nil {
			t.Errorf("%s: its main package %s/main.go is missing (%v)", f.LogicalID, f.Dir, err)
		}
	}
}

func TestStepFunctionsAndQueues(t *testing.T) {
	tpl := openTemplate(t)
	for _, k := range stepKinds {
		t.Run(k.fn, func(t *testing.T) {
			f, ok := tpl.Function(k.fn)
			if !ok {
				t.Fatalf("no function %s", k.fn)
			}
			if len(f.SQS) != 1 {
				t.Fatalf("SQS events = %+v, want exactly one", f.SQS)
			}
			ev := f.SQS[0]
			if ev.Queue != k.queue {
				t.Errorf("SQS event queue = %s, want %s", ev.Queue, k.queue)
			}
			if !ev.ReportBatchItemFailures {
				t.Error("SQS event lacks FunctionResponseTypes: [ReportBatchItemFailures]")
			}
			if !ev.Enabled || ev.BatchSize < 1 || ev.BatchSize > 10 || ev.MaxBatchingWindow > 1 {
				t.Errorf("SQS event = %+v, want enabled, batch size 1..10, batching window 0..1 s", ev)
			}
			if len(f.Schedules) != 0 || len(f.HTTP) != 0 {
				t.Errorf("step function has other events: %+v %+v", f.Schedules, f.HTTP)
			}
			// Every step sends its next steps to queues that invoke the step
			// functions again: Lambda's recursive loop detection (on unless
			// set to Allow) would cut a funnel of more than ~16 steps. The
			// engine's TUNNELS_MAX_STEPS_WITHOUT_WAIT guard takes its place.
			if f.RecursiveLoop != "Allow" {
				t.Errorf("RecursiveLoop = %q, want Allow (the engine's own loop guard replaces Lambda's)", f.RecursiveLoop)
			}
			q, ok := tpl.Queue(ev.Queue)
			if !ok {
				t.Fatalf("queue %s is not an AWS::SQS::Queue of the template", ev.Queue)
			}
			if q.VisibilityTimeout < 6*f.Timeout {
				t.Errorf("%s VisibilityTimeout = %d s, want >= 6 x %d s", q.LogicalID, q.VisibilityTimeout, f.Timeout)
			}
			if q.DeadLetterQueue != k.dlq {
				t.Errorf("%s RedrivePolicy target = %q, want %s", q.LogicalID, q.DeadLetterQueue, k.dlq)
			}
			if _, ok := tpl.Queue(q.DeadLetterQueue); !ok {
				t.Errorf("%s dead-letter queue %q is not a queue of the template", q.LogicalID, q.DeadLetterQueue)
			}
			if q.MaxReceiveCount < 3 || q.MaxReceiveCount > 10 {
				t.Errorf("%s maxReceiveCount = %d, want 3..10", q.LogicalID, q.MaxReceiveCount)
			}
		})
	}
	// CRM calls are rate limited by amoCRM: the poller is capped.
	if crm, ok := tpl.Function("CrmFunction"); ok && len(crm.SQS) == 1 {
		if c := crm.SQS[0].MaxConcurrency; c < 2 || c > 3 {
			t.Errorf("CrmFunction ScalingConfig.MaximumConcurrency = %d, want 2..3", c)
		}
	}
	// Only step functions consume queues, and no queue has two consumers.
	consumers := map[string]string{}
	for _, f := range tpl.Functions() {
		for _, ev := range f.SQS {
			if prev, ok := consumers[ev.Queue]; ok {
				t.Errorf("queue %s consumed by %s and %s", ev.Queue, prev, f.LogicalID)
			}
			consumers[ev.Queue] = f.LogicalID
		}
	}
	if len(consumers) != len(stepKinds) {
		t.Errorf("queues with consumers = %v, want one per step kind", consumers)
	}
}

func TestQueues(t *testing.T) {
	tpl := openTemplate(t)
	want := append(stepQueues(), dlqs()...)
	var got []string
	for _, q := range tpl.Queues() {
		got = append(got, q.LogicalID)
		if q.RetentionPeriod != 1209600 {
			t.Errorf("%s MessageRetentionPeriod = %d, want 1209600 (14 days)", q.LogicalID, q.RetentionPeriod)
		}
		typed, err := tpl.CFN.GetSQSQueueWithName(q.LogicalID)
		if err != nil {
			t.Fatal(err)
		}
		if typed.SqsManagedSseEnabled == nil || !*typed.SqsManagedSseEnabled {
			t.Errorf("%s SqsManagedSseEnabled is not true", q.LogicalID)
		}
		if typed.FifoQueue != nil && *typed.FifoQueue {
			t.Errorf("%s is FIFO; step queues rely on per-message DelaySeconds", q.LogicalID)
		}
	}
	for _, id := range dlqs() {
		if q, _ := tpl.Queue(id); q.DeadLetterQueue != "" {
			t.Errorf("DLQ %s has a RedrivePolicy to %s", id, q.DeadLetterQueue)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("queues = %v, want %v", got, want)
	}
}

func TestEnvironment(t *testing.T) {
	tpl := openTemplate(t)
	ref := func(id string) any { return map[string]any{"Ref": id} }
	base := map[string]any{
		"TUNNELS_TABLE":        ref("Table"),
		"TUNNELS_EGRESS_ALLOW": ref("EgressAllow"),
		"TUNNELS_SES_IDENTITY": ref("SesIdentity"),
		"TUNNELS_MAX_RECEIVES": "5",

		"TUNNELS_MAX_STEPS_WITHOUT_WAIT": "100",
		"TUNNELS_PUBLIC_URL":             ref("PublicUrl"),
	}
	for _, k := range stepKinds {
		if q, _ := tpl.Queue(k.queue); q.MaxReceiveCount != 5 {
			t.Errorf("%s maxReceiveCount = %d; TUNNELS_MAX_RECEIVES says 5", k.queue, q.MaxReceiveCount)
		}
	}
	for _, k := range stepKinds {
		base["TUNNELS_QUEUE_"+k.env] = ref(k.queue)
		base["TUNNELS_DLQ_"+k.env] = ref(k.dlq)
	}
	for _, f := range tpl.Functions() {
		want := map[string]any{}
		for k, v := range base {
			want[k] = v
		}
		// The admin token is a secret: only the API gets it.
		if f.LogicalID == "ApiFunction" {
			want["TUNNELS_ADMIN_TOKEN"] = ref("AdminToken")
		}
		if !reflect.DeepEqual(f.Env, want) {
			t.Errorf("%s environment =\n  %v\nwant\n  %v", f.LogicalID, f.Env, want)
		}
	}
	for id, ty := range map[string]string{"Table": TypeTable, "EgressAllow": "", "SesIdentity": "", "AdminToken": "", "PublicUrl": ""} {
		if ty != "" && tpl.ResourceType(id) != ty {
			t.Errorf("%s is not a %s", id, ty)
		}
		if ty == "" {
			if _, ok := tpl.CFN.Parameters[id]; !ok {
				t.Errorf("parameter %s missing", id)
			}
		}
	}
}

func TestParametersAndOutputs(t *testing.T) {
	tpl := openTemplate(t)
	p := tpl.CFN.Parameters
	admin := p["AdminToken"]
	if admin.Type != "String" || admin.NoEcho == nil || !*admin.NoEcho || admin.MinLength == nil || *admin.MinLength < 8 || admin.Default != nil {
		t.Errorf("AdminToken = %+v, want a String, NoEcho, MinLength >= 8, no default", admin)
	}
	for _, name := range []string{"EgressAllow", "SesIdentity", "PublicUrl"} {
		if p[name].Type != "String" || p[name].Default != "" {
			t.Errorf("%s = %+v, want a String defaulting to \"\"", name, p[name])
		}
	}
	outs := []string{"ApiUrl", "TableName"}
	for _, q := range append(stepQueues(), dlqs()...) {
		outs = append(outs, q+"Url")
	}
	for _, o := range outs {
		if _, ok := tpl.CFN.Outputs[o]; !ok {
			t.Errorf("output %s missing", o)
		}
	}
	outputs, _ := tpl.Doc["Outputs"].(map[string]any)
	value := func(name string) any {
		o, _ := outputs[name].(map[string]any)
		return o["Value"]
	}
	for _, q := range append(stepQueues(), dlqs()...) {
		if id, _ := RefTo(value(q + "Url")); id != q {
			t.Errorf("output %sUrl = %v, want !Ref %s (the queue URL)", q, value(q+"Url"), q)
		}
	}
	if id, _ := RefTo(value("TableName")); id != "Table" {
		t.Errorf("output TableName = %v, want !Ref Table", value("TableName"))
	}
}

func TestTable(t *testing.T) {
	tpl := openTemplate(t)
	tbl, err := tpl.Table("Table")
	if err != nil {
		t.Fatal(err)
	}
	if tbl.BillingMode == nil || *tbl.BillingMode != "PAY_PER_REQUEST" {
		t.Errorf("BillingMode = %v, want PAY_PER_REQUEST", tbl.BillingMode)
	}
	attrs := map[string]string{}
	for _, a := range tbl.AttributeDefinitions {
		attrs[a.AttributeName] = a.AttributeType
	}
	if want := map[string]string{"pk": "S", "sk": "S", "jsk": "S", "ipk": "S", "isk": "S", "dpk": "S", "dsk": "S"}; !reflect.DeepEqual(attrs, want) {
		t.Errorf("AttributeDefinitions = %v, want %v", attrs, want)
	}
	keys := func(ks []struct{ n, t string }) string {
		var parts []string
		for _, k := range ks {
			parts = append(parts, k.n+" "+k.t)
		}
		return strings.Join(parts, ", ")
	}
	var ks []struct{ n, t string }
	for _, k := range tbl.KeySchema {
		ks = append(ks, struct{ n, t string }{k.AttributeName, k.KeyType})
	}
	if got := keys(ks); got != "pk HASH, sk RANGE" {
		t.Errorf("KeySchema = %s, want pk HASH, sk RANGE", got)
	}
	if len(tbl.LocalSecondaryIndexes) != 1 {
		t.Fatalf("LocalSecondaryIndexes = %+v, want Journey", tbl.LocalSecondaryIndexes)
	}
	lsi := tbl.LocalSecondaryIndexes[0]
	ks = nil
	for _, k := range lsi.KeySchema {
		ks = append(ks, struct{ n, t string }{k.AttributeName, k.KeyType})
	}
	if lsi.IndexName != "Journey" || keys(ks) != "pk HASH, jsk RANGE" || lsi.Projection == nil || lsi.Projection.ProjectionType == nil || *lsi.Projection.ProjectionType != "ALL" {
		t.Errorf("LSI = %s on %s, want Journey on pk HASH, jsk RANGE, projection ALL", lsi.IndexName, keys(ks))
	}
	// goformation resolves the legacy directory's !If with the parameter's
	// default (false) to an index with no name: a stack made from the
	// defaults has Inbox and SubscriberSearch only.
	if n := len(tbl.GlobalSecondaryIndexes); n != 3 || tbl.GlobalSecondaryIndexes[2].IndexName != "" {
		t.Fatalf("GlobalSecondaryIndexes = %+v, want Inbox, SubscriberSearch and the conditional legacy Directory", tbl.GlobalSecondaryIndexes)
	}
	// The subscribers directory projects only what a search by text reads,
	// so neither the profile's run updates (every step) nor its tag changes
	// (every tag step) write to it.
	dir := tbl.GlobalSecondaryIndexes[1]
	ks = nil
	for _, k := range dir.KeySchema {
		ks = append(ks, struct{ n, t string }{k.AttributeName, k.KeyType})
	}
	if dir.IndexName != "SubscriberSearch" || keys(ks) != "dpk HASH, dsk RANGE" || dir.Projection == nil || dir.Projection.ProjectionType == nil ||
		*dir.Projection.ProjectionType != "INCLUDE" || slices.Contains(dir.Projection.NonKeyAttributes, "runs") || slices.Contains(dir.Projection.NonKeyAttributes, "tags") ||
		!slices.Contains(dir.Projection.NonKeyAttributes, "fn_l") {
		t.Errorf("GSI = %s on %s (%+v), want SubscriberSearch on dpk HASH, dsk RANGE, projection INCLUDE of the searched attributes without tags", dir.IndexName, keys(ks), dir.Projection)
	}
	// The legacy index, as written: kept only while KeepLegacyDirectoryIndex is true.
	raw := tpl.Doc["Resources"].(map[string]any)["Table"].(map[string]any)["Properties"].(map[string]any)["GlobalSecondaryIndexes"].([]any)
	legacy, _ := raw[2].(map[string]any)["Fn::If"].([]any)
	if len(legacy) != 3 || legacy[0] != "KeepLegacyDirectory" || legacy[1].(map[string]any)["IndexName"] != "Directory" ||
		!reflect.DeepEqual(legacy[2], map[string]any{"Ref": "AWS::NoValue"}) {
		t.Errorf("legacy Directory index = %v, want !If [KeepLegacyDirectory, Directory, AWS::NoValue]", raw[2])
	}
	gsi := tbl.GlobalSecondaryIndexes[0]
	ks = nil
	for _, k := range gsi.KeySchema {
		ks = append(ks, struct{ n, t string }{k.AttributeName, k.KeyType})
	}
	if gsi.IndexName != "Inbox" || keys(ks) != "ipk HASH, isk RANGE" || gsi.Projection == nil || gsi.Projection.ProjectionType == nil || *gsi.Projection.ProjectionType != "ALL" {
		t.Errorf("GSI = %s on %s, want Inbox on ipk HASH, isk RANGE, projection ALL", gsi.IndexName, keys(ks))
	}
	if ttl := tbl.TimeToLiveSpecification; ttl == nil || !ttl.Enabled || ttl.AttributeName == nil || *ttl.AttributeName != "expires_at" {
		t.Errorf("TimeToLiveSpecification = %s, want expires_at enabled", fmt.Sprint(decodeJSON(ttl)))
	}
	if pitr := tbl.PointInTimeRecoverySpecification; pitr == nil || pitr.PointInTimeRecoveryEnabled == nil || !*pitr.PointInTimeRecoveryEnabled {
		t.Errorf("PointInTimeRecoverySpecification = %s, want enabled", fmt.Sprint(decodeJSON(pitr)))
	}
}

func TestSchedulerAndAPIEvents(t *testing.T) {
	tpl := openTemplate(t)
	s, _ := tpl.Function("SchedulerFunction")
	if len(s.Schedules) != 1 || s.Schedules[0].Expression != "rate(1 minute)" || !s.Schedules[0].Enabled {
		t.Errorf("SchedulerFunction schedules = %+v, want one enabled rate(1 minute)", s.Schedules)
	}
	if len(s.SQS) != 0 || len(s.HTTP) != 0 {
		t.Errorf("SchedulerFunction has other events: %+v %+v", s.SQS, s.HTTP)
	}

	apiFn, _ := tpl.Function("ApiFunction")
	var routes []string
	for _, r := range apiFn.HTTP {
		routes = append(routes, r.Method+" "+r.Path)
		if r.API != "HttpApi" {
			t.Errorf("route %s on API %q, want HttpApi", r.Name, r.API)
		}
	}
	sort.Strings(routes)
	if want := []string{"ANY /", "ANY /{proxy+}"}; !slices.Equal(routes, want) {
		t.Errorf("ApiFunction routes = %v, want %v", routes, want)
	}
	if len(apiFn.SQS) != 0 || len(apiFn.Schedules) != 0 {
		t.Errorf("ApiFunction has other events: %+v %+v", apiFn.SQS, apiFn.Schedules)
	}
	// The editor's routes are exactly those its handler serves.
	editor, _ := tpl.Function("EditorFunction")
	routes = nil
	for _, r := range editor.HTTP {
		routes = append(routes, r.Method+" "+r.Path)
		if r.API != "HttpApi" {
			t.Errorf("route %s on API %q, want HttpApi", r.Name, r.API)
		}
	}
	sort.Strings(routes)
	want := api.EditorRoutes()
	sort.Strings(want)
	if !slices.Equal(routes, want) {
		t.Errorf("EditorFunction routes = %v, want the editor handler's %v", routes, want)
	}
	if tpl.ResourceType("HttpApi") != TypeHTTPAPI {
		t.Errorf("HttpApi is a %q, want %s", tpl.ResourceType("HttpApi"), TypeHTTPAPI)
	}
}

// ---------------------------------------------------------------- policies

var (
	itemActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
		"dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}
	schedulerActions = []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
	editorActions    = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem"}
	dlqActions       = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
)

func TestPolicies(t *testing.T) {
	tpl := openTemplate(t)
	for _, f := range tpl.Functions() {
		t.Run(f.LogicalID, func(t *testing.T) {
			gs, err := Grants(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gs {
				for _, a := range g.Actions {
					if a == "*" || strings.HasSuffix(a, ":*") {
						t.Errorf("action %q is a wildcard", a)
					}
				}
				for _, r := range g.Resources {
					if r == "*" || strings.HasPrefix(r, "unknown:") {
						t.Errorf("resource %q of %v is a wildcard or unreadable", r, g.Actions)
					}
				}
			}

			// The table.
			switch f.LogicalID {
			case "EditorFunction":
				// Reads, and the tunnel's UpdateItem: nothing else, nowhere else.
				for _, a := range append(slices.Clone(itemActions), "dynamodb:ConditionCheckItem") {
					if got, want := Allowed(gs, a, "Table"), slices.Contains(editorActions, a); got != want {
						t.Errorf("%s on Table = %v, want %v", a, got, want)
					}
				}
				if Allowed(gs, "dynamodb:Query", "Table/index/*") {
					t.Error("dynamodb:Query on Table's indexes: the editor reads none")
				}
			case "SchedulerFunction":
				for _, a := range schedulerActions {
					if !Allowed(gs, a, "Table") {
						t.Errorf("no %s on Table", a)
					}
				}
			default:
				for _, a := range itemActions {
					if !Allowed(gs, a, "Table") {
						t.Errorf("no %s on Table", a)
					}
				}
				if !Allowed(gs, "dynamodb:Query", "Table/index/*") {
					t.Error("no dynamodb:Query on Table's indexes (Journey, Inbox)")
				}
			}
			if Allowed(gs, "dynamodb:Scan", "Table") {
				t.Error("dynamodb:Scan on Table: nothing needs a scan")
			}

			// Every function but the editor may enqueue a step to any step queue.
			for _, q := range stepQueues() {
				if got, want := Allowed(gs, "sqs:SendMessage", q), f.LogicalID != "EditorFunction"; got != want {
					t.Errorf("sqs:SendMessage on %s = %v, want %v", q, got, want)
				}
			}

			// Retry back-off: a step function changes visibility on its own queue only.
			own := ""
			for _, k := range stepKinds {
				if k.fn == f.LogicalID {
					own = k.queue
				}
			}
			for _, q := range append(stepQueues(), dlqs()...) {
				if got := Allowed(gs, "sqs:ChangeMessageVisibility", q); got != (q == own) {
					t.Errorf("sqs:ChangeMessageVisibility on %s = %v, want %v", q, got, q == own)
				}
			}

			// Dead letters: only the API reads and deletes them (list and redrive).
			for _, q := range dlqs() {
				for _, a := range dlqActions {
					if got, want := Allowed(gs, a, q), f.LogicalID == "ApiFunction"; got != want {
						t.Errorf("%s on %s = %v, want %v", a, q, got, want)
					}
				}
			}

			// SES: only the email function, only on the configured identity, only when set.
			for _, g := range gs {
				for _, a := range g.Actions {
					if !strings.HasPrefix(strings.ToLower(a), "ses:") {
						continue
					}
					if f.LogicalID != "EmailFunction" {
						t.Errorf("%s granted to %s", a, f.LogicalID)
						continue
					}
					if a != "ses:SendEmail" {
						t.Errorf("SES action %s, want ses:SendEmail only", a)
					}
					if g.Condition != "HasSesIdentity" {
						t.Errorf("ses:SendEmail statement condition = %q, want HasSesIdentity", g.Condition)
					}
					wantRes := []string{"ref:SesIdentity", "sub:arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}"}
					if !slices.Equal(g.Resources, wantRes) {
						t.Errorf("ses:SendEmail resources = %v, want %v", g.Resources, wantRes)
					}
				}
			}
		})
	}
}

func TestSesConditions(t *testing.T) {
	tpl := openTemplate(t)
	ref := map[string]any{"Ref": "SesIdentity"}
	want := map[string]any{
		"HasSesIdentity":      map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{ref, ""}}}},
		"KeepLegacyDirectory": map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "KeepLegacyDirectoryIndex"}, "true"}},
		"SesIdentityIsArn": map[string]any{"Fn::Equals": []any{
			map[string]any{"Fn::Select": []any{float64(0), map[string]any{"Fn::Split": []any{":", ref}}}}, "arn"}},
	}
	if got := tpl.Doc["Conditions"]; !reflect.DeepEqual(got, want) {
		t.Errorf("Conditions =\n  %v\nwant\n  %v", got, want)
	}
}

// decodeJSON shows a typed goformation value as plain JSON values.
func decodeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// ---------------------------------------------------------------- tools

func TestCfnLint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cfn-lint (a few seconds)")
	}
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		if _, serr := os.Stat("/root/.pyenv/shims/cfn-lint"); serr != nil {
			t.Skip("cfn-lint is not installed")
		}
		lint = "/root/.pyenv/shims/cfn-lint"
	}
	out, err := exec.Command(lint, templateFile).CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}

// TestMakeBuild does what `sam build` does with BuildMethod: makefile: for every
// function in the template, `make build-<LogicalId> ARTIFACTS_DIR=<dir>`, then
// checks <dir>/bootstrap is a static linux/arm64 executable.
func TestMakeBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles every function")
	}
	tpl := openTemplate(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, f := range tpl.Functions() {
		t.Run(f.LogicalID, func(t *testing.T) {
			dir := filepath.Join(out, f.LogicalID)
			cmd := exec.Command("make", "--no-print-directory", "-f", "build.mk", "build-"+f.LogicalID, "ARTIFACTS_DIR="+dir)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", f.LogicalID, err, b)
			}
			bin, err := elf.Open(filepath.Join(dir, "bootstrap"))
			if err != nil {
				t.Fatal(err)
			}
			defer bin.Close()
			if bin.Machine != elf.EM_AARCH64 || bin.Type != elf.ET_EXEC || bin.Class != elf.ELFCLASS64 {
				t.Errorf("bootstrap is %v %v %v, want a 64-bit EM_AARCH64 executable", bin.Class, bin.Machine, bin.Type)
			}
			for _, p := range bin.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("bootstrap is dynamically linked (has PT_INTERP); want CGO_ENABLED=0")
				}
			}
		})
	}
}

// Every function's log group is declared, so its logs are kept LogRetentionDays
// (Lambda would create the group itself and keep them forever).
func TestEveryFunctionHasALogGroup(t *testing.T) {
	tpl := openTemplate(t)
	for _, f := range tpl.Functions() {
		id := f.LogicalID + "LogGroup"
		res, ok := tpl.resources[id]
		if !ok || res.Type != "AWS::Logs::LogGroup" {
			t.Errorf("%s: no %s of type AWS::Logs::LogGroup", f.LogicalID, id)
			continue
		}
		name, _ := res.Properties["LogGroupName"].(map[string]any)
		if name["Fn::Sub"] != "/aws/lambda/${"+f.LogicalID+"}" {
			t.Errorf("%s: LogGroupName %v, want !Sub /aws/lambda/${%s}", id, res.Properties["LogGroupName"], f.LogicalID)
		}
		if ref, _ := RefTo(res.Properties["RetentionInDays"]); ref != "LogRetentionDays" {
			t.Errorf("%s: RetentionInDays %v, want !Ref LogRetentionDays", id, res.Properties["RetentionInDays"])
		}
	}
}
