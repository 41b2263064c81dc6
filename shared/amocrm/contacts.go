package amocrm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Contact is a contact as amoCRM answers it, reduced to what Tunnels uses.
type Contact struct {
	ID        int64
	Name      string
	FirstName string
	LastName  string
	Phones    []string // values of the PHONE field, as stored
	Emails    []string // values of the EMAIL field, as stored
	Tags      []string
}

// ContactInput is what Tunnels writes to a contact: the subscriber.
//
// Empty strings are not sent, so an update leaves those fields alone. A Phone
// or Email that is sent replaces the field's values in amoCRM. Tags follow
// amoCRM's `_embedded.tags`, which replaces the whole list: nil sends nothing
// (tags unchanged); a non-nil empty slice on UpdateContact sends `null`
// (removes every tag); on create it sends nothing.
type ContactInput struct {
	Name      string // the display name; "" means FirstName + " " + LastName
	FirstName string
	LastName  string
	Phone     string
	Email     string
	Tags      []string
}

type fieldValue struct {
	Value    string `json:"value"`
	EnumCode string `json:"enum_code,omitempty"`
}

type fieldValues struct {
	FieldCode string       `json:"field_code"`
	Values    []fieldValue `json:"values"`
}

type tagRef struct {
	Name string `json:"name"`
}

type tagsOnly struct {
	Tags json.RawMessage `json:"tags"`
}

// contactOut is the request body for one contact, in the contract's shape.
type contactOut struct {
	Name               string        `json:"name,omitempty"`
	FirstName          string        `json:"first_name,omitempty"`
	LastName           string        `json:"last_name,omitempty"`
	CustomFieldsValues []fieldValues `json:"custom_fields_values,omitempty"`
	Embedded           *tagsOnly     `json:"_embedded,omitempty"`
	RequestID          string        `json:"request_id,omitempty"`
}

// wire builds the body. update decides what an empty non-nil Tags means.
func (in ContactInput) wire(update bool) contactOut {
	first, last := strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName)
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = strings.TrimSpace(first + " " + last)
	}
	out := contactOut{Name: name, FirstName: first, LastName: last}
	if p := strings.TrimSpace(in.Phone); p != "" {
		out.CustomFieldsValues = append(out.CustomFieldsValues, fieldValues{FieldCode: "PHONE", Values: []fieldValue{{Value: p, EnumCode: "WORK"}}})
	}
	if e := strings.TrimSpace(in.Email); e != "" {
		out.CustomFieldsValues = append(out.CustomFieldsValues, fieldValues{FieldCode: "EMAIL", Values: []fieldValue{{Value: e, EnumCode: "WORK"}}})
	}
	if in.Tags != nil {
		if tags := tagRefs(in.Tags); len(tags) > 0 {
			raw, _ := json.Marshal(tags)
			out.Embedded = &tagsOnly{Tags: raw}
		} else if update {
			out.Embedded = &tagsOnly{Tags: json.RawMessage("null")}
		}
	}
	return out
}

// tagRefs trims, drops empty names and duplicates (case-insensitively, as
// amoCRM matches tag names), keeping the first spelling and the order.
func tagRefs(names []string) []tagRef {
	seen := map[string]bool{}
	var out []tagRef
	for _, n := range names {
		n = strings.TrimSpace(n)
		k := strings.ToLower(n)
		if n == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, tagRef{Name: n})
	}
	return out
}

// contactWire is a contact in an answer.
type contactWire struct {
	ID                 int64            `json:"id"`
	Name               string           `json:"name"`
	FirstName          string           `json:"first_name"`
	LastName           string           `json:"last_name"`
	CustomFieldsValues []fieldValuesAns `json:"custom_fields_values"`
	Embedded           struct {
		Tags []tagWire `json:"tags"`
	} `json:"_embedded"`
}

type fieldValuesAns struct {
	FieldID   int64  `json:"field_id"`
	FieldCode string `json:"field_code"`
	Values    []struct {
		Value    json.RawMessage `json:"value"`
		EnumCode string          `json:"enum_code"`
	} `json:"values"`
}

type tagWire struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func (w contactWire) contact() Contact {
	c := Contact{ID: w.ID, Name: w.Name, FirstName: w.FirstName, LastName: w.LastName}
	for _, f := range w.CustomFieldsValues {
		for _, v := range f.Values {
			s := rawText(v.Value)
			if s == "" {
				continue
			}
			switch strings.ToUpper(f.FieldCode) {
			case "PHONE":
				c.Phones = append(c.Phones, s)
			case "EMAIL":
				c.Emails = append(c.Emails, s)
			}
		}
	}
	for _, t := range w.Embedded.Tags {
		c.Tags = append(c.Tags, t.Name)
	}
	return c
}

// rawText is a JSON string's text, or a number's digits; "" otherwise.
func rawText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// FindContacts runs amoCRM's full-text contact search (GET
// /api/v4/contacts?query=). A 204 is no match. The search is full-text: a hit
// is not proof of identity; FindContactByPhoneOrEmail compares.
func (c *Client) FindContacts(ctx context.Context, query string) ([]Contact, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, &Error{Kind: ErrValidation, Op: "GET /api/v4/contacts", Detail: "empty search query"}
	}
	var out []Contact
	q := url.Values{"query": {query}}.Encode()
	err := c.pages(ctx, "/api/v4/contacts", q, "contacts", maxSearchPages, func(raw json.RawMessage) error {
		var ws []contactWire
		if err := json.Unmarshal(raw, &ws); err != nil {
			return err
		}
		for _, w := range ws {
			out = append(out, w.contact())
		}
		return nil
	})
	return out, err
}

// FindContactByPhoneOrEmail answers the contact that is this person, or nil.
// It searches by phone, then by email, and keeps only hits whose stored
// values really match (phones compared as digits, emails case-insensitively):
// full-text search also answers contacts that merely contain the text. Of
// several matches the oldest (lowest id) wins.
func (c *Client) FindContactByPhoneOrEmail(ctx context.Context, phone, email string) (*Contact, error) {
	// Fewer than 5 digits identify nobody and would match half the account.
	if d := phoneDigits(phone); len(d) >= 5 {
		// The last ten digits find "+7 916…" and "8 916…" alike; the comparison
		// below decides.
		q := d
		if len(q) > 10 {
			q = q[len(q)-10:]
		}
		hits, err := c.FindContacts(ctx, q)
		if err != nil {
			return nil, err
		}
		if m := pick(hits, func(x Contact) bool { return anyMatch(x.Phones, phone, samePhone) }); m != nil {
			return m, nil
		}
	}
	if e := strings.TrimSpace(email); e != "" {
		hits, err := c.FindContacts(ctx, e)
		if err != nil {
			return nil, err
		}
		if m := pick(hits, func(x Contact) bool { return anyMatch(x.Emails, email, sameEmail) }); m != nil {
			return m, nil
		}
	}
	return nil, nil
}

func pick(cs []Contact, match func(Contact) bool) *Contact {
	var best *Contact
	for i := range cs {
		if match(cs[i]) && (best == nil || cs[i].ID < best.ID) {
			best = &cs[i]
		}
	}
	return best
}

func anyMatch(values []string, want string, same func(a, b string) bool) bool {
	for _, v := range values {
		if same(v, want) {
			return true
		}
	}
	return false
}

// phoneDigits keeps the digits of a phone number.
func phoneDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// samePhone compares phones as digits. It also equates the Russian trunk
// prefix: 8XXXXXXXXXX is the domestic spelling of +7XXXXXXXXXX, and amoCRM
// accounts hold both.
func samePhone(a, b string) bool {
	da, db := phoneDigits(a), phoneDigits(b)
	if da == "" || db == "" {
		return false
	}
	if da == db {
		return true
	}
	if len(da) == 11 && len(db) == 11 && da[1:] == db[1:] {
		p := string(da[0]) + string(db[0])
		return p == "78" || p == "87"
	}
	return false
}

// sameEmail compares addresses case-insensitively, ignoring outer spaces.
func sameEmail(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a != "" && strings.EqualFold(a, b)
}

// CreateContact creates one contact (POST /api/v4/contacts) and answers its id.
func (c *Client) CreateContact(ctx context.Context, in ContactInput) (int64, error) {
	body := in.wire(false)
	body.RequestID = "0"
	r := request{method: http.MethodPost, path: "/api/v4/contacts", body: []contactOut{body}}
	var ans struct {
		Embedded struct {
			Contacts []struct {
				ID int64 `json:"id"`
			} `json:"contacts"`
		} `json:"_embedded"`
	}
	if _, err := c.do(ctx, r, &ans); err != nil {
		return 0, err
	}
	if len(ans.Embedded.Contacts) != 1 || ans.Embedded.Contacts[0].ID == 0 {
		return 0, &Error{Kind: ErrTransient, Op: r.op(), Detail: "answer without the contact id"}
	}
	return ans.Embedded.Contacts[0].ID, nil
}

// UpdateContact updates one contact (PATCH /api/v4/contacts/{id}). Its tags
// become in.Tags when in.Tags is not nil: that is how the subscriber's tags
// reach amoCRM.
func (c *Client) UpdateContact(ctx context.Context, id int64, in ContactInput) error {
	if id <= 0 {
		return &Error{Kind: ErrValidation, Op: "PATCH /api/v4/contacts/{id}", Detail: "invalid contact id"}
	}
	r := request{method: http.MethodPatch, path: "/api/v4/contacts/" + strconv.FormatInt(id, 10), body: in.wire(true)}
	var ans struct {
		ID int64 `json:"id"`
	}
	_, err := c.do(ctx, r, &ans)
	return err
}
