package samtemplate

// The sample events in events/ (for `sam local invoke -e` and the runtime
// interface emulator) must decode into aws-lambda-go's event types and match
// the template.

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tunnels/tunnels/shared/tunnel"
)

const eventsDir = "../../events"

// decodeStrict decodes JSON, rejecting fields the target type does not have (a
// typo in a sample would otherwise be silently dropped).
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode into %T: %v", v, err)
	}
}

// eventFiles maps each function to its sample events: events/<name>-*.json.
func eventFiles(t *testing.T, tpl *Template) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, f := range tpl.Functions() {
		byName[filepath.Base(f.Dir)] = f.LogicalID
	}
	out := map[string][]string{}
	for _, file := range files {
		name, _, _ := strings.Cut(filepath.Base(file), "-")
		id, ok := byName[name]
		if !ok {
			t.Errorf("%s: no function %q in the template (name events <function>-<what>.json)", file, name)
			continue
		}
		out[id] = append(out[id], file)
	}
	return out
}

func TestEveryFunctionHasASampleEvent(t *testing.T) {
	tpl := openTemplate(t)
	files := eventFiles(t, tpl)
	for _, f := range tpl.Functions() {
		if len(files[f.LogicalID]) == 0 {
			t.Errorf("%s has no events/%s-*.json", f.LogicalID, filepath.Base(f.Dir))
		}
	}
}

func TestAPIEvents(t *testing.T) {
	tests := []struct {
		file, method, path string
		auth               bool   // carries a bearer key
		bodyName           string // the tag name in the body; "" for no body
		base64             bool
	}{
		{"api-health.json", "GET", "/v1/health", false, "", false},
		{"api-create-tag.json", "PUT", "/v1/tags/lead", true, "Lead", false},
		{"api-create-tag-base64.json", "PUT", "/v1/tags/lead", true, "Lead", true},
	}
	tpl := openTemplate(t)
	api, _ := tpl.Function("ApiFunction")
	routes := map[string]bool{}
	for _, r := range api.HTTP {
		routes[r.Method+" "+r.Path] = true
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(eventsDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayV2HTTPRequest
			decodeStrict(t, data, &ev)
			if ev.Version != "2.0" {
				t.Errorf("version = %q, want 2.0 (HTTP API payload format)", ev.Version)
			}
			if !routes[ev.RouteKey] || ev.RequestContext.RouteKey != ev.RouteKey {
				t.Errorf("routeKey = %q / %q, want one of the template's routes %v", ev.RouteKey, ev.RequestContext.RouteKey, routes)
			}
			h := ev.RequestContext.HTTP
			if h.Method != tt.method || h.Path != tt.path || ev.RawPath != tt.path {
				t.Errorf("request = %s %s (rawPath %s), want %s %s", h.Method, h.Path, ev.RawPath, tt.method, tt.path)
			}
			if ev.PathParameters["proxy"] != strings.TrimPrefix(tt.path, "/") {
				t.Errorf("pathParameters.proxy = %q", ev.PathParameters["proxy"])
			}
			if ev.RequestContext.Stage != "$default" || ev.RequestContext.RequestID == "" || ev.RequestContext.TimeEpoch == 0 {
				t.Errorf("requestContext = %+v, want stage $default, a request id and a time", ev.RequestContext)
			}
			for k := range ev.Headers {
				if k != strings.ToLower(k) {
					t.Errorf("header %q: HTTP API sends header names in lower case", k)
				}
			}
			if got := strings.HasPrefix(ev.Headers["authorization"], "Bearer "); got != tt.auth {
				t.Errorf("authorization = %q, want a bearer key: %v", ev.Headers["authorization"], tt.auth)
			}
			if ev.IsBase64Encoded != tt.base64 {
				t.Errorf("isBase64Encoded = %v, want %v", ev.IsBase64Encoded, tt.base64)
			}
			if tt.bodyName == "" {
				if ev.Body != "" {
					t.Errorf("body = %q, want none", ev.Body)
				}
				return
			}
			body := []byte(ev.Body)
			if ev.IsBase64Encoded {
				if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
					t.Fatalf("body is not base64: %v", err)
				}
			}
			var tag struct {
				Name string `json:"name"`
			}
			decodeStrict(t, body, &tag)
			if tag.Name != tt.bodyName {
				t.Errorf("body name = %q, want %q", tag.Name, tt.bodyName)
			}
			if ev.Headers["content-type"] != "application/json" || ev.Headers["content-length"] != itoa(len(body)) {
				t.Errorf("content-type %q, content-length %q; want application/json, %d", ev.Headers["content-type"], ev.Headers["content-length"], len(body))
			}
		})
	}
}

// The editor's sample saves a valid tunnel through one of the editor's routes.
func TestEditorEvents(t *testing.T) {
	tpl := openTemplate(t)
	editor, _ := tpl.Function("EditorFunction")
	routes := map[string]bool{}
	for _, r := range editor.HTTP {
		routes[r.Method+" "+r.Path] = true
	}
	data, err := os.ReadFile(filepath.Join(eventsDir, "editor-save-tunnel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	decodeStrict(t, data, &ev)
	if ev.Version != "2.0" || !routes[ev.RouteKey] || ev.RequestContext.RouteKey != ev.RouteKey {
		t.Errorf("version %q, routeKey %q / %q; want 2.0 and one of %v", ev.Version, ev.RouteKey, ev.RequestContext.RouteKey, routes)
	}
	id := ev.PathParameters["id"]
	if h := ev.RequestContext.HTTP; h.Method != "PUT" || h.Path != "/v1/tunnels/"+id || ev.RawPath != h.Path {
		t.Errorf("request = %s %s (rawPath %s, id %q)", h.Method, h.Path, ev.RawPath, id)
	}
	if !strings.HasPrefix(ev.Headers["authorization"], "Bearer ") || ev.Headers["content-length"] != itoa(len(ev.Body)) {
		t.Errorf("authorization %q, content-length %q (body %d bytes)", ev.Headers["authorization"], ev.Headers["content-length"], len(ev.Body))
	}
	tun, errs := tunnel.Parse([]byte(ev.Body))
	if len(errs) == 0 {
		errs = tunnel.Validate(id, tun, tunnel.Catalog{})
	}
	if len(errs) != 0 {
		t.Errorf("the sample tunnel is not valid: %+v", errs)
	}
}

// stepMessage is the SQS body of a step, as the samples write it.
type stepMessage struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	WS      string `json:"ws"`
	Sub     string `json:"sub"`
	Tunnel  string `json:"tunnel"`
	Channel string `json:"channel"`
	Gen     int    `json:"gen"`
	Block   string `json:"block"`
	Action  int    `json:"action"`
	At      string `json:"at"`
}

func TestStepEvents(t *testing.T) {
	tpl := openTemplate(t)
	files := eventFiles(t, tpl)
	for _, k := range stepKinds {
		f, _ := tpl.Function(k.fn)
		if len(files[k.fn]) == 0 {
			continue // reported by TestEveryFunctionHasASampleEvent
		}
		for _, file := range files[k.fn] {
			t.Run(filepath.Base(file), func(t *testing.T) {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				var ev events.SQSEvent
				decodeStrict(t, data, &ev)
				if len(ev.Records) == 0 {
					t.Fatal("no records")
				}
				ids := map[string]bool{}
				for _, r := range ev.Records {
					if r.MessageId == "" || ids[r.MessageId] || r.ReceiptHandle == "" {
						t.Errorf("record %q: want a unique message id and a receipt handle", r.MessageId)
					}
					ids[r.MessageId] = true
					if r.EventSource != "aws:sqs" || r.AWSRegion == "" {
						t.Errorf("eventSource %q, awsRegion %q", r.EventSource, r.AWSRegion)
					}
					// CloudFormation names a queue <stack>-<LogicalId>-<suffix>.
					if len(f.SQS) != 1 || !strings.Contains(r.EventSourceARN, ":tunnels-"+f.SQS[0].Queue+"-") {
						t.Errorf("eventSourceARN %q is not %s's queue", r.EventSourceARN, k.fn)
					}
					sum := md5.Sum([]byte(r.Body))
					if r.Md5OfBody != hex.EncodeToString(sum[:]) {
						t.Errorf("md5OfBody = %s, want %x", r.Md5OfBody, sum)
					}
					if r.Attributes["ApproximateReceiveCount"] == "" || r.Attributes["SentTimestamp"] == "" {
						t.Errorf("attributes = %v, want ApproximateReceiveCount and SentTimestamp", r.Attributes)
					}
					var msg stepMessage
					decodeStrict(t, []byte(r.Body), &msg)
					if msg.V != 1 || msg.ID == "" || msg.WS == "" || msg.Sub == "" || msg.Tunnel == "" ||
						(msg.Channel != "chat" && msg.Channel != "email") || msg.Gen < 1 || msg.Block == "" || msg.Action < 0 {
						t.Errorf("step message = %+v, want v 1, ids set, channel chat|email, gen >= 1, action >= 0", msg)
					}
					at, err := time.Parse(time.RFC3339Nano, msg.At)
					if err != nil || at.UTC().Format("2006-01-02T15:04:05.000Z") != msg.At {
						t.Errorf("at = %q, want RFC 3339 UTC with milliseconds", msg.At)
					}
				}
			})
		}
	}
}

func TestSchedulerEvent(t *testing.T) {
	tpl := openTemplate(t)
	files := eventFiles(t, tpl)["SchedulerFunction"]
	sort.Strings(files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ev events.EventBridgeEvent
			decodeStrict(t, data, &ev)
			if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" || ev.Version != "0" {
				t.Errorf("event = %s from %s (version %s), want a Scheduled Event from aws.events", ev.DetailType, ev.Source, ev.Version)
			}
			if ev.Time.IsZero() || ev.ID == "" || ev.AccountID == "" || ev.Region == "" {
				t.Errorf("event = %+v, want id, account, region and time", ev)
			}
			if len(ev.Resources) != 1 || !strings.Contains(ev.Resources[0], ":rule/tunnels-SchedulerFunction") {
				t.Errorf("resources = %v, want the schedule's rule", ev.Resources)
			}
			if string(ev.Detail) != "{}" {
				t.Errorf("detail = %s, want {}", ev.Detail)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
