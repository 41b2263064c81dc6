package store

import (
	"sync"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
)

func TestWaitLifecycle(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	until := t0.Add(time.Hour)
	w := engine.Wait{ID: "ask-1", Tunnel: "t", Block: "q", Gen: 2, At: t0, AskedAt: t0.Add(time.Second), Until: &until}
	key := engine.WaitKey("t", "q")
	if err := st.OpenWait(ctx, ws, sub, w, ""); err != nil {
		t.Fatalf("OpenWait: %v", err)
	}
	// Opening over an open wait without saying so is refused (the caller read
	// an old profile), and so is opening the same wait again.
	if err := st.OpenWait(ctx, ws, sub, w, ""); err == nil {
		t.Fatal("OpenWait over an open wait succeeded")
	}
	got := mustSubscriber(t, st, ws, sub).Waits[key]
	if got.ID != "ask-1" || got.Gen != 2 || !got.Open() || got.Until == nil || !got.Until.Equal(until) {
		t.Fatalf("wait = %+v", got)
	}

	// Invalid answers count once per step, only while the wait is open.
	for _, c := range []struct {
		by   string
		want int
	}{{"r1", 1}, {"r1", 1}, {"r2", 2}} {
		n, ok, err := st.CountInvalid(ctx, ws, sub, key, "ask-1", c.by)
		if err != nil || !ok || n != c.want {
			t.Fatalf("CountInvalid(%s) = %d, %v, %v; want %d", c.by, n, ok, err, c.want)
		}
	}
	if _, ok, _ := st.CountInvalid(ctx, ws, sub, key, "another-ask", "r3"); ok {
		t.Fatal("an invalid answer counted for another ask")
	}

	// Exactly one of many concurrent enders wins; the winner may end it again.
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for _, by := range []string{"timeout", "reply-a", "reply-b", "reply-c", "button-a", "button-b", "reply-d", "reply-e"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.EndWait(ctx, ws, sub, key, "ask-1", by, "reply")
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins <- by
			}
		}()
	}
	wg.Wait()
	close(wins)
	var winners []string
	for by := range wins {
		winners = append(winners, by)
	}
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	if ok, err := st.EndWait(ctx, ws, sub, key, "ask-1", winners[0], "reply"); err != nil || !ok {
		t.Fatalf("the winner ending again = %v, %v", ok, err)
	}
	if _, ok, _ := st.CountInvalid(ctx, ws, sub, key, "ask-1", "r9"); ok {
		t.Fatal("an invalid answer counted after the wait ended")
	}
	got = mustSubscriber(t, st, ws, sub).Waits[key]
	if got.Open() || got.By != winners[0] || len(got.Invalid) != 2 {
		t.Fatalf("ended wait = %+v", got)
	}

	// A retried ask cannot reopen its ended wait; a new ask replaces it.
	if err := st.OpenWait(ctx, ws, sub, w, ""); err == nil || mustSubscriber(t, st, ws, sub).Waits[key].Open() {
		t.Fatalf("a retried ask reopened an answered wait (%v)", err)
	}
	w2 := w
	w2.ID, w2.Until = "ask-2", nil
	if err := st.OpenWait(ctx, ws, sub, w2, ""); err != nil {
		t.Fatal(err)
	}
	got = mustSubscriber(t, st, ws, sub).Waits[key]
	if got.ID != "ask-2" || !got.Open() || got.Until != nil || len(got.Invalid) != 0 {
		t.Fatalf("new ask = %+v", got)
	}
	if ok, _ := st.EndWait(ctx, ws, sub, key, "ask-1", "late", "reply"); ok {
		t.Fatal("an answer to the replaced ask ended the new one")
	}
	// An ask that replaces an open wait names it, and only an open one.
	w3 := w
	w3.ID, w3.Replaced = "ask-3", true
	if err := st.OpenWait(ctx, ws, sub, w3, "ask-1"); err == nil {
		t.Fatal("replaced a wait that is not there")
	}
	if err := st.OpenWait(ctx, ws, sub, w3, "ask-2"); err != nil {
		t.Fatal(err)
	}
	if got := mustSubscriber(t, st, ws, sub).Waits[key]; got.ID != "ask-3" || !got.Replaced {
		t.Fatalf("replacing ask = %+v", got)
	}
	if err := st.OpenWait(ctx, ws, "nobody", w, ""); err != engine.ErrNotFound {
		t.Fatalf("OpenWait for a missing subscriber = %v", err)
	}
}

func TestTimezoneAndLastRequestStatus(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	id, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "tg", ExternalID: "9"}, Profile{FirstName: "Ann", Timezone: "Asia/Tokyo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RecordRequestStatus(ctx, ws, id, 503); err != nil {
		t.Fatal(err)
	}
	got := mustSubscriber(t, st, ws, id)
	if got.Timezone != "Asia/Tokyo" || got.LastHTTPStatus != 503 {
		t.Fatalf("timezone %q, last status %d", got.Timezone, got.LastHTTPStatus)
	}
	if err := st.RecordRequestStatus(ctx, ws, "nobody", 200); err != engine.ErrNotFound {
		t.Fatalf("RecordRequestStatus for a missing subscriber = %v", err)
	}
}
