package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Resource types the local stack creates.
const (
	TypeTable       = "AWS::DynamoDB::Table"
	TypeSimpleTable = "AWS::Serverless::SimpleTable"
	TypeQueue       = "AWS::SQS::Queue"
	TypeFunction    = "AWS::Serverless::Function"
)

// DefaultPrefix starts every local table and queue name: "tunnels-<LogicalId>".
const DefaultPrefix = "tunnels-"

// Resource is a provisioned table or queue.
type Resource struct {
	LogicalID string
	Type      string
	Name      string // table or queue name
	URL       string // queue URL (queues only)
	ARN       string
	StreamARN string // tables with a StreamSpecification
}

// Resources are what a template's tables and queues became on a stack, plus
// the template itself for FunctionEnv and Functions.
type Resources struct {
	// ByID maps logical id -> provisioned table or queue.
	ByID map[string]Resource

	tpl       *template
	params    map[string]string
	prefix    string
	functions []Function
}

// Option adjusts Provision, Attach and Plan.
type Option func(*settings)

type settings struct{ prefix string }

// WithPrefix names tables and queues prefix+LogicalId instead of
// DefaultPrefix+LogicalId, so several provisions can share one stack.
func WithPrefix(prefix string) Option { return func(s *settings) { s.prefix = prefix } }

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// load reads the template and settles parameter values: the given value, else
// the parameter's Default. Parameters not declared by the template are
// ignored, so one map can serve several templates.
func load(templatePath string, params map[string]string, opts []Option) (*Resources, error) {
	s := settings{prefix: DefaultPrefix}
	for _, o := range opts {
		o(&s)
	}
	if !validPrefix.MatchString(s.prefix) {
		return nil, fmt.Errorf("localstack: prefix %q: only letters, digits, - and _", s.prefix)
	}
	tpl, err := readTemplate(templatePath)
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	r := &Resources{ByID: map[string]Resource{}, tpl: tpl, params: map[string]string{}, prefix: s.prefix}
	for name, p := range tpl.Parameters {
		if v, ok := params[name]; ok {
			r.params[name] = v
			continue
		}
		if p.HasDefault {
			v, err := scalarString(p.Default)
			if err != nil {
				return nil, fmt.Errorf("localstack: parameter %s default: %w", name, err)
			}
			r.params[name] = v
		}
	}
	return r, nil
}

// nameOf is the local name of a table or queue.
func (r *Resources) nameOf(id string) string { return r.prefix + id }

// resolver returns an intrinsic-function evaluator over r. pending lists
// resources that will exist later (during provisioning).
func (r *Resources) resolver(pending map[string]bool) *resolver {
	return &resolver{tpl: r.tpl, params: r.params, lookup: func(id string) (refTarget, error) {
		if res, ok := r.ByID[id]; ok {
			return res, nil
		}
		if pending[id] {
			return nil, errPending
		}
		d := r.tpl.Resources[id]
		if d.Type == TypeFunction || d.Type == "AWS::Lambda::Function" {
			return functionTarget(r.nameOf(id)), nil
		}
		return nil, fmt.Errorf("resource %s (%s) has no local counterpart", id, d.Type)
	}}
}

func (res Resource) ref() (string, error) {
	switch res.Type {
	case TypeTable, TypeSimpleTable:
		return res.Name, nil
	case TypeQueue:
		return res.URL, nil
	}
	return "", fmt.Errorf("Ref of %s is not supported", res.Type)
}

func (res Resource) getAtt(attr string) (string, error) {
	switch {
	case attr == "Arn":
		return res.ARN, nil
	case res.Type == TypeQueue && attr == "QueueName":
		return res.Name, nil
	case res.Type == TypeQueue && attr == "QueueUrl":
		return res.URL, nil
	case res.Type == TypeTable && attr == "StreamArn" && res.StreamARN != "":
		return res.StreamARN, nil
	}
	return "", fmt.Errorf("attribute %s of %s is not supported", attr, res.Type)
}

// functionTarget answers Ref / GetAtt Arn for a function, which the local
// stack runs in-process or under RIE rather than creating.
type functionTarget string

func (f functionTarget) ref() (string, error) { return string(f), nil }
func (f functionTarget) getAtt(attr string) (string, error) {
	if attr == "Arn" {
		return "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + string(f), nil
	}
	return "", fmt.Errorf("attribute %s of a function is not supported", attr)
}

// Provision creates every table and queue the template declares on the stack
// reached by c: tables with their key schema, attribute definitions, indexes,
// billing and TTL; queues with their attributes, dead-letter queues before the
// queues that redrive to them. Names are "tunnels-<LogicalId>" (see
// WithPrefix); a TableName/QueueName in the template is ignored so one stack
// can hold several provisions. params gives template parameter values.
func Provision(ctx context.Context, templatePath string, c *Clients, params map[string]string, opts ...Option) (*Resources, error) {
	r, err := load(templatePath, params, opts)
	if err != nil {
		return nil, err
	}
	tables := r.tpl.idsOfType(TypeTable, TypeSimpleTable)
	queues := r.tpl.idsOfType(TypeQueue)
	pending := map[string]bool{}
	for _, id := range append(append([]string{}, tables...), queues...) {
		pending[id] = true
	}
	res := r.resolver(pending)
	for _, id := range tables {
		t, err := r.createTable(ctx, c.DynamoDB, res, id)
		if err != nil {
			return nil, fmt.Errorf("localstack: table %s: %w", id, err)
		}
		r.ByID[id] = t
		delete(pending, id)
	}
	// Queues may reference each other (RedrivePolicy -> !GetAtt DLQ.Arn):
	// create in rounds, deferring a queue whose references are not there yet.
	todo := queues
	for len(todo) > 0 {
		var later []string
		var lastErr error
		for _, id := range todo {
			q, err := r.createQueue(ctx, c.SQS, res, id)
			if errors.Is(err, errPending) {
				later = append(later, id)
				lastErr = err
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("localstack: queue %s: %w", id, err)
			}
			r.ByID[id] = q
			delete(pending, id)
		}
		if len(later) == len(todo) {
			return nil, fmt.Errorf("localstack: queues %v reference each other in a cycle: %w", later, lastErr)
		}
		todo = later
	}
	if r.functions, err = r.parseFunctions(); err != nil {
		return nil, err
	}
	return r, nil
}

// Attach reads the tables and queues that an earlier Provision (same template
// and prefix) created on a running stack, without creating anything.
func Attach(ctx context.Context, templatePath string, c *Clients, params map[string]string, opts ...Option) (*Resources, error) {
	r, err := load(templatePath, params, opts)
	if err != nil {
		return nil, err
	}
	for _, id := range r.tpl.idsOfType(TypeTable, TypeSimpleTable) {
		name := r.nameOf(id)
		out, err := c.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("localstack: table %s (%s): %w", id, name, err)
		}
		r.ByID[id] = Resource{LogicalID: id, Type: r.tpl.Resources[id].Type, Name: name,
			ARN: aws.ToString(out.Table.TableArn), StreamARN: aws.ToString(out.Table.LatestStreamArn)}
	}
	for _, id := range r.tpl.idsOfType(TypeQueue) {
		name := r.queueName(id)
		u, err := c.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("localstack: queue %s (%s): %w", id, name, err)
		}
		arn, err := queueARN(ctx, c.SQS, aws.ToString(u.QueueUrl))
		if err != nil {
			return nil, fmt.Errorf("localstack: queue %s: %w", id, err)
		}
		r.ByID[id] = Resource{LogicalID: id, Type: TypeQueue, Name: name, URL: aws.ToString(u.QueueUrl), ARN: arn}
	}
	if r.functions, err = r.parseFunctions(); err != nil {
		return nil, err
	}
	return r, nil
}

// Plan computes names, URLs and ARNs without any emulator, for tools that
// need a function's environment when no stack runs (the URLs point at
// ep.SQS and reach nothing unless a stack is there).
func Plan(templatePath string, ep Endpoints, params map[string]string, opts ...Option) (*Resources, error) {
	r, err := load(templatePath, params, opts)
	if err != nil {
		return nil, err
	}
	for _, id := range r.tpl.idsOfType(TypeTable, TypeSimpleTable) {
		name := r.nameOf(id)
		r.ByID[id] = Resource{LogicalID: id, Type: r.tpl.Resources[id].Type, Name: name,
			ARN: "arn:aws:dynamodb:" + Region + ":" + AccountID + ":table/" + name}
	}
	for _, id := range r.tpl.idsOfType(TypeQueue) {
		name := r.queueName(id)
		r.ByID[id] = Resource{LogicalID: id, Type: TypeQueue, Name: name,
			URL: strings.TrimSuffix(ep.SQS, "/") + "/" + AccountID + "/" + name,
			ARN: "arn:aws:sqs:" + Region + ":" + AccountID + ":" + name}
	}
	if r.functions, err = r.parseFunctions(); err != nil {
		return nil, err
	}
	return r, nil
}

// Get returns the resource with the logical id.
func (r *Resources) Get(logicalID string) (Resource, bool) {
	res, ok := r.ByID[logicalID]
	return res, ok
}

// ---- DynamoDB ----

type cfnKey struct {
	AttributeName string
	KeyType       string
}

type cfnThroughput struct {
	ReadCapacityUnits  cfnInt
	WriteCapacityUnits cfnInt
}

type cfnIndex struct {
	IndexName  string
	KeySchema  []cfnKey
	Projection struct {
		ProjectionType   string
		NonKeyAttributes []string
	}
	ProvisionedThroughput *cfnThroughput
}

type cfnTable struct {
	AttributeDefinitions []struct {
		AttributeName string
		AttributeType string
	}
	KeySchema               []cfnKey
	BillingMode             string
	ProvisionedThroughput   *cfnThroughput
	GlobalSecondaryIndexes  []cfnIndex
	LocalSecondaryIndexes   []cfnIndex
	TimeToLiveSpecification *struct {
		AttributeName string
		Enabled       cfnBool
	}
	StreamSpecification *struct {
		StreamViewType string
	}
	// AWS::Serverless::SimpleTable
	PrimaryKey *struct {
		Name string
		Type string
	}
}

func (r *Resources) createTable(ctx context.Context, db *dynamodb.Client, res *resolver, id string) (Resource, error) {
	decl := r.tpl.Resources[id]
	props, err := res.resolve(decl.Properties)
	if err != nil {
		return Resource{}, err
	}
	var t cfnTable
	if err := decodeInto(props, &t); err != nil {
		return Resource{}, fmt.Errorf("properties: %w", err)
	}
	name := r.nameOf(id)
	in, err := createTableInput(name, decl.Type, t)
	if err != nil {
		return Resource{}, err
	}
	out, err := db.CreateTable(ctx, in)
	if err != nil {
		return Resource{}, err
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
		return Resource{}, err
	}
	if ttl := t.TimeToLiveSpecification; ttl != nil && bool(ttl.Enabled) {
		_, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
				AttributeName: aws.String(ttl.AttributeName), Enabled: aws.Bool(true),
			},
		})
		// DynamoDB Local accepts TTL settings; an emulator that does not is
		// still fine for tests (correctness never waits for TTL), so only an
		// error about the request itself counts.
		if err != nil && !ttlUnsupported(err) {
			return Resource{}, fmt.Errorf("time to live: %w", err)
		}
	}
	return Resource{LogicalID: id, Type: decl.Type, Name: name,
		ARN:       aws.ToString(out.TableDescription.TableArn),
		StreamARN: aws.ToString(out.TableDescription.LatestStreamArn)}, nil
}

func ttlUnsupported(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not supported") || strings.Contains(s, "unknownoperation") ||
		strings.Contains(s, "already enabled")
}

// createTableInput maps CloudFormation table properties to CreateTable.
func createTableInput(name, typ string, t cfnTable) (*dynamodb.CreateTableInput, error) {
	in := &dynamodb.CreateTableInput{TableName: aws.String(name)}
	if typ == TypeSimpleTable {
		pk := struct{ Name, Type string }{"id", "String"}
		if t.PrimaryKey != nil {
			pk.Name, pk.Type = t.PrimaryKey.Name, t.PrimaryKey.Type
		}
		at := map[string]ddbtypes.ScalarAttributeType{"String": "S", "Number": "N", "Binary": "B"}[pk.Type]
		if at == "" {
			return nil, fmt.Errorf("PrimaryKey.Type %q", pk.Type)
		}
		in.AttributeDefinitions = []ddbtypes.AttributeDefinition{{AttributeName: aws.String(pk.Name), AttributeType: at}}
		in.KeySchema = []ddbtypes.KeySchemaElement{{AttributeName: aws.String(pk.Name), KeyType: ddbtypes.KeyTypeHash}}
	} else {
		if len(t.KeySchema) == 0 {
			return nil, errors.New("no KeySchema")
		}
		for _, a := range t.AttributeDefinitions {
			in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
				AttributeName: aws.String(a.AttributeName), AttributeType: ddbtypes.ScalarAttributeType(a.AttributeType)})
		}
		in.KeySchema = keySchema(t.KeySchema)
	}
	provisioned := t.BillingMode == "PROVISIONED" || (t.BillingMode == "" && t.ProvisionedThroughput != nil)
	if provisioned {
		in.BillingMode = ddbtypes.BillingModeProvisioned
		in.ProvisionedThroughput = throughput(t.ProvisionedThroughput)
	} else {
		in.BillingMode = ddbtypes.BillingModePayPerRequest
	}
	for _, g := range t.GlobalSecondaryIndexes {
		gsi := ddbtypes.GlobalSecondaryIndex{IndexName: aws.String(g.IndexName), KeySchema: keySchema(g.KeySchema), Projection: projection(g)}
		if provisioned {
			gsi.ProvisionedThroughput = throughput(g.ProvisionedThroughput)
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, gsi)
	}
	for _, l := range t.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddbtypes.LocalSecondaryIndex{
			IndexName: aws.String(l.IndexName), KeySchema: keySchema(l.KeySchema), Projection: projection(l)})
	}
	if s := t.StreamSpecification; s != nil && s.StreamViewType != "" {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewType(s.StreamViewType)}
	}
	return in, nil
}

func keySchema(ks []cfnKey) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)})
	}
	return out
}

func projection(ix cfnIndex) *ddbtypes.Projection {
	p := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(ix.Projection.ProjectionType)}
	if p.ProjectionType == "" {
		p.ProjectionType = ddbtypes.ProjectionTypeKeysOnly // CloudFormation's default
	}
	if len(ix.Projection.NonKeyAttributes) > 0 {
		p.NonKeyAttributes = ix.Projection.NonKeyAttributes
	}
	return p
}

func throughput(t *cfnThroughput) *ddbtypes.ProvisionedThroughput {
	if t == nil {
		t = &cfnThroughput{ReadCapacityUnits: 5, WriteCapacityUnits: 5}
	}
	return &ddbtypes.ProvisionedThroughput{
		ReadCapacityUnits: aws.Int64(int64(t.ReadCapacityUnits)), WriteCapacityUnits: aws.Int64(int64(t.WriteCapacityUnits))}
}

// ---- SQS ----

// queueAttributes are the AWS::SQS::Queue properties that are SQS queue
// attributes of the same name and that the emulator honours.
var queueAttributes = []string{
	"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
	"ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication",
	"DeduplicationScope", "FifoThroughputLimit", "RedrivePolicy", "RedriveAllowPolicy",
}

func (r *Resources) queueName(id string) string {
	name := r.nameOf(id)
	if truthy(r.tpl.Resources[id].Properties["FifoQueue"]) {
		name += ".fifo"
	}
	return name
}

func (r *Resources) createQueue(ctx context.Context, q *sqs.Client, res *resolver, id string) (Resource, error) {
	attrs, err := queueAttrs(res, r.tpl.Resources[id].Properties)
	if err != nil {
		return Resource{}, err
	}
	name := r.queueName(id)
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return Resource{}, err
	}
	url := aws.ToString(out.QueueUrl)
	arn, err := queueARN(ctx, q, url)
	if err != nil {
		return Resource{}, err
	}
	return Resource{LogicalID: id, Type: TypeQueue, Name: name, URL: url, ARN: arn}, nil
}

// queueAttrs resolves the queue properties into SQS attribute strings; JSON
// policies given as mappings are encoded.
func queueAttrs(res *resolver, props map[string]any) (map[string]string, error) {
	attrs := map[string]string{}
	for _, k := range queueAttributes {
		v, ok := props[k]
		if !ok {
			continue
		}
		rv, err := res.resolve(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if rv == noValue {
			continue
		}
		switch x := rv.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, err
			}
			attrs[k] = string(b)
		default:
			s, err := scalarString(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			attrs[k] = s
		}
	}
	return attrs, nil
}

func queueARN(ctx context.Context, q *sqs.Client, url string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", err
	}
	arn := out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("queue %s has no QueueArn", url)
	}
	return arn, nil
}

// ---- functions ----

// FunctionEnv is the environment a function gets from the template:
// Globals.Function.Environment.Variables overlaid with the function's own,
// every value resolved (!Ref Table -> table name, !Ref Queue -> queue URL,
// !GetAtt Queue.Arn/QueueName/QueueUrl, !Ref Parameter -> its value or
// Default, pseudo parameters such as AWS::Region -> us-east-1). An
// unresolvable reference is an error naming the variable and the reference.
// The result may hold secrets (NoEcho parameters): never log it.
func (r *Resources) FunctionEnv(logicalID string) (map[string]string, error) {
	decl, ok := r.tpl.Resources[logicalID]
	if !ok {
		return nil, fmt.Errorf("localstack: no resource %s in the template", logicalID)
	}
	vars := map[string]any{}
	switch decl.Type {
	case TypeFunction:
		for k, v := range envVariables(r.globalsFunction()) {
			vars[k] = v
		}
	case "AWS::Lambda::Function":
	default:
		return nil, fmt.Errorf("localstack: %s is a %s, not a function", logicalID, decl.Type)
	}
	for k, v := range envVariables(decl.Properties) {
		vars[k] = v
	}
	res := r.resolver(nil)
	env := make(map[string]string, len(vars))
	for _, k := range sortedKeys(vars) {
		rv, err := res.resolve(vars[k])
		if err != nil {
			return nil, fmt.Errorf("localstack: %s environment %s: %w", logicalID, k, err)
		}
		if rv == noValue {
			continue
		}
		s, err := scalarString(rv)
		if err != nil {
			return nil, fmt.Errorf("localstack: %s environment %s: %w", logicalID, k, err)
		}
		env[k] = s
	}
	return env, nil
}

func (r *Resources) globalsFunction() map[string]any {
	g, _ := r.tpl.Globals["Function"].(map[string]any)
	return g
}

func envVariables(props map[string]any) map[string]any {
	env, _ := props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	return vars
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Function is an AWS::Serverless::Function of the template, with what the
// local runner needs to drive it like Lambda.
type Function struct {
	LogicalID string
	// Name is the Go main package folder: functions/<Name>; the logical id
	// lowercased without its "Function" suffix (ApiFunction -> api).
	Name       string
	Timeout    time.Duration // SAM default 3 s
	MemorySize int           // SAM default 128 MB
	SQS        []SQSEvent
	Schedules  []ScheduleEvent
	HTTP       []HTTPEvent
}

// SQSEvent is an SQS event source mapping.
type SQSEvent struct {
	EventName                      string
	QueueLogicalID                 string
	QueueURL                       string
	QueueARN                       string
	BatchSize                      int32 // default 10
	MaximumBatchingWindowInSeconds int32
	ReportBatchItemFailures        bool
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency (0: not set).
	MaximumConcurrency int
	Enabled            bool
}

// ScheduleEvent is a Schedule (EventBridge rule) or ScheduleV2 (EventBridge
// Scheduler) event.
type ScheduleEvent struct {
	EventName  string
	Type       string // "Schedule" or "ScheduleV2"
	Expression string // e.g. rate(1 minute)
	Input      string // JSON passed instead of the scheduled event, if set
	Enabled    bool
}

// HTTPEvent is an HttpApi or Api event.
type HTTPEvent struct {
	EventName string
	Type      string // "HttpApi" or "Api"
	Method    string // "ANY" when absent
	Path      string // "$default" for an HttpApi event without properties
	APIID     string // logical id of the explicit API, if referenced
}

// Functions lists the template's functions, sorted by logical id.
func (r *Resources) Functions() []Function {
	return append([]Function(nil), r.functions...)
}

// Function returns the function with the logical id.
func (r *Resources) Function(logicalID string) (Function, bool) {
	for _, f := range r.functions {
		if f.LogicalID == logicalID {
			return f, true
		}
	}
	return Function{}, false
}

func (r *Resources) parseFunctions() ([]Function, error) {
	res := r.resolver(nil)
	globals := r.globalsFunction()
	var fns []Function
	for _, id := range r.tpl.idsOfType(TypeFunction) {
		props := r.tpl.Resources[id].Properties
		f := Function{LogicalID: id, Name: strings.ToLower(strings.TrimSuffix(id, "Function"))}
		timeout, err := intProp(res, props, globals, "Timeout", 3)
		if err != nil {
			return nil, fmt.Errorf("localstack: %s: %w", id, err)
		}
		f.Timeout = time.Duration(timeout) * time.Second
		if f.MemorySize, err = intProp(res, props, globals, "MemorySize", 128); err != nil {
			return nil, fmt.Errorf("localstack: %s: %w", id, err)
		}
		events, _ := props["Events"].(map[string]any)
		for _, name := range sortedKeys(events) {
			ev, _ := events[name].(map[string]any)
			typ, _ := ev["Type"].(string)
			ep, _ := ev["Properties"].(map[string]any)
			if err := r.addEvent(res, &f, name, typ, ep); err != nil {
				return nil, fmt.Errorf("localstack: %s event %s: %w", id, name, err)
			}
		}
		fns = append(fns, f)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].LogicalID < fns[j].LogicalID })
	return fns, nil
}

func (r *Resources) addEvent(res *resolver, f *Function, name, typ string, props map[string]any) error {
	switch typ {
	case "SQS":
		queueID, err := queueRef(props["Queue"])
		if err != nil {
			return err
		}
		q, ok := r.ByID[queueID]
		if !ok || q.Type != TypeQueue {
			return fmt.Errorf("Queue %s is not a queue of the template", queueID)
		}
		e := SQSEvent{EventName: name, QueueLogicalID: queueID, QueueURL: q.URL, QueueARN: q.ARN, BatchSize: 10, Enabled: true}
		bs, err := intProp(res, props, nil, "BatchSize", 10)
		if err != nil {
			return err
		}
		e.BatchSize = int32(bs)
		win, err := intProp(res, props, nil, "MaximumBatchingWindowInSeconds", 0)
		if err != nil {
			return err
		}
		e.MaximumBatchingWindowInSeconds = int32(win)
		if types, ok := props["FunctionResponseTypes"].([]any); ok {
			for _, t := range types {
				if t == "ReportBatchItemFailures" {
					e.ReportBatchItemFailures = true
				}
			}
		}
		if sc, ok := props["ScalingConfig"].(map[string]any); ok {
			if e.MaximumConcurrency, err = intProp(res, sc, nil, "MaximumConcurrency", 0); err != nil {
				return err
			}
		}
		if v, ok := props["Enabled"]; ok {
			e.Enabled = truthy(v)
		}
		f.SQS = append(f.SQS, e)
	case "Schedule", "ScheduleV2":
		key := "Schedule"
		if typ == "ScheduleV2" {
			key = "ScheduleExpression"
		}
		expr, err := res.str(props[key])
		if err != nil {
			return err
		}
		if expr == "" {
			return fmt.Errorf("%s event without %s", typ, key)
		}
		e := ScheduleEvent{EventName: name, Type: typ, Expression: expr, Enabled: true}
		if v, ok := props["Input"]; ok {
			if e.Input, err = res.str(v); err != nil {
				return err
			}
		}
		if v, ok := props["Enabled"]; ok {
			e.Enabled = truthy(v)
		}
		if v, ok := props["State"]; ok {
			e.Enabled = v == "ENABLED"
		}
		f.Schedules = append(f.Schedules, e)
	case "HttpApi", "Api":
		e := HTTPEvent{EventName: name, Type: typ, Method: "ANY"}
		if typ == "HttpApi" && len(props) == 0 {
			e.Path = "$default"
		}
		if v, ok := props["Method"].(string); ok {
			e.Method = strings.ToUpper(v)
		}
		if v, ok := props["Path"].(string); ok {
			e.Path = v
		}
		apiKey := "ApiId"
		if typ == "Api" {
			apiKey = "RestApiId"
		}
		if m, ok := props[apiKey].(map[string]any); ok {
			e.APIID, _ = m["Ref"].(string)
		}
		f.HTTP = append(f.HTTP, e)
	}
	return nil
}

// queueRef extracts Q from !GetAtt Q.Arn, the way an SQS event names its queue.
func queueRef(v any) (string, error) {
	m, ok := v.(map[string]any)
	if ok {
		if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 && ga[1] == "Arn" {
			if id, ok := ga[0].(string); ok {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("Queue must be !GetAtt <Queue>.Arn, got %v", v)
}

// intProp reads an integer property, falling back to globals, then def.
func intProp(res *resolver, props, globals map[string]any, key string, def int) (int, error) {
	v, ok := props[key]
	if !ok {
		v, ok = globals[key]
	}
	if !ok {
		return def, nil
	}
	s, err := res.str(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	var n cfnInt
	if err := n.UnmarshalJSON([]byte(s)); err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return int(n), nil
}
