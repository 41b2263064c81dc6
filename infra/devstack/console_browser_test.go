package devstack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
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
// the side panel; and no script error or Content-Security-Policy violation.
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

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("headless", true), chromedp.DisableGPU)...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	must(chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	var mu sync.Mutex
	var problems []string
	must(chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				problems = append(problems, "console: "+e.Entry.Text)
			}
		}
	}))

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%s: %v\nproblems: %v\npage:\n%s", what, err, problems, html)
		}
	}
	step("open the console", chromedp.Navigate(sys.APIURL+"/"), chromedp.WaitVisible(chromedp.ID("keyform")))
	// A click, as a person does (form.submit() would skip the page's submit handler).
	step("sign in", chromedp.SendKeys(chromedp.ID("key"), a.key), chromedp.Click(chromedp.CSS(`#keyform button[type=submit]`)))
	step("the tunnels list", chromedp.WaitVisible(chromedp.CSS(`a[href="#/tunnels/logic"]`)))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr").length`))
	must(err)
	must(chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="#/tunnels/logic"]`)),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-block="wait"]`)),
	))
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#view h1")))
	must(err)
	nodes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("g.node").length`))
	must(err)
	must(chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`g.node[data-block="ask"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(".panel pre")),
	))
	panel, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".panel pre")))
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
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the page reported problems: %v", problems)
	}
}
