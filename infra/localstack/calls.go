package localstack

import (
	"context"
	"errors"
	"sort"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// CallKey names one kind of AWS call: who made it (Label, e.g. the
// function), the SDK service id and the operation.
type CallKey struct {
	Label     string
	Service   string
	Operation string
}

// CallStats count the calls of one CallKey.
type CallStats struct {
	Calls    int64 // operation calls, as the code made them
	Attempts int64 // requests sent, the SDK's retries included
	Errors   int64 // calls that ended in an error
	// ConditionFailed counts DynamoDB ConditionalCheckFailed (and cancelled
	// transaction) errors: on AWS they still consume write capacity.
	ConditionFailed int64
	// Entries are the entries of batch calls (SendMessageBatch,
	// DeleteMessageBatch, ChangeMessageVisibilityBatch) and the items of
	// TransactWriteItems / TransactGetItems.
	Entries int64
	// Messages are the messages ReceiveMessage brought; Empty the receives
	// that brought none.
	Messages int64
	Empty    int64
	// ReadUnits and WriteUnits sum DynamoDB's ConsumedCapacity answers (when
	// the counter asks for them).
	ReadUnits  float64
	WriteUnits float64
}

func (s *CallStats) add(o CallStats) {
	s.Calls += o.Calls
	s.Attempts += o.Attempts
	s.Errors += o.Errors
	s.ConditionFailed += o.ConditionFailed
	s.Entries += o.Entries
	s.Messages += o.Messages
	s.Empty += o.Empty
	s.ReadUnits += o.ReadUnits
	s.WriteUnits += o.WriteUnits
}

// CallCounter counts AWS API calls through an SDK middleware: attach
// APIOption(label) to an aws.Config's APIOptions and every client made from
// it is counted under label. Safe for concurrent use.
type CallCounter struct {
	// Capacity asks DynamoDB for ReturnConsumedCapacity TOTAL on every call
	// that takes it and sums the units it answers (the request is changed on
	// a copy; the caller's input is left alone).
	Capacity bool
	// Permits also records the IAM permissions each call needs (see
	// Permissions), for checking them against the functions' policies.
	Permits bool

	mu    sync.Mutex
	m     map[CallKey]*CallStats
	perms map[string]map[Permission]int64 // by label
}

// NewCallCounter makes an empty counter.
func NewCallCounter() *CallCounter { return &CallCounter{m: map[CallKey]*CallStats{}} }

func (c *CallCounter) record(k CallKey, s CallStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[CallKey]*CallStats{}
	}
	cur, ok := c.m[k]
	if !ok {
		cur = &CallStats{}
		c.m[k] = cur
	}
	cur.add(s)
}

// Snapshot answers the counts so far.
func (c *CallCounter) Snapshot() map[CallKey]CallStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[CallKey]CallStats, len(c.m))
	for k, v := range c.m {
		out[k] = *v
	}
	return out
}

// Reset forgets every count.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[CallKey]*CallStats{}
	c.perms = nil
}

// Permissions answers, by label, the IAM permissions the calls so far needed
// (see Permissions) and how many calls needed each; empty unless Permits.
func (c *CallCounter) Permissions() map[string]map[Permission]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[Permission]int64{}
	for label, ps := range c.perms {
		out[label] = map[Permission]int64{}
		for p, n := range ps {
			out[label][p] = n
		}
	}
	return out
}

func (c *CallCounter) recordPermissions(label string, ps []Permission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perms == nil {
		c.perms = map[string]map[Permission]int64{}
	}
	if c.perms[label] == nil {
		c.perms[label] = map[Permission]int64{}
	}
	for _, p := range ps {
		c.perms[label][p]++
	}
}

// Keys answers the keys of a snapshot in a stable order.
func Keys(snap map[CallKey]CallStats) []CallKey {
	keys := make([]CallKey, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Label != b.Label {
			return a.Label < b.Label
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Operation < b.Operation
	})
	return keys
}

// Diff is after minus before, per key (keys absent from before count from 0).
func Diff(after, before map[CallKey]CallStats) map[CallKey]CallStats {
	out := make(map[CallKey]CallStats, len(after))
	for k, a := range after {
		b := before[k]
		d := CallStats{
			Calls: a.Calls - b.Calls, Attempts: a.Attempts - b.Attempts, Errors: a.Errors - b.Errors,
			ConditionFailed: a.ConditionFailed - b.ConditionFailed, Entries: a.Entries - b.Entries,
			Messages: a.Messages - b.Messages, Empty: a.Empty - b.Empty,
			ReadUnits: a.ReadUnits - b.ReadUnits, WriteUnits: a.WriteUnits - b.WriteUnits,
		}
		if d != (CallStats{}) {
			out[k] = d
		}
	}
	return out
}

// APIOption is an aws.Config APIOptions entry counting the calls of the
// clients made from that config under label. Calls are counted at the start
// of the initialize step (once per call), attempts at the end of the
// finalize step (once per request the retryer makes).
func (c *CallCounter) APIOption(label string) func(*middleware.Stack) error {
	calls := middleware.InitializeMiddlewareFunc("TunnelsCountCalls", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if c.Capacity {
			in.Parameters = withConsumedCapacity(in.Parameters)
		}
		out, md, err := next.HandleInitialize(ctx, in)
		k := CallKey{Label: label, Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx)}
		s := CallStats{Calls: 1, Entries: entries(in.Parameters)}
		if err != nil {
			s.Errors = 1
			if conditionFailed(err) {
				s.ConditionFailed = 1
			}
		} else {
			observe(out.Result, &s)
		}
		c.record(k, s)
		if c.Permits {
			c.recordPermissions(label, Permissions(k.Service, k.Operation, in.Parameters))
		}
		return out, md, err
	})
	attempts := middleware.FinalizeMiddlewareFunc("TunnelsCountAttempts", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		c.record(CallKey{Label: label, Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx)}, CallStats{Attempts: 1})
		return next.HandleFinalize(ctx, in)
	})
	return func(st *middleware.Stack) error {
		if err := st.Initialize.Add(calls, middleware.Before); err != nil {
			return err
		}
		return st.Finalize.Add(attempts, middleware.After)
	}
}

// conditionFailed recognizes a failed DynamoDB condition, alone or in a
// transaction.
func conditionFailed(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ConditionalCheckFailedException", "TransactionCanceledException":
		return true
	}
	return false
}

// entries counts the entries of a batch or transaction input.
func entries(params any) int64 {
	switch v := params.(type) {
	case *sqs.SendMessageBatchInput:
		return int64(len(v.Entries))
	case *sqs.DeleteMessageBatchInput:
		return int64(len(v.Entries))
	case *sqs.ChangeMessageVisibilityBatchInput:
		return int64(len(v.Entries))
	case *dynamodb.TransactWriteItemsInput:
		return int64(len(v.TransactItems))
	case *dynamodb.TransactGetItemsInput:
		return int64(len(v.TransactItems))
	case *dynamodb.BatchWriteItemInput:
		n := 0
		for _, reqs := range v.RequestItems {
			n += len(reqs)
		}
		return int64(n)
	}
	return 0
}

// withConsumedCapacity asks DynamoDB to report the capacity a call consumed,
// on a copy of the input.
func withConsumedCapacity(params any) any {
	total := ddbtypes.ReturnConsumedCapacityTotal
	switch v := params.(type) {
	case *dynamodb.GetItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.PutItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.UpdateItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.DeleteItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.QueryInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.ScanInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.TransactWriteItemsInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.TransactGetItemsInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.BatchGetItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	case *dynamodb.BatchWriteItemInput:
		cp := *v
		cp.ReturnConsumedCapacity = total
		return &cp
	}
	return params
}

// observe reads what an answer says about cost: messages received and
// DynamoDB's consumed capacity.
func observe(result any, s *CallStats) {
	read := func(cc *ddbtypes.ConsumedCapacity, write bool) {
		if cc == nil {
			return
		}
		r, w := deref(cc.ReadCapacityUnits), deref(cc.WriteCapacityUnits)
		if r == 0 && w == 0 {
			// Only the total is there: it is of the operation's kind.
			if write {
				w = deref(cc.CapacityUnits)
			} else {
				r = deref(cc.CapacityUnits)
			}
		}
		s.ReadUnits += r
		s.WriteUnits += w
	}
	switch v := result.(type) {
	case *sqs.ReceiveMessageOutput:
		s.Messages = int64(len(v.Messages))
		if len(v.Messages) == 0 {
			s.Empty = 1
		}
	case *dynamodb.GetItemOutput:
		read(v.ConsumedCapacity, false)
	case *dynamodb.QueryOutput:
		read(v.ConsumedCapacity, false)
	case *dynamodb.ScanOutput:
		read(v.ConsumedCapacity, false)
	case *dynamodb.PutItemOutput:
		read(v.ConsumedCapacity, true)
	case *dynamodb.UpdateItemOutput:
		read(v.ConsumedCapacity, true)
	case *dynamodb.DeleteItemOutput:
		read(v.ConsumedCapacity, true)
	case *dynamodb.TransactWriteItemsOutput:
		for i := range v.ConsumedCapacity {
			read(&v.ConsumedCapacity[i], true)
		}
	case *dynamodb.TransactGetItemsOutput:
		for i := range v.ConsumedCapacity {
			read(&v.ConsumedCapacity[i], false)
		}
	case *dynamodb.BatchGetItemOutput:
		for i := range v.ConsumedCapacity {
			read(&v.ConsumedCapacity[i], false)
		}
	case *dynamodb.BatchWriteItemOutput:
		for i := range v.ConsumedCapacity {
			read(&v.ConsumedCapacity[i], true)
		}
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
