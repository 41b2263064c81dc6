package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// NewAPIKey makes a workspace API key: 256 random bits.
func NewAPIKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "tk_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// catalogKind describes one catalog collection of SPEC section 6.
type catalogKind struct {
	kind      string // store kind
	path      string // /v1/tags
	param     string // id or key
	list      string // the list's array name
	singleton bool
	// input is a new value of the body type to decode into.
	input func() entityInput
}

// entityInput is a catalog body: it validates itself and splits into the
// public document and the write-only secrets.
type entityInput interface {
	validate(v *validator)
	split() (public any, secret any)
}

var catalogKinds = []catalogKind{
	{kind: store.KindTag, path: "/v1/tags", param: "id", list: "tags", input: func() entityInput { return &tagInput{} }},
	{kind: store.KindField, path: "/v1/fields", param: "id", list: "fields", input: func() entityInput { return &fieldInput{} }},
	{kind: store.KindVariable, path: "/v1/variables", param: "key", list: "variables", input: func() entityInput { return &variableInput{} }},
	{kind: store.KindSalesPlan, path: "/v1/sales-plans", param: "id", list: "sales_plans", input: func() entityInput { return &salesPlanInput{} }},
	{kind: store.KindOperator, path: "/v1/operators", param: "id", list: "operators", input: func() entityInput { return &operatorInput{} }},
	{kind: store.KindEmailBot, path: "/v1/email-bots", param: "id", list: "email_bots", input: func() entityInput { return &emailBotInput{} }},
	{kind: store.KindLeadSource, path: "/v1/lead-sources", param: "id", list: "lead_sources", input: func() entityInput { return &leadSourceInput{} }},
	{kind: store.KindIntegration, path: "/v1/integrations", param: "id", list: "integrations", input: func() entityInput { return &integrationInput{} }},
	{kind: store.KindChannel, path: "/v1/channel", singleton: true, input: func() entityInput { return &channelInput{} }},
}

// validator collects field errors; it can look things up in the workspace.
type validator struct {
	errs []FieldError
	s    *Server
	r    *http.Request
	ws   string
}

func (v *validator) add(ptr, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
}

func (v *validator) name(ptr, val string) {
	if strings.TrimSpace(val) == "" || len(val) > 200 {
		v.add(ptr, "a name of 1 to 200 characters is required")
	}
}

func (v *validator) noBreaks(ptr, val string) {
	if strings.ContainsAny(val, "\r\n") {
		v.add(ptr, "must not contain line breaks")
	}
}

func (v *validator) email(ptr, val string, required bool) {
	if val == "" {
		if required {
			v.add(ptr, "an email address is required")
		}
		return
	}
	a, err := mail.ParseAddress(val)
	if err != nil || a.Address != val || strings.ContainsAny(val, "\r\n") {
		v.add(ptr, "%q is not a valid email address", val)
	}
}

// address checks an address the deployment will call (SPEC 6).
func (v *validator) address(ptr, val string) {
	if val == "" {
		v.add(ptr, "an address is required")
		return
	}
	if err := v.s.Egress.CheckURL(val); err != nil {
		v.add(ptr, "%s", err.Error())
	}
}

func (v *validator) exists(ptr, kind, id, what string) {
	if id == "" {
		return
	}
	_, err := v.s.Store.GetEntity(v.r.Context(), v.ws, kind, id)
	if errors.Is(err, engine.ErrNotFound) {
		v.add(ptr, "unknown %s %q", what, id)
	} else if err != nil {
		v.add(ptr, "could not check %s %q", what, id)
	}
}

type tagInput struct {
	Name string `json:"name"`
}

func (in *tagInput) validate(v *validator) { v.name("/name", in.Name) }
func (in *tagInput) split() (any, any)     { return in, nil }

type fieldInput struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func (in *fieldInput) validate(v *validator) {
	v.name("/name", in.Name)
	if !slices.Contains([]string{"string", "number", "boolean", "date"}, in.Type) {
		v.add("/type", "type must be string, number, boolean or date, not %q", in.Type)
	}
}
func (in *fieldInput) split() (any, any) { return in, nil }

// variableInput is a variable; a secret one is write-only: its value is kept
// with the secrets, answers never show it, and previews, checks and journeys
// show *** where it was rendered.
type variableInput struct {
	Value  *string `json:"value"`
	Secret bool    `json:"secret"`
}

func (in *variableInput) validate(v *validator) {
	if in.Value == nil {
		v.add("/value", "a value is required")
	} else if len(*in.Value) > 10000 {
		v.add("/value", "a value is at most 10000 characters")
	}
	if in.Secret && in.Value != nil && len(*in.Value) < 4 {
		v.add("/value", "a secret value has at least 4 characters (it is masked wherever it appears)")
	}
}
func (in *variableInput) split() (any, any) {
	if !in.Secret {
		return map[string]any{"value": in.Value, "secret": false}, nil
	}
	return map[string]any{"secret": true}, map[string]string{"value": *in.Value}
}

type salesPlanInput struct {
	Name         string   `json:"name"`
	Statuses     []string `json:"statuses"`
	Operators    []string `json:"operators"`
	Distribution string   `json:"distribution"`
}

func (in *salesPlanInput) validate(v *validator) {
	v.name("/name", in.Name)
	if len(in.Statuses) == 0 {
		v.add("/statuses", "at least one status is required")
	}
	seen := map[string]bool{}
	for i, st := range in.Statuses {
		p := fmt.Sprintf("/statuses/%d", i)
		if strings.TrimSpace(st) == "" || len(st) > 100 {
			v.add(p, "a status of 1 to 100 characters is required")
		}
		if seen[st] {
			v.add(p, "status %q appears twice", st)
		}
		seen[st] = true
	}
	if in.Operators == nil {
		in.Operators = []string{}
	}
	for i, op := range in.Operators {
		v.exists(fmt.Sprintf("/operators/%d", i), store.KindOperator, op, "operator")
	}
	if in.Distribution == "" {
		in.Distribution = "none"
	}
	if !slices.Contains([]string{"none", "random", "evenly", "fewest"}, in.Distribution) {
		v.add("/distribution", "distribution must be none, random, evenly or fewest, not %q", in.Distribution)
	}
	if in.Distribution != "none" && len(in.Operators) == 0 {
		v.add("/operators", "distribution %q needs at least one operator", in.Distribution)
	}
}
func (in *salesPlanInput) split() (any, any) { return in, nil }

type operatorInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (in *operatorInput) validate(v *validator) {
	v.name("/name", in.Name)
	v.email("/email", in.Email, false)
}
func (in *operatorInput) split() (any, any) { return in, nil }

type emailBotInput struct {
	Name        string `json:"name"`
	FromAddress string `json:"from_address"`
	FromName    string `json:"from_name"`
	ReplyTo     string `json:"reply_to"`
}

func (in *emailBotInput) validate(v *validator) {
	v.name("/name", in.Name)
	v.email("/from_address", in.FromAddress, true)
	v.noBreaks("/from_name", in.FromName)
	if len(in.FromName) > 200 {
		v.add("/from_name", "at most 200 characters")
	}
	v.email("/reply_to", in.ReplyTo, false)
}
func (in *emailBotInput) split() (any, any) { return in, nil }

type leadSourceInput struct {
	Name   string `json:"name"`
	Tunnel string `json:"tunnel,omitempty"`
}

func (in *leadSourceInput) validate(v *validator) {
	v.name("/name", in.Name)
	if in.Tunnel != "" {
		if _, err := v.s.Store.GetTunnel(v.r.Context(), v.ws, in.Tunnel); errors.Is(err, engine.ErrNotFound) {
			v.add("/tunnel", "unknown tunnel %q", in.Tunnel)
		}
	}
}
func (in *leadSourceInput) split() (any, any) { return in, nil }

type channelInput struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

func (in *channelInput) validate(v *validator) {
	v.address("/url", in.URL)
	if in.Secret != "" && len(in.Secret) < 16 {
		v.add("/secret", "a secret of at least 16 characters is required")
	}
}
func (in *channelInput) split() (any, any) {
	var secret any
	if in.Secret != "" {
		secret = map[string]string{"secret": in.Secret}
	}
	return map[string]string{"url": in.URL}, secret
}

type integrationInput struct {
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	BaseURL      string `json:"base_url"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresAt    string `json:"expires_at"`
}

func (in *integrationInput) validate(v *validator) {
	if in.Kind != "amocrm" {
		v.add("/kind", "kind must be \"amocrm\", not %q", in.Kind)
	}
	v.name("/name", in.Name)
	v.address("/base_url", in.BaseURL)
	v.accountAddress("/base_url", in.BaseURL)
	if in.ClientID == "" {
		v.add("/client_id", "a client id is required")
	}
	v.credential("/client_id", in.ClientID)
	v.credential("/client_secret", in.ClientSecret)
	v.credential("/access_token", in.AccessToken)
	v.credential("/refresh_token", in.RefreshToken)
	if in.RedirectURI == "" {
		v.add("/redirect_uri", "a redirect uri is required")
	} else if u, err := url.Parse(in.RedirectURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add("/redirect_uri", "redirect_uri must be an absolute http(s) URL (the one registered with the amoCRM integration)")
	}
	if in.ExpiresAt != "" {
		if _, err := time.Parse(time.RFC3339, in.ExpiresAt); err != nil {
			v.add("/expires_at", "expires_at must be an RFC 3339 time, not %q", in.ExpiresAt)
		} else if in.AccessToken == "" {
			v.add("/expires_at", "expires_at is when access_token expires: send it together with access_token")
		}
	}
}

// accountAddress checks that an amoCRM base URL is an account's address:
// scheme and host only, since the API paths are appended to it.
func (v *validator) accountAddress(ptr, val string) {
	u, err := url.Parse(val)
	if err != nil || val == "" {
		return // address() has said so
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		v.add(ptr, "base_url is the account's address only, like https://example.amocrm.ru (no path, query or fragment)")
	}
}

// credential checks a client id, secret or token: one line of visible
// characters (it goes into headers and JSON bodies), never echoing it.
func (v *validator) credential(ptr, val string) {
	if len(val) > 8192 {
		v.add(ptr, "at most 8192 characters")
		return
	}
	for _, r := range val {
		if r <= ' ' || r == 0x7f {
			v.add(ptr, "must not contain spaces, line breaks or control characters")
			return
		}
	}
}

// split keeps the tokens out of both parts: they are written with their
// version by the store (tokens()), and expires_at is shown from the stored
// token state, which a refresh moves on.
func (in *integrationInput) split() (any, any) {
	pub := map[string]any{
		"kind": in.Kind, "name": in.Name, "base_url": in.BaseURL, "client_id": in.ClientID,
		"redirect_uri": in.RedirectURI,
	}
	if in.ClientSecret == "" {
		return pub, nil
	}
	return pub, map[string]string{"client_secret": in.ClientSecret}
}

// tokens is what the body says about the tokens.
func (in *integrationInput) tokens() store.TokenPatch {
	p := store.TokenPatch{AccessToken: in.AccessToken, RefreshToken: in.RefreshToken}
	if t, err := time.Parse(time.RFC3339, in.ExpiresAt); err == nil {
		p.ExpiresAt = t
	}
	return p
}

// putEntity creates or replaces a catalog entry. Secrets left out of a
// replacement keep their stored values: they are write-only.
func (s *Server) putEntity(r *http.Request, ws string, c catalogKind, id string) response {
	if !validID(id) {
		return badID(c.param, id)
	}
	in := c.input()
	if res, ok := readBody(r, in); !ok {
		return res
	}
	v := &validator{s: s, r: r, ws: ws}
	in.validate(v)
	if c.kind == store.KindChannel {
		if ch := in.(*channelInput); ch.Secret == "" {
			if _, err := s.Store.GetEntity(r.Context(), ws, c.kind, id); errors.Is(err, engine.ErrNotFound) {
				v.add("/secret", "a secret of at least 16 characters is required")
			}
		}
	}
	if ig, isIntegration := in.(*integrationInput); isIntegration {
		return s.putIntegration(r, ws, id, ig, v) // crm.go: the tokens are versioned
	}
	if len(v.errs) > 0 {
		return invalid(summary(v.errs), v.errs...)
	}
	pub, secret := in.split()
	doc, err := json.Marshal(pub)
	if err != nil {
		return internalErr(err)
	}
	e := store.Entity{Kind: c.kind, ID: id, Doc: doc}
	if secret != nil {
		merged := map[string]string{}
		if old, err := s.Store.GetEntity(r.Context(), ws, c.kind, id); err == nil && len(old.Secret) > 0 {
			_ = json.Unmarshal(old.Secret, &merged)
		}
		for k, val := range secret.(map[string]string) {
			merged[k] = val
		}
		if e.Secret, err = json.Marshal(merged); err != nil {
			return internalErr(err)
		}
	}
	saved, err := s.Store.PutEntity(r.Context(), ws, e)
	if err != nil {
		return internalErr(err)
	}
	return ok(entityView(c, saved))
}

func (s *Server) getEntity(r *http.Request, ws string, c catalogKind, id string) response {
	if !validID(id) {
		return notFound(strings.TrimPrefix(c.path, "/v1/") + " " + id)
	}
	if c.kind == store.KindIntegration {
		return s.getIntegration(r, ws, c, id) // crm.go: with the token state
	}
	e, err := s.Store.GetEntity(r.Context(), ws, c.kind, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("%s %q", strings.TrimSuffix(strings.TrimPrefix(c.path, "/v1/"), "s"), id))
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(entityView(c, e))
}

func (s *Server) deleteEntity(r *http.Request, ws string, c catalogKind, id string) response {
	if !validID(id) {
		return notFound(id)
	}
	err := s.Store.DeleteEntity(r.Context(), ws, c.kind, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("%s %q", strings.TrimSuffix(strings.TrimPrefix(c.path, "/v1/"), "s"), id))
	}
	if err != nil {
		return internalErr(err)
	}
	return response{status: http.StatusNoContent}
}

func (s *Server) listEntities(r *http.Request, ws string, c catalogKind) response {
	p, res, good := page(r)
	if !good {
		return res
	}
	if c.kind == store.KindIntegration {
		return s.listIntegrations(r, ws, c, p) // crm.go: with the token state
	}
	items, next, err := s.Store.ListEntities(r.Context(), ws, c.kind, p)
	if err != nil {
		return listErr(err)
	}
	views := make([]map[string]any, 0, len(items))
	for _, e := range items {
		views = append(views, entityView(c, e))
	}
	return ok(map[string]any{c.list: views, "next_cursor": next})
}

// entityView is the public body plus id and times; secrets never appear, a
// channel says whether it has a secret (an integration's view adds its token
// state: integrationView in crm.go).
func entityView(c catalogKind, e store.Entity) map[string]any {
	out := map[string]any{}
	_ = json.Unmarshal(e.Doc, &out)
	if !c.singleton {
		out["id"] = e.ID // a variable's key too: every entity answers its id
	}
	out["created_at"] = Time(e.CreatedAt)
	out["updated_at"] = Time(e.UpdatedAt)
	var secret map[string]string
	_ = json.Unmarshal(e.Secret, &secret)
	switch c.kind {
	case store.KindChannel:
		out["has_secret"] = secret["secret"] != ""
	case store.KindVariable:
		if out["secret"] == nil {
			out["secret"] = false // saved before secret variables existed
		}
	}
	return out
}
