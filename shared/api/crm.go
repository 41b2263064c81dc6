package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// crmRoutes serves GET /v1/integrations/{id}/pipelines (issue 5).
func (s *Server) crmRoutes() []route {
	return []route{{"GET /v1/integrations/{id}/pipelines", s.listPipelines}}
}

// pipelinesTimeout bounds asking amoCRM (a token refresh included).
const pipelinesTimeout = 20 * time.Second

// listPipelines reads the account's pipelines and stages at call time, with
// the integration's tokens (refreshing them as the crm function would), so a
// tunnel editor can offer pipeline_id and status_id for amo_deal.
func (s *Server) listPipelines(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if !validID(id) {
		return notFound(fmt.Sprintf("integration %q", id))
	}
	acc, err := s.Store.AmoAccount(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("integration %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	if err := s.Egress.CheckURL(acc.BaseURL); err != nil {
		return fail(http.StatusUnprocessableEntity, "destination_refused", "the integration's base_url is not allowed: "+err.Error())
	}
	c := &amocrm.Client{
		BaseURL: acc.BaseURL,
		HTTP:    egress.NewClient(s.Egress, egress.Options{MaxBody: 8 << 20}),
		Creds:   amocrm.Credentials{ClientID: acc.ClientID, ClientSecret: acc.ClientSecret, RedirectURI: acc.RedirectURI},
		Tokens:  s.Store.AmoTokens(ws, id),
		Logger:  s.log().With("integration", id),
	}
	ctx, cancel := context.WithTimeout(r.Context(), pipelinesTimeout)
	defer cancel()
	ps, err := c.Pipelines(ctx)
	if err != nil {
		return amoProblem(err)
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Sort != ps[j].Sort {
			return ps[i].Sort < ps[j].Sort
		}
		return ps[i].ID < ps[j].ID
	})
	type statusView struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
		Sort int    `json:"sort"`
	}
	type pipelineView struct {
		ID       int64        `json:"id"`
		Name     string       `json:"name"`
		Statuses []statusView `json:"statuses"`
	}
	out := make([]pipelineView, 0, len(ps))
	for _, p := range ps {
		pv := pipelineView{ID: p.ID, Name: p.Name, Statuses: make([]statusView, 0, len(p.Statuses))}
		for _, st := range p.Statuses {
			pv.Statuses = append(pv.Statuses, statusView{ID: st.ID, Name: st.Name, Sort: st.Sort})
		}
		sort.SliceStable(pv.Statuses, func(i, j int) bool { return pv.Statuses[i].Sort < pv.Statuses[j].Sort })
		out = append(out, pv)
	}
	return ok(map[string]any{"pipelines": out})
}

// amoProblem is the 422 for an amoCRM that could not be asked: the egress
// policy refused the address (destination_refused), or no usable answer came
// (request_failed, with what went wrong: no answer, a refused token, amoCRM's
// own error). The message never holds a token or secret.
func amoProblem(err error) response {
	if egress.IsRefused(err) {
		return fail(http.StatusUnprocessableEntity, "destination_refused", "the amoCRM address is refused: "+amoText(err))
	}
	var detail string
	switch {
	case errors.Is(err, amocrm.ErrReconnect):
		detail = "the amoCRM integration must be reconnected: " + amoText(err)
	case errors.Is(err, context.DeadlineExceeded):
		detail = "amoCRM did not answer in time: " + amoText(err)
	case errors.Is(err, amocrm.ErrRateLimited), errors.Is(err, amocrm.ErrTransient):
		detail = "amoCRM could not be reached or is unavailable; try again: " + amoText(err)
	default:
		detail = "amoCRM refused the request: " + amoText(err)
	}
	return fail(http.StatusUnprocessableEntity, "request_failed", detail)
}

func amoText(err error) string { return strings.TrimPrefix(err.Error(), "amocrm: ") }

// putIntegration saves an integration (catalog.go's putEntity hands it
// over): doc, client secret and tokens in one write, the tokens versioned so
// a new pair is a reconnect every process sees (see store.PutIntegration).
func (s *Server) putIntegration(r *http.Request, ws, id string, in *integrationInput, v *validator) response {
	ctx := r.Context()
	old, err := s.Store.AmoAccount(ctx, ws, id)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		old = store.AmoAccount{}
	case err != nil:
		return internalErr(err)
	}
	if in.RefreshToken != "" && in.ClientSecret == "" && old.ClientSecret == "" {
		v.add("/client_secret", "a client secret is required to refresh the tokens")
	}
	if len(v.errs) > 0 {
		return invalid(summary(v.errs), v.errs...)
	}
	pub, secret := in.split()
	e := store.Entity{Kind: store.KindIntegration, ID: id}
	if e.Doc, err = json.Marshal(pub); err != nil {
		return internalErr(err)
	}
	if secret != nil {
		if e.Secret, err = json.Marshal(secret); err != nil {
			return internalErr(err)
		}
	}
	saved, err := s.Store.PutIntegration(ctx, ws, e, in.tokens())
	if errors.Is(err, store.ErrSpentToken) {
		fe := FieldError{Pointer: "/refresh_token", Detail: "this refresh token was already used by a token refresh (amoCRM refresh tokens are single use) and the stored tokens are newer: leave the tokens out, or connect again for new ones"}
		return invalid(summary([]FieldError{fe}), fe)
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(integrationView(saved))
}

func (s *Server) getIntegration(r *http.Request, ws string, c catalogKind, id string) response {
	in, err := s.Store.GetIntegration(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("integration %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(integrationView(in))
}

func (s *Server) listIntegrations(r *http.Request, ws string, c catalogKind, p store.Page) response {
	items, next, err := s.Store.ListIntegrations(r.Context(), ws, p)
	if err != nil {
		return listErr(err)
	}
	views := make([]map[string]any, 0, len(items))
	for _, in := range items {
		views = append(views, integrationView(in))
	}
	return ok(map[string]any{c.list: views, "next_cursor": next})
}

// integrationView is an integration as answered: the public body, whether it
// holds tokens amoCRM has not refused, and when the access token expires as
// the store knows it now (a refresh moves it on). Never a secret or token.
func integrationView(in store.Integration) map[string]any {
	out := map[string]any{}
	_ = json.Unmarshal(in.Entity.Doc, &out)
	for _, k := range []string{"client_secret", "access_token", "refresh_token"} {
		delete(out, k) // never stored there; never answered either
	}
	out["id"] = in.Entity.ID
	out["created_at"] = Time(in.Entity.CreatedAt)
	out["updated_at"] = Time(in.Entity.UpdatedAt)
	out["connected"] = in.Tokens.Connected
	out["expires_at"] = nil
	if !in.Tokens.ExpiresAt.IsZero() {
		out["expires_at"] = Time(in.Tokens.ExpiresAt)
	}
	return out
}
