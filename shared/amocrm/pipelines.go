package amocrm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// System statuses present in every pipeline.
const (
	StatusWon  int64 = 142 // "closed - won"
	StatusLost int64 = 143 // "closed - lost"

	StatusTypeRegular  = 0 // an ordinary stage
	StatusTypeIncoming = 1 // the system "Incoming leads" stage
)

// Pipeline is a lead pipeline with its stages.
type Pipeline struct {
	ID       int64
	Name     string
	Sort     int
	IsMain   bool
	Statuses []Status
}

// Status is a stage of a pipeline. Type is StatusTypeRegular or
// StatusTypeIncoming.
type Status struct {
	ID   int64
	Name string
	Sort int
	Type int
}

// Status answers the pipeline's stage with that id.
func (p Pipeline) Status(id int64) (Status, bool) {
	for _, s := range p.Statuses {
		if s.ID == id {
			return s, true
		}
	}
	return Status{}, false
}

type statusWire struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Sort int    `json:"sort"`
	Type int    `json:"type"`
}

type pipelineWire struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Sort     int    `json:"sort"`
	IsMain   bool   `json:"is_main"`
	Embedded struct {
		Statuses []statusWire `json:"statuses"`
	} `json:"_embedded"`
}

// Pipelines lists the account's pipelines and their stages (GET
// /api/v4/leads/pipelines, following _links.next; 204 is none).
func (c *Client) Pipelines(ctx context.Context) ([]Pipeline, error) {
	var out []Pipeline
	err := c.pages(ctx, "/api/v4/leads/pipelines", "", "pipelines", maxPipelinePages, func(raw json.RawMessage) error {
		var ps []pipelineWire
		if err := json.Unmarshal(raw, &ps); err != nil {
			return err
		}
		for _, p := range ps {
			pl := Pipeline{ID: p.ID, Name: p.Name, Sort: p.Sort, IsMain: p.IsMain}
			for _, s := range p.Embedded.Statuses {
				pl.Statuses = append(pl.Statuses, Status(s))
			}
			out = append(out, pl)
		}
		return nil
	})
	return out, err
}

const (
	maxPipelinePages = 50 // an account has at most 50 pipelines
	maxSearchPages   = 10 // a phone or email matches few entities; bound a runaway query
)

// pages GETs a list and follows _links.next.href, handing each page's
// _embedded[key] to each. A 204 ends the list. Links are followed only as a
// path and query on BaseURL: the bearer token never goes to another host.
func (c *Client) pages(ctx context.Context, path, query, key string, maxPages int, each func(json.RawMessage) error) error {
	seen := map[string]bool{path + "?" + query: true}
	for page := 0; page < maxPages; page++ {
		var body struct {
			Links struct {
				Next *struct {
					Href string `json:"href"`
				} `json:"next"`
			} `json:"_links"`
			Embedded map[string]json.RawMessage `json:"_embedded"`
		}
		r := request{method: http.MethodGet, path: path, query: query}
		status, err := c.do(ctx, r, &body)
		if err != nil {
			return err
		}
		if status == http.StatusNoContent {
			return nil
		}
		if raw, ok := body.Embedded[key]; ok && len(raw) > 0 && string(raw) != "null" {
			if err := each(raw); err != nil {
				return &Error{Kind: ErrTransient, Op: r.op(), Status: status, Detail: "unreadable " + key, Err: err}
			}
		}
		if body.Links.Next == nil || body.Links.Next.Href == "" {
			return nil
		}
		np, nq, ok := nextPage(body.Links.Next.Href)
		if !ok {
			return &Error{Kind: ErrTransient, Op: r.op(), Status: status, Detail: "unusable next-page link"}
		}
		if seen[np+"?"+nq] {
			return nil // a link back to a page already read: the list is done
		}
		seen[np+"?"+nq] = true
		path, query = np, nq
	}
	c.logger().WarnContext(ctx, "amocrm: list truncated", "path", path, "pages", maxPages)
	return nil
}

// nextPage takes the path and query of a next link; it must stay in /api/v4/.
func nextPage(href string) (path, query string, ok bool) {
	u, err := url.Parse(href)
	if err != nil {
		return "", "", false
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/api/v4/") || strings.Contains(p, "..") {
		return "", "", false
	}
	return p, u.RawQuery, true
}
