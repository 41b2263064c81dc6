package amotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	maxBatch        = 250 // entities per create/update request
	maxComplex      = 50  // items per /leads/complex request
	maxFieldValues  = 40  // custom-field values per entity
	maxNameLength   = 255 // characters in a name
	phoneFieldID    = 501
	emailFieldID    = 502
	notValidChoice  = "The value you selected is not a valid choice."
	fieldNotBlank   = "This value should not be blank."
	fieldWrongType  = "This value should be of type string."
	fieldTooLong    = "This value is too long. It should have 255 characters or less."
	leadContactsMax = "A lead can have at most one contact in this request."
)

// enum ids per field and enum code (as an account's system fields have).
var enums = map[string]map[string]int64{
	"PHONE": {"WORK": 1001, "WORKDD": 1002, "MOB": 1003, "FAX": 1004, "HOME": 1005, "OTHER": 1006},
	"EMAIL": {"WORK": 2001, "PRIV": 2002, "OTHER": 2003},
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /oauth2/access_token", s.handleToken)
	m.HandleFunc("GET /api/v4/leads/pipelines", s.authed(s.handlePipelines))
	m.HandleFunc("GET /api/v4/contacts", s.authed(s.handleListContacts))
	m.HandleFunc("POST /api/v4/contacts", s.authed(s.handleCreateContacts))
	m.HandleFunc("PATCH /api/v4/contacts", s.authed(s.handlePatchContacts))
	m.HandleFunc("GET /api/v4/contacts/{id}", s.authed(s.handleGetContact))
	m.HandleFunc("PATCH /api/v4/contacts/{id}", s.authed(s.handlePatchContact))
	m.HandleFunc("GET /api/v4/leads", s.authed(s.handleListLeads))
	m.HandleFunc("POST /api/v4/leads", s.authed(s.handleCreateLeads))
	m.HandleFunc("POST /api/v4/leads/complex", s.authed(s.handleComplex))
	m.HandleFunc("GET /api/v4/leads/{id}", s.authed(s.handleGetLead))
	m.HandleFunc("POST /api/v4/leads/{id}/link", s.authed(s.handleLink))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "Not Found", "No route for "+r.Method+" "+r.URL.Path, nil)
	})
	s.mux = m
}

// ---- request bodies ----

type inTag struct {
	ID   *int64  `json:"id"`
	Name *string `json:"name"`
}

type inEmbedded struct {
	Tags      json.RawMessage   `json:"tags"` // absent, null (clear) or a list
	Contacts  []json.RawMessage `json:"contacts"`
	Companies []json.RawMessage `json:"companies"`
}

type inContact struct {
	ID                 *int64          `json:"id"`
	Name               *string         `json:"name"`
	FirstName          *string         `json:"first_name"`
	LastName           *string         `json:"last_name"`
	CustomFieldsValues json.RawMessage `json:"custom_fields_values"`
	TagsToAdd          []inTag         `json:"tags_to_add"`
	TagsToDelete       []inTag         `json:"tags_to_delete"`
	Embedded           *inEmbedded     `json:"_embedded"`
	RequestID          json.RawMessage `json:"request_id"`
}

type inLead struct {
	ID                 *int64          `json:"id"`
	Name               *string         `json:"name"`
	PipelineID         *int64          `json:"pipeline_id"`
	StatusID           *int64          `json:"status_id"`
	Price              *int64          `json:"price"`
	CustomFieldsValues json.RawMessage `json:"custom_fields_values"`
	TagsToAdd          []inTag         `json:"tags_to_add"`
	TagsToDelete       []inTag         `json:"tags_to_delete"`
	Embedded           *inEmbedded     `json:"_embedded"`
	RequestID          json.RawMessage `json:"request_id"`
}

// requestID is an item's own request_id (any string), else its index.
func requestID(raw json.RawMessage, i int) string {
	var s string
	if len(raw) > 0 && json.Unmarshal(raw, &s) == nil && s != "" {
		return s
	}
	return strconv.Itoa(i)
}

// readArray reads a JSON array body of at most max items into out (a
// pointer to a slice); it answers the error itself.
func readArray(w http.ResponseWriter, r *http.Request, max int, out any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeBadRequest(w, "Request body too large or unreadable")
		return false
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '[' {
		writeBadRequest(w, "Request body must be a JSON array")
		return false
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		writeBadRequest(w, "Request body is not valid JSON")
		return false
	}
	if len(raws) == 0 {
		writeBadRequest(w, "Request body is an empty array")
		return false
	}
	if len(raws) > max {
		writeBadRequest(w, fmt.Sprintf("Too many entities in one request: %d, at most %d", len(raws), max))
		return false
	}
	if err := json.Unmarshal(body, out); err != nil {
		writeBadRequest(w, "Request body does not match the schema: "+err.Error())
		return false
	}
	return true
}

// ---- validation ----

// verrs collects one item's errors.
type verrs struct {
	list []fieldErr
}

func (v *verrs) add(code, path, detail string) {
	v.list = append(v.list, fieldErr{Code: code, Path: path, Detail: detail})
}

// contactChange is a validated contact body.
type contactChange struct {
	id                   *int64
	name, first, last    *string
	phones, emails       *[]Value
	tags                 *[]string // replace the list
	addTags, deleteTags  []string
	addTagIDs, delTagIDs []int64
}

func checkName(v *verrs, path string, s *string) {
	if s != nil && utf8.RuneCountInString(*s) > maxNameLength {
		v.add("InvalidLength", path, fieldTooLong)
	}
}

// checkContact validates one contact body; prefix is its path ("" or
// "_embedded.contacts.0.").
func (s *Server) checkContact(in inContact, prefix string, v *verrs) contactChange {
	ch := contactChange{id: in.ID, name: in.Name, first: in.FirstName, last: in.LastName}
	checkName(v, prefix+"name", in.Name)
	checkName(v, prefix+"first_name", in.FirstName)
	checkName(v, prefix+"last_name", in.LastName)
	ch.phones, ch.emails = s.checkFields(in.CustomFieldsValues, prefix+"custom_fields_values", v)
	if in.Embedded != nil {
		ch.tags = s.checkTagList(in.Embedded.Tags, "contacts", prefix+"_embedded.tags", v)
	}
	ch.addTags, ch.addTagIDs = s.checkTags(in.TagsToAdd, "contacts", prefix+"tags_to_add", v)
	ch.deleteTags, ch.delTagIDs = s.checkTags(in.TagsToDelete, "contacts", prefix+"tags_to_delete", v)
	return ch
}

// checkFields validates custom_fields_values of a contact: the PHONE and EMAIL
// system fields, by field_code or field_id, with their enum codes.
func (s *Server) checkFields(raw json.RawMessage, path string, v *verrs) (phones, emails *[]Value) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var fields []struct {
		FieldID   *int64          `json:"field_id"`
		FieldCode *string         `json:"field_code"`
		Values    json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		v.add("InvalidType", path, "This value should be of type array.")
		return nil, nil
	}
	total := 0
	for i, f := range fields {
		fp := fmt.Sprintf("%s.%d", path, i)
		code := ""
		switch {
		case f.FieldID != nil && *f.FieldID == phoneFieldID:
			code = "PHONE"
		case f.FieldID != nil && *f.FieldID == emailFieldID:
			code = "EMAIL"
		case f.FieldID != nil:
			v.add("NotSupportedChoice", fp+".field_id", notValidChoice)
			continue
		case f.FieldCode != nil && (*f.FieldCode == "PHONE" || *f.FieldCode == "EMAIL"):
			code = *f.FieldCode
		case f.FieldCode != nil:
			v.add("NotSupportedChoice", fp+".field_code", notValidChoice)
			continue
		default:
			v.add("NotBlank", fp+".field_id", fieldNotBlank)
			continue
		}
		var vals []struct {
			Value    json.RawMessage `json:"value"`
			EnumCode *string         `json:"enum_code"`
			EnumID   *int64          `json:"enum_id"`
		}
		if len(f.Values) > 0 && string(f.Values) != "null" {
			if err := json.Unmarshal(f.Values, &vals); err != nil {
				v.add("InvalidType", fp+".values", "This value should be of type array.")
				continue
			}
		}
		out := []Value{}
		for j, val := range vals {
			vp := fmt.Sprintf("%s.values.%d", fp, j)
			var text string
			if err := json.Unmarshal(val.Value, &text); err != nil {
				v.add("InvalidType", vp+".value", fieldWrongType)
				continue
			}
			if strings.TrimSpace(text) == "" {
				v.add("NotBlank", vp+".value", fieldNotBlank)
				continue
			}
			enum := "WORK"
			if val.EnumCode != nil {
				if _, ok := enums[code][*val.EnumCode]; !ok {
					v.add("NotSupportedChoice", vp+".enum_code", notValidChoice)
					continue
				}
				enum = *val.EnumCode
			} else if val.EnumID != nil {
				enum = ""
				for c, id := range enums[code] {
					if id == *val.EnumID {
						enum = c
					}
				}
				if enum == "" {
					v.add("NotSupportedChoice", vp+".enum_id", notValidChoice)
					continue
				}
			}
			out = append(out, Value{Value: text, EnumCode: enum})
		}
		total += len(out)
		if code == "PHONE" {
			phones = &out
		} else {
			emails = &out
		}
	}
	if total > maxFieldValues {
		v.add("TooMany", path, fmt.Sprintf("An entity can have at most %d custom field values.", maxFieldValues))
	}
	return phones, emails
}

// checkTagList validates _embedded.tags: null clears, a list replaces.
func (s *Server) checkTagList(raw json.RawMessage, entity, path string, v *verrs) *[]string {
	if len(raw) == 0 {
		return nil
	}
	if string(raw) == "null" {
		empty := []string{}
		return &empty
	}
	var tags []inTag
	if err := json.Unmarshal(raw, &tags); err != nil {
		v.add("InvalidType", path, "This value should be of type array.")
		return nil
	}
	names, ids := s.checkTags(tags, entity, path, v)
	for _, id := range ids {
		names = append(names, s.tagNames[id])
	}
	return &names
}

// checkTags validates tag references ({"name"} or {"id"}); names are
// answered as given, ids must exist. Caller holds mu.
func (s *Server) checkTags(tags []inTag, entity, path string, v *verrs) (names []string, ids []int64) {
	for i, t := range tags {
		tp := fmt.Sprintf("%s.%d", path, i)
		switch {
		case t.Name != nil && strings.TrimSpace(*t.Name) != "":
			if utf8.RuneCountInString(*t.Name) > maxNameLength {
				v.add("InvalidLength", tp+".name", fieldTooLong)
				continue
			}
			names = append(names, strings.TrimSpace(*t.Name))
		case t.ID != nil:
			if _, ok := s.tagNames[*t.ID]; !ok || !s.tagOf(entity, *t.ID) {
				v.add("NotSupportedChoice", tp+".id", notValidChoice)
				continue
			}
			ids = append(ids, *t.ID)
		default:
			v.add("NotBlank", tp+".name", fieldNotBlank)
		}
	}
	return names, ids
}

func (s *Server) tagOf(entity string, id int64) bool {
	for _, tid := range s.tags[entity] {
		if tid == id {
			return true
		}
	}
	return false
}

// apply writes a validated change to c. Caller holds mu.
func (s *Server) apply(c *Contact, ch contactChange) {
	if ch.name != nil {
		c.Name = *ch.name
	}
	if ch.first != nil {
		c.FirstName = *ch.first
	}
	if ch.last != nil {
		c.LastName = *ch.last
	}
	if c.Name == "" && (c.FirstName != "" || c.LastName != "") {
		c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	if ch.phones != nil {
		c.Phones = append([]Value(nil), (*ch.phones)...)
	}
	if ch.emails != nil {
		c.Emails = append([]Value(nil), (*ch.emails)...)
	}
	c.Tags = s.applyTags("contacts", c.Tags, ch.tags, ch.addTags, ch.addTagIDs, ch.deleteTags, ch.delTagIDs)
	c.UpdatedAt = s.now().Unix()
}

// applyTags: a replacement list wins and tags_to_add / tags_to_delete are then
// ignored, as the vendor documents. Caller holds mu.
func (s *Server) applyTags(entity string, cur []string, replace *[]string, add []string, addIDs []int64, del []string, delIDs []int64) []string {
	if replace != nil {
		return s.uniqueTags(entity, *replace)
	}
	for _, id := range addIDs {
		add = append(add, s.tagNames[id])
	}
	for _, id := range delIDs {
		del = append(del, s.tagNames[id])
	}
	out := s.uniqueTags(entity, append(append([]string(nil), cur...), add...))
	drop := map[string]bool{}
	for _, d := range del {
		drop[strings.ToLower(d)] = true
	}
	kept := out[:0]
	for _, t := range out {
		if !drop[strings.ToLower(t)] {
			kept = append(kept, t)
		}
	}
	return kept
}

// uniqueTags dedupes case-insensitively, registering each tag in the catalog
// (whose first spelling wins). Caller holds mu.
func (s *Server) uniqueTags(entity string, names []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, n := range names {
		k := strings.ToLower(n)
		if n == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, s.tagNames[s.tagID(entity, n)])
	}
	return out
}

// stage resolves a lead's pipeline and status. Caller holds mu.
func (s *Server) stage(pid, sid *int64, prefix string, v *verrs) (int64, int64) {
	var p *Pipeline
	for i := range s.pipelines {
		if (pid == nil && s.pipelines[i].IsMain) || (pid != nil && s.pipelines[i].ID == *pid) {
			p = &s.pipelines[i]
			break
		}
	}
	if p == nil {
		v.add("NotSupportedChoice", prefix+"pipeline_id", notValidChoice)
		return 0, 0
	}
	if sid == nil {
		for _, st := range p.Statuses {
			if st.Type == 0 && st.ID != 142 && st.ID != 143 {
				return p.ID, st.ID
			}
		}
		return p.ID, 142
	}
	for _, st := range p.Statuses {
		if st.ID == *sid {
			return p.ID, st.ID
		}
	}
	v.add("NotSupportedChoice", prefix+"status_id", notValidChoice)
	return p.ID, 0
}

// checkLead validates the lead's own fields.
func (s *Server) checkLead(in inLead, v *verrs) (name string, pid, sid int64, tags *[]string, add, del []string) {
	checkName(v, "name", in.Name)
	if in.Name != nil {
		name = *in.Name
	}
	if in.Price != nil && *in.Price < 0 {
		v.add("GreaterThanOrEqual", "price", "This value should be greater than or equal to 0.")
	}
	if len(in.CustomFieldsValues) > 0 && string(in.CustomFieldsValues) != "null" {
		// The account has no lead custom fields.
		v.add("NotSupportedChoice", "custom_fields_values.0.field_id", notValidChoice)
	}
	pid, sid = s.stage(in.PipelineID, in.StatusID, "", v)
	if in.Embedded != nil {
		tags = s.checkTagList(in.Embedded.Tags, "leads", "_embedded.tags", v)
	}
	var addIDs, delIDs []int64
	add, addIDs = s.checkTags(in.TagsToAdd, "leads", "tags_to_add", v)
	del, delIDs = s.checkTags(in.TagsToDelete, "leads", "tags_to_delete", v)
	for _, id := range addIDs {
		add = append(add, s.tagNames[id])
	}
	for _, id := range delIDs {
		del = append(del, s.tagNames[id])
	}
	return name, pid, sid, tags, add, del
}

// ---- JSON answers ----

func (s *Server) contactJSON(r *http.Request, c *Contact) map[string]any {
	var cfv any
	var fields []map[string]any
	for _, f := range []struct {
		id     int64
		code   string
		name   string
		values []Value
	}{{phoneFieldID, "PHONE", "Phone", c.Phones}, {emailFieldID, "EMAIL", "Email", c.Emails}} {
		if len(f.values) == 0 {
			continue
		}
		var vals []map[string]any
		for _, v := range f.values {
			vals = append(vals, map[string]any{"value": v.Value, "enum_id": enums[f.code][v.EnumCode], "enum_code": v.EnumCode})
		}
		fields = append(fields, map[string]any{"field_id": f.id, "field_name": f.name, "field_code": f.code, "field_type": "multitext", "values": vals})
	}
	if len(fields) > 0 {
		cfv = fields
	}
	return map[string]any{
		"id": c.ID, "name": c.Name, "first_name": c.FirstName, "last_name": c.LastName,
		"responsible_user_id": 1, "group_id": 0, "created_by": 0, "updated_by": 0,
		"created_at": c.CreatedAt, "updated_at": c.UpdatedAt, "closest_task_at": nil,
		"is_deleted": false, "is_unsorted": false, "custom_fields_values": cfv, "account_id": 1,
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/contacts/" + strconv.FormatInt(c.ID, 10))},
		"_embedded": map[string]any{"tags": s.tagsJSON("contacts", c.Tags), "companies": []any{}},
	}
}

func (s *Server) tagsJSON(entity string, names []string) []map[string]any {
	out := []map[string]any{}
	for _, n := range names {
		out = append(out, map[string]any{"id": s.tagID(entity, n), "name": n, "color": nil})
	}
	return out
}

func (s *Server) leadJSON(r *http.Request, l *Lead, withContacts bool) map[string]any {
	emb := map[string]any{"tags": s.tagsJSON("leads", l.Tags), "companies": []any{}}
	if withContacts {
		cs := []map[string]any{}
		for i, id := range l.ContactIDs {
			cs = append(cs, map[string]any{"id": id, "is_main": i == 0,
				"_links": map[string]any{"self": link(base(r) + "/api/v4/contacts/" + strconv.FormatInt(id, 10))}})
		}
		emb["contacts"] = cs
	}
	return map[string]any{
		"id": l.ID, "name": l.Name, "price": 0, "responsible_user_id": 1, "group_id": 0,
		"status_id": l.StatusID, "pipeline_id": l.PipelineID, "loss_reason_id": nil,
		"created_by": 0, "updated_by": 0, "created_at": l.CreatedAt, "updated_at": l.UpdatedAt,
		"closed_at": nil, "closest_task_at": nil, "is_deleted": false, "custom_fields_values": nil,
		"score": nil, "account_id": 1, "labor_cost": nil,
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/leads/" + strconv.FormatInt(l.ID, 10))},
		"_embedded": emb,
	}
}

// ---- pipelines ----

func (s *Server) handlePipelines(w http.ResponseWriter, r *http.Request) {
	page, limit, ok := s.pageParams(w, r.URL.Query())
	if !ok {
		return
	}
	s.mu.Lock()
	all := s.pipelines
	s.mu.Unlock()
	from := (page - 1) * limit
	if from >= len(all) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	to := min(from+limit, len(all))
	var ps []map[string]any
	for _, p := range all[from:to] {
		var sts []map[string]any
		for _, st := range p.Statuses {
			sts = append(sts, map[string]any{
				"id": st.ID, "name": st.Name, "sort": st.Sort, "is_editable": st.Type == 0 && st.ID != 142 && st.ID != 143,
				"pipeline_id": p.ID, "color": "#99ccff", "type": st.Type, "account_id": 1,
				"_links": map[string]any{"self": link(fmt.Sprintf("%s/api/v4/leads/pipelines/%d/statuses/%d", base(r), p.ID, st.ID))},
			})
		}
		ps = append(ps, map[string]any{
			"id": p.ID, "name": p.Name, "sort": p.Sort, "is_main": p.IsMain, "is_unsorted_on": true,
			"is_archive": false, "account_id": 1,
			"_links":    map[string]any{"self": link(fmt.Sprintf("%s/api/v4/leads/pipelines/%d", base(r), p.ID))},
			"_embedded": map[string]any{"statuses": sts},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_total_items": len(all),
		"_page":        page,
		"_links":       pageLinks(r, page, limit, to < len(all)),
		"_embedded":    map[string]any{"pipelines": ps},
	})
}

// ---- contacts ----

// matchContact is the full-text search: a case-insensitive substring of the
// name or any phone or email; a query of digits (a phone) also matches the
// digits of a phone, however it is formatted.
func matchContact(c *Contact, q string) bool {
	lq := strings.ToLower(strings.TrimSpace(q))
	if lq == "" {
		return true
	}
	texts := []string{c.Name, c.FirstName, c.LastName}
	for _, v := range c.Phones {
		texts = append(texts, v.Value)
	}
	for _, v := range c.Emails {
		texts = append(texts, v.Value)
	}
	for _, t := range texts {
		if strings.Contains(strings.ToLower(t), lq) {
			return true
		}
	}
	if qd := digits(q); len(qd) >= 3 && looksLikePhone(q) {
		for _, v := range c.Phones {
			if strings.Contains(digits(v.Value), qd) {
				return true
			}
		}
	}
	return false
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func looksLikePhone(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789+-() .", r) {
			return false
		}
	}
	return true
}

func (s *Server) handleListContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, limit, ok := s.pageParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	var hits []*Contact
	for _, c := range s.contacts {
		if matchContact(c, q.Get("query")) {
			hits = append(hits, c)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].ID < hits[j].ID })
	from := (page - 1) * limit
	if from >= len(hits) {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	to := min(from+limit, len(hits))
	var out []map[string]any
	for _, c := range hits[from:to] {
		out = append(out, s.contactJSON(r, c))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_page":     page,
		"_links":    pageLinks(r, page, limit, to < len(hits)),
		"_embedded": map[string]any{"contacts": out},
	})
}

func (s *Server) handleGetContact(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	c, ok := s.contacts[id]
	if err != nil || !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	body := s.contactJSON(r, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleCreateContacts(w http.ResponseWriter, r *http.Request) {
	var items []inContact
	if !readArray(w, r, maxBatch, &items) {
		return
	}
	s.mu.Lock()
	var bad []itemErrs
	changes := make([]contactChange, len(items))
	for i, in := range items {
		var v verrs
		changes[i] = s.checkContact(in, "", &v)
		if len(v.list) > 0 {
			bad = append(bad, itemErrs{RequestID: requestID(in.RequestID, i), Errors: v.list})
		}
	}
	if bad != nil {
		s.mu.Unlock()
		writeValidation(w, bad)
		return
	}
	created := Created{Method: r.Method, Path: r.URL.Path}
	var out []map[string]any
	for i, ch := range changes {
		c := &Contact{ID: s.newID("contacts"), CreatedAt: s.now().Unix()}
		s.apply(c, ch)
		s.contacts[c.ID] = c
		created.Contacts = append(created.Contacts, c.ID)
		out = append(out, map[string]any{"id": c.ID, "request_id": requestID(items[i].RequestID, i),
			"_links": map[string]any{"self": link(base(r) + "/api/v4/contacts/" + strconv.FormatInt(c.ID, 10))}})
	}
	hook := s.afterCreate
	s.mu.Unlock()
	if hook != nil && hook(created) {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/contacts")},
		"_embedded": map[string]any{"contacts": out},
	})
}

func (s *Server) handlePatchContact(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeNotFound(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	body = bytes.TrimSpace(body)
	if err != nil || len(body) == 0 || body[0] != '{' {
		writeBadRequest(w, "Request body must be a JSON object")
		return
	}
	var in inContact
	if err := json.Unmarshal(body, &in); err != nil {
		writeBadRequest(w, "Request body does not match the schema: "+err.Error())
		return
	}
	s.mu.Lock()
	c, ok := s.contacts[id]
	if !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	var v verrs
	ch := s.checkContact(in, "", &v)
	if len(v.list) > 0 {
		s.mu.Unlock()
		writeValidation(w, []itemErrs{{RequestID: "0", Errors: v.list}})
		return
	}
	s.apply(c, ch)
	ans := map[string]any{"id": c.ID, "name": c.Name, "updated_at": c.UpdatedAt,
		"_links": map[string]any{"self": link(base(r) + "/api/v4/contacts/" + strconv.FormatInt(c.ID, 10))}}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) handlePatchContacts(w http.ResponseWriter, r *http.Request) {
	var items []inContact
	if !readArray(w, r, maxBatch, &items) {
		return
	}
	s.mu.Lock()
	var bad []itemErrs
	changes := make([]contactChange, len(items))
	for i, in := range items {
		var v verrs
		switch {
		case in.ID == nil:
			v.add("NotBlank", "id", fieldNotBlank)
		case s.contacts[*in.ID] == nil:
			v.add("NotSupportedChoice", "id", notValidChoice)
		}
		changes[i] = s.checkContact(in, "", &v)
		if len(v.list) > 0 {
			bad = append(bad, itemErrs{RequestID: requestID(in.RequestID, i), Errors: v.list})
		}
	}
	if bad != nil {
		s.mu.Unlock()
		writeValidation(w, bad)
		return
	}
	var out []map[string]any
	for i, ch := range changes {
		c := s.contacts[*ch.id]
		s.apply(c, ch)
		out = append(out, map[string]any{"id": c.ID, "updated_at": c.UpdatedAt, "request_id": requestID(items[i].RequestID, i),
			"_links": map[string]any{"self": link(base(r) + "/api/v4/contacts/" + strconv.FormatInt(c.ID, 10))}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/contacts")},
		"_embedded": map[string]any{"contacts": out},
	})
}

// ---- leads ----

func matchLead(l *Lead, q string) bool {
	lq := strings.ToLower(strings.TrimSpace(q))
	return lq == "" || strings.Contains(strings.ToLower(l.Name), lq) || strconv.FormatInt(l.ID, 10) == lq
}

// withContacts reports whether `with` asks for contacts.
func withContacts(r *http.Request) bool {
	for _, w := range strings.Split(r.URL.Query().Get("with"), ",") {
		if strings.TrimSpace(w) == "contacts" {
			return true
		}
	}
	return false
}

func (s *Server) handleListLeads(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, limit, ok := s.pageParams(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	var hits []*Lead
	for _, l := range s.leads {
		if matchLead(l, q.Get("query")) {
			hits = append(hits, l)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].ID < hits[j].ID })
	from := (page - 1) * limit
	if from >= len(hits) {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	to := min(from+limit, len(hits))
	var out []map[string]any
	for _, l := range hits[from:to] {
		out = append(out, s.leadJSON(r, l, withContacts(r)))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_page":     page,
		"_links":    pageLinks(r, page, limit, to < len(hits)),
		"_embedded": map[string]any{"leads": out},
	})
}

func (s *Server) handleGetLead(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	l, ok := s.leads[id]
	if err != nil || !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	body := s.leadJSON(r, l, withContacts(r))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// newLead stores a lead. Caller holds mu.
func (s *Server) newLead(name string, pid, sid int64, tags *[]string, add, del []string, contacts []int64) *Lead {
	now := s.now().Unix()
	l := &Lead{ID: s.newID("leads"), Name: name, PipelineID: pid, StatusID: sid, ContactIDs: contacts, CreatedAt: now, UpdatedAt: now}
	if l.Name == "" {
		l.Name = "Lead #" + strconv.FormatInt(l.ID, 10)
	}
	l.Tags = s.applyTags("leads", nil, tags, add, nil, del, nil)
	s.leads[l.ID] = l
	return l
}

func (s *Server) handleCreateLeads(w http.ResponseWriter, r *http.Request) {
	var items []inLead
	if !readArray(w, r, maxBatch, &items) {
		return
	}
	type plan struct {
		name      string
		pid, sid  int64
		tags      *[]string
		add, del  []string
		contactID []int64
	}
	s.mu.Lock()
	var bad []itemErrs
	plans := make([]plan, len(items))
	for i, in := range items {
		var v verrs
		p := &plans[i]
		p.name, p.pid, p.sid, p.tags, p.add, p.del = s.checkLead(in, &v)
		if in.Embedded != nil {
			for j, raw := range in.Embedded.Contacts {
				var ref struct {
					ID *int64 `json:"id"`
				}
				path := fmt.Sprintf("_embedded.contacts.%d.id", j)
				switch {
				case json.Unmarshal(raw, &ref) != nil || ref.ID == nil:
					v.add("NotBlank", path, fieldNotBlank)
				case s.contacts[*ref.ID] == nil:
					v.add("NotSupportedChoice", path, notValidChoice)
				default:
					p.contactID = append(p.contactID, *ref.ID)
				}
			}
		}
		if len(v.list) > 0 {
			bad = append(bad, itemErrs{RequestID: requestID(in.RequestID, i), Errors: v.list})
		}
	}
	if bad != nil {
		s.mu.Unlock()
		writeValidation(w, bad)
		return
	}
	created := Created{Method: r.Method, Path: r.URL.Path}
	var out []map[string]any
	for i, p := range plans {
		l := s.newLead(p.name, p.pid, p.sid, p.tags, p.add, p.del, p.contactID)
		created.Leads = append(created.Leads, l.ID)
		out = append(out, map[string]any{"id": l.ID, "request_id": requestID(items[i].RequestID, i),
			"_links": map[string]any{"self": link(base(r) + "/api/v4/leads/" + strconv.FormatInt(l.ID, 10))}})
	}
	hook := s.afterCreate
	s.mu.Unlock()
	if hook != nil && hook(created) {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/leads")},
		"_embedded": map[string]any{"leads": out},
	})
}

// duplicateOf finds, for duplicate control, an open lead in the pipeline of
// a contact with the same phone or email. Caller holds mu.
func (s *Server) duplicateOf(ch contactChange, pid int64) (leadID, contactID int64) {
	same := func(c *Contact) bool {
		if ch.phones != nil {
			for _, p := range *ch.phones {
				for _, q := range c.Phones {
					if d := digits(p.Value); d != "" && d == digits(q.Value) {
						return true
					}
				}
			}
		}
		if ch.emails != nil {
			for _, e := range *ch.emails {
				for _, f := range c.Emails {
					if strings.EqualFold(strings.TrimSpace(e.Value), strings.TrimSpace(f.Value)) {
						return true
					}
				}
			}
		}
		return false
	}
	var best *Lead
	for _, l := range s.leads {
		if l.PipelineID != pid || l.StatusID == 142 || l.StatusID == 143 {
			continue
		}
		for _, cid := range l.ContactIDs {
			if c := s.contacts[cid]; c != nil && same(c) && (best == nil || l.ID < best.ID) {
				best, contactID = l, cid
			}
		}
	}
	if best == nil {
		return 0, 0
	}
	return best.ID, contactID
}

func (s *Server) handleComplex(w http.ResponseWriter, r *http.Request) {
	var items []inLead
	if !readArray(w, r, maxComplex, &items) {
		return
	}
	type plan struct {
		name     string
		pid, sid int64
		tags     *[]string
		add, del []string
		contact  *contactChange
		linkID   int64 // an existing contact linked by id (ComplexLinksByID)
	}
	s.mu.Lock()
	var bad []itemErrs
	plans := make([]plan, len(items))
	for i, in := range items {
		var v verrs
		p := &plans[i]
		p.name, p.pid, p.sid, p.tags, p.add, p.del = s.checkLead(in, &v)
		if in.Embedded != nil {
			if len(in.Embedded.Contacts) > 1 {
				v.add("TooMany", "_embedded.contacts", leadContactsMax)
			}
			if len(in.Embedded.Companies) > 1 {
				v.add("TooMany", "_embedded.companies", "A lead can have at most one company in this request.")
			}
			if len(in.Embedded.Contacts) == 1 {
				var ic inContact
				if err := json.Unmarshal(in.Embedded.Contacts[0], &ic); err != nil {
					v.add("InvalidType", "_embedded.contacts.0", "This value should be of type object.")
				} else {
					ch := s.checkContact(ic, "_embedded.contacts.0.", &v)
					if ic.ID != nil && s.opts.ComplexLinksByID {
						if s.contacts[*ic.ID] == nil {
							v.add("NotSupportedChoice", "_embedded.contacts.0.id", notValidChoice)
						}
						p.linkID = *ic.ID
					}
					p.contact = &ch
				}
			}
		}
		if len(v.list) > 0 {
			bad = append(bad, itemErrs{RequestID: requestID(in.RequestID, i), Errors: v.list})
		}
	}
	if bad != nil {
		s.mu.Unlock()
		writeValidation(w, bad)
		return
	}
	created := Created{Method: r.Method, Path: r.URL.Path}
	out := []map[string]any{}
	for i, p := range plans {
		rid := []string{requestID(items[i].RequestID, i)}
		if s.opts.DuplicateControl && p.contact != nil && p.linkID == 0 {
			if lid, cid := s.duplicateOf(*p.contact, p.pid); lid != 0 {
				out = append(out, map[string]any{"id": lid, "contact_id": cid, "company_id": nil, "request_id": rid, "merged": true})
				continue
			}
		}
		var contactID any
		var links []int64
		switch {
		case p.linkID != 0:
			c := s.contacts[p.linkID]
			s.apply(c, *p.contact)
			contactID, links = c.ID, []int64{c.ID}
		case p.contact != nil:
			c := &Contact{ID: s.newID("contacts"), CreatedAt: s.now().Unix()}
			s.apply(c, *p.contact)
			s.contacts[c.ID] = c
			created.Contacts = append(created.Contacts, c.ID)
			contactID, links = c.ID, []int64{c.ID}
		}
		l := s.newLead(p.name, p.pid, p.sid, p.tags, p.add, p.del, links)
		created.Leads = append(created.Leads, l.ID)
		out = append(out, map[string]any{"id": l.ID, "contact_id": contactID, "company_id": nil, "request_id": rid, "merged": false})
	}
	hook := s.afterCreate
	s.mu.Unlock()
	if hook != nil && (len(created.Leads) > 0 || len(created.Contacts) > 0) && hook(created) {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleLink(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeNotFound(w)
		return
	}
	var items []struct {
		ToEntityID   *int64 `json:"to_entity_id"`
		ToEntityType string `json:"to_entity_type"`
	}
	if !readArray(w, r, maxBatch, &items) {
		return
	}
	s.mu.Lock()
	l, ok := s.leads[id]
	if !ok {
		s.mu.Unlock()
		writeNotFound(w)
		return
	}
	var v verrs
	for i, it := range items {
		switch {
		case it.ToEntityType != "contacts":
			v.add("NotSupportedChoice", fmt.Sprintf("%d.to_entity_type", i), notValidChoice)
		case it.ToEntityID == nil || s.contacts[*it.ToEntityID] == nil:
			v.add("NotSupportedChoice", fmt.Sprintf("%d.to_entity_id", i), notValidChoice)
		}
	}
	if len(v.list) > 0 {
		s.mu.Unlock()
		writeValidation(w, []itemErrs{{RequestID: "0", Errors: v.list}})
		return
	}
	var out []map[string]any
	for _, it := range items {
		cid := *it.ToEntityID
		linked := false
		for _, have := range l.ContactIDs {
			linked = linked || have == cid
		}
		if !linked {
			l.ContactIDs = append(l.ContactIDs, cid)
		}
		out = append(out, map[string]any{"entity_id": l.ID, "entity_type": "leads", "to_entity_id": cid,
			"to_entity_type": "contacts", "metadata": map[string]any{"main_contact": l.ContactIDs[0] == cid}})
	}
	l.UpdatedAt = s.now().Unix()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_links":    map[string]any{"self": link(base(r) + "/api/v4/leads/" + strconv.FormatInt(id, 10) + "/link")},
		"_embedded": map[string]any{"links": out},
	})
}
