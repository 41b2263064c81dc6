package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/tunnels/tunnels/shared/engine"
)

// Profile is what an inbound event says about a subscriber.
type Profile struct {
	FirstName, LastName, Email, Phone string
	// Timezone is an IANA time zone name (delay windows in the subscriber's zone).
	Timezone string
}

// NewID makes a random, time-ordered id (26 chars of Crockford base32).
func NewID(now time.Time) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	var out [26]byte
	// 128 bits -> 26 base32 digits, most significant first.
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[i+8])
	}
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// UpsertSubscriber finds the subscriber of a channel identity, creating it if
// new, and writes the profile fields the event carries (empty ones are kept).
func (st *Store) UpsertSubscriber(ctx context.Context, ws string, id engine.Identity, p Profile) (string, error) {
	now := st.now()
	candidate := NewID(now)
	ik := key(identityPK(ws, id.Channel, id.ExternalID), "IDENTITY")
	item := map[string]types.AttributeValue{"sub": s(candidate), "created_at": s(ts(now))}
	for k, v := range ik {
		item[k] = v
	}
	subID := candidate
	_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if isConditionFailed(err) {
		out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.table), Key: ik, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return "", err
		}
		subID = str(out.Item, "sub")
	} else if err != nil {
		return "", err
	}
	ch := id.Channel + ":" + id.ExternalID
	// The maps that actions set members of must exist: a nested SET needs its
	// parent. Every name is aliased (fields, for one, is a reserved word).
	sets := []string{"#id = :id", "#created_at = if_not_exists(#created_at, :now)", "#updated_at = :now",
		"#primary_channel = if_not_exists(#primary_channel, :ch)", "#fields = if_not_exists(#fields, :empty)",
		"#plans = if_not_exists(#plans, :empty)",
		// The subscribers directory (the Directory index), newest first.
		"#dpk = if_not_exists(#dpk, :dpk)", "#dsk = if_not_exists(#dsk, :dsk)"}
	names := map[string]string{"#channels": "channels"}
	for _, n := range []string{"id", "created_at", "updated_at", "primary_channel", "fields", "plans", "dpk", "dsk"} {
		names["#"+n] = n
	}
	vals := map[string]types.AttributeValue{
		":id": s(subID), ":now": s(ts(now)), ":ch": s(ch), ":chs": &types.AttributeValueMemberSS{Value: []string{ch}},
		":empty": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		":dpk":   s(directoryPK(ws)), ":dsk": s(ts(now) + "#" + subID),
	}
	// Lower-case copies for a search that ignores case.
	for name, v := range map[string]string{"fn_l": p.FirstName, "ln_l": p.LastName, "em_l": p.Email} {
		if v != "" {
			sets = append(sets, "#"+name+" = :"+name)
			names["#"+name] = name
			vals[":"+name] = s(strings.ToLower(v))
		}
	}
	for name, v := range map[string]string{"first_name": p.FirstName, "last_name": p.LastName, "email": p.Email, "phone": p.Phone, "timezone": p.Timezone} {
		if v != "" {
			sets = append(sets, "#"+name+" = :"+name)
			names["#"+name] = name
			vals[":"+name] = s(v)
		}
	}
	sort.Strings(sets)
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, subID), profileSK),
		UpdateExpression:          aws.String("SET " + strings.Join(sets, ", ") + " ADD #channels :chs"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if err != nil {
		return "", err
	}
	return subID, nil
}

// EventRecord remembers an inbound event: its answer and its first steps, so
// a retried event answers the same and finishes a half-done enqueue.
type EventRecord struct {
	Answer   json.RawMessage
	Steps    []engine.Outgoing
	Enqueued bool
}

func eventKey(ws, id string) map[string]types.AttributeValue {
	return key("WS#"+ws+"#EVENT#"+id, "EVENT")
}

// GetEvent reads an event record, or ErrNotFound.
func (st *Store) GetEvent(ctx context.Context, ws, id string) (EventRecord, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.table), Key: eventKey(ws, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return EventRecord{}, err
	}
	if len(out.Item) == 0 {
		return EventRecord{}, engine.ErrNotFound
	}
	r := EventRecord{Answer: json.RawMessage(str(out.Item, "answer")), Enqueued: boolAttr(out.Item, "enqueued")}
	if err := json.Unmarshal([]byte(str(out.Item, "steps")), &r.Steps); err != nil {
		return EventRecord{}, fmt.Errorf("event %s steps: %w", id, err)
	}
	return r, nil
}

// PutEvent stores an event's answer and first steps once; a second writer
// gets the first record back.
func (st *Store) PutEvent(ctx context.Context, ws, id string, r EventRecord) (EventRecord, error) {
	steps, err := json.Marshal(r.Steps)
	if err != nil {
		return EventRecord{}, err
	}
	item := map[string]types.AttributeValue{
		"answer": s(string(r.Answer)), "steps": s(string(steps)), "enqueued": boolean(false),
		"expires_at": st.ttl(st.now()),
	}
	for k, v := range eventKey(ws, id) {
		item[k] = v
	}
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if isConditionFailed(err) {
		return st.GetEvent(ctx, ws, id)
	}
	if err != nil {
		return EventRecord{}, err
	}
	return r, nil
}

// MarkEventEnqueued notes that an event's first steps reached their queues.
func (st *Store) MarkEventEnqueued(ctx context.Context, ws, id string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: eventKey(ws, id),
		UpdateExpression:          aws.String("SET enqueued = :t"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": boolean(true)},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// AddTags adds tags to a subscriber's set (atomic; adding a present tag is a no-op).
func (st *Store) AddTags(ctx context.Context, ws, sub string, tags []string) error {
	return st.changeTags(ctx, ws, sub, "ADD", tags)
}

// RemoveTags removes tags from a subscriber's set (atomic; absent tags are ignored).
func (st *Store) RemoveTags(ctx context.Context, ws, sub string, tags []string) error {
	return st.changeTags(ctx, ws, sub, "DELETE", tags)
}

func (st *Store) changeTags(ctx context.Context, ws, sub, op string, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:    aws.String(op + " tags :t SET updated_at = :now"),
		ConditionExpression: aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": &types.AttributeValueMemberSS{Value: dedupe(tags)}, ":now": s(ts(st.now())),
		},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// RecordInbound stores a message the subscriber sent and moves the chat to
// the unread tab, as an inbox does. It is idempotent on the message id,
// whatever time a retry carries: a guard item keyed by the id is written in
// the same transaction as the message and the profile change.
func (st *Store) RecordInbound(ctx context.Context, ws, sub string, m engine.ChatMessage) error {
	pk := subPK(ws, sub)
	msg := chatItem(ws, sub, m)
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(st.table), ConditionExpression: aws.String("attribute_not_exists(pk)"),
			Item: map[string]types.AttributeValue{"pk": s(pk), "sk": s("MSGID#" + m.ID), "chat_sk": msg["sk"]}}},
		{Put: &types.Put{TableName: aws.String(st.table), Item: msg}},
		{Update: &types.Update{
			TableName: aws.String(st.table), Key: key(pk, profileSK),
			UpdateExpression:    aws.String("SET unread = :t, ipk = :ipk, isk = :isk, updated_at = :now ADD inbound :one"),
			ConditionExpression: aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":t": boolean(true), ":ipk": s(unreadPK(ws)), ":isk": s(ts(m.CreatedAt) + "#" + sub),
				":now": s(ts(st.now())), ":one": n(1),
			},
		}},
	}})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) && len(tc.CancellationReasons) == 3 {
		if aws.ToString(tc.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
			return nil // this message was recorded before
		}
		if aws.ToString(tc.CancellationReasons[2].Code) == "ConditionalCheckFailed" {
			return engine.ErrNotFound
		}
	}
	return err
}

func unreadPK(ws string) string { return "WS#" + ws + "#UNREAD" }

// MarkRead takes the chat off the unread tab.
func (st *Store) MarkRead(ctx context.Context, ws, sub string) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String("SET unread = :f REMOVE ipk, isk"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":f": boolean(false)},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// Card is the client card's stored part.
type Card struct {
	Subscriber *engine.Subscriber
	Unread     bool
	Extra      map[string]types.AttributeValue
}

// GetCard reads the client card.
func (st *Store) GetCard(ctx context.Context, ws, id string) (Card, error) {
	item, err := st.profile(ctx, ws, id)
	if err != nil {
		return Card{}, err
	}
	sub, err := decodeSubscriber(ws, item)
	if err != nil {
		return Card{}, err
	}
	return Card{Subscriber: sub, Unread: boolAttr(item, "unread"), Extra: item}, nil
}

// JourneyEntry is one finished step as the journey shows it.
type JourneyEntry struct {
	Record engine.StepRecord
}

// Journey pages through a subscriber's finished steps, oldest first (by the
// start of the attempt that took effect, then step id).
//
// It reads the subscriber's step records from the table and orders them
// here: an index in that order would cost every step a second write unit,
// while a journey is read only when someone opens it. Records expire (TTL),
// so a subscriber's partition holds a bounded number of them.
func (st *Store) Journey(ctx context.Context, ws, sub string, p Page) ([]engine.StepRecord, *string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	pk := subPK(ws, sub)
	after := ""
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor, "pk", "jsk")
		if err != nil {
			return nil, nil, err
		}
		if str(c, "pk") != pk {
			return nil, nil, ErrBadCursor // a cursor of another subscriber
		}
		after = str(c, "jsk")
	}
	// Step records, and the chat messages that are records of the steps that
	// sent them (those have a status).
	var items []map[string]types.AttributeValue
	for _, prefix := range []string{"STEP#", "CHAT#"} {
		got, err := st.queryAll(ctx, &dynamodb.QueryInput{
			KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
			FilterExpression:          aws.String("attribute_exists(#st) AND #st <> :prog"),
			ExpressionAttributeNames:  map[string]string{"#st": "status"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(pk), ":p": s(prefix), ":prog": s(stepInProgress)},
		})
		if err != nil {
			return nil, nil, err
		}
		items = append(items, got...)
	}
	type entry struct {
		order string
		rec   *engine.StepRecord
	}
	entries := make([]entry, 0, len(items))
	for _, it := range items {
		rec, err := decodeStepRecord(it)
		if err != nil {
			return nil, nil, err
		}
		add := func(r *engine.StepRecord) {
			if order := ts(r.StartedAt) + "#" + r.Step.ID; order > after {
				entries = append(entries, entry{order, r})
			}
		}
		add(rec)
		for i := range rec.Inline {
			add(&rec.Inline[i]) // the delays that ran within the step are steps of their own
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].order < entries[j].order })
	var next *string
	if len(entries) > limit {
		entries = entries[:limit]
		next = encodeCursor(map[string]types.AttributeValue{"pk": s(pk), "jsk": s(entries[limit-1].order)})
	}
	out := make([]engine.StepRecord, len(entries))
	for i, e := range entries {
		out[i] = *e.rec
	}
	return out, next, nil
}

// Chat pages through a subscriber's chat, oldest first. A bot message is
// the record of the step that sends it: one claimed but not sent yet (it
// has no direction) is not shown.
func (st *Store) Chat(ctx context.Context, ws, sub string, p Page) ([]engine.ChatMessage, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		FilterExpression:       aws.String("attribute_exists(direction)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(subPK(ws, sub)), ":p": s("CHAT#"),
		},
		ConsistentRead: aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]engine.ChatMessage, 0, len(items))
	for _, it := range items {
		out = append(out, decodeChat(it))
	}
	return out, next, nil
}

func decodeChat(it map[string]types.AttributeValue) engine.ChatMessage {
	return engine.ChatMessage{
		ID: str(it, "id"), Direction: str(it, "direction"), Text: str(it, "text"),
		Tunnel: str(it, "tunnel"), Block: str(it, "block"), StepID: str(it, "step_id"),
		Operator: str(it, "operator"), Delivery: str(it, "delivery"), CreatedAt: parseTS(str(it, "created_at")),
	}
}

// UnreadChats pages through the unread tab, most recent first.
func (st *Store) UnreadChats(ctx context.Context, ws string, p Page) ([]*engine.Subscriber, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String("Inbox"),
		KeyConditionExpression:    aws.String("ipk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(unreadPK(ws))},
		ScanIndexForward:          aws.Bool(false),
	}, p, "pk", "sk", "ipk", "isk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]*engine.Subscriber, 0, len(items))
	for _, it := range items {
		sub, err := decodeSubscriber(ws, it)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, sub)
	}
	return out, next, nil
}

// LastChatMessage answers the newest message of a chat, if any.
func (st *Store) LastChatMessage(ctx context.Context, ws, sub string) (*engine.ChatMessage, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(st.table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		FilterExpression:       aws.String("attribute_exists(direction)"), // not a message being sent
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(subPK(ws, sub)), ":p": s("CHAT#"),
		},
		ScanIndexForward: aws.Bool(false), Limit: aws.Int32(5), ConsistentRead: aws.Bool(true),
	}
	for {
		out, err := st.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		if len(out.Items) > 0 {
			m := decodeChat(out.Items[0])
			return &m, nil
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Mention is an operator's mention in a chat.
type Mention struct {
	Message      engine.ChatMessage
	SubscriberID string
}

func mentionPK(ws, op string) string { return "WS#" + ws + "#OP#" + op + "#MENTIONS" }

// Mentions pages through an operator's mentions, newest first.
func (st *Store) Mentions(ctx context.Context, ws, op string, p Page) ([]Mention, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String("Inbox"),
		KeyConditionExpression:    aws.String("ipk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(mentionPK(ws, op))},
		ScanIndexForward:          aws.Bool(false),
	}, p, "pk", "sk", "ipk", "isk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]Mention, 0, len(items))
	for _, it := range items {
		sub := strings.TrimPrefix(str(it, "pk"), "WS#"+ws+"#SUB#")
		out = append(out, Mention{Message: decodeChat(it), SubscriberID: sub})
	}
	return out, next, nil
}

// FindSubscriber answers the subscriber of a channel identity, without
// creating one; ErrNotFound when nobody has it.
func (st *Store) FindSubscriber(ctx context.Context, ws string, id engine.Identity) (string, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(identityPK(ws, id.Channel, id.ExternalID), "IDENTITY"), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", err
	}
	sub := str(out.Item, "sub")
	if sub == "" {
		return "", engine.ErrNotFound
	}
	return sub, nil
}

func directoryPK(ws string) string { return "WS#" + ws + "#SUBSCRIBERS" }

// DirectoryEntry is a subscriber as the directory lists it.
type DirectoryEntry struct {
	ID, FirstName, LastName, Email, Phone string
	Channels, Tags                        []string
	CreatedAt                             time.Time
}

// directoryIndex is the index of the subscribers directory. It holds what a
// search by text reads (names, email, phone, channels) and not the tags: a
// tag step then writes the profile alone, where a projected tag set made
// every changed set rewrite the index entry too (1 WRU more per tag step).
// The tags of a listed page are read from the profiles instead.
const directoryIndex = "SubscriberSearch"

// legacyDirectoryIndex is the directory index of stacks deployed before
// directoryIndex, read only while the new one is being built (the template's
// KeepLegacyDirectoryIndex).
const legacyDirectoryIndex = "Directory"

// backfilling tells a query refused because its index is still being built.
func backfilling(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "ValidationException" &&
		strings.Contains(strings.ToLower(api.ErrorMessage()), "backfilling")
}

// SearchSubscribers lists the workspace's subscribers, newest first, whose
// first or last name or email contains q (any case), whose phone contains q,
// whose channel identity ("channel:external_id") or id is q; and who have tag.
// Empty q and tag list everyone. It reads the directory index (filtered by q)
// and the listed subscribers' tags from their profiles (filtered by tag),
// until a full page of matches or the directory's end.
func (st *Store) SearchSubscribers(ctx context.Context, ws, q, tag string, p Page) ([]DirectoryEntry, *string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(st.table),
		IndexName:                 aws.String(directoryIndex),
		KeyConditionExpression:    aws.String("dpk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(directoryPK(ws))},
		ScanIndexForward:          aws.Bool(false),
	}
	if q = strings.TrimSpace(q); q != "" {
		in.FilterExpression = aws.String("contains(#fn, :ql) OR contains(#ln, :ql) OR contains(#em, :ql) OR contains(#phone, :q) OR contains(#channels, :q) OR #id = :q")
		in.ExpressionAttributeNames = map[string]string{"#fn": "fn_l", "#ln": "ln_l", "#em": "em_l", "#phone": "phone", "#channels": "channels", "#id": "id"}
		in.ExpressionAttributeValues[":q"] = s(q)
		in.ExpressionAttributeValues[":ql"] = s(strings.ToLower(q))
	}
	cursorKeys := []string{"pk", "sk", "dpk", "dsk"}
	start, err := decodeCursor(p.Cursor, cursorKeys...)
	if err != nil {
		return nil, nil, err
	}
	if start != nil && !cursorFits(in, start) {
		return nil, nil, ErrBadCursor
	}
	in.ExclusiveStartKey = start
	// One match more than the page is looked for, so the last page says so
	// with a null cursor even when it is exactly full. A request looks at
	// about maxScanned entries at most: a rare match over a large directory then
	// answers a short page whose cursor goes on where it stopped, instead of
	// reading the whole directory in one request.
	var out []DirectoryEntry
	var last []map[string]types.AttributeValue // each match's key, for the cursor
	scanned := 0
	for {
		want := limit + 1 - len(out)
		if tag != "" {
			want = max(want, 100) // most entries may lack the tag: read a fuller page
		}
		in.Limit = aws.Int32(int32(max(1, min(want, st.searchBudget()-scanned))))
		res, err := st.db.Query(ctx, in)
		if err != nil && backfilling(err) && aws.ToString(in.IndexName) == directoryIndex {
			// The first deploy of a two-step upgrade (KeepLegacyDirectoryIndex):
			// the new index is still being built; the old one answers meanwhile.
			in.IndexName = aws.String(legacyDirectoryIndex)
			res, err = st.db.Query(ctx, in)
		}
		if err != nil {
			return nil, nil, err
		}
		tags, err := st.profileTags(ctx, ws, res.Items)
		if err != nil {
			return nil, nil, err
		}
		for _, it := range res.Items {
			e := directoryEntry(it)
			e.Tags = tags[e.ID]
			if tag != "" && !slices.Contains(e.Tags, tag) {
				continue
			}
			out = append(out, e)
			last = append(last, lastKey(it, cursorKeys))
			if len(out) > limit {
				return out[:limit], encodeCursor(last[limit-1]), nil
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
		if scanned += int(res.ScannedCount); scanned >= st.searchBudget() {
			// A short page: the cursor is where the reading stopped.
			return out, encodeCursor(lastKey(res.LastEvaluatedKey, cursorKeys)), nil
		}
	}
}

// maxScanned bounds the directory entries one search request looks at.
const maxScanned = 1000

func (st *Store) searchBudget() int {
	if st.scanBudget > 0 {
		return st.scanBudget
	}
	return maxScanned
}

func directoryEntry(it map[string]types.AttributeValue) DirectoryEntry {
	e := DirectoryEntry{
		ID: str(it, "id"), FirstName: str(it, "first_name"), LastName: str(it, "last_name"),
		Email: str(it, "email"), Phone: str(it, "phone"), CreatedAt: parseTS(str(it, "created_at")),
		Channels: []string{}, Tags: []string{},
	}
	if v, ok := it["channels"].(*types.AttributeValueMemberSS); ok {
		e.Channels = append(e.Channels, v.Value...)
		sort.Strings(e.Channels)
	}
	return e
}

// profileTags reads the tags of the directory entries' subscribers from their
// profiles (one BatchGetItem per 100), sorted; a subscriber without tags (or
// whose profile is gone) has an empty list.
func (st *Store) profileTags(ctx context.Context, ws string, entries []map[string]types.AttributeValue) (map[string][]string, error) {
	out := make(map[string][]string, len(entries))
	keys := make([]map[string]types.AttributeValue, 0, len(entries))
	for _, it := range entries {
		id := str(it, "id")
		out[id] = []string{}
		keys = append(keys, key(subPK(ws, id), profileSK))
	}
	// Eventually consistent (half the read units): a tag changed a moment
	// ago may show on the next search.
	err := st.batchGetWith(ctx, keys, "id, tags", nil, false, func(it map[string]types.AttributeValue) error {
		if v, ok := it["tags"].(*types.AttributeValueMemberSS); ok {
			t := append([]string{}, v.Value...)
			sort.Strings(t)
			out[str(it, "id")] = t
		}
		return nil
	})
	return out, err
}
