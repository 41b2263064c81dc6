package store

// amoCRM integrations: the catalog item of an integration also holds its
// OAuth tokens, versioned for the refresh protocol of package amocrm, and the
// crm function's bookkeeping (the deal intents, the CRM ids on the profile).
//
// Layout of the integration item (pk WS#ws, sk INTEG#id), besides the
// catalog's id, doc, created_at and updated_at:
//
//	secret           {"client_secret": ...} (write-only, as every catalog secret)
//	amo_access       the access token
//	amo_refresh      the refresh token (absent for a long-lived token)
//	amo_expires      when the access token expires (absent: unknown)
//	amo_ver          the token version: +1 on every refresh and every (re)connect
//	amo_lease_ver    the version a refresh lease was taken for
//	amo_lease_until  when that lease stops blocking others (unix ms)
//	amo_revoked      why amoCRM refused the tokens (absent: not revoked)
//	amo_spent        hashes of the last refresh tokens a refresh spent
//
// The tokens are attributes of their own, not part of the secret JSON, so a
// refresh writes them with one conditional update and never races a catalog
// PUT that changes the name or the client secret: each write touches only
// what it owns.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/engine"
)

// Attribute names of the token state (see the layout above).
const (
	attrAccess     = "amo_access"
	attrRefresh    = "amo_refresh"
	attrExpires    = "amo_expires"
	attrTokVer     = "amo_ver"
	attrLeaseVer   = "amo_lease_ver"
	attrLeaseUntil = "amo_lease_until"
	attrRevoked    = "amo_revoked"
	attrSpent      = "amo_spent"

	// keepSpent is how many spent refresh tokens an integration remembers, so
	// a PUT of tokens that a refresh has already rotated away is refused.
	keepSpent = 20
)

// tokenNames aliases the token attributes for expressions. DynamoDB refuses
// an alias an expression does not use, so each expression takes its own.
var tokenNames = map[string]string{
	"#acc": attrAccess, "#ref": attrRefresh, "#exp": attrExpires, "#ver": attrTokVer,
	"#lv": attrLeaseVer, "#lu": attrLeaseUntil, "#rev": attrRevoked, "#spent": attrSpent,
}

// aliases answers the tokenNames entries of the given aliases.
func aliases(as ...string) map[string]string {
	out := make(map[string]string, len(as))
	for _, a := range as {
		out[a] = tokenNames[a]
	}
	return out
}

func integrationKey(ws, id string) map[string]types.AttributeValue {
	return key(wsPK(ws), KindIntegration+"#"+id)
}

// ErrSpentToken: a refresh token offered in a catalog PUT was already spent
// by a refresh (amoCRM's refresh tokens are single use). Storing it would
// overwrite the newer, working tokens with dead ones.
var ErrSpentToken = errors.New("this refresh token was already used by a token refresh; the stored tokens are newer")

// TokenPatch is what a catalog PUT says about the tokens. An empty field
// keeps the stored value; ExpiresAt belongs to AccessToken and applies with it
// (zero: unknown).
type TokenPatch struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
}

func (p TokenPatch) empty() bool { return p.AccessToken == "" && p.RefreshToken == "" }

// TokenState is what may be shown of an integration's tokens: never the
// tokens themselves.
type TokenState struct {
	Connected bool      // holds tokens amoCRM has not refused
	ExpiresAt time.Time // of the access token; zero when unknown or none
	Revoked   bool      // amoCRM refused them: the user must reconnect
	Version   uint64    // 0 when no tokens were ever stored
}

func tokenState(item map[string]types.AttributeValue) TokenState {
	st := TokenState{Revoked: str(item, attrRevoked) != "", Version: uint64(num(item, attrTokVer))}
	st.Connected = (str(item, attrAccess) != "" || str(item, attrRefresh) != "") && !st.Revoked
	if v := str(item, attrExpires); v != "" && str(item, attrAccess) != "" {
		st.ExpiresAt = parseTS(v)
	}
	return st
}

// Integration is an integration's catalog entry with its token state.
type Integration struct {
	Entity Entity
	Tokens TokenState
}

// PutIntegration creates or replaces an integration's catalog entry in one
// write: the public doc, the client secret when given (e.Secret; absent keeps
// the stored one) and, when the patch carries a token, the tokens. New tokens
// are a (re)connect: the token version moves on, any refresh lease and
// revoked mark are cleared, so every process drops what it cached. The same
// tokens again (a repeated PUT) change nothing, so they cannot undo a refresh
// that happened meanwhile; a refresh token that a refresh already spent is
// refused with ErrSpentToken.
func (st *Store) PutIntegration(ctx context.Context, ws string, e Entity, p TokenPatch) (Integration, error) {
	for attempt := 0; ; attempt++ {
		out, err := st.putIntegration(ctx, ws, e, p)
		if !errors.Is(err, errTokenRace) || attempt >= 4 {
			return out, err
		}
		// A refresh moved the version between our read and our write: look again.
	}
}

var errTokenRace = errors.New("token version changed meanwhile")

func (st *Store) putIntegration(ctx context.Context, ws string, e Entity, p TokenPatch) (Integration, error) {
	now := st.now()
	names := map[string]string{"#doc": "doc", "#id": "id", "#u": "updated_at", "#c": "created_at"}
	vals := map[string]types.AttributeValue{":id": s(e.ID), ":doc": s(string(e.Doc)), ":now": s(ts(now))}
	sets := []string{"#id = :id", "#doc = :doc", "#u = :now", "#c = if_not_exists(#c, :now)"}
	var removes []string
	var cond string
	if len(e.Secret) > 0 {
		names["#sec"] = "secret"
		vals[":sec"] = s(string(e.Secret))
		sets = append(sets, "#sec = :sec")
	}
	if !p.empty() {
		old, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(st.table), Key: integrationKey(ws, e.ID), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return Integration{}, err
		}
		item := old.Item
		if p.RefreshToken != "" && p.RefreshToken != str(item, attrRefresh) && slices.Contains(stringList(item, attrSpent), tokenHash(p.RefreshToken)) {
			return Integration{}, ErrSpentToken
		}
		access, refresh, expires := str(item, attrAccess), str(item, attrRefresh), str(item, attrExpires)
		if p.AccessToken != "" {
			access, expires = p.AccessToken, ""
			if !p.ExpiresAt.IsZero() {
				expires = ts(p.ExpiresAt)
			}
		}
		if p.RefreshToken != "" {
			refresh = p.RefreshToken
		}
		changed := access != str(item, attrAccess) || refresh != str(item, attrRefresh) || expires != str(item, attrExpires)
		if changed || str(item, attrRevoked) != "" || num(item, attrTokVer) == 0 {
			// A (re)connect: new version, no lease, not revoked.
			for k, v := range aliases("#ver", "#lv", "#lu", "#rev", "#acc", "#ref", "#exp") {
				names[k] = v
			}
			seen := num(item, attrTokVer)
			vals[":next"] = n(seen + 1)
			sets = append(sets, "#ver = :next")
			removes = append(removes, "#lv", "#lu", "#rev")
			for _, f := range []struct{ alias, val string }{{"#acc", access}, {"#ref", refresh}, {"#exp", expires}} {
				if f.val == "" {
					removes = append(removes, f.alias)
					continue
				}
				ph := ":" + f.alias[1:]
				vals[ph] = s(f.val)
				sets = append(sets, f.alias+" = "+ph)
			}
			// Conditional on the version we read, so a refresh that lands
			// between our read and our write is not silently undone.
			if seen == 0 {
				cond = "attribute_not_exists(#ver)"
			} else {
				cond = "#ver = :seen"
				vals[":seen"] = n(seen)
			}
		}
	}
	expr := "SET " + strings.Join(sets, ", ")
	if len(removes) > 0 {
		expr += " REMOVE " + strings.Join(removes, ", ")
	}
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: integrationKey(ws, e.ID),
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: vals,
		ReturnValues: types.ReturnValueAllNew,
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	out, err := st.db.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return Integration{}, errTokenRace
	}
	if err != nil {
		return Integration{}, err
	}
	return Integration{Entity: decodeEntity(KindIntegration, out.Attributes), Tokens: tokenState(out.Attributes)}, nil
}

// GetIntegration reads an integration with its token state, or ErrNotFound.
func (st *Store) GetIntegration(ctx context.Context, ws, id string) (Integration, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: integrationKey(ws, id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Integration{}, err
	}
	if len(out.Item) == 0 {
		return Integration{}, engine.ErrNotFound
	}
	return Integration{Entity: decodeEntity(KindIntegration, out.Item), Tokens: tokenState(out.Item)}, nil
}

// ListIntegrations pages through the integrations with their token state,
// ordered by id (the cursor is ListEntities' own).
func (st *Store) ListIntegrations(ctx context.Context, ws string, p Page) ([]Integration, *string, error) {
	items, next, err := st.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(KindIntegration + "#"),
		},
		ConsistentRead: aws.Bool(true),
	}, p, "pk", "sk")
	if err != nil {
		return nil, nil, err
	}
	out := make([]Integration, 0, len(items))
	for _, it := range items {
		out = append(out, Integration{Entity: decodeEntity(KindIntegration, it), Tokens: tokenState(it)})
	}
	return out, next, nil
}

// AmoAccount is what a client of an integration's amoCRM account needs
// besides the tokens. Rev changes whenever the integration is saved, so a
// cached client is rebuilt after an edit.
type AmoAccount struct {
	ID           string
	BaseURL      string
	ClientID     string
	ClientSecret string
	RedirectURI  string
	Rev          string
}

// String never shows the client secret.
func (a AmoAccount) String() string {
	return fmt.Sprintf("store.AmoAccount{ID: %q, BaseURL: %q, ClientID: %q, Rev: %q}", a.ID, a.BaseURL, a.ClientID, a.Rev)
}

// GoString keeps %#v from printing the secret.
func (a AmoAccount) GoString() string { return a.String() }

// AmoAccount reads an integration's account settings, or ErrNotFound.
func (st *Store) AmoAccount(ctx context.Context, ws, id string) (AmoAccount, error) {
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: integrationKey(ws, id), ConsistentRead: aws.Bool(true),
		ProjectionExpression:     aws.String("#id, #doc, #sec, #u"),
		ExpressionAttributeNames: map[string]string{"#id": "id", "#doc": "doc", "#sec": "secret", "#u": "updated_at"},
	})
	if err != nil {
		return AmoAccount{}, err
	}
	if len(out.Item) == 0 {
		return AmoAccount{}, engine.ErrNotFound
	}
	var pub struct {
		BaseURL     string `json:"base_url"`
		ClientID    string `json:"client_id"`
		RedirectURI string `json:"redirect_uri"`
	}
	var sec struct {
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(str(out.Item, "doc")), &pub); err != nil {
		return AmoAccount{}, fmt.Errorf("integration %s: stored doc: %w", id, err)
	}
	if raw := str(out.Item, "secret"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &sec); err != nil {
			return AmoAccount{}, fmt.Errorf("integration %s: stored secret is unreadable", id)
		}
	}
	return AmoAccount{
		ID: id, BaseURL: pub.BaseURL, ClientID: pub.ClientID, ClientSecret: sec.ClientSecret,
		RedirectURI: pub.RedirectURI, Rev: str(out.Item, "updated_at"),
	}, nil
}

// AmoTokens is the amocrm.TokenStore of one integration, shared by every
// process through conditional writes on the integration's item. Safe for
// concurrent use; one per (workspace, integration) per process is enough.
func (st *Store) AmoTokens(ws, id string) *AmoTokenStore {
	return &AmoTokenStore{st: st, ws: ws, id: id}
}

// AmoTokenStore implements amocrm.TokenStore on DynamoDB (see the layout at
// the top of this file and the protocol in package amocrm).
type AmoTokenStore struct {
	st     *Store
	ws, id string

	mu sync.Mutex
	// seen is the newest version Load or SaveRefreshed answered: MarkRevoked
	// marks only that version, so tokens a reconnect stored meanwhile are not
	// marked dead by a refusal of older ones.
	seen uint64
	// loaded remembers, for the version last loaded, the hash of its refresh
	// token and the spent list, so SaveRefreshed can add it to the list.
	loadedVer   uint64
	loadedHash  string
	loadedSpent []string
}

var _ amocrm.TokenStore = (*AmoTokenStore)(nil)

func (tk *AmoTokenStore) key() map[string]types.AttributeValue { return integrationKey(tk.ws, tk.id) }

func (tk *AmoTokenStore) saw(v uint64) {
	tk.mu.Lock()
	if v > tk.seen {
		tk.seen = v
	}
	tk.mu.Unlock()
}

// Load implements amocrm.TokenStore.
func (tk *AmoTokenStore) Load(ctx context.Context) (amocrm.Tokens, string, error) {
	out, err := tk.st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(tk.st.table), Key: tk.key(), ConsistentRead: aws.Bool(true),
		ProjectionExpression:     aws.String("#acc, #ref, #exp, #ver, #rev, #spent"),
		ExpressionAttributeNames: aliases("#acc", "#ref", "#exp", "#ver", "#rev", "#spent"),
	})
	if err != nil {
		return amocrm.Tokens{}, "", err
	}
	item := out.Item
	if len(item) == 0 {
		return amocrm.Tokens{}, "", fmt.Errorf("%w: the integration %q does not exist", amocrm.ErrReconnect, tk.id)
	}
	ver := uint64(num(item, attrTokVer))
	if r := str(item, attrRevoked); r != "" {
		return amocrm.Tokens{}, "", fmt.Errorf("%w: %s", amocrm.ErrReconnect, r)
	}
	t := amocrm.Tokens{AccessToken: str(item, attrAccess), RefreshToken: str(item, attrRefresh)}
	if ver == 0 || (t.AccessToken == "" && t.RefreshToken == "") {
		return amocrm.Tokens{}, "", fmt.Errorf("%w: no amoCRM tokens are stored; connect the integration", amocrm.ErrReconnect)
	}
	if v := str(item, attrExpires); v != "" {
		t.ExpiresAt = parseTS(v)
	}
	if t.AccessToken == "" {
		// Only a refresh token was given: make the client refresh first.
		t.ExpiresAt = time.Unix(1, 0).UTC()
	}
	tk.saw(ver)
	tk.mu.Lock()
	if ver >= tk.loadedVer {
		tk.loadedVer, tk.loadedSpent = ver, stringList(item, attrSpent)
		tk.loadedHash = ""
		if t.RefreshToken != "" {
			tk.loadedHash = tokenHash(t.RefreshToken)
		}
	}
	tk.mu.Unlock()
	return t, strconv.FormatUint(ver, 10), nil
}

func parseVersion(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("amoCRM token store: %q is not a token version", v)
	}
	return n, nil
}

// BeginRefresh implements amocrm.TokenStore: a conditional write takes the
// lease if the version is still `version`, the tokens are not revoked and no
// live lease exists for that version.
func (tk *AmoTokenStore) BeginRefresh(ctx context.Context, version string, lease time.Duration) (bool, error) {
	v, err := parseVersion(version)
	if err != nil {
		return false, err
	}
	now := tk.st.now()
	_, err = tk.st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(tk.st.table), Key: tk.key(),
		UpdateExpression:    aws.String("SET #lv = :v, #lu = :until"),
		ConditionExpression: aws.String("#ver = :v AND attribute_not_exists(#rev) AND (attribute_not_exists(#lu) OR #lv <> :v OR #lu < :now)"),
		ExpressionAttributeNames: map[string]string{
			"#lv": attrLeaseVer, "#lu": attrLeaseUntil, "#ver": attrTokVer, "#rev": attrRevoked,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":v": n(int64(v)), ":until": n(now.Add(lease).UnixMilli()), ":now": n(now.UnixMilli()),
		},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, err
}

// SaveRefreshed implements amocrm.TokenStore: the rotated tokens replace the
// old ones if the version is unchanged and a lease was taken for it (even one
// that ran out: the tokens in hand are the only valid ones). The spent
// refresh token's hash is remembered.
func (tk *AmoTokenStore) SaveRefreshed(ctx context.Context, version string, t amocrm.Tokens) (string, error) {
	v, err := parseVersion(version)
	if err != nil {
		return "", err
	}
	if t.AccessToken == "" {
		return "", errors.New("amoCRM token store: refreshed tokens without an access token")
	}
	names := map[string]string{"#acc": attrAccess, "#ver": attrTokVer, "#lv": attrLeaseVer, "#lu": attrLeaseUntil}
	vals := map[string]types.AttributeValue{":acc": s(t.AccessToken), ":v": n(int64(v)), ":next": n(int64(v + 1))}
	sets := []string{"#acc = :acc", "#ver = :next"}
	removes := []string{"#lv", "#lu"}
	if t.RefreshToken != "" {
		names["#ref"] = attrRefresh
		vals[":ref"] = s(t.RefreshToken)
		sets = append(sets, "#ref = :ref")
	}
	names["#exp"] = attrExpires
	if t.ExpiresAt.IsZero() {
		removes = append(removes, "#exp")
	} else {
		vals[":exp"] = s(ts(t.ExpiresAt))
		sets = append(sets, "#exp = :exp")
	}
	tk.mu.Lock()
	if tk.loadedVer == v && tk.loadedHash != "" {
		spent := append(slices.Clone(tk.loadedSpent), tk.loadedHash)
		if len(spent) > keepSpent {
			spent = spent[len(spent)-keepSpent:]
		}
		names["#spent"] = attrSpent
		vals[":spent"] = stringListValue(spent)
		sets = append(sets, "#spent = :spent")
	}
	tk.mu.Unlock()
	_, err = tk.st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(tk.st.table), Key: tk.key(),
		UpdateExpression:          aws.String("SET " + strings.Join(sets, ", ") + " REMOVE " + strings.Join(removes, ", ")),
		ConditionExpression:       aws.String("#ver = :v AND #lv = :v"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		return "", fmt.Errorf("integration %s: %w", tk.id, amocrm.ErrLeaseLost)
	}
	if err != nil {
		return "", err
	}
	tk.saw(v + 1)
	return strconv.FormatUint(v+1, 10), nil
}

// MarkRevoked implements amocrm.TokenStore. It marks the version this store
// last saw; if a reconnect (or another process's refresh) stored newer tokens
// meanwhile, those are not dead and nothing is marked.
func (tk *AmoTokenStore) MarkRevoked(ctx context.Context, reason string) error {
	if reason == "" {
		reason = "amoCRM refused the tokens"
	}
	tk.mu.Lock()
	seen := tk.seen
	tk.mu.Unlock()
	cond := "attribute_exists(#ver)"
	vals := map[string]types.AttributeValue{":r": s(reason)}
	if seen > 0 {
		cond = "#ver = :seen"
		vals[":seen"] = n(int64(seen))
	}
	_, err := tk.st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(tk.st.table), Key: tk.key(),
		UpdateExpression:          aws.String("SET #rev = :r REMOVE #lv, #lu"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#rev": attrRevoked, "#lv": attrLeaseVer, "#lu": attrLeaseUntil, "#ver": attrTokVer},
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// tokenHash identifies a spent refresh token without keeping it.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:16])
}

func stringList(item map[string]types.AttributeValue, name string) []string {
	l, ok := item[name].(*types.AttributeValueMemberL)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l.Value))
	for _, v := range l.Value {
		if sv, ok := v.(*types.AttributeValueMemberS); ok {
			out = append(out, sv.Value)
		}
	}
	return out
}

func stringListValue(vs []string) types.AttributeValue {
	l := make([]types.AttributeValue, 0, len(vs))
	for _, v := range vs {
		l = append(l, s(v))
	}
	return &types.AttributeValueMemberL{Value: l}
}

// TagNames answers the catalog names of the workspace's tags by id (the
// subscriber holds tag ids; amoCRM is sent the names).
func (st *Store) TagNames(ctx context.Context, ws string) (map[string]string, error) {
	items, err := st.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(wsPK(ws)), ":p": s(KindTag + "#"),
		},
		ProjectionExpression:     aws.String("#id, #doc"),
		ExpressionAttributeNames: map[string]string{"#id": "id", "#doc": "doc"},
	})
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(items))
	for _, it := range items {
		var doc struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal([]byte(str(it, "doc")), &doc)
		if doc.Name == "" {
			doc.Name = str(it, "id")
		}
		names[str(it, "id")] = doc.Name
	}
	return names, nil
}

// SetAmoContact links the subscriber to an amoCRM contact (amo_contact_id).
func (st *Store) SetAmoContact(ctx context.Context, ws, sub string, contactID int64) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String("SET #cid = :cid, #u = :now"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#cid": "amo_contact_id", "#u": "updated_at"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":cid": n(contactID), ":now": s(ts(st.now()))},
	})
	if isConditionFailed(err) {
		return engine.ErrNotFound
	}
	return err
}

// AddAmoLead appends a lead id to the subscriber's amo_lead_ids once (a
// replay adds nothing) and, when contactID is not 0, links that contact.
func (st *Store) AddAmoLead(ctx context.Context, ws, sub string, leadID, contactID int64) error {
	names := map[string]string{"#lids": "amo_lead_ids", "#u": "updated_at"}
	vals := map[string]types.AttributeValue{
		":one": &types.AttributeValueMemberL{Value: []types.AttributeValue{n(leadID)}},
		":lid": n(leadID), ":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
		":now": s(ts(st.now())),
	}
	expr := "SET #lids = list_append(if_not_exists(#lids, :empty), :one), #u = :now"
	if contactID != 0 {
		names["#cid"] = "amo_contact_id"
		vals[":cid"] = n(contactID)
		expr += ", #cid = :cid"
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(pk) AND NOT contains(#lids, :lid)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if !isConditionFailed(err) {
		return err
	}
	// The lead is there already (a replay), or the subscriber is gone.
	if contactID == 0 {
		if _, err := st.profile(ctx, ws, sub); err != nil {
			return err
		}
		return nil
	}
	return st.SetAmoContact(ctx, ws, sub, contactID)
}

// A deal intent is written before amo_deal asks amoCRM to create a lead, keyed
// by the step id; it records the lead once created. A replay that finds an
// intent without a result looks the lead up by the intent's marker instead of
// creating a second one.
func dealIntentKey(ws, stepID string) map[string]types.AttributeValue {
	return key("WS#"+ws+"#AMODEAL#"+stepID, "INTENT")
}

// BeginAmoDeal records the intent to create a deal for a step. resumed is
// false when this call wrote it (nothing can exist in amoCRM yet); true when
// an earlier attempt did, with the lead and contact ids it recorded (0 when it
// recorded none: the lead may or may not exist).
func (st *Store) BeginAmoDeal(ctx context.Context, ws, stepID, marker string) (resumed bool, leadID, contactID int64, err error) {
	now := st.now()
	item := map[string]types.AttributeValue{
		"marker": s(marker), "created_at": s(ts(now)), "expires_at": st.ttl(now),
	}
	for k, v := range dealIntentKey(ws, stepID) {
		item[k] = v
	}
	_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(st.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err == nil {
		return false, 0, 0, nil
	}
	if !isConditionFailed(err) {
		return false, 0, 0, err
	}
	out, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: dealIntentKey(ws, stepID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, 0, 0, err
	}
	return true, num(out.Item, "lead_id"), num(out.Item, "contact_id"), nil
}

// FinishAmoDeal records the lead (and contact) a step's deal intent created.
func (st *Store) FinishAmoDeal(ctx context.Context, ws, stepID string, leadID, contactID int64) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: dealIntentKey(ws, stepID),
		UpdateExpression:         aws.String("SET #l = :l, #c = :c, #f = :now"),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: map[string]string{"#l": "lead_id", "#c": "contact_id", "#f": "finished_at"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":l": n(leadID), ":c": n(contactID), ":now": s(ts(st.now())),
		},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("deal intent of step %s: %w", stepID, engine.ErrNotFound)
	}
	return err
}
