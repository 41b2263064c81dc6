package api

import (
	"errors"
	"net/http"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// deadLetterRoutes lists the workspace's dead-lettered steps and re-drives them.
func (s *Server) deadLetterRoutes() []route {
	return []route{
		{"GET /v1/dead-letters", s.listDeadLetters},
		{"POST /v1/dead-letters/redrive", s.redrive},
	}
}

type stepMessageView struct {
	V            int      `json:"v"`
	StepID       string   `json:"step_id"`
	SubscriberID string   `json:"subscriber_id"`
	Tunnel       string   `json:"tunnel"`
	Channel      string   `json:"channel"`
	Generation   int      `json:"generation"`
	Block        string   `json:"block"`
	Action       *int     `json:"action"`
	Pending      []string `json:"pending,omitempty"`
}

type deadLetterView struct {
	ID            string          `json:"id"`
	Queue         string          `json:"queue"`
	Step          stepMessageView `json:"step"`
	Reason        string          `json:"reason"`
	Attempts      int             `json:"attempts"`
	FirstFailedAt Time            `json:"first_failed_at"`
}

func (s *Server) listDeadLetters(r *http.Request, ws string) response {
	p, res, good := page(r)
	if !good {
		return res
	}
	dls, next, err := s.Store.DeadLetters(r.Context(), ws, p)
	if err != nil {
		return listErr(err)
	}
	out := make([]deadLetterView, 0, len(dls))
	for _, d := range dls {
		st := d.Step
		action := st.Action
		v := stepMessageView{V: st.V, StepID: st.ID, SubscriberID: st.Sub, Tunnel: st.Tunnel, Channel: st.Channel,
			Generation: st.Gen, Block: st.Block, Action: &action}
		if st.Hold != nil {
			v.Pending = st.Hold.Then
		}
		out = append(out, deadLetterView{ID: d.ID, Queue: string(d.Kind), Step: v, Reason: d.Reason,
			Attempts: d.Attempts, FirstFailedAt: Time(d.FirstFailedAt)})
	}
	return ok(map[string]any{"dead_letters": out, "next_cursor": next})
}

// redrive sends dead letters back to their queues: those named, or all of
// the workspace's. Each is taken (marked re-driven) before it is sent, so two
// re-drives at once send it once; one that cannot be sent is put back.
func (s *Server) redrive(r *http.Request, ws string) response {
	var in struct {
		IDs []string `json:"ids"`
	}
	body, res, good := rawBody(r)
	if !good {
		return res
	}
	if len(body) > 0 {
		if bad, errs := decodeStrict(body, &in); bad != nil {
			return fail(http.StatusBadRequest, "invalid_json", bad.Error())
		} else if len(errs) > 0 {
			return invalid(summary(errs), errs...)
		}
		if in.IDs != nil && len(in.IDs) == 0 {
			return invalid("/ids: name at least one dead letter, or leave ids out for all", FieldError{Pointer: "/ids", Detail: "must not be empty"})
		}
	}
	ids := in.IDs
	if ids == nil {
		cursor := ""
		for {
			dls, next, err := s.Store.DeadLetters(r.Context(), ws, store.Page{Limit: 500, Cursor: cursor})
			if err != nil {
				return internalErr(err)
			}
			for _, d := range dls {
				ids = append(ids, d.ID)
			}
			if next == nil {
				break
			}
			cursor = *next
		}
	}
	sent := map[engine.Kind]map[string]bool{}
	n := 0
	for _, id := range ids {
		d, err := s.Store.TakeDeadLetter(r.Context(), ws, id)
		if errors.Is(err, engine.ErrNotFound) {
			continue // not (or no longer) a dead letter of this workspace
		}
		if err != nil {
			return internalErr(err)
		}
		if err := s.Queue.Send(r.Context(), s.now(), []engine.Outgoing{{Kind: d.Kind, Step: d.Step}}); err != nil {
			_ = s.Store.ReturnDeadLetter(r.Context(), ws, id)
			return internalErr(err)
		}
		if sent[d.Kind] == nil {
			sent[d.Kind] = map[string]bool{}
		}
		sent[d.Kind][d.ID] = true
		n++
	}
	if s.DLQ != nil {
		for kind, ids := range sent {
			if _, err := s.DLQ.Remove(r.Context(), kind, ids); err != nil {
				s.log().Warn("re-driven steps' copies stay in the dead-letter queue", "queue", kind, "error", err)
			}
		}
	}
	return ok(map[string]int{"redriven": n})
}
