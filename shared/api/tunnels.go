package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// tunnelView is a tunnel as GET answers it: the definition plus bookkeeping.
type tunnelView struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Entry       string         `json:"entry"`
	Blocks      []tunnel.Block `json:"blocks"`
	Version     int            `json:"version"`
	Subscribers int            `json:"subscribers"`
	CreatedAt   Time           `json:"created_at"`
	UpdatedAt   Time           `json:"updated_at"`
}

func viewTunnel(r store.TunnelRecord) tunnelView {
	blocks := r.Def.Blocks
	if blocks == nil {
		blocks = []tunnel.Block{}
	}
	return tunnelView{
		ID: r.ID, Name: r.Def.Name, Entry: r.Def.Entry, Blocks: blocks, Version: r.Version,
		Subscribers: r.Subscribers, CreatedAt: Time(r.CreatedAt), UpdatedAt: Time(r.UpdatedAt),
	}
}

// putTunnel validates a tunnel whole — every error at once — and saves it.
func (s *Server) putTunnel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if !validID(id) {
		return badID("id", id)
	}
	body, res, good := rawBody(r)
	if !good {
		return res
	}
	t, errs := tunnel.Parse(body)
	if t == nil && len(errs) > 0 {
		return fail(http.StatusBadRequest, "invalid_json", errs[0].Detail)
	}
	if len(errs) == 0 {
		cat, err := s.Store.CatalogForSave(r.Context(), ws)
		if err != nil {
			return internalErr(err)
		}
		errs = tunnel.Validate(id, t, cat)
	}
	if len(errs) > 0 {
		return invalid(fmt.Sprintf("the tunnel has %d problem(s); see errors", len(errs)), errs...)
	}
	rec, err := s.Store.PutTunnel(r.Context(), ws, id, t)
	if err != nil {
		return internalErr(err)
	}
	return ok(viewTunnel(rec))
}

func (s *Server) getTunnel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	rec, err := s.Store.GetTunnel(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) || !validID(id) {
		return notFound(fmt.Sprintf("tunnel %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(viewTunnel(rec))
}

func (s *Server) deleteTunnel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if id == "default" {
		return fail(http.StatusConflict, "conflict", "the default tunnel cannot be deleted")
	}
	if !validID(id) {
		return notFound(fmt.Sprintf("tunnel %q", id))
	}
	err := s.Store.DeleteTunnel(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("tunnel %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	return response{status: http.StatusNoContent}
}

func (s *Server) listTunnels(r *http.Request, ws string) response {
	p, res, good := page(r)
	if !good {
		return res
	}
	recs, next, err := s.Store.ListTunnels(r.Context(), ws, p)
	if err != nil {
		return listErr(err)
	}
	views := make([]tunnelView, 0, len(recs))
	for _, rec := range recs {
		views = append(views, viewTunnel(rec))
	}
	return ok(map[string]any{"tunnels": views, "next_cursor": next})
}

type blockStats struct {
	Block    string        `json:"block"`
	Done     int64         `json:"done"`
	Skipped  int64         `json:"skipped"`
	Failed   int64         `json:"failed"`
	Waiting  int64         `json:"waiting"`
	Branches []branchCount `json:"branches,omitempty"`
}

type branchCount struct {
	Branch any    `json:"branch"` // the branch's index, or "else"
	Name   string `json:"name,omitempty"`
	Count  int64  `json:"count"`
}

// tunnelStats answers per-block counters kept with the steps (no journey is
// read): steps done, skipped and failed, steps waiting at the block, the
// branches condition and split blocks took, the subscribers recorded and the
// runs active.
func (s *Server) tunnelStats(r *http.Request, ws string) response {
	id := r.PathValue("id")
	t, err := s.Store.GetTunnel(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) || !validID(id) {
		return notFound(fmt.Sprintf("tunnel %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	c, err := s.Store.TunnelStats(r.Context(), ws, id)
	if err != nil {
		return internalErr(err)
	}
	blocks := make([]blockStats, 0, len(t.Def.Blocks))
	for _, b := range t.Def.Blocks {
		bs := blockStats{Block: b.ID, Done: c["d#"+b.ID], Skipped: c["s#"+b.ID], Failed: c["f#"+b.ID]}
		bs.Waiting = max(0, c["e#"+b.ID]-bs.Done-bs.Skipped-bs.Failed)
		if b.Type == tunnel.BlockCondition || b.Type == tunnel.BlockSplit {
			for i, br := range b.Branches {
				bs.Branches = append(bs.Branches, branchCount{Branch: i, Name: br.Name, Count: c[fmt.Sprintf("b#%s#%d", b.ID, i)]})
			}
			if b.Type == tunnel.BlockCondition {
				bs.Branches = append(bs.Branches, branchCount{Branch: "else", Count: c["b#"+b.ID+"#else"]})
			}
		}
		blocks = append(blocks, bs)
	}
	return ok(map[string]any{"blocks": blocks, "recorded": t.Subscribers, "active_runs": max(0, c["runs"]-c["ended"])})
}

func (s *Server) tunnelRoutes() []route {
	return []route{{"GET /v1/tunnels/{id}/stats", s.tunnelStats}}
}
