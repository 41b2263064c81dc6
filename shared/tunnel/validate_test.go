package tunnel

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// catalog holds every reference of SPEC section 8's example tunnel, saved as "webinar".
func catalog() Catalog {
	return Catalog{
		Tags:         set("lead", "cold", "vip-old"),
		Fields:       map[string]string{"source": "string", "lms_id": "string", "age": "number"},
		Variables:    set("webinar_url", "lms_token"),
		SalesPlans:   set("q4"),
		Operators:    set("anna"),
		EmailBots:    set("main"),
		LeadSources:  set("landing"),
		Integrations: set("amo"),
		Tunnels: map[string][]string{
			"default":    nil,
			"nurture":    {"day1", "day2"},
			"cold-leads": {"c1"},
			"webinar":    {"hello", "old-block"}, // the stored version of the tunnel being saved
		},
	}
}

const selfID = "webinar"

// act points at action k of the example's action block.
func act(k int) string { return "/blocks/1/actions/" + strconv.Itoa(k) }

func TestValidateExample(t *testing.T) {
	if errs := Validate(selfID, example(t), catalog()); len(errs) != 0 {
		t.Fatalf("example tunnel does not validate:\n%s", list(errs))
	}
	// A new tunnel id is fine too: nothing in the example refers to the tunnel itself.
	if errs := Validate("brand-new", example(t), catalog()); len(errs) != 0 {
		t.Fatalf("example under a new id:\n%s", list(errs))
	}
}

func TestValidateNil(t *testing.T) {
	if errs := Validate("x", nil, Catalog{}); len(errs) != 1 || errs[0].Pointer != "" {
		t.Fatalf("Validate(nil) = %v", errs)
	}
}

// chain builds n message blocks b0 -> b1 -> ... -> b(n-1).
func chain(n int) *Tunnel {
	t := &Tunnel{Name: "chain", Entry: "b0"}
	for i := 0; i < n; i++ {
		b := Block{ID: "b" + strconv.Itoa(i), Type: BlockMessage, Text: "x"}
		if i+1 < n {
			b.Next = []string{"b" + strconv.Itoa(i+1)}
		}
		t.Blocks = append(t.Blocks, b)
	}
	return t
}

// fan builds an entry block with n next blocks.
func fan(n int) *Tunnel {
	t := &Tunnel{Name: "fan", Entry: "root", Blocks: []Block{{ID: "root", Type: BlockMessage, Text: "x"}}}
	for i := 0; i < n; i++ {
		id := "leaf" + strconv.Itoa(i)
		t.Blocks[0].Next = append(t.Blocks[0].Next, id)
		t.Blocks = append(t.Blocks, Block{ID: id, Type: BlockMessage, Text: "x"})
	}
	return t
}

func TestValidateSizes(t *testing.T) {
	tests := []struct {
		name string
		tun  *Tunnel
		want []FieldError
	}{
		{"500 blocks", chain(500), nil},
		{"501 blocks", chain(501), []FieldError{{"/blocks", "a tunnel has at most 500 blocks, this one has 501"}}},
		{"20 next", fan(20), nil},
		{"21 next", fan(21), []FieldError{{"/blocks/0/next", "at most 20 next blocks, got 21"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := Validate("x", tt.tun, Catalog{}); !reflect.DeepEqual(errs, tt.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", list(errs), list(tt.want))
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	type fe = FieldError
	tests := []struct {
		name   string
		mutate func(t *Tunnel)
		want   []FieldError
	}{
		// tunnel
		{"name missing", func(t *Tunnel) { t.Name = "" }, []fe{{"/name", "name is required"}}},
		{"name blank", func(t *Tunnel) { t.Name = "  \t" }, []fe{{"/name", "name is required"}}},
		{"name 200 characters", func(t *Tunnel) { t.Name = strings.Repeat("ж", 200) }, nil},
		{"name 201 characters", func(t *Tunnel) { t.Name = strings.Repeat("n", 201) },
			[]fe{{"/name", "name is 201 characters long; at most 200 are allowed"}}},
		{"entry missing", func(t *Tunnel) { t.Entry = "" }, []fe{{"/entry", "entry is required"}}},
		{"entry unknown", func(t *Tunnel) { t.Entry = "nope" }, []fe{{"/entry", `block "nope" does not exist`}}},
		{"entry elsewhere makes blocks unreachable", func(t *Tunnel) { t.Entry = "wait" }, []fe{
			{"/blocks/0/id", `block "hello" is not reachable from the entry block`},
			{"/blocks/1/id", `block "act" is not reachable from the entry block`},
			{"/blocks/2/id", `block "after" is not reachable from the entry block`},
		}},
		{"no blocks", func(t *Tunnel) { t.Blocks = nil }, []fe{{"/blocks", "a tunnel needs at least one block"}}},

		// block ids and types
		{"id missing", func(t *Tunnel) { t.Blocks[2].ID = "" }, []fe{
			{"/blocks/0/next/1", `block "after" does not exist`},
			{"/blocks/2/id", "id is required"},
		}},
		{"id invalid", func(t *Tunnel) { t.Blocks[4].ID = "b y e"; t.Blocks[3].Next = []string{"b y e"} }, []fe{
			{"/blocks/4/id", `id "b y e" must be 1 to 64 letters, digits, '_' or '-'`},
		}},
		{"id too long", func(t *Tunnel) { id := strings.Repeat("b", 65); t.Blocks[4].ID = id; t.Blocks[3].Next = []string{id} }, []fe{
			{"/blocks/4/id", `id "` + strings.Repeat("b", 65) + `" must be 1 to 64 letters, digits, '_' or '-'`},
		}},
		{"duplicate id points at the second", func(t *Tunnel) { t.Blocks[4].ID = "after" }, []fe{
			{"/blocks/3/next/0", `block "bye" does not exist`},
			{"/blocks/4/id", `duplicate block id "after" (first used by /blocks/2)`},
		}},
		{"type missing", func(t *Tunnel) { t.Blocks[2].Type = "" }, []fe{{"/blocks/2/type", "type is required (message, action, delay, condition or split)"}}},
		{"type unknown", func(t *Tunnel) { t.Blocks[2].Type = "video" }, []fe{{"/blocks/2/type", `unknown block type "video" (want message, action, delay, condition or split)`}}},

		// next and reachability
		{"next unknown", func(t *Tunnel) { t.Blocks[2].Next = []string{"bye", "ghost", ""} }, []fe{
			{"/blocks/2/next/1", `block "ghost" does not exist`},
			{"/blocks/2/next/2", "block id is empty"},
		}},
		{"next twice", func(t *Tunnel) { t.Blocks[0].Next = []string{"act", "after", "act"} }, []fe{
			{"/blocks/0/next/2", `block "act" is listed twice`},
		}},
		{"unreachable block", func(t *Tunnel) {
			t.Blocks = append(t.Blocks, Block{ID: "orphan", Type: BlockMessage, Text: "x", Next: []string{"bye"}})
		}, []fe{{"/blocks/5/id", `block "orphan" is not reachable from the entry block`}}},
		{"reachable through on_error only", func(t *Tunnel) {
			t.Blocks = append(t.Blocks, Block{ID: "sorry", Type: BlockMessage, Text: "x"})
			t.Blocks[1].Actions[10].OnError = []string{"sorry"}
		}, nil},
		{"reachable through a start of this tunnel", func(t *Tunnel) {
			t.Blocks = append(t.Blocks, Block{ID: "side", Type: BlockMessage, Text: "x"})
			t.Blocks[1].Actions[11] = Action{Type: ActionStart, Tunnel: selfID, Block: "side"}
		}, nil},
		{"a start of another tunnel does not reach own blocks", func(t *Tunnel) {
			t.Blocks = append(t.Blocks, Block{ID: "day1", Type: BlockMessage, Text: "x"})
		}, []fe{{"/blocks/5/id", `block "day1" is not reachable from the entry block`}}},

		// loops
		{"loop through a delay is fine", func(t *Tunnel) { t.Blocks[4].Next = []string{"hello"} }, nil},
		{"delay looping on itself is fine", func(t *Tunnel) { t.Blocks[3].Next = []string{"wait", "bye"} }, nil},
		{"loop without delay", func(t *Tunnel) { t.Blocks[2].Next = []string{"hello"} }, []fe{
			{"/blocks/2/next/0", `this closes a loop with no delay block ("hello" -> "after" -> "hello"), which would repeat forever; put a delay block in it`},
		}},
		{"block next to itself", func(t *Tunnel) { t.Blocks[4].Next = []string{"bye"} }, []fe{
			{"/blocks/4/next/0", `this closes a loop with no delay block ("bye" -> "bye"), which would repeat forever; put a delay block in it`},
		}},
		{"loop through on_error", func(t *Tunnel) { t.Blocks[1].Actions[10].OnError = []string{"hello"} }, []fe{
			{act(10) + "/on_error/0", `this closes a loop with no delay block ("hello" -> "act" -> "hello"), which would repeat forever; put a delay block in it`},
		}},
		{"loop through a start of this tunnel", func(t *Tunnel) {
			t.Blocks[1].Actions[11] = Action{Type: ActionStart, Tunnel: selfID}
		}, []fe{
			{act(11) + "/tunnel", `this closes a loop with no delay block ("hello" -> "act" -> "hello"), which would repeat forever; put a delay block in it`},
		}},

		// message blocks
		{"message without content", func(t *Tunnel) { t.Blocks[2].Text = "" }, []fe{{"/blocks/2", "a message block needs text or email"}}},
		{"message with email only", func(t *Tunnel) {
			t.Blocks[2].Text = ""
			t.Blocks[2].Email = &EmailContent{Subject: "s", HTML: "<p>h</p>"}
		}, nil},
		{"message text blank", func(t *Tunnel) { t.Blocks[2].Text = "  " }, []fe{{"/blocks/2/text", "text is blank; leave it out to send email only"}}},
		{"email without subject and html", func(t *Tunnel) { t.Blocks[0].Email = &EmailContent{Text: "plain"} }, []fe{
			{"/blocks/0/email/subject", "email subject is required"},
			{"/blocks/0/email/html", "email html is required"},
		}},
		{"message placeholders", func(t *Tunnel) {
			t.Blocks[0].Text = "Hi {{subscriber.nick}} {{field.age}}"
			t.Blocks[0].Email = &EmailContent{Subject: "{{var.nope}}", HTML: "{{field.nope}}", Text: "{{oops}}"}
		}, []fe{
			{"/blocks/0/text", "unknown placeholder {{subscriber.nick}}: the subscriber namespace has first_name, last_name, email, phone, id"},
			{"/blocks/0/email/subject", `unknown variable "nope" in placeholder {{var.nope}}`},
			{"/blocks/0/email/html", `unknown field "nope" in placeholder {{field.nope}}`},
			{"/blocks/0/email/text", `placeholder syntax error at offset 0: placeholder "{{oops}}" must be namespace.key, e.g. {{subscriber.first_name}}`},
		}},
		{"message with actions and seconds", func(t *Tunnel) {
			t.Blocks[2].Actions = []Action{{Type: ActionMarkUnread}}
			t.Blocks[2].Seconds = 5
		}, []fe{
			{"/blocks/2/actions", "a message block has no actions; use an action block"},
			{"/blocks/2/seconds", "a message block has no seconds; use a delay block"},
		}},

		// action blocks
		{"action block without actions", func(t *Tunnel) { t.Blocks[1].Actions = nil }, []fe{{"/blocks/1/actions", "an action block needs at least one action"}}},
		{"50 actions", func(t *Tunnel) { t.Blocks[1].Actions = make([]Action, 50); fill(t.Blocks[1].Actions) }, nil},
		{"51 actions", func(t *Tunnel) { t.Blocks[1].Actions = make([]Action, 51); fill(t.Blocks[1].Actions) }, []fe{
			{"/blocks/1/actions", "an action block has at most 50 actions, this one has 51"},
		}},
		{"action block with text, email, seconds", func(t *Tunnel) {
			t.Blocks[1].Text = "x"
			t.Blocks[1].Email = &EmailContent{}
			t.Blocks[1].Seconds = 3
		}, []fe{
			{"/blocks/1/text", "an action block has no text; use a message block"},
			{"/blocks/1/email", "an action block has no email; use a message block"},
			{"/blocks/1/seconds", "an action block has no seconds; use a delay block"},
		}},

		// delay blocks
		{"delay 1 second", func(t *Tunnel) { t.Blocks[3].Seconds = 1 }, nil},
		{"delay 365 days", func(t *Tunnel) { t.Blocks[3].Seconds = 31536000 }, nil},
		{"delay missing", func(t *Tunnel) { t.Blocks[3].Seconds = 0 }, []fe{{"/blocks/3/seconds", "seconds is required (1 to 31536000, 365 days), unless the delay has a window or until"}}},
		{"delay negative", func(t *Tunnel) { t.Blocks[3].Seconds = -1 }, []fe{{"/blocks/3/seconds", "seconds must be between 1 and 31536000 (365 days), got -1"}}},
		{"delay too long", func(t *Tunnel) { t.Blocks[3].Seconds = 31536001 }, []fe{{"/blocks/3/seconds", "seconds must be between 1 and 31536000 (365 days), got 31536001"}}},
		{"delay with content", func(t *Tunnel) {
			t.Blocks[3].Text = "x"
			t.Blocks[3].Email = &EmailContent{Subject: "s", HTML: "h"}
			t.Blocks[3].Actions = []Action{{Type: ActionMarkUnread}}
		}, []fe{
			{"/blocks/3/text", "a delay block has no text; use a message block"},
			{"/blocks/3/email", "a delay block has no email; use a message block"},
			{"/blocks/3/actions", "a delay block has no actions; use an action block"},
		}},

		// action types and parameters
		{"action type missing", func(t *Tunnel) { t.Blocks[1].Actions[5].Type = "" }, []fe{{act(5) + "/type", "type is required"}}},
		{"action type unknown", func(t *Tunnel) { t.Blocks[1].Actions[5].Type = "teleport" }, []fe{{act(5) + "/type", `unknown action type "teleport"`}}},
		{"parameter of another type", func(t *Tunnel) {
			t.Blocks[1].Actions[0].Plan = "q4"
			t.Blocks[1].Actions[5].Comment = "hi"
			t.Blocks[1].Actions[5].TimeoutMS = 100
		}, []fe{
			{act(0) + "/plan", `"plan" is not a parameter of add_tags (add_tags takes tags)`},
			{act(5) + "/comment", `"comment" is not a parameter of mark_unread (mark_unread takes no parameters)`},
			{act(5) + "/timeout_ms", `"timeout_ms" is not a parameter of mark_unread (mark_unread takes no parameters)`},
		}},

		// tags
		{"tags empty", func(t *Tunnel) { t.Blocks[1].Actions[0].Tags = nil }, []fe{{act(0) + "/tags", "tags must list at least one tag"}}},
		{"tags unknown", func(t *Tunnel) { t.Blocks[1].Actions[0].Tags = []string{"lead", "vip", ""} }, []fe{
			{act(0) + "/tags/1", `unknown tag "vip"`},
			{act(0) + "/tags/2", "tag id is empty"},
		}},
		{"remove unknown tag", func(t *Tunnel) { t.Blocks[1].Actions[1].Tags = []string{"hot"} }, []fe{{act(1) + "/tags/0", `unknown tag "hot"`}}},

		// set_field
		{"set_field without field", func(t *Tunnel) { t.Blocks[1].Actions[2].Field = "" }, []fe{{act(2) + "/field", "field is required"}}},
		{"set_field unknown field", func(t *Tunnel) { t.Blocks[1].Actions[2].Field = "city" }, []fe{{act(2) + "/field", `unknown field "city"`}}},
		{"set_field empty value clears", func(t *Tunnel) { t.Blocks[1].Actions[2].Value = "" }, nil},
		{"set_field value placeholders", func(t *Tunnel) { t.Blocks[1].Actions[2].Value = "{{field.age}} {{var.x}}" }, []fe{
			{act(2) + "/value", `unknown variable "x" in placeholder {{var.x}}`},
		}},

		// sales plan, mention
		{"plan missing", func(t *Tunnel) { t.Blocks[1].Actions[3].Plan = "" }, []fe{{act(3) + "/plan", "plan is required"}}},
		{"plan unknown", func(t *Tunnel) { t.Blocks[1].Actions[3].Plan = "q5" }, []fe{{act(3) + "/plan", `unknown sales plan "q5"`}}},
		{"mention missing everything", func(t *Tunnel) { t.Blocks[1].Actions[4] = Action{Type: ActionMention} }, []fe{
			{act(4) + "/operator", "operator is required"},
			{act(4) + "/comment", "comment is required"},
		}},
		{"mention unknown operator and placeholder", func(t *Tunnel) {
			t.Blocks[1].Actions[4].Operator = "boris"
			t.Blocks[1].Actions[4].Comment = "see {{field.city}}"
		}, []fe{
			{act(4) + "/operator", `unknown operator "boris"`},
			{act(4) + "/comment", `unknown field "city" in placeholder {{field.city}}`},
		}},

		// create_email_subscriber
		{"create_email_subscriber minimal", func(t *Tunnel) {
			t.Blocks[1].Actions[6] = Action{Type: ActionCreateEmailSubscriber, EmailBot: "main"}
		}, nil},
		{"create_email_subscriber into this tunnel", func(t *Tunnel) { t.Blocks[1].Actions[6].Tunnel = selfID }, nil},
		{"create_email_subscriber into the default tunnel", func(t *Tunnel) { t.Blocks[1].Actions[6].Tunnel = "default" }, nil},
		{"create_email_subscriber unknowns", func(t *Tunnel) {
			t.Blocks[1].Actions[6] = Action{Type: ActionCreateEmailSubscriber, EmailBot: "side", Tunnel: "ghost", LeadSource: "tv"}
		}, []fe{
			{act(6) + "/email_bot", `unknown email bot "side"`},
			{act(6) + "/tunnel", `unknown tunnel "ghost"`},
			{act(6) + "/lead_source", `unknown lead source "tv"`},
		}},
		{"create_email_subscriber without bot", func(t *Tunnel) { t.Blocks[1].Actions[6].EmailBot = "" }, []fe{{act(6) + "/email_bot", "email_bot is required"}}},

		// send_email
		{"send_email full", func(t *Tunnel) {
			a := &t.Blocks[1].Actions[7]
			a.Text, a.CreateSubscriber, a.Tunnel, a.LeadSource = "Join: {{var.webinar_url}}", true, "nurture", "landing"
		}, nil},
		{"send_email missing", func(t *Tunnel) { t.Blocks[1].Actions[7] = Action{Type: ActionSendEmail} }, []fe{
			{act(7) + "/email_bot", "email_bot is required"},
			{act(7) + "/subject", "subject is required"},
			{act(7) + "/html", "html is required"},
		}},
		{"send_email placeholders and refs", func(t *Tunnel) {
			a := &t.Blocks[1].Actions[7]
			a.EmailBot, a.Subject, a.HTML, a.Text, a.Tunnel, a.LeadSource = "side", "{{var.a}}", "{{field.b}}", "{{c.d}}", "ghost", "tv"
		}, []fe{
			{act(7) + "/email_bot", `unknown email bot "side"`},
			{act(7) + "/subject", `unknown variable "a" in placeholder {{var.a}}`},
			{act(7) + "/html", `unknown field "b" in placeholder {{field.b}}`},
			{act(7) + "/text", `unknown placeholder {{c.d}}: namespace "c" is not one of subscriber, field, var, tunnel`},
			{act(7) + "/tunnel", `unknown tunnel "ghost"`},
			{act(7) + "/lead_source", `unknown lead source "tv"`},
		}},

		// amoCRM
		{"amo_contact without integration", func(t *Tunnel) { t.Blocks[1].Actions[8].Integration = "" }, []fe{{act(8) + "/integration", "integration is required"}}},
		{"amo_contact unknown integration", func(t *Tunnel) { t.Blocks[1].Actions[8].Integration = "bitrix" }, []fe{{act(8) + "/integration", `unknown integration "bitrix"`}}},
		{"amo_deal ids", func(t *Tunnel) {
			a := &t.Blocks[1].Actions[9]
			a.PipelineID, a.StatusID, a.Name = 0, -1, "Deal {{field.x}}"
		}, []fe{
			{act(9) + "/pipeline_id", "pipeline_id is required"},
			{act(9) + "/status_id", "status_id must be a positive number, got -1"},
			{act(9) + "/name", `unknown field "x" in placeholder {{field.x}}`},
		}},
		{"amo_deal without name", func(t *Tunnel) { t.Blocks[1].Actions[9].Name = "" }, nil},

		// start / stop
		{"start without tunnel", func(t *Tunnel) { t.Blocks[1].Actions[11] = Action{Type: ActionStart} }, []fe{{act(11) + "/tunnel", "tunnel is required"}}},
		{"start unknown tunnel", func(t *Tunnel) { t.Blocks[1].Actions[11].Tunnel = "ghost" }, []fe{{act(11) + "/tunnel", `unknown tunnel "ghost"`}}},
		{"start block not in tunnel", func(t *Tunnel) { t.Blocks[1].Actions[11].Block = "day9" }, []fe{{act(11) + "/block", `block "day9" does not exist in tunnel "nurture"`}}},
		{"start at entry of another tunnel", func(t *Tunnel) { t.Blocks[1].Actions[11].Block = "" }, nil},
		{"start this tunnel at one of its blocks", func(t *Tunnel) {
			t.Blocks[1].Actions[11] = Action{Type: ActionStart, Tunnel: selfID, Block: "bye"}
		}, nil},
		{"start this tunnel at a block only the stored version has", func(t *Tunnel) {
			t.Blocks[1].Actions[11] = Action{Type: ActionStart, Tunnel: selfID, Block: "old-block"}
		}, []fe{{act(11) + "/block", `block "old-block" does not exist`}}},
		{"stop current tunnel from a block", func(t *Tunnel) { t.Blocks[1].Actions[12] = Action{Type: ActionStop, Block: "wait"} }, nil},
		{"stop current tunnel", func(t *Tunnel) { t.Blocks[1].Actions[12] = Action{Type: ActionStop} }, nil},
		{"stop current tunnel at missing block", func(t *Tunnel) { t.Blocks[1].Actions[12] = Action{Type: ActionStop, Block: "nope"} }, []fe{
			{act(12) + "/block", `block "nope" does not exist`},
		}},
		{"stop unknown tunnel", func(t *Tunnel) { t.Blocks[1].Actions[12].Tunnel = "ghost" }, []fe{{act(12) + "/tunnel", `unknown tunnel "ghost"`}}},
		{"stop block of another tunnel", func(t *Tunnel) { t.Blocks[1].Actions[12].Block = "c2" }, []fe{{act(12) + "/block", `block "c2" does not exist in tunnel "cold-leads"`}}},
		{"stop block of another tunnel exists", func(t *Tunnel) { t.Blocks[1].Actions[12].Block = "c1" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun := example(t)
			tt.mutate(tun)
			errs := Validate(selfID, tun, catalog())
			if !reflect.DeepEqual(errs, tt.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", list(errs), list(tt.want))
			}
		})
	}
}

func fill(as []Action) {
	for i := range as {
		as[i] = Action{Type: ActionMarkUnread}
	}
}

func TestValidateExternalRequest(t *testing.T) {
	type fe = FieldError
	p := act(10)
	tests := []struct {
		name   string
		mutate func(a *Action)
		want   []FieldError
	}{
		{"method missing", func(a *Action) { a.Method = "" }, []fe{{p + "/method", "method is required (GET, POST or PUT)"}}},
		{"method DELETE", func(a *Action) { a.Method = "DELETE" }, []fe{{p + "/method", `method must be GET, POST or PUT, not "DELETE"`}}},
		{"method lower case", func(a *Action) { a.Method = "post" }, []fe{{p + "/method", `method must be GET, POST or PUT, not "post"`}}},
		{"PUT", func(a *Action) { a.Method = "PUT" }, nil},
		{"GET without body", func(a *Action) { a.Method = "GET"; a.Body = nil }, nil},
		{"GET with body", func(a *Action) { a.Method = "GET" }, []fe{{p + "/body", "a GET request has no body; use POST or PUT"}}},

		// url
		{"url missing", func(a *Action) { a.URL = "" }, []fe{{p + "/url", "url is required"}}},
		{"url not http", func(a *Action) { a.URL = "ftp://files.example.com/x" }, []fe{{p + "/url", "url must be an absolute http:// or https:// address"}}},
		{"url relative", func(a *Action) { a.URL = "/leads" }, []fe{{p + "/url", "url must be an absolute http:// or https:// address"}}},
		{"url starts with placeholder", func(a *Action) { a.URL = "{{var.webinar_url}}/x" }, []fe{
			{p + "/url", "url must start with a literal http:// or https:// address, not a placeholder"},
		}},
		{"url host placeholder", func(a *Action) { a.URL = "https://{{var.lms_token}}.example.com/x" }, []fe{
			{p + "/url", "the host of the url must be literal; placeholders may only follow it (in the path or query)"},
		}},
		{"url port placeholder", func(a *Action) { a.URL = "https://api.example.com:{{var.lms_token}}/x" }, []fe{
			{p + "/url", "the host of the url must be literal; placeholders may only follow it (in the path or query)"},
		}},
		{"url without host", func(a *Action) { a.URL = "https:///leads" }, []fe{{p + "/url", "url has no host"}}},
		{"url port only", func(a *Action) { a.URL = "https://:443/leads" }, []fe{{p + "/url", "url has no host"}}},
		{"url with space", func(a *Action) { a.URL = "https://api.example.com/a b" }, []fe{
			{p + "/url", "url must not contain spaces or control characters (encode them, e.g. %20)"},
		}},
		{"url bad port", func(a *Action) { a.URL = "https://api.example.com:port/x" }, []fe{
			{p + "/url", `url is not valid: "https://api.example.com:port/x": invalid port ":port" after host`},
		}},
		{"url placeholders in path and query", func(a *Action) {
			a.URL = "HTTPS://api.example.com/u/{{subscriber.id}}?e={{subscriber.email|x y}}#{{tunnel.id}}"
		}, nil},
		{"url plain http and ip", func(a *Action) { a.URL = "http://127.0.0.1:8080/hook" }, nil},
		{"url host only", func(a *Action) { a.URL = "https://api.example.com" }, nil},
		{"url unknown placeholder", func(a *Action) { a.URL = "https://api.example.com/{{var.nope}}" }, []fe{
			{p + "/url", `unknown variable "nope" in placeholder {{var.nope}}`},
		}},
		{"url broken placeholder", func(a *Action) { a.URL = "https://api.example.com/{{var.nope" }, []fe{
			{p + "/url", `placeholder syntax error at offset 24: "{{" is not closed by "}}"`},
		}},

		// headers
		{"headers", func(a *Action) {
			a.Headers = []NameValue{
				{Name: "", Value: "x"},
				{Name: "X Token", Value: "x"},
				{Name: "host", Value: "evil.example"},
				{Name: "Idempotency-Key", Value: "1"},
				{Name: "X-Line", Value: "a\r\nInjected: 1"},
				{Name: "X-Ctl", Value: "a\x00b"},
				{Name: "X-Var", Value: "{{var.nope}}"},
				{Name: "Authorization", Value: "Bearer {{var.lms_token}}"},
				{Name: "X-Tab", Value: "a\tb"},
			}
		}, []fe{
			{p + "/headers/0/name", "header name is required"},
			{p + "/headers/1/name", `"X Token" is not a valid HTTP header name`},
			{p + "/headers/2/name", `header "host" is set by Tunnels and cannot be set here`},
			{p + "/headers/3/name", `header "Idempotency-Key" is set by Tunnels and cannot be set here`},
			{p + "/headers/4/value", "header value must not contain line breaks"},
			{p + "/headers/5/value", "header value must not contain control characters"},
			{p + "/headers/6/value", `unknown variable "nope" in placeholder {{var.nope}}`},
		}},

		// query
		{"query", func(a *Action) {
			a.Query = []NameValue{
				{Name: "", Value: "x"},
				{Name: "{{var.lms_token}}", Value: "x"},
				{Name: "q", Value: "{{field.nope|x}}"},
				{Name: "empty", Value: ""},
			}
		}, []fe{
			{p + "/query/0/name", "query parameter name is required"},
			{p + "/query/1/name", "placeholders are not allowed in query parameter names"},
			{p + "/query/2/value", `unknown field "nope" in placeholder {{field.nope}}`},
		}},

		// body
		{"text body", func(a *Action) { a.Body = json.RawMessage(`"name={{subscriber.first_name}}&x={{var.nope}}"`) }, []fe{
			{p + "/body", `unknown variable "nope" in placeholder {{var.nope}}`},
		}},
		{"json body leaves", func(a *Action) {
			a.Body = json.RawMessage(`{"a":[{"b":"{{field.nope}}"},"{{subscriber.id}}",3,true,null],"c/d":"{{var.x}}","{{var.key}}":"fine"}`)
		}, []fe{
			{p + "/body/a/0/b", `unknown field "nope" in placeholder {{field.nope}}`},
			{p + "/body/c~1d", `unknown variable "x" in placeholder {{var.x}}`},
		}},
		{"number body", func(a *Action) { a.Body = json.RawMessage(`42`) }, nil},
		{"typed single placeholder", func(a *Action) { a.Body = json.RawMessage(`{"age":"{{field.age}}"}`) }, nil},
		{"invalid body", func(a *Action) { a.Body = json.RawMessage(`{oops`) }, []fe{
			{p + "/body", "body must be a JSON value, or a JSON string for a text body"},
		}},

		// response mapping
		{"mapping", func(a *Action) {
			a.ResponseMapping = []Mapping{
				{Path: "data.items.0.id", Field: "lms_id"},
				{Path: "", Field: ""},
				{Path: "data..id", Field: "city"},
				{Path: "data.*.id", Field: "lms_id"},
				{Path: ".id", Field: "lms_id"},
				{Path: "id", Field: "age"},
			}
		}, []fe{
			{p + "/response_mapping/1/path", "path is required"},
			{p + "/response_mapping/1/field", "field is required"},
			{p + "/response_mapping/2/path", `path "data..id" must be keys or indexes separated by dots, like data.items.0.id`},
			{p + "/response_mapping/2/field", `unknown field "city"`},
			{p + "/response_mapping/3/path", `path "data.*.id" must be keys or indexes separated by dots, like data.items.0.id`},
			{p + "/response_mapping/4/path", `path ".id" must be keys or indexes separated by dots, like data.items.0.id`},
		}},

		// on_error, timeout
		{"on_error", func(a *Action) { a.OnError = []string{"after", "ghost", "after"} }, []fe{
			{p + "/on_error/1", `block "ghost" does not exist`},
			{p + "/on_error/2", `block "after" is listed twice`},
		}},
		{"timeout 100", func(a *Action) { a.TimeoutMS = 100 }, nil},
		{"timeout 30000", func(a *Action) { a.TimeoutMS = 30000 }, nil},
		{"timeout 99", func(a *Action) { a.TimeoutMS = 99 }, []fe{
			{p + "/timeout_ms", "timeout_ms must be between 100 and 30000 (or 0 for the default), got 99"},
		}},
		{"timeout 30001", func(a *Action) { a.TimeoutMS = 30001 }, []fe{
			{p + "/timeout_ms", "timeout_ms must be between 100 and 30000 (or 0 for the default), got 30001"},
		}},
		{"minimal GET", func(a *Action) {
			*a = Action{Type: ActionExternalRequest, Method: "GET", URL: "https://api.example.com/ping"}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun := example(t)
			tt.mutate(&tun.Blocks[1].Actions[10])
			errs := Validate(selfID, tun, catalog())
			if !reflect.DeepEqual(errs, tt.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", list(errs), list(tt.want))
			}
		})
	}
}

// A broken definition goes through Parse cleanly and Validate reports all its problems at
// once, each where it is.
func TestValidateBrokenTunnelReportsEverything(t *testing.T) {
	data := `{
	  "name": "",
	  "entry": "start",
	  "blocks": [
	    {"id": "start", "type": "message", "text": "Hi {{subscriber.nick|there}}", "next": ["acts", "missing"]},
	    {"id": "acts", "type": "action", "actions": [
	      {"type": "add_tags", "tags": ["lead", "vip"]},
	      {"type": "set_field", "field": "height", "value": "{{var.tall}}"},
	      {"type": "external_request", "method": "PATCH", "url": "{{var.webinar_url}}/hook",
	       "headers": [{"name": "Bad Name", "value": "x"}], "on_error": ["nowhere"], "timeout_ms": 5}
	    ], "next": ["pause"]},
	    {"id": "pause", "type": "delay", "seconds": 0, "next": ["start"]},
	    {"id": "start", "type": "message", "text": "dup"},
	    {"id": "lonely", "type": "message", "text": "nobody comes here"}
	  ]
	}`
	tun, perrs := Parse([]byte(data))
	if len(perrs) != 0 {
		t.Fatalf("Parse: %v", perrs)
	}
	want := []FieldError{
		{"/name", "name is required"},
		{"/blocks/0/text", "unknown placeholder {{subscriber.nick}}: the subscriber namespace has first_name, last_name, email, phone, id"},
		{"/blocks/0/next/1", `block "missing" does not exist`},
		{"/blocks/1/actions/0/tags/1", `unknown tag "vip"`},
		{"/blocks/1/actions/1/field", `unknown field "height"`},
		{"/blocks/1/actions/1/value", `unknown variable "tall" in placeholder {{var.tall}}`},
		{"/blocks/1/actions/2/method", `method must be GET, POST or PUT, not "PATCH"`},
		{"/blocks/1/actions/2/url", "url must start with a literal http:// or https:// address, not a placeholder"},
		{"/blocks/1/actions/2/headers/0/name", `"Bad Name" is not a valid HTTP header name`},
		{"/blocks/1/actions/2/on_error/0", `block "nowhere" does not exist`},
		{"/blocks/1/actions/2/timeout_ms", "timeout_ms must be between 100 and 30000 (or 0 for the default), got 5"},
		{"/blocks/2/seconds", "seconds is required (1 to 31536000, 365 days), unless the delay has a window or until"},
		{"/blocks/3/id", `duplicate block id "start" (first used by /blocks/0)`},
		{"/blocks/4/id", `block "lonely" is not reachable from the entry block`},
	}
	errs := Validate("broken", tun, catalog())
	if !reflect.DeepEqual(errs, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", list(errs), list(want))
	}
}

func TestValidateParamOnCodeBuiltAction(t *testing.T) {
	// Every parameter is refused on mark_unread, which takes none.
	a := Action{Type: ActionMarkUnread, Tags: []string{"x"}, Field: "f", Value: "v", Plan: "p",
		Operator: "o", Comment: "c", EmailBot: "e", Tunnel: "t", LeadSource: "l", Subject: "s",
		HTML: "h", Text: "t", CreateSubscriber: true, Integration: "i", PipelineID: 1, StatusID: 1,
		Name: "n", Block: "b", Method: "GET", URL: "u", Description: "d",
		Headers: []NameValue{{}}, Query: []NameValue{{}}, Body: json.RawMessage(`1`),
		ResponseMapping: []Mapping{{}}, OnError: []string{"x"}, TimeoutMS: 1}
	tun := &Tunnel{Name: "n", Entry: "a", Blocks: []Block{{ID: "a", Type: BlockAction, Actions: []Action{a}}}}
	errs := Validate("t", tun, Catalog{})
	if len(errs) != len(paramOrder) {
		t.Fatalf("got %d errors, want one per parameter (%d):\n%s", len(errs), len(paramOrder), list(errs))
	}
	for i, name := range paramOrder {
		if want := "/blocks/0/actions/0/" + name; errs[i].Pointer != want {
			t.Errorf("error %d at %s, want %s", i, errs[i].Pointer, want)
		}
	}
}
