package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// planRoutes serves a sales plan's deals (issue 3).
func (s *Server) planRoutes() []route {
	return []route{
		{"GET /v1/sales-plans/{id}/deals", s.listDeals},
		{"PATCH /v1/sales-plans/{id}/deals/{subscriber_id}", s.patchDeal},
	}
}

type dealView struct {
	SubscriberID string  `json:"subscriber_id"`
	Plan         string  `json:"plan"`
	Status       string  `json:"status"`
	Operator     *string `json:"operator"`
	CreatedAt    Time    `json:"created_at"`
	UpdatedAt    Time    `json:"updated_at"`
}

func viewDeal(d store.Deal) dealView {
	return dealView{SubscriberID: d.SubscriberID, Plan: d.Plan, Status: d.Status, Operator: optional(d.Operator),
		CreatedAt: Time(d.CreatedAt), UpdatedAt: Time(d.UpdatedAt)}
}

// optional is nil for "": an operator-less deal answers null.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) plan(r *http.Request, ws string) (store.SalesPlan, response, bool) {
	id := r.PathValue("id")
	p, err := s.Store.GetSalesPlan(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) || (err == nil && !validID(id)) {
		return p, notFound(fmt.Sprintf("sales plan %q", id)), false
	}
	if err != nil {
		return p, internalErr(err), false
	}
	return p, response{}, true
}

func (s *Server) listDeals(r *http.Request, ws string) response {
	plan, res, good := s.plan(r, ws)
	if !good {
		return res
	}
	p, res, good := page(r)
	if !good {
		return res
	}
	deals, next, err := s.Store.Deals(r.Context(), ws, plan.ID, p)
	if err != nil {
		return listErr(err)
	}
	out := make([]dealView, 0, len(deals))
	for _, d := range deals {
		out = append(out, viewDeal(d))
	}
	return ok(map[string]any{"deals": out, "next_cursor": next})
}

// patchDeal moves a deal to another status of its plan.
func (s *Server) patchDeal(r *http.Request, ws string) response {
	plan, res, good := s.plan(r, ws)
	if !good {
		return res
	}
	var in struct {
		Status string `json:"status"`
	}
	if res, good := readBody(r, &in); !good {
		return res
	}
	if !slices.Contains(plan.Statuses, in.Status) {
		return invalid("/status: not a status of this plan", FieldError{Pointer: "/status",
			Detail: fmt.Sprintf("status %q is not one of the plan's statuses (%s)", in.Status, strings.Join(plan.Statuses, ", "))})
	}
	sub := r.PathValue("subscriber_id")
	d, err := s.Store.MoveDeal(r.Context(), ws, sub, plan, in.Status)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("a deal of subscriber %q in sales plan %q", sub, plan.ID))
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(viewDeal(d))
}
