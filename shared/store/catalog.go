package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/connector"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// Catalog kinds and their sort-key prefixes.
const (
	KindTag         = "TAG"
	KindField       = "FIELD"
	KindVariable    = "VAR"
	KindSalesPlan   = "PLAN"
	KindOperator    = "OP"
	KindEmailBot    = "BOT"
	KindLeadSource  = "LGT"
	KindIntegration = "INTEG"
	KindChannel     = "CHANNEL"
	KindTunnel      = "TUNNEL"
)

func tunnelSK(id string) string { return KindTunnel + "#" + id }

// Entity is a catalog entry: its public body and, apart, its secrets.
type Entity struct {
	Kind      string
	ID        string
	Doc       json.RawMessage // the public body as the API shows it
	Secret    json.RawMessage // write-only parts (client secrets, tokens); never shown
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HashKey is how API keys are stored: a SHA-256 of a random key needs no salt.
func HashKey(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])
}

// CreateWorkspace makes a workspace, its API key and its default tunnel.
func (st *Store) CreateWorkspace(ctx context.Context, ws, name, apiKey string) error {
	now := st.now()
	_, err := st.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(st.table), ConditionExpression: aws.String("attribute_not_exists(pk)"),
			Item: map[string]types.AttributeValue{"pk": s(wsPK(ws)), "sk": s("META"), "name": s(name), "created_at": s(ts(now))}}},
		{Put: &types.Put{TableName: aws.String(st.table), ConditionExpression: aws.String("attribute_not_exists(pk)"),
			Item: map[string]types.AttributeValue{"pk": s(keyPK(HashKey(apiKey))), "sk": s("KEY"), "ws": s(ws), "created_at": s(ts(now))}}},
		{Put: &types.Put{TableName: aws.String(st.table), ConditionExpression: aws.String("attribute_not_exists(pk)"),
			Item: tunnelItem(ws, "default", &tunnel.Tunnel{Name: "Default tunnel"}, nil, now, now)}},
	}})
	var tc *types.TransactionCanceledException
	if asErr(err, &tc) {
		return fmt.Errorf("workspace or key exists: %w", ErrConflict)
	}
	return err
}

// WorkspaceForKey answers the workspace of an API key, or ErrNotFound.
func (st *Store) WorkspaceForKey(ctx context.Context, apiKey string) (string, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(keyPK(HashKey(apiKey)), "KEY"),
	})
	if err != nil {
		return "", err
	}
	if len(out.Item) == 0 || boolAttr(out.Item, "revoked") {
		return "", engine.ErrNotFound
	}
	return str(out.Item, "ws"), nil
}

// PutEntity creates or replaces a catalog entry, keeping its creation time.
func (st *Store) PutEntity(ctx context.Context, ws string, e Entity) (Entity, error) {
	now := st.now()
	vals := map[string]types.AttributeValue{
		":id": s(e.ID), ":doc": s(string(e.Doc)), ":now": s(ts(now)),
	}
	expr := "SET id = :id, doc = :doc, updated_at = :now, created_at = if_not_exists(created_at, :now)"
	if len(e.Secret) > 0 {
		expr += ", secret = :secret"
		vals[":secret"] = s(string(e.Secret))
	}
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), e.Kind+"#"+e.ID),
		UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return Entity{}, err
	}
	return decodeEntity(e.Kind, out.Attributes), nil
}

// GetEntity reads a catalog entry, or ErrNotFound.
func (st *Store) GetEntity(ctx context.Context, ws, kind, id string) (Entity, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), kind+"#"+id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Entity{}, err
	}
	if len(out.Item) == 0 {
		return Entity{}, engine.ErrNotFound
	}
	return decodeEntity(kind, out.Item), nil
}

// DeleteEntity removes a catalog entry, or answers ErrNotFound.
func (st *Store) DeleteEntity(ctx context.Context, ws, kind, id string) error {
	_, err := st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), kind+"#"+id),
		ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// ListEntities pages through the entries of one kind, ordered by id.
func (st *Store) ListEntities(ctx context.Context, ws, kind string, p Page) ([]Entity, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(kind + "#"),
		},
		ConsistentRead: aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]Entity, 0, len(items))
	for _, it := range items {
		out = append(out, decodeEntity(kind, it))
	}
	return out, next, nil
}

func decodeEntity(kind string, item map[string]types.AttributeValue) Entity {
	e := Entity{
		Kind: kind, ID: str(item, "id"), Doc: json.RawMessage(str(item, "doc")),
		CreatedAt: parseTS(str(item, "created_at")), UpdatedAt: parseTS(str(item, "updated_at")),
	}
	if sec := str(item, "secret"); sec != "" {
		e.Secret = json.RawMessage(sec)
	}
	return e
}

// Variables answers the workspace's variables, key -> value (secret ones
// included: they render like any other).
func (st *Store) Variables(ctx context.Context, ws string) (map[string]string, error) {
	vars, _, err := st.VariablesAndSecrets(ctx, ws)
	return vars, err
}

// VariablesAndSecrets answers the variables and the values of the secret
// ones, which previews, checks and journeys show as ***.
func (st *Store) VariablesAndSecrets(ctx context.Context, ws string) (map[string]string, []string, error) {
	items, err := st.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(KindVariable + "#"),
		},
	})
	if err != nil {
		return nil, nil, err
	}
	vars := make(map[string]string, len(items))
	var secrets []string
	for _, it := range items {
		var body struct {
			Value  string `json:"value"`
			Secret bool   `json:"secret"`
		}
		_ = json.Unmarshal([]byte(str(it, "doc")), &body)
		if body.Secret {
			var sec struct {
				Value string `json:"value"`
			}
			_ = json.Unmarshal([]byte(str(it, "secret")), &sec)
			body.Value = sec.Value
			if sec.Value != "" {
				secrets = append(secrets, sec.Value)
			}
		}
		vars[str(it, "id")] = body.Value
	}
	return vars, secrets, nil
}

// Catalog answers every catalog id of a workspace, for validating tunnels and
// typing the fields an external request maps into.
func (st *Store) Catalog(ctx context.Context, ws string) (tunnel.Catalog, error) {
	return st.catalog(ctx, ws, false)
}

// CatalogForSave is Catalog plus the stored tunnel definitions (Saved), which
// saving a tunnel needs to find START loops across tunnels. Only saves pay for
// reading every definition; steps use Catalog.
func (st *Store) CatalogForSave(ctx context.Context, ws string) (tunnel.Catalog, error) {
	return st.catalog(ctx, ws, true)
}

func (st *Store) catalog(ctx context.Context, ws string, definitions bool) (tunnel.Catalog, error) {
	projection := "sk, doc, blocks"
	if definitions {
		projection += ", def"
	}
	items, err := st.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(wsPK(ws))},
		ProjectionExpression:      aws.String(projection),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return tunnel.Catalog{}, err
	}
	c := tunnel.Catalog{
		Tags: map[string]bool{}, Fields: map[string]string{}, Variables: map[string]bool{},
		SalesPlans: map[string]bool{}, Operators: map[string]bool{}, EmailBots: map[string]bool{},
		LeadSources: map[string]bool{}, Integrations: map[string]bool{}, Tunnels: map[string][]string{},
	}
	if definitions {
		c.Saved = map[string]*tunnel.Tunnel{}
	}
	for _, it := range items {
		kind, id, _ := strings.Cut(str(it, "sk"), "#")
		switch kind {
		case KindTag:
			c.Tags[id] = true
		case KindField:
			var f struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal([]byte(str(it, "doc")), &f)
			c.Fields[id] = f.Type
		case KindVariable:
			c.Variables[id] = true
		case KindSalesPlan:
			c.SalesPlans[id] = true
		case KindOperator:
			c.Operators[id] = true
		case KindEmailBot:
			c.EmailBots[id] = true
		case KindLeadSource:
			c.LeadSources[id] = true
		case KindIntegration:
			c.Integrations[id] = true
		case KindTunnel:
			var blocks []string
			if v, ok := it["blocks"].(*types.AttributeValueMemberSS); ok {
				blocks = v.Value
			}
			c.Tunnels[id] = blocks
			if def := str(it, "def"); definitions && def != "" {
				var t tunnel.Tunnel
				if err := json.Unmarshal([]byte(def), &t); err != nil {
					return tunnel.Catalog{}, fmt.Errorf("tunnel %q: %w", id, err)
				}
				c.Saved[id] = &t
			}
		}
	}
	return c, nil
}

// TunnelRecord is a stored tunnel with its bookkeeping.
type TunnelRecord struct {
	ID          string
	Def         *tunnel.Tunnel
	Version     int
	Subscribers int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func tunnelItem(ws, id string, t *tunnel.Tunnel, blocks []string, created, updated time.Time) map[string]types.AttributeValue {
	def, _ := json.Marshal(t)
	item := map[string]types.AttributeValue{
		"pk": s(wsPK(ws)), "sk": s(tunnelSK(id)), "id": s(id), "def": s(string(def)), "name": s(t.Name),
		"version": n(1), "subscribers": n(0), "created_at": s(ts(created)), "updated_at": s(ts(updated)),
	}
	if len(blocks) > 0 {
		item["blocks"] = &types.AttributeValueMemberSS{Value: blocks}
	}
	return item
}

// PutTunnel saves a validated tunnel definition, bumping its version.
func (st *Store) PutTunnel(ctx context.Context, ws, id string, t *tunnel.Tunnel) (TunnelRecord, error) {
	def, err := json.Marshal(t)
	if err != nil {
		return TunnelRecord{}, err
	}
	now := st.now()
	expr := "SET id = :id, def = :def, #name = :name, updated_at = :now, created_at = if_not_exists(created_at, :now), " +
		"subscribers = if_not_exists(subscribers, :zero) ADD version :one"
	vals := map[string]types.AttributeValue{
		":id": s(id), ":def": s(string(def)), ":name": s(t.Name), ":now": s(ts(now)), ":zero": n(0), ":one": n(1),
	}
	blocks := make([]string, 0, len(t.Blocks))
	for _, b := range t.Blocks {
		blocks = append(blocks, b.ID)
	}
	if len(blocks) > 0 {
		expr = strings.Replace(expr, "SET ", "SET blocks = :blocks, ", 1)
		vals[":blocks"] = &types.AttributeValueMemberSS{Value: blocks}
	} else {
		expr += " REMOVE blocks"
	}
	out, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), tunnelSK(id)),
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: map[string]string{"#name": "name"},
		ExpressionAttributeValues: vals, ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return TunnelRecord{}, err
	}
	r, err := decodeTunnel(out.Attributes)
	if err != nil {
		return TunnelRecord{}, err
	}
	return r, st.addRecorded(ctx, ws, []*TunnelRecord{&r})
}

// GetTunnel reads a tunnel with its bookkeeping.
func (st *Store) GetTunnel(ctx context.Context, ws, id string) (TunnelRecord, error) {
	r, err := st.tunnelItem(ctx, ws, id)
	if err != nil {
		return TunnelRecord{}, err
	}
	return r, st.addRecorded(ctx, ws, []*TunnelRecord{&r})
}

func (st *Store) tunnelItem(ctx context.Context, ws, id string) (TunnelRecord, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(wsPK(ws), tunnelSK(id)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return TunnelRecord{}, err
	}
	if len(out.Item) == 0 {
		return TunnelRecord{}, engine.ErrNotFound
	}
	return decodeTunnel(out.Item)
}

// addRecorded adds the subscribers counted in the tunnels' stats shards to
// the count kept on the tunnel item (by earlier versions).
func (st *Store) addRecorded(ctx context.Context, ws string, recs []*TunnelRecord) error {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	counts, err := st.recordedCounts(ctx, ws, ids)
	if err != nil {
		return err
	}
	for _, r := range recs {
		r.Subscribers += int(counts[r.ID])
	}
	return nil
}

// Tunnel reads a tunnel definition (the engine's Tunnels port; no counts).
func (st *Store) Tunnel(ctx context.Context, ws, id string) (*tunnel.Tunnel, error) {
	r, err := st.tunnelItem(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	return r.Def, nil
}

// ListTunnels pages through the tunnels, ordered by id.
func (st *Store) ListTunnels(ctx context.Context, ws string, p Page) ([]TunnelRecord, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(KindTunnel + "#"),
		},
		ConsistentRead: aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]TunnelRecord, 0, len(items))
	for _, it := range items {
		r, err := decodeTunnel(it)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, r)
	}
	ptrs := make([]*TunnelRecord, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := st.addRecorded(ctx, ws, ptrs); err != nil {
		return nil, nil, err
	}
	return out, next, nil
}

// DeleteTunnel removes a tunnel and its counters, or answers ErrNotFound.
func (st *Store) DeleteTunnel(ctx context.Context, ws, id string) error {
	if err := st.DeleteEntity(ctx, ws, KindTunnel, id); err != nil {
		return err
	}
	return st.deleteStats(ctx, ws, id)
}

func decodeTunnel(item map[string]types.AttributeValue) (TunnelRecord, error) {
	var t tunnel.Tunnel
	if err := json.Unmarshal([]byte(str(item, "def")), &t); err != nil {
		return TunnelRecord{}, fmt.Errorf("stored tunnel %s: %w", str(item, "id"), err)
	}
	return TunnelRecord{
		ID: str(item, "id"), Def: &t, Version: int(num(item, "version")), Subscribers: int(num(item, "subscribers")),
		CreatedAt: parseTS(str(item, "created_at")), UpdatedAt: parseTS(str(item, "updated_at")),
	}, nil
}

// TagIDs answers the ids of the workspace's tags.
func (st *Store) TagIDs(ctx context.Context, ws string) (map[string]bool, error) {
	items, err := st.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(KindTag + "#"),
		},
		ProjectionExpression: aws.String("id"),
	})
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(items))
	for _, it := range items {
		ids[str(it, "id")] = true
	}
	return ids, nil
}

// Channel answers the workspace's channel connector with its secret.
func (st *Store) Channel(ctx context.Context, ws string) (connector.Channel, error) {
	e, err := st.GetEntity(ctx, ws, KindChannel, "default")
	if err != nil {
		return connector.Channel{}, err
	}
	var pub struct {
		URL string `json:"url"`
	}
	var sec struct {
		Secret string `json:"secret"`
	}
	_ = json.Unmarshal(e.Doc, &pub)
	_ = json.Unmarshal(e.Secret, &sec)
	return connector.Channel{URL: pub.URL, Secret: sec.Secret}, nil
}
