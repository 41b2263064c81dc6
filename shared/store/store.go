// Package store keeps Tunnels' state in one DynamoDB table: subscribers,
// steps (the journey), chats, runs, the catalog and tunnels. It implements the
// engine's Store port and what the HTTP API reads and writes.
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DB is the part of the DynamoDB client the store uses.
type DB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Store is the DynamoDB adapter. The zero value is not usable: use New.
type Store struct {
	db    DB
	table string
	now   func() time.Time
	// Retention is how long journey entries and step records are kept (TTL).
	Retention time.Duration
	// scanBudget, when set, replaces maxScanned (tests).
	scanBudget int
}

// New makes a store on a table.
func New(db DB, table string) *Store {
	return &Store{db: db, table: table, now: func() time.Time { return time.Now().UTC() }, Retention: 90 * 24 * time.Hour}
}

// Errors the store reports besides engine.ErrNotFound.
var (
	ErrConflict = errors.New("conflict")
)

// Keys.
func wsPK(ws string) string                { return "WS#" + ws }
func subPK(ws, sub string) string          { return "WS#" + ws + "#SUB#" + sub }
func identityPK(ws, ch, ext string) string { return "WS#" + ws + "#ID#" + ch + "#" + ext }
func keyPK(hash string) string             { return "KEY#" + hash }

const profileSK = "PROFILE"

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}
}

func s(v string) types.AttributeValue     { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue      { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
func boolean(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

// ts formats a time the way every stored time is: sortable RFC 3339 UTC with
// fixed nanoseconds.
func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

func parseTS(v string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}

func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func num(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		var i int64
		fmt.Sscan(v.Value, &i)
		return i
	}
	return 0
}

func boolAttr(item map[string]types.AttributeValue, name string) bool {
	if v, ok := item[name].(*types.AttributeValueMemberBOOL); ok {
		return v.Value
	}
	return false
}

// Page is one page of a list.
type Page struct {
	Limit  int
	Cursor string
}

// encodeCursor turns a DynamoDB LastEvaluatedKey into an opaque cursor.
func encodeCursor(k map[string]types.AttributeValue) *string {
	if len(k) == 0 {
		return nil
	}
	m := map[string]string{}
	for name, v := range k {
		if sv, ok := v.(*types.AttributeValueMemberS); ok {
			m[name] = sv.Value
		}
	}
	b, _ := json.Marshal(m)
	c := base64.RawURLEncoding.EncodeToString(b)
	return &c
}

// ErrBadCursor: the cursor is not one this API gave out.
var ErrBadCursor = errors.New("cursor is not valid")

func decodeCursor(c string, want ...string) (map[string]types.AttributeValue, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil, ErrBadCursor
	}
	out := map[string]types.AttributeValue{}
	for _, w := range want {
		v, ok := m[w]
		if !ok {
			return nil, ErrBadCursor
		}
		out[w] = s(v)
	}
	return out, nil
}

// query runs one page of a query. It follows DynamoDB pages until limit items
// arrive (filters may thin a page) and returns the cursor for the next page.
func (st *Store) query(ctx context.Context, in *dynamodb.QueryInput, p Page, cursorKeys ...string) ([]map[string]types.AttributeValue, *string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	start, err := decodeCursor(p.Cursor, cursorKeys...)
	if err != nil {
		return nil, nil, err
	}
	if start != nil && !cursorFits(in, start) {
		return nil, nil, ErrBadCursor // a cursor of another list (or workspace)
	}
	in.TableName = aws.String(st.table)
	in.ExclusiveStartKey = start
	// One item more than the page is read, so the last page says so with a
	// null cursor even when it is exactly full.
	var items []map[string]types.AttributeValue
	for {
		in.Limit = aws.Int32(int32(limit + 1 - len(items)))
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, out.Items...)
		if len(items) > limit {
			items = items[:limit]
			return items, encodeCursor(lastKey(items[limit-1], cursorKeys)), nil
		}
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func lastKey(item map[string]types.AttributeValue, names []string) map[string]types.AttributeValue {
	k := map[string]types.AttributeValue{}
	for _, name := range names {
		if v, ok := item[name]; ok {
			k[name] = v
		}
	}
	return k
}

// cursorFits tells whether a cursor's key lies in the queried list: its
// partition (pk, or ipk on the inbox index) is the one asked for and, when the
// query narrows the sort key by prefix, its sk has that prefix.
func cursorFits(in *dynamodb.QueryInput, start map[string]types.AttributeValue) bool {
	partition := "pk"
	switch aws.ToString(in.IndexName) {
	case "Inbox":
		partition = "ipk"
	case directoryIndex, legacyDirectoryIndex:
		partition = "dpk"
	}
	want, _ := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS)
	got, _ := start[partition].(*types.AttributeValueMemberS)
	if want == nil || got == nil || want.Value != got.Value {
		return false
	}
	if prefix, ok := in.ExpressionAttributeValues[":p"].(*types.AttributeValueMemberS); ok {
		sk, _ := start["sk"].(*types.AttributeValueMemberS)
		return sk != nil && strings.HasPrefix(sk.Value, prefix.Value)
	}
	return true
}

// queryAll reads every item of a query (for small collections).
func (st *Store) queryAll(ctx context.Context, in *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	in.TableName = aws.String(st.table)
	var items []map[string]types.AttributeValue
	for {
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func (st *Store) ttl(from time.Time) types.AttributeValue {
	return n(from.Add(st.Retention).Unix())
}

func prefixOf(sk string) string {
	if i := strings.Index(sk, "#"); i >= 0 {
		return sk[:i+1]
	}
	return sk
}

func asErr[T error](err error, target *T) bool {
	return err != nil && errors.As(err, target)
}

// batchGet reads items by key with consistent reads, 100 keys a call (the
// BatchGetItem limit), asking again with a short pause for what DynamoDB
// left unprocessed; each item read is handed to each. proj and names, when
// set, narrow what is read.
func (st *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, proj string, names map[string]string,
	each func(item map[string]types.AttributeValue) error) error {
	return st.batchGetWith(ctx, keys, proj, names, true, each)
}

// batchGetWith is batchGet with the read's consistency chosen: an eventually
// consistent read costs half.
func (st *Store) batchGetWith(ctx context.Context, keys []map[string]types.AttributeValue, proj string, names map[string]string,
	consistent bool, each func(item map[string]types.AttributeValue) error) error {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 100)]
		keys = keys[len(chunk):]
		ka := types.KeysAndAttributes{Keys: chunk, ConsistentRead: aws.Bool(consistent)}
		if proj != "" {
			ka.ProjectionExpression = aws.String(proj)
		}
		if len(names) > 0 {
			ka.ExpressionAttributeNames = names
		}
		req := map[string]types.KeysAndAttributes{st.table: ka}
		for attempt := 0; len(req) > 0; attempt++ {
			out, err := st.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return err
			}
			for _, it := range out.Responses[st.table] {
				if err := each(it); err != nil {
					return err
				}
			}
			req = out.UnprocessedKeys
			if len(req) > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
