package actions

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/engine"
)

// AmoClients answers the amoCRM client of a workspace's integration, or an
// error wrapping engine.ErrNotFound when the integration does not exist.
// Clients are shared: the deployment caches one per integration.
type AmoClients func(ctx context.Context, ws, integration string) (*amocrm.Client, error)

// CRMStore is what amo_contact and amo_deal keep in the database.
type CRMStore interface {
	// TagNames answers the catalog names of the workspace's tags by id.
	TagNames(ctx context.Context, ws string) (map[string]string, error)
	// SetAmoContact links the subscriber to an amoCRM contact.
	SetAmoContact(ctx context.Context, ws, sub string, contactID int64) error
	// AddAmoLead adds a lead id to the subscriber once and, when contactID is
	// not 0, links that contact.
	AddAmoLead(ctx context.Context, ws, sub string, leadID, contactID int64) error
	// BeginAmoDeal records the intent to create a deal for a step. resumed is
	// true when an earlier attempt recorded it, with the ids it recorded as
	// created (0: none recorded; the lead may or may not exist).
	BeginAmoDeal(ctx context.Context, ws, stepID, marker string) (resumed bool, leadID, contactID int64, err error)
	// FinishAmoDeal records what a step's deal intent created.
	FinishAmoDeal(ctx context.Context, ws, stepID string, leadID, contactID int64) error
}

// CRM runs amo_contact and amo_deal.
func CRM(st CRMStore, clients AmoClients) map[string]engine.ActionFunc {
	c := &crm{st: st, clients: clients}
	return map[string]engine.ActionFunc{
		"amo_contact": c.contact,
		"amo_deal":    c.deal,
	}
}

type crm struct {
	st      CRMStore
	clients AmoClients
}

// client answers the integration's client; done is set when the step ends
// here (the integration was deleted after the tunnel was saved).
func (c *crm) client(ctx context.Context, ac *engine.ActionContext) (cl *amocrm.Client, done *engine.Outcome, err error) {
	cl, err = c.clients(ctx, ac.Step.WS, ac.Action.Integration)
	if errors.Is(err, engine.ErrNotFound) {
		out := engine.Skipped(fmt.Sprintf("integration %q no longer exists", ac.Action.Integration))
		return nil, &out, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("amoCRM integration %q: %w", ac.Action.Integration, err)
	}
	return cl, nil, nil
}

// contactInput is the subscriber as an amoCRM contact: name, phone, email and
// the names of their tags (the subscriber holds tag ids; a tag deleted from
// the catalog is left out). With no tags, Tags is nil: the contact's tags in
// amoCRM are left alone rather than wiped.
func (c *crm) contactInput(ctx context.Context, sub *engine.Subscriber) (amocrm.ContactInput, error) {
	in := amocrm.ContactInput{FirstName: sub.FirstName, LastName: sub.LastName, Phone: sub.Phone, Email: sub.Email}
	if len(sub.Tags) == 0 {
		return in, nil
	}
	names, err := c.st.TagNames(ctx, sub.WS)
	if err != nil {
		return in, fmt.Errorf("read tags: %w", err)
	}
	for _, id := range sub.Tags {
		if n, ok := names[id]; ok {
			in.Tags = append(in.Tags, n)
		}
	}
	return in, nil
}

// withFallbackName gives a contact with neither first nor last name a name
// amoCRM can show: the phone, the email, else the subscriber id.
func withFallbackName(in amocrm.ContactInput, sub *engine.Subscriber) amocrm.ContactInput {
	if strings.TrimSpace(in.FirstName+in.LastName) == "" {
		in.Name = amoFirst(sub.Phone, sub.Email, "Subscriber "+sub.ID)
	}
	return in
}

func amoFirst(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// contact runs amo_contact: the linked contact is updated; without one (or
// when it was deleted in amoCRM) a contact with the subscriber's phone or
// email is looked up and updated, else one is created. The id is stored on
// the subscriber. A replay after a crash finds the contact by the link or by
// phone/email, so it updates instead of creating a second one.
func (c *crm) contact(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	sub, integ := ac.Subscriber, ac.Action.Integration
	cl, done, err := c.client(ctx, ac)
	if done != nil || err != nil {
		return amoDeref(done), err
	}
	in, err := c.contactInput(ctx, sub)
	if err != nil {
		return engine.Outcome{}, err
	}
	var id int64
	result := ""
	if linked := sub.CRM.AmoContactID; linked != 0 {
		err := cl.UpdateContact(ctx, linked, in)
		switch {
		case err == nil:
			id, result = linked, "updated"
		case errors.Is(err, amocrm.ErrNotFound):
			// Deleted in amoCRM (or of another account): find or create anew.
		default:
			return amoFailure(integ, err)
		}
	}
	if id == 0 {
		found, err := cl.FindContactByPhoneOrEmail(ctx, sub.Phone, sub.Email)
		if err != nil {
			return amoFailure(integ, err)
		}
		if found != nil {
			if err := cl.UpdateContact(ctx, found.ID, in); err != nil {
				return amoFailure(integ, err)
			}
			id, result = found.ID, "matched"
		} else {
			if id, err = cl.CreateContact(ctx, withFallbackName(in, sub)); err != nil {
				return amoFailure(integ, err)
			}
			result = "created"
		}
	}
	if err := c.st.SetAmoContact(ctx, sub.WS, sub.ID, id); err != nil {
		return engine.Outcome{}, fmt.Errorf("store the amoCRM contact: %w", err)
	}
	return engine.Done(map[string]any{
		"integration": integ, "contact_id": id, "contact": result, "tags": amoNonNil(in.Tags),
	}), nil
}

// deal runs amo_deal: the lead is created in the pipeline and stage with its
// contact — linked to the subscriber's contact when there is one, otherwise
// together with a new contact in one call (leads/complex).
//
// amoCRM has no idempotency key, so the step writes an intent (keyed by the
// step id) before creating anything and records the ids before it is
// acknowledged; the lead's name carries a marker derived from the step id. A
// replay with a recorded result creates nothing; one without looks the lead up
// by its marker first, so a duplicate delivery or a crash after amoCRM
// answered never makes a second deal.
func (c *crm) deal(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	a, s, sub := ac.Action, ac.Step, ac.Subscriber
	cl, done, err := c.client(ctx, ac)
	if done != nil || err != nil {
		return amoDeref(done), err
	}
	name, err := dealName(ctx, ac)
	if err != nil {
		return engine.Failed(fmt.Sprintf("deal name: %v", err)), nil
	}
	marker := DealMarker(s.WS, s.ID)
	lead := amocrm.LeadInput{Name: withMarker(name, marker), PipelineID: a.PipelineID, StatusID: a.StatusID}
	detail := func(leadID, contactID int64, how string) map[string]any {
		return map[string]any{
			"integration": a.Integration, "lead_id": leadID, "contact_id": contactID,
			"pipeline_id": a.PipelineID, "status_id": a.StatusID, "name": lead.Name, "deal": how,
		}
	}

	resumed, leadID, contactID, err := c.st.BeginAmoDeal(ctx, s.WS, s.ID, marker)
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("record the deal intent: %w", err)
	}
	how := "created"
	switch {
	case leadID != 0:
		how = "recorded" // an earlier attempt created and recorded it
	case resumed:
		// An earlier attempt may have created the lead and lost the answer.
		// The search asks for the marker's code alone (one word for a
		// full-text index); only names holding the whole marker count.
		leads, err := cl.FindLeads(ctx, strings.TrimPrefix(marker, markerPrefix))
		if err != nil {
			return amoFailure(a.Integration, err)
		}
		for _, l := range leads {
			if strings.Contains(l.Name, marker) && (leadID == 0 || l.ID < leadID) {
				leadID, contactID = l.ID, 0
				if len(l.ContactIDs) > 0 {
					contactID = l.ContactIDs[0]
				}
			}
		}
		if leadID != 0 {
			how = "found"
		}
	}
	if leadID == 0 {
		in, err := c.contactInput(ctx, sub)
		if err != nil {
			return engine.Outcome{}, err
		}
		leadID, contactID, how, err = create(ctx, cl, lead, in, sub)
		if err != nil {
			return amoFailure(a.Integration, err)
		}
	}
	if how != "recorded" {
		if err := c.st.FinishAmoDeal(ctx, s.WS, s.ID, leadID, contactID); err != nil {
			return engine.Outcome{}, fmt.Errorf("record the deal: %w", err)
		}
	}
	if err := c.st.AddAmoLead(ctx, sub.WS, sub.ID, leadID, contactID); err != nil {
		return engine.Outcome{}, fmt.Errorf("store the amoCRM deal: %w", err)
	}
	return engine.Done(detail(leadID, contactID, how)), nil
}

// create makes the lead: linked to the subscriber's contact, or with a new
// contact in one call. A linked contact amoCRM no longer has falls back to
// the latter.
func create(ctx context.Context, cl *amocrm.Client, lead amocrm.LeadInput, in amocrm.ContactInput, sub *engine.Subscriber) (leadID, contactID int64, how string, err error) {
	if linked := sub.CRM.AmoContactID; linked != 0 {
		leadID, err = cl.CreateLead(ctx, lead, linked)
		if err == nil {
			return leadID, linked, "created", nil
		}
		if !contactGone(err) {
			return 0, 0, "", err
		}
	}
	res, err := cl.CreateLeadWithContact(ctx, lead, withFallbackName(in, sub))
	if err != nil {
		return 0, 0, "", err
	}
	how = "created"
	if res.Merged {
		how = "merged" // the account's duplicate control answered an existing lead
	}
	return res.LeadID, res.ContactID, how, nil
}

// contactGone tells whether amoCRM refused a lead because its linked contact
// does not exist (deleted, or of another account).
func contactGone(err error) bool {
	if errors.Is(err, amocrm.ErrNotFound) {
		return true
	}
	var e *amocrm.Error
	if !errors.As(err, &e) || !errors.Is(err, amocrm.ErrValidation) {
		return false
	}
	for _, f := range e.Fields {
		if strings.HasPrefix(f.Path, "_embedded.contacts") {
			return true
		}
	}
	return false
}

// dealName renders the action's name, or the default "<tunnel name>: <first
// name>". Text without placeholders is used as it is.
func dealName(ctx context.Context, ac *engine.ActionContext) (string, error) {
	name := ac.Action.Name
	if strings.TrimSpace(name) == "" {
		tunnelName := ac.Step.Tunnel
		if ac.Tunnel != nil && strings.TrimSpace(ac.Tunnel.Name) != "" {
			tunnelName = strings.TrimSpace(ac.Tunnel.Name)
		}
		sub := ac.Subscriber
		who := amoFirst(sub.FirstName, strings.TrimSpace(sub.LastName), sub.Phone, sub.Email, sub.ID)
		return tunnelName + ": " + who, nil
	}
	if !strings.Contains(name, "{{") {
		return strings.TrimSpace(name), nil
	}
	out, err := ac.Render(ctx, name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// maxLeadName is amoCRM's limit on a name, in characters.
const maxLeadName = 255

// markerPrefix starts every deal marker.
const markerPrefix = "tn-"

// DealMarker is the mark a step's deal carries in its name, by which a replay
// finds it: "tn-" and 12 base32 characters (60 bits) of a hash of the
// workspace and step id.
func DealMarker(ws, stepID string) string {
	sum := sha256.Sum256([]byte(ws + "\x00" + stepID))
	return markerPrefix + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:12]
}

// withMarker appends the marker in brackets, shortening the name so the
// whole stays within amoCRM's limit (the marker must survive).
func withMarker(name, marker string) string {
	suffix := " [" + marker + "]"
	room := maxLeadName - utf8.RuneCountInString(suffix)
	if utf8.RuneCountInString(name) > room {
		r := []rune(name)
		name = strings.TrimSpace(string(r[:room-1])) + "…"
	}
	return strings.TrimSpace(name + suffix)
}

// amoFailure turns a client error into the step's outcome: a rate limit or a
// transient failure is retried through the queue (honouring Retry-After); a
// refused token fails the step with the reconnect message (and, the store
// being marked, no retry storm follows); data or account problems fail it
// with amoCRM's own message.
func amoFailure(integration string, err error) (engine.Outcome, error) {
	switch {
	case amocrm.Retryable(err):
		return engine.Outcome{}, err
	case errors.Is(err, amocrm.ErrReconnect):
		return engine.Failed(fmt.Sprintf("amoCRM integration %q must be reconnected: %s", integration, amoMessage(err))), nil
	case errors.Is(err, amocrm.ErrValidation), errors.Is(err, amocrm.ErrAccount), errors.Is(err, amocrm.ErrNotFound):
		return engine.Failed(amoMessage(err)), nil
	}
	return engine.Outcome{}, err
}

// amoMessage is the error's text without the package prefix.
func amoMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "amocrm: ")
}

func amoDeref(o *engine.Outcome) engine.Outcome {
	if o == nil {
		return engine.Outcome{}
	}
	return *o
}

func amoNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
