package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium to drive ("" when none: make test installs it on
// the CI machine, a laptop without one skips the browser tests).
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestConsoleInABrowser drives the console in a real headless Chromium: the
// key form, the tunnels list, the canvas of a tunnel with every block type,
// the side panel, adding a block, a refused save with the error on the block,
// connecting and moving blocks by dragging, a save; and no script error or
// Content-Security-Policy violation.
func TestConsoleInABrowser(t *testing.T) {
	needSystem(t)
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium installed (apt-get install chromium)")
	}
	a := logicWorkspace(t, "Console")
	a.must(http.MethodPut, "/v1/tunnels/logic", json.RawMessage(`{"name": "Logic funnel", "entry": "check", "blocks": [
		{"id": "check", "type": "condition", "branches": [{"name": "vip", "when": {"has_tag": "vip"}, "next": ["ab"]}], "else": ["ask"]},
		{"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 1, "next": ["act"]}, {"name": "B", "weight": 1, "next": ["ask"]}]},
		{"id": "act", "type": "action", "actions": [{"type": "add_tags", "tags": ["vip"]}], "next": ["wait"]},
		{"id": "ask", "type": "message", "text": "Email?", "reply": {"field": "email_answer", "validate": "email", "timeout_seconds": 60, "on_timeout": ["wait"], "next": ["wait"]}},
		{"id": "wait", "type": "delay", "seconds": 60, "ui": {"x": 900, "y": 40}}]}`), http.StatusOK, nil)

	b := newBrowser(t, bin)
	ctx, step, must := b.ctx, b.step, b.must
	b.signIn(a.key)
	step("the tunnels list", chromedp.WaitVisible(chromedp.CSS(`a[href="#/tunnels/logic"]`)))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr").length`))
	must(err)
	must(chromedp.Do(ctx,
		route("#/tunnels/logic"),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-block="wait"]`)),
	))
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#view h1")))
	must(err)
	nodes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("g.node").length`))
	must(err)
	step("select a block", chromedp.Click(chromedp.CSS(`g.node[data-block="ask"] rect`)), chromedp.WaitVisible(chromedp.ID("block-json")))
	panel, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("block-json").value`))
	must(err)
	if rows < 2 || title != "Logic funnel" || nodes != 5 {
		t.Fatalf("rows %d, title %q, nodes %d", rows, title, nodes)
	}
	if !strings.Contains(panel, `"validate": "email"`) {
		t.Fatalf("panel: %s", panel)
	}
	// The block with a ui position is drawn there.
	transform, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`g.node[data-block="wait"]`), "transform"))
	if err != nil || transform.Value != "translate(900,40)" {
		t.Fatalf("the dragged block is at %q (%v)", transform.Value, err)
	}
	// Edit: add a message block; saving it unconnected shows the error on it.
	step("add a block", press(chromedp.CSS(`[data-add="message"]`)), chromedp.WaitVisible(chromedp.CSS(`g.node[data-block="message1"]`)))
	step("save with an error", press(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-state="invalid"]`)),
		chromedp.WaitVisible(chromedp.CSS(`g.node.invalid[data-block="message1"]`)))
	errs, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".panel .errors")))
	must(err)
	if !strings.Contains(errs, "/blocks/5/id") || !strings.Contains(errs, "not reachable") {
		t.Fatalf("the error on the block: %q", errs)
	}
	var stored0 struct {
		Blocks []map[string]any `json:"blocks"`
	}
	a.must(http.MethodGet, "/v1/tunnels/logic", nil, http.StatusOK, &stored0)
	if len(stored0.Blocks) != 5 {
		t.Fatalf("a refused save stored %d blocks", len(stored0.Blocks))
	}
	// Connect wait -> message1 by dragging from wait's handle, move ask, save.
	step("connect", chromedp.DragAndDrop(chromedp.CSS(`[data-handle="wait"]`), chromedp.CSS(`g.node[data-block="message1"] rect`)))
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('g.node[data-block="ask"] rect').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`))
	must(err)
	step("move a block", chromedp.DragAndDropXY(box[0], box[1], box[0]+120, box[1]+90))
	step("save", press(chromedp.ID("save")), chromedp.WaitVisible(chromedp.CSS(`#status[data-state="saved"]`)))
	var saved struct {
		Blocks []struct {
			ID   string             `json:"id"`
			Next []string           `json:"next"`
			UI   map[string]float64 `json:"ui"`
		} `json:"blocks"`
	}
	a.must(http.MethodGet, "/v1/tunnels/logic", nil, http.StatusOK, &saved)
	got := map[string]int{}
	for i, bl := range saved.Blocks {
		got[bl.ID] = i
	}
	if i, ok := got["message1"]; !ok || len(saved.Blocks) != 6 || saved.Blocks[i].UI == nil {
		t.Fatalf("saved blocks: %+v", saved.Blocks)
	}
	if w := saved.Blocks[got["wait"]]; len(w.Next) != 1 || w.Next[0] != "message1" {
		t.Fatalf("wait's next after the drag: %v", w.Next)
	}
	if ask := saved.Blocks[got["ask"]]; ask.UI == nil || ask.UI["x"] < 100 {
		t.Fatalf("ask's position after the drag: %v", ask.UI)
	}

	// The action block's form: pickers from the catalog, add actions, preview a request.
	sub := a.subscribe("console-1", "default", "8801", "Carl")
	step("open the action block", chromedp.Click(chromedp.CSS(`g.node[data-block="act"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="0"] select[data-param="tags"]`)))
	tags, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelector('select[data-param="tags"]').selectedOptions].map((o) => o.value)`))
	if err != nil || len(tags) != 1 || tags[0] != "vip" {
		t.Fatalf("the tags picker shows %v (%v)", tags, err)
	}
	step("add set_field", setv("#new-action", "set_field"), press(chromedp.ID("add-action")),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="1"] select[data-param="field"]`)),
		setv(`fieldset.action[data-action="1"] select[data-param="field"]`, "age"),
		setv(`fieldset.action[data-action="1"] input[data-param="value"]`, "30"))
	step("add an external request", setv("#new-action", "external_request"), press(chromedp.ID("add-action")),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="2"] input[data-param="url"]`)),
		setv(`fieldset.action[data-action="2"] select[data-param="method"]`, "POST"),
		setv(`fieldset.action[data-action="2"] input[data-param="url"]`, "https://api.example.com/leads?who={{subscriber.first_name}}"),
		press(chromedp.CSS(`fieldset.action[data-action="2"] [data-add-row="headers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="2"] .rows input[placeholder="name"]`)),
		setv(`fieldset.action[data-action="2"] .rows input[placeholder="name"]`, "X-Source"),
		setv(`fieldset.action[data-action="2"] .rows input[placeholder="value"]`, "console"),
		setv(`fieldset.action[data-action="2"] .request-subscriber`, sub))
	// Insert a placeholder with a fallback where the cursor is (the url's end).
	step("insert a placeholder", chromedp.Focus(chromedp.CSS(`fieldset.action[data-action="2"] input[data-param="url"]`)),
		asVoid(chromedp.Evaluate[bool](`(() => { const e = document.querySelector('fieldset.action[data-action="2"] input[data-param="url"]'); e.setSelectionRange(e.value.length, e.value.length); return true; })()`)),
		setv(`fieldset.action[data-action="2"] .insert-name`, "subscriber.last_name"),
		setv(`fieldset.action[data-action="2"] .insert-fallback`, "x"),
		press(chromedp.CSS(`fieldset.action[data-action="2"] button.insert`)),
		press(chromedp.CSS(`fieldset.action[data-action="2"] button.preview`)))
	eventually(t, 10*time.Second, "the preview", func() (bool, string) {
		out, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(".request-result").textContent`))
		return strings.Contains(out, "https://api.example.com/leads?who=Carlx") && strings.Contains(out, "X-Source"), out
	})
	// An action that does not validate: the error is on its field.
	step("an invalid action", setv("#new-action", "add_tags"), press(chromedp.ID("add-action")),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="3"]`)),
		press(chromedp.ID("save")), chromedp.WaitVisible(chromedp.CSS(`#status[data-state="invalid"]`)),
		chromedp.WaitVisible(chromedp.CSS(`fieldset.action[data-action="3"] select.bad[data-param="tags"]`)),
		press(chromedp.CSS(`fieldset.action[data-action="3"] button.remove-action`)),
		chromedp.WaitNotPresent(chromedp.CSS(`fieldset.action[data-action="3"]`)))
	step("save the actions", press(chromedp.ID("save")), chromedp.WaitVisible(chromedp.CSS(`#status[data-state="saved"]`)))
	var withActions struct {
		Blocks []struct {
			ID      string           `json:"id"`
			Actions []map[string]any `json:"actions"`
		} `json:"blocks"`
	}
	a.must(http.MethodGet, "/v1/tunnels/logic", nil, http.StatusOK, &withActions)
	for _, bl := range withActions.Blocks {
		if bl.ID != "act" {
			continue
		}
		got := fmt.Sprint(bl.Actions)
		if len(bl.Actions) != 3 || bl.Actions[1]["field"] != "age" || bl.Actions[1]["value"] != "30" ||
			bl.Actions[2]["method"] != "POST" || !strings.Contains(got, "X-Source") {
			t.Fatalf("saved actions: %s", got)
		}
	}

	// The key stays in sessionStorage, not in a cookie or the URL.
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	must(err)
	url, err := chromedp.Run(ctx, chromedp.Location())
	must(err)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("tunnels.key")`))
	must(err)
	if cookie != "" || strings.Contains(url, a.key) || stored != a.key {
		t.Fatalf("cookie %q, url %q, sessionStorage %q", cookie, url, stored)
	}
	b.noProblems()
}

// browser is a headless Chromium tab on the system, watching for script
// errors and CSP violations.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("headless", true), chromedp.DisableGPU, chromedp.WindowSize(1600, 1000))...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	b.must(chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	b.must(chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			// A 400 is a validation answer the page shows; Chromium logs every
			// non-2xx fetch, so that one is not a problem.
			if e.Entry.Level == log.EntryLevelError && !strings.Contains(e.Entry.Text, "status of 400") {
				b.problems = append(b.problems, "console: "+e.Entry.Text+" ("+e.Entry.URL+")")
			}
		}
	}))
	return b
}

func (b *browser) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// step runs actions, failing with the page's HTML when they do not complete.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		b.mu.Lock()
		defer b.mu.Unlock()
		b.t.Fatalf("%s: %v\nproblems: %v\npage:\n%s", what, err, b.problems, html)
	}
}

func (b *browser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the page reported problems: %v", b.problems)
	}
}

// signIn opens the console and gives it the workspace key.
func (b *browser) signIn(key string) {
	b.t.Helper()
	b.step("open the console", chromedp.Navigate(sys.APIURL+"/"), chromedp.WaitVisible(chromedp.ID("keyform")))
	// A click, as a person does (form.submit() would skip the page's submit handler).
	b.step("sign in", chromedp.SendKeys(chromedp.ID("key"), key), press(chromedp.CSS(`#keyform button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("nav")),
		// The first view drawn after signing in: a route the test starts
		// later then draws after it, never under it.
		chromedp.WaitVisible(chromedp.CSS("#view h1")))
}

// TestConsoleOperatorInABrowser: an operator finds an unread chat, reads the
// card and the journey, answers, and marks the chat read.
func TestConsoleOperatorInABrowser(t *testing.T) {
	needSystem(t)
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium installed (apt-get install chromium)")
	}
	a := logicWorkspace(t, "Console operator")
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/hello", json.RawMessage(`{"name": "Hello", "entry": "hi", "blocks": [
		{"id": "hi", "type": "message", "text": "Hello from the funnel"}]}`), http.StatusOK, nil)
	sub := a.subscribe("console-op-1", "hello", "8701", "Vera")
	a.waitForTexts(sub, "Hello from the funnel")
	a.event(map[string]any{"event_id": "console-op-in", "type": "message", "text": "Can I pay by card?"}, "8701")

	b := newBrowser(t, bin)
	b.signIn(a.key)
	b.step("the unread tab", route("#/chats"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/subscribers/`+sub+`/chat"]`)))
	// The link is there; following it is the browser's business (a click can
	// land before the layout settles), so the test goes to its address.
	b.step("open the chat", route("#/subscribers/"+sub+"/chat"),
		chromedp.WaitVisible(chromedp.CSS(`.chat li.inbound`)))
	b.step("answer", chromedp.SendKeys(chromedp.ID("reply-text"), "Yes, by card."),
		press(chromedp.CSS(`#reply button[type=submit]`)))
	a.waitForTexts(sub, "Hello from the funnel", "Yes, by card.")
	// The chat is drawn again with the answer: mark read on that view.
	eventually(t, 10*time.Second, "the answer in the chat view", func() (bool, string) {
		c, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector(".chat") || {}).textContent || ""`))
		return strings.Contains(c, "Yes, by card."), c
	})
	b.step("mark read", chromedp.WaitVisible(chromedp.ID("mark-read")), press(chromedp.ID("mark-read")))
	eventually(t, 10*time.Second, "the chat off the unread tab", func() (bool, string) {
		var page struct {
			Chats []map[string]any `json:"chats"`
		}
		a.must(http.MethodGet, "/v1/chats?filter=unread", nil, http.StatusOK, &page)
		for _, c := range page.Chats {
			if c["subscriber_id"] == sub {
				return false, "still unread"
			}
		}
		return true, ""
	})
	b.step("the All tab", route("#/chats/all"), chromedp.WaitVisible(chromedp.CSS(`#all-chats a[href="#/subscribers/`+sub+`/chat"]`)))
	b.step("search", route("#/subscribers"), chromedp.WaitVisible(chromedp.ID("search-q")),
		chromedp.SendKeys(chromedp.ID("search-q"), "ver"), press(chromedp.CSS(`#search button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#subscribers a[href="#/subscribers/`+sub+`"]`)))
	b.step("the journey", route("#/subscribers/"+sub+"/journey"),
		chromedp.WaitVisible(chromedp.CSS(`.timeline li.ok`)))
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(".timeline")))
	b.must(err)
	if !strings.Contains(text, "hello/hi") || !strings.Contains(text, "done") {
		t.Fatalf("journey: %s", text)
	}
	// The tunnel's counters: its run is over, its one block done once.
	b.step("the tunnels list", route("#/tunnels"), chromedp.WaitVisible(chromedp.CSS(`tr[data-tunnel="hello"] .active-runs`)))
	active, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(`tr[data-tunnel="hello"] .active-runs`)))
	b.must(err)
	if active != "0" {
		t.Fatalf("runs active: %q", active)
	}
	b.step("the canvas counters", route("#/tunnels/hello"), chromedp.WaitVisible(chromedp.CSS(`g.node[data-block="hi"]`)))
	eventually(t, 10*time.Second, "the block's counters", func() (bool, string) {
		c, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('[data-counts="hi"]').textContent`))
		return strings.HasPrefix(c, "1 done · 0 waiting"), c
	})
	b.step("the profile", route("#/subscribers/"+sub+"/profile"), chromedp.WaitVisible(chromedp.CSS("dl")))
	profile, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("dl")))
	b.must(err)
	if !strings.Contains(profile, "Vera") || !strings.Contains(profile, "telegram:8701") {
		t.Fatalf("profile: %s", profile)
	}
	b.noProblems()
}

// asVoid runs an action for its effect only, so it can be one step of many.
func asVoid[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// TestConsoleCatalogAndSalesInABrowser: a catalog form (an error under its
// field, then a save), a deal moved on the sales board, the dead letters page.
func TestConsoleCatalogAndSalesInABrowser(t *testing.T) {
	needSystem(t)
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium installed (apt-get install chromium)")
	}
	a := logicWorkspace(t, "Console sales")
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/sales-plans/q4", map[string]any{"name": "Q4", "statuses": []string{"new", "won"},
		"operators": []string{"anna"}, "distribution": "evenly"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/deal", json.RawMessage(`{"name": "Deal", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "add_to_sales_plan", "plan": "q4"}]}]}`), http.StatusOK, nil)
	sub := a.subscribe("console-sale-1", "deal", "8901", "Dina")
	a.finished(sub, "deal")

	b := newBrowser(t, bin)
	b.signIn(a.key)
	// A tag without a name is refused, the error under the field; then saved.
	// An empty id is refused by the page itself, before any request.
	b.step("the tags form", route("#/catalog/tags"), chromedp.WaitVisible(chromedp.ID("entity-form")),
		fillAndSubmit("#entity-form", map[string]string{"#entity-id": ""}))
	eventually(t, 10*time.Second, "the error under the id field", func() (bool, string) {
		idErr, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("entity-id").nextElementSibling.textContent`))
		if !strings.Contains(idErr, "id is required") {
			_, _ = chromedp.Run(b.ctx, fillAndSubmit("#entity-form", map[string]string{"#entity-id": ""}))
			return false, idErr
		}
		return true, idErr
	})
	b.step("the tags form", fillAndSubmit("#entity-form", map[string]string{"#entity-id": "hot"}))
	eventually(t, 10*time.Second, "the error under the name field", func() (bool, string) {
		fieldErr, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('input[data-field="name"]').nextElementSibling.textContent`))
		view, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("view").outerHTML`))
		if !strings.Contains(fieldErr, "name") {
			// The view may have drawn itself again after the submit (its list
			// arrived later), dropping the submitted form: submit again. An
			// invalid tag writes nothing, so a repeat changes nothing.
			_, _ = chromedp.Run(b.ctx, fillAndSubmit("#entity-form", map[string]string{"#entity-id": "hot"}))
			return false, view
		}
		return true, view
	})
	b.step("save the tag", fillAndSubmit("#entity-form", map[string]string{"#entity-id": "hot", `input[data-field="name"]`: "Hot lead"}),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="hot"]`)))
	var tag map[string]any
	a.must(http.MethodGet, "/v1/tags/hot", nil, http.StatusOK, &tag)
	if tag["name"] != "Hot lead" {
		t.Fatalf("tag: %v", tag)
	}
	// The board: the deal is in "new"; moving it makes it "won".
	b.step("the board", route("#/sales/q4"),
		chromedp.WaitVisible(chromedp.CSS(`.column[data-status="new"] select[data-deal="`+sub+`"]`)),
		setv(`select[data-deal="`+sub+`"]`, "won"),
		chromedp.WaitVisible(chromedp.CSS(`.column[data-status="won"] select[data-deal="`+sub+`"]`)))
	var deals struct {
		Deals []map[string]any `json:"deals"`
	}
	a.must(http.MethodGet, "/v1/sales-plans/q4/deals", nil, http.StatusOK, &deals)
	if len(deals.Deals) != 1 || deals.Deals[0]["status"] != "won" || deals.Deals[0]["operator"] != "anna" {
		t.Fatalf("deals: %v", deals.Deals)
	}
	b.step("dead letters", route("#/dead-letters"), chromedp.WaitVisible(chromedp.ID("redrive")),
		press(chromedp.ID("redrive")))
	msg, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID("redrive-status")))
	b.must(err)
	if msg != "Select a dead letter first" {
		t.Fatalf("re-drive with nothing selected: %q", msg)
	}
	b.noProblems()
}

// route moves the console to an in-page address (a same-document navigation:
// chromedp.Navigate would wait for a page load that never comes).
func route(hash string) chromedp.Action[chromedp.Void] {
	return asVoid(chromedp.Evaluate[bool](`(() => { location.hash = ` + strconv.Quote(hash) + `; return true; })()`))
}

// press clicks a button or link from the page's script (element.click()): the
// handler runs as for a person's click, with no mouse position to race the
// layout. The canvas's blocks, which answer pointer events, get real mouse
// clicks and drags instead.
func press[S ~string](sel S) chromedp.Action[chromedp.Void] {
	q := string(sel)
	if _, isID := any(sel).(chromedp.ID); isID && !strings.HasPrefix(q, "#") {
		q = "#" + q
	}
	return asVoid(chromedp.Evaluate[bool](`(() => { const e = document.querySelector(` + strconv.Quote(q) + `); if (!e) throw new Error(` + strconv.Quote("no element "+q) + `); e.click(); return true; })()`))
}

// fillAndSubmit sets a form's fields and submits it (requestSubmit runs the
// page's submit handler, as the Save button does) in one script, so that no
// redraw of the view can fall between the filling and the submit.
func fillAndSubmit(form string, values map[string]string) chromedp.Action[chromedp.Void] {
	fields, _ := json.Marshal(values)
	return asVoid(chromedp.Evaluate[bool](`(() => { const f = document.querySelector(` + strconv.Quote(form) + `);
		if (!f) throw new Error(` + strconv.Quote("no form "+form) + `);
		for (const [sel, v] of Object.entries(` + string(fields) + `)) { const e = f.querySelector(sel); if (!e) throw new Error("no field " + sel); e.value = v; }
		f.requestSubmit(); return true; })()`))
}

// setv sets a form control's value and fires its change event, as typing and
// leaving the field (or picking an option) does.
func setv(sel, v string) chromedp.Action[chromedp.Void] {
	return asVoid(chromedp.Evaluate[bool](`(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); e.value = ` + strconv.Quote(v) +
		`; e.dispatchEvent(new Event("change", { bubbles: true })); return true; })()`))
}
