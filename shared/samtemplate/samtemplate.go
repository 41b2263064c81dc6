// Package samtemplate reads the project's SAM template (template.yaml) so that
// tests and the local runner work from the template itself, not from a second
// description of the system.
//
// A Template offers three views of the same file:
//
//   - CFN: goformation v7's typed template, exactly as goformation.Open returns
//     it, for CloudFormation resources such as the DynamoDB table (Table). Its
//     intrinsic processor resolves a Ref to a parameter to the parameter's
//     default and a Ref or GetAtt to a resource to nil, so do not read
//     references from it.
//   - Functions and Queues: read from the raw template, Globals.Function merged
//     in the way the SAM translator merges it, references kept as logical ids.
//     goformation's serverless model predates properties this template uses (an
//     SQS event with FunctionResponseTypes or ScalingConfig decodes to nil), so
//     functions are not read from CFN.
//   - Doc: the raw template as JSON values, intrinsic functions in long form
//     ({"Ref": "FlowQueue"}, {"Fn::GetAtt": "FlowDLQ.Arn"}).
//
// Values that may be intrinsic functions (environment variables, policies) are
// raw: a plain string, or a map such as {"Ref": "FlowQueue"}; RefTo and GetAttOf
// read them.
package samtemplate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// Resource types this package reads.
const (
	TypeFunction = "AWS::Serverless::Function"
	TypeHTTPAPI  = "AWS::Serverless::HttpApi"
	TypeQueue    = "AWS::SQS::Queue"
	TypeTable    = "AWS::DynamoDB::Table"
)

// Defaults AWS applies when the template leaves a property out.
const (
	defaultTimeout           = 3      // Lambda, seconds
	defaultMemorySize        = 128    // Lambda, MB
	defaultSQSBatchSize      = 10     // SQS event source mapping
	defaultVisibilityTimeout = 30     // SQS, seconds
	defaultRetentionPeriod   = 345600 // SQS, seconds (4 days)
)

// Template is a parsed SAM template.
type Template struct {
	// CFN is goformation's typed view (see the package comment for its limits).
	CFN *cloudformation.Template
	// Doc is the raw template: Parameters, Resources, Outputs, ... as decoded
	// JSON, intrinsic functions in long form.
	Doc map[string]any

	resources map[string]rawResource
	globalFn  map[string]any // Globals.Function
	functions []Function
	queues    []Queue
}

type rawResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
}

// Function is an AWS::Serverless::Function with Globals.Function applied.
type Function struct {
	LogicalID     string
	Dir           string // Go main package, relative to the template: functions/<name>
	CodeURI       string
	BuildMethod   string // Metadata.BuildMethod, e.g. "makefile"
	Runtime       string
	Architectures []string
	Handler       string
	MemorySize    int // MB
	Timeout       int // seconds
	// ReservedConcurrency is ReservedConcurrentExecutions; 0 when not set.
	ReservedConcurrency int
	// RecursiveLoop is Lambda's recursive loop detection setting: "Allow",
	// "Terminate", or "" when not set (AWS then terminates).
	RecursiveLoop string
	// Env holds the environment variables, raw: a string or an intrinsic
	// function such as {"Ref": "FlowQueue"} (see RefTo).
	Env       map[string]any
	SQS       []SQSEvent
	Schedules []Schedule
	HTTP      []Route
	// Policies is the raw Policies list (policy documents, SAM policy templates
	// or managed policy names).
	Policies []any
}

// SQSEvent is an SQS event source of a function.
type SQSEvent struct {
	Name                    string // event name in the template
	Queue                   string // logical id of the queue
	BatchSize               int
	MaxBatchingWindow       int // seconds
	ReportBatchItemFailures bool
	// MaxConcurrency is ScalingConfig.MaximumConcurrency; 0 means no cap.
	MaxConcurrency int
	Enabled        bool
}

// Schedule is a Schedule event of a function.
type Schedule struct {
	Name       string
	Expression string // e.g. "rate(1 minute)"
	Enabled    bool
}

// Route is an HttpApi event of a function.
type Route struct {
	Name   string
	API    string // logical id of the AWS::Serverless::HttpApi; "" for the implicit API
	Method string // upper case; "ANY" matches every method
	Path   string // e.g. "/{proxy+}"
}

// Queue is an AWS::SQS::Queue.
type Queue struct {
	LogicalID         string
	VisibilityTimeout int // seconds
	RetentionPeriod   int // MessageRetentionPeriod, seconds
	DelaySeconds      int
	// DeadLetterQueue is the logical id of the RedrivePolicy's target, "" if none.
	DeadLetterQueue string
	MaxReceiveCount int
}

// goformation registers its YAML tag resolvers in a package-level map on every
// parse, so parses must not run concurrently.
var parseMu sync.Mutex

// Open reads and parses the SAM template at path.
func Open(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses a SAM template given as YAML (or JSON).
func Parse(data []byte) (*Template, error) {
	parseMu.Lock()
	defer parseMu.Unlock()

	// The same parse as goformation.Open: it fails on a property goformation
	// does not know, which is worth knowing before the local runner hits it.
	cfn, err := goformation.ParseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("goformation: %w", err)
	}
	rawJSON, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(rawJSON, &doc); err != nil {
		return nil, err
	}
	var raw struct {
		Globals   map[string]map[string]any `json:"Globals"`
		Resources map[string]rawResource    `json:"Resources"`
	}
	if err := json.Unmarshal(rawJSON, &raw); err != nil {
		return nil, err
	}
	t := &Template{CFN: cfn, Doc: doc, resources: raw.Resources, globalFn: raw.Globals["Function"]}
	// Fail at open, not at first use, on a function or queue this package cannot read.
	if t.functions, err = t.readFunctions(); err != nil {
		return nil, err
	}
	if t.queues, err = t.readQueues(); err != nil {
		return nil, err
	}
	return t, nil
}

// ResourceType returns the Type of the resource with the logical id, "" if none.
func (t *Template) ResourceType(id string) string {
	return t.resources[id].Type
}

// Functions returns every AWS::Serverless::Function, sorted by logical id.
// Raw values (Env, Policies) are shared with the Template: read them only.
func (t *Template) Functions() []Function {
	return slices.Clone(t.functions)
}

// Function returns the function with the logical id.
func (t *Template) Function(id string) (Function, bool) {
	for _, f := range t.functions {
		if f.LogicalID == id {
			return f, true
		}
	}
	return Function{}, false
}

// Queues returns every AWS::SQS::Queue, sorted by logical id.
func (t *Template) Queues() []Queue {
	return slices.Clone(t.queues)
}

// Queue returns the queue with the logical id.
func (t *Template) Queue(id string) (Queue, bool) {
	for _, q := range t.queues {
		if q.LogicalID == id {
			return q, true
		}
	}
	return Queue{}, false
}

// Table returns goformation's typed AWS::DynamoDB::Table with the logical id
// (key schema, indexes, TTL), e.g. to create it in DynamoDB Local.
func (t *Template) Table(id string) (*dynamodb.Table, error) {
	return t.CFN.GetDynamoDBTableWithName(id)
}

func (t *Template) readFunctions() ([]Function, error) {
	var fns []Function
	for _, id := range t.sortedIDs(TypeFunction) {
		f, err := t.function(id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		fns = append(fns, f)
	}
	return fns, nil
}

func (t *Template) function(id string) (Function, error) {
	res := t.resources[id]
	props, _ := mergeGlobals(t.globalFn, res.Properties).(map[string]any)
	f := Function{
		LogicalID: id,
		Dir:       "functions/" + strings.ToLower(strings.TrimSuffix(id, "Function")),
		Env:       map[string]any{},
	}
	var err error
	str := func(key string) string {
		if err != nil {
			return ""
		}
		var s string
		s, err = stringProp(props, key)
		return s
	}
	num := func(key string, def int) int {
		if err != nil {
			return 0
		}
		var n int
		n, err = intProp(props, key, def)
		return n
	}
	f.CodeURI = str("CodeUri")
	f.Runtime = str("Runtime")
	f.Handler = str("Handler")
	f.MemorySize = num("MemorySize", defaultMemorySize)
	f.Timeout = num("Timeout", defaultTimeout)
	f.ReservedConcurrency = num("ReservedConcurrentExecutions", 0)
	f.RecursiveLoop = str("RecursiveLoop")
	if err != nil {
		return f, err
	}
	if bm, ok := res.Metadata["BuildMethod"].(string); ok {
		f.BuildMethod = bm
	}
	for _, a := range asList(props["Architectures"]) {
		s, ok := a.(string)
		if !ok {
			return f, errors.New("Architectures: not a list of strings")
		}
		f.Architectures = append(f.Architectures, s)
	}
	if env, ok := props["Environment"].(map[string]any); ok {
		if vars, ok := env["Variables"].(map[string]any); ok {
			for k, v := range vars {
				f.Env[k] = v
			}
		}
	}
	f.Policies = asList(props["Policies"])

	events, _ := props["Events"].(map[string]any)
	names := make([]string, 0, len(events))
	for name := range events {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev, _ := events[name].(map[string]any)
		typ, _ := ev["Type"].(string)
		ep, _ := ev["Properties"].(map[string]any)
		if err := f.addEvent(name, typ, ep); err != nil {
			return f, fmt.Errorf("event %s: %w", name, err)
		}
	}
	return f, nil
}

func (f *Function) addEvent(name, typ string, p map[string]any) error {
	switch typ {
	case "SQS":
		e := SQSEvent{Name: name}
		var ok bool
		if e.Queue, ok = queueRef(p["Queue"]); !ok {
			return fmt.Errorf("Queue %v is not !GetAtt <queue>.Arn", p["Queue"])
		}
		var err error
		if e.BatchSize, err = intProp(p, "BatchSize", defaultSQSBatchSize); err != nil {
			return err
		}
		if e.MaxBatchingWindow, err = intProp(p, "MaximumBatchingWindowInSeconds", 0); err != nil {
			return err
		}
		if e.Enabled, err = boolProp(p, "Enabled", true); err != nil {
			return err
		}
		for _, rt := range asList(p["FunctionResponseTypes"]) {
			if rt == "ReportBatchItemFailures" {
				e.ReportBatchItemFailures = true
			}
		}
		if sc, ok := p["ScalingConfig"].(map[string]any); ok {
			if e.MaxConcurrency, err = intProp(sc, "MaximumConcurrency", 0); err != nil {
				return err
			}
		}
		f.SQS = append(f.SQS, e)
	case "Schedule", "ScheduleV2":
		s := Schedule{Name: name}
		var err error
		key := "Schedule"
		if typ == "ScheduleV2" {
			key = "ScheduleExpression"
		}
		if s.Expression, err = stringProp(p, key); err != nil {
			return err
		}
		if s.Enabled, err = boolProp(p, "Enabled", true); err != nil {
			return err
		}
		f.Schedules = append(f.Schedules, s)
	case "HttpApi":
		r := Route{Name: name, Method: "ANY", Path: "/$default"}
		if p != nil {
			if id, ok := RefTo(p["ApiId"]); ok {
				r.API = id
			}
			if m, ok := p["Method"].(string); ok {
				r.Method = strings.ToUpper(m)
			}
			if path, ok := p["Path"].(string); ok {
				r.Path = path
			}
		}
		f.HTTP = append(f.HTTP, r)
	}
	return nil
}

func (t *Template) readQueues() ([]Queue, error) {
	var qs []Queue
	for _, id := range t.sortedIDs(TypeQueue) {
		p := t.resources[id].Properties
		q := Queue{LogicalID: id}
		var err error
		if q.VisibilityTimeout, err = intProp(p, "VisibilityTimeout", defaultVisibilityTimeout); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if q.RetentionPeriod, err = intProp(p, "MessageRetentionPeriod", defaultRetentionPeriod); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if q.DelaySeconds, err = intProp(p, "DelaySeconds", 0); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if rp, ok := p["RedrivePolicy"].(map[string]any); ok {
			dlq, ok := queueRef(rp["deadLetterTargetArn"])
			if !ok {
				return nil, fmt.Errorf("%s: RedrivePolicy.deadLetterTargetArn %v is not !GetAtt <queue>.Arn", id, rp["deadLetterTargetArn"])
			}
			q.DeadLetterQueue = dlq
			if q.MaxReceiveCount, err = intProp(rp, "maxReceiveCount", 0); err != nil {
				return nil, fmt.Errorf("%s: RedrivePolicy: %w", id, err)
			}
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func (t *Template) sortedIDs(typ string) []string {
	var ids []string
	for id, r := range t.resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// RefTo returns the logical id (or parameter name) v refers to when v is a Ref:
// raw ({"Ref": "X"}) or in goformation's encoded form (cloudformation.Ref).
func RefTo(v any) (string, bool) {
	m := intrinsic(v)
	if len(m) != 1 {
		return "", false
	}
	s, ok := m["Ref"].(string)
	return s, ok
}

// GetAttOf returns the resource and attribute of an Fn::GetAtt: raw, in short
// ("X.Arn") or long (["X", "Arn"]) form, or goformation-encoded.
func GetAttOf(v any) (resource, attribute string, ok bool) {
	m := intrinsic(v)
	if len(m) != 1 {
		return "", "", false
	}
	switch a := m["Fn::GetAtt"].(type) {
	case string:
		resource, attribute, ok = strings.Cut(a, ".")
		return resource, attribute, ok
	case []any:
		if len(a) == 2 {
			resource, ok1 := a[0].(string)
			attribute, ok2 := a[1].(string)
			return resource, attribute, ok1 && ok2
		}
	}
	return "", "", false
}

// intrinsic returns v as an intrinsic-function map, decoding goformation's
// base64 form; nil when v is neither.
func intrinsic(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case string:
		dec, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			return nil
		}
		var m map[string]any
		if json.Unmarshal(dec, &m) != nil {
			return nil
		}
		return m
	}
	return nil
}

// queueRef reads a reference to a queue's ARN: !GetAtt Q.Arn.
func queueRef(v any) (string, bool) {
	res, attr, ok := GetAttOf(v)
	if !ok || attr != "Arn" {
		return "", false
	}
	return res, true
}

// mergeGlobals applies a Globals section to a resource's properties with the
// SAM translator's rules: maps merge key by key, lists concatenate (globals
// first), anything else (including intrinsic functions) is replaced by the
// resource's value.
func mergeGlobals(global, local any) any {
	if global == nil {
		return local
	}
	if local == nil {
		return global
	}
	switch g := global.(type) {
	case map[string]any:
		l, ok := local.(map[string]any)
		if !ok || isIntrinsic(g) || isIntrinsic(l) {
			return local
		}
		out := make(map[string]any, len(g)+len(l))
		for k, v := range g {
			out[k] = v
		}
		for k, v := range l {
			if gv, ok := out[k]; ok {
				out[k] = mergeGlobals(gv, v)
			} else {
				out[k] = v
			}
		}
		return out
	case []any:
		l, ok := local.([]any)
		if !ok {
			return local
		}
		return append(append([]any{}, g...), l...)
	}
	return local
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

func asList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

// stringProp reads a string property; "" when missing.
func stringProp(p map[string]any, key string) (string, error) {
	switch v := p[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%s: %v is not a plain string", key, v)
	}
}

// intProp reads a whole-number property (CloudFormation also accepts numbers
// written as strings); def when missing.
func intProp(p map[string]any, key string, def int) (int, error) {
	switch v := p[key].(type) {
	case nil:
		return def, nil
	case float64:
		if v != float64(int(v)) {
			return 0, fmt.Errorf("%s: %v is not a whole number", key, v)
		}
		return int(v), nil
	case string:
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a whole number", key, v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%s: %v is not a plain number", key, v)
	}
}

// boolProp reads a boolean property; def when missing.
func boolProp(p map[string]any, key string, def bool) (bool, error) {
	switch v := p[key].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s: %q is not a boolean", key, v)
		}
		return b, nil
	default:
		return false, fmt.Errorf("%s: %v is not a plain boolean", key, v)
	}
}
