package amocrm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// LeadInput is a deal to create. Zero PipelineID / StatusID are not sent
// (amoCRM then picks the main pipeline / its first stage).
type LeadInput struct {
	Name       string
	PipelineID int64
	StatusID   int64
	Tags       []string
}

// Lead is a deal as amoCRM answers it.
type Lead struct {
	ID         int64
	Name       string
	PipelineID int64
	StatusID   int64
	ContactIDs []int64 // filled by FindLeads (with=contacts)
	Tags       []string
}

// LeadResult is the answer of CreateLeadWithContact.
type LeadResult struct {
	LeadID    int64
	ContactID int64
	// Merged: the account's duplicate control judged the lead a duplicate;
	// LeadID is then the existing lead's id.
	Merged bool
}

type leadEmbeddedOut struct {
	Tags     []tagRef `json:"tags,omitempty"`
	Contacts []any    `json:"contacts,omitempty"`
}

type leadOut struct {
	Name       string           `json:"name,omitempty"`
	PipelineID int64            `json:"pipeline_id,omitempty"`
	StatusID   int64            `json:"status_id,omitempty"`
	RequestID  string           `json:"request_id,omitempty"`
	Embedded   *leadEmbeddedOut `json:"_embedded,omitempty"`
}

func (in LeadInput) wire() leadOut {
	out := leadOut{Name: strings.TrimSpace(in.Name), PipelineID: in.PipelineID, StatusID: in.StatusID, RequestID: "0"}
	if tags := tagRefs(in.Tags); len(tags) > 0 {
		out.Embedded = &leadEmbeddedOut{Tags: tags}
	}
	return out
}

func (o *leadOut) addContact(c any) {
	if o.Embedded == nil {
		o.Embedded = &leadEmbeddedOut{}
	}
	o.Embedded.Contacts = append(o.Embedded.Contacts, c)
}

type idRef struct {
	ID int64 `json:"id"`
}

// complexItem is one item of the /leads/complex answer.
type complexItem struct {
	ID        int64           `json:"id"`
	ContactID *int64          `json:"contact_id"`
	CompanyID *int64          `json:"company_id"`
	RequestID json.RawMessage `json:"request_id"` // ["0"], or a plain string
	Merged    bool            `json:"merged"`
}

// CreateLeadWithContact creates a deal together with a new contact in one
// call (POST /api/v4/leads/complex) and links them. To attach a deal to a
// contact that already exists use CreateLead: the vendor does not settle
// whether an embedded contact id links in the complex call.
func (c *Client) CreateLeadWithContact(ctx context.Context, l LeadInput, ct ContactInput) (LeadResult, error) {
	item := l.wire()
	item.addContact(ct.wire(false))
	r := request{method: http.MethodPost, path: "/api/v4/leads/complex", body: []leadOut{item}}
	var raw json.RawMessage
	if _, err := c.do(ctx, r, &raw); err != nil {
		return LeadResult{}, err
	}
	items, err := complexItems(raw)
	if err != nil || len(items) != 1 || items[0].ID == 0 {
		// The deal may exist: the caller's replay looks it up before creating again.
		return LeadResult{}, &Error{Kind: ErrTransient, Op: r.op(), Detail: "answer without exactly one lead id", Err: err}
	}
	res := LeadResult{LeadID: items[0].ID, Merged: items[0].Merged}
	if items[0].ContactID != nil {
		res.ContactID = *items[0].ContactID
	}
	return res, nil
}

// complexItems reads the documented bare array and, should it come wrapped
// like other answers, {"_embedded": {"leads": [...]}}.
func complexItems(raw json.RawMessage) ([]complexItem, error) {
	raw = bytes.TrimSpace(raw)
	var items []complexItem
	if len(raw) > 0 && raw[0] == '{' {
		var wrapped struct {
			Embedded struct {
				Leads []complexItem `json:"leads"`
			} `json:"_embedded"`
		}
		err := json.Unmarshal(raw, &wrapped)
		return wrapped.Embedded.Leads, err
	}
	err := json.Unmarshal(raw, &items)
	return items, err
}

// CreateLead creates a deal (POST /api/v4/leads), linked to an existing
// contact when contactID is not 0, and answers its id.
func (c *Client) CreateLead(ctx context.Context, l LeadInput, contactID int64) (int64, error) {
	item := l.wire()
	if contactID > 0 {
		item.addContact(idRef{ID: contactID})
	}
	r := request{method: http.MethodPost, path: "/api/v4/leads", body: []leadOut{item}}
	var ans struct {
		Embedded struct {
			Leads []idRef `json:"leads"`
		} `json:"_embedded"`
	}
	if _, err := c.do(ctx, r, &ans); err != nil {
		return 0, err
	}
	if len(ans.Embedded.Leads) != 1 || ans.Embedded.Leads[0].ID == 0 {
		return 0, &Error{Kind: ErrTransient, Op: r.op(), Detail: "answer without the lead id"}
	}
	return ans.Embedded.Leads[0].ID, nil
}

// LinkContact links an existing contact to an existing deal (POST
// /api/v4/leads/{id}/link).
func (c *Client) LinkContact(ctx context.Context, leadID, contactID int64) error {
	if leadID <= 0 || contactID <= 0 {
		return &Error{Kind: ErrValidation, Op: "POST /api/v4/leads/{id}/link", Detail: "invalid lead or contact id"}
	}
	body := []map[string]any{{"to_entity_id": contactID, "to_entity_type": "contacts"}}
	r := request{method: http.MethodPost, path: "/api/v4/leads/" + strconv.FormatInt(leadID, 10) + "/link", body: body}
	_, err := c.do(ctx, r, nil)
	return err
}

type leadWire struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PipelineID int64  `json:"pipeline_id"`
	StatusID   int64  `json:"status_id"`
	Embedded   struct {
		Tags     []tagWire `json:"tags"`
		Contacts []idRef   `json:"contacts"`
	} `json:"_embedded"`
}

// FindLeads runs amoCRM's full-text lead search with each lead's contacts
// (GET /api/v4/leads?query=&with=contacts). A 204 is no match.
func (c *Client) FindLeads(ctx context.Context, query string) ([]Lead, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, &Error{Kind: ErrValidation, Op: "GET /api/v4/leads", Detail: "empty search query"}
	}
	var out []Lead
	q := url.Values{"query": {query}, "with": {"contacts"}}.Encode()
	err := c.pages(ctx, "/api/v4/leads", q, "leads", maxSearchPages, func(raw json.RawMessage) error {
		var ws []leadWire
		if err := json.Unmarshal(raw, &ws); err != nil {
			return err
		}
		for _, w := range ws {
			l := Lead{ID: w.ID, Name: w.Name, PipelineID: w.PipelineID, StatusID: w.StatusID}
			for _, ct := range w.Embedded.Contacts {
				l.ContactIDs = append(l.ContactIDs, ct.ID)
			}
			for _, t := range w.Embedded.Tags {
				l.Tags = append(l.Tags, t.Name)
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}
