package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail"
)

func TestEmailBot(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	doc, _ := json.Marshal(map[string]string{"name": "Main", "from_address": "news@tunnels.example.com",
		"from_name": "Tunnels, News", "reply_to": "help@tunnels.example.com"})
	if _, err := st.PutEntity(ctx, ws, Entity{Kind: KindEmailBot, ID: "main", Doc: doc}); err != nil {
		t.Fatal(err)
	}
	got, err := st.EmailBot(ctx, ws, "main")
	want := mail.Sender{Address: "news@tunnels.example.com", Name: "Tunnels, News", ReplyTo: "help@tunnels.example.com"}
	if err != nil || got != want {
		t.Errorf("EmailBot = %+v, %v; want %+v", got, err, want)
	}
	if _, err := st.EmailBot(ctx, ws, "gone"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("EmailBot(gone) = %v, want ErrNotFound", err)
	}
	if _, err := st.EmailBot(ctx, ws+"-other", "main"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("EmailBot of another workspace = %v, want ErrNotFound", err)
	}
}

func TestCreateEmailAccount(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "e1")
	acct := engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", LeadSource: "landing", Tunnel: "nurture", CreatedAt: t0}

	// Concurrent creations (a retry racing its first attempt, two actions):
	// exactly one creates, everyone answers that account.
	var wg sync.WaitGroup
	var mu sync.Mutex
	creators := 0
	var answers []engine.EmailAccount
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := acct
			a.EmailBot = []string{"main", "other", "third", "x", "y", "z"}[i]
			got, created, err := st.CreateEmailAccount(ctx, ws, sub, a)
			if err != nil {
				t.Errorf("CreateEmailAccount: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if created {
				creators++
				acct.EmailBot = a.EmailBot // the winner's
			}
			answers = append(answers, got)
		}()
	}
	wg.Wait()
	if creators != 1 {
		t.Fatalf("%d calls created the account, want 1", creators)
	}
	stored := mustSubscriber(t, st, ws, sub).EmailAccount
	if stored == nil || *stored != acct {
		t.Fatalf("stored account = %+v, want %+v", stored, acct)
	}
	for _, a := range answers {
		if a != acct {
			t.Errorf("a caller was answered %+v, want the stored %+v", a, acct)
		}
	}
	again, created, err := st.CreateEmailAccount(ctx, ws, sub, engine.EmailAccount{Email: "new@example.org", EmailBot: "b", Tunnel: "default", CreatedAt: t0.Add(time.Hour)})
	if err != nil || created || again != acct {
		t.Errorf("second CreateEmailAccount = %+v, %v, %v; want the first account, not created", again, created, err)
	}
	if _, _, err := st.CreateEmailAccount(ctx, ws, "no-such-sub", acct); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("CreateEmailAccount(missing subscriber) = %v, want ErrNotFound", err)
	}
}

func TestUnsubscribeEmailAccount(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	at := t0.Add(time.Hour)

	// A linked account is marked; repeating changes nothing.
	linked := newSubscriber(t, st, ws, "u1")
	acct := engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", Tunnel: "nurture", CreatedAt: t0}
	if _, _, err := st.CreateEmailAccount(ctx, ws, linked, acct); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.UnsubscribeEmailAccount(ctx, ws, linked, "other-bot", at); err != nil {
			t.Fatalf("UnsubscribeEmailAccount: %v", err)
		}
		want := acct
		want.Unsubscribed = true
		if got := mustSubscriber(t, st, ws, linked).EmailAccount; got == nil || *got != want {
			t.Errorf("account = %+v, want %+v", got, want)
		}
	}

	// No linked account but an address that got email: one is made, unsubscribed.
	unlinked, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "telegram", ExternalID: "u2"}, Profile{Email: "bob@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UnsubscribeEmailAccount(ctx, ws, unlinked, "main", at); err != nil {
		t.Fatal(err)
	}
	want := engine.EmailAccount{Email: "bob@example.org", EmailBot: "main", Tunnel: "default", Unsubscribed: true, CreatedAt: at}
	if got := mustSubscriber(t, st, ws, unlinked).EmailAccount; got == nil || *got != want {
		t.Errorf("made account = %+v, want %+v", got, want)
	}

	// No address: nothing to unsubscribe.
	bare := newSubscriber(t, st, ws, "u3")
	if err := st.UnsubscribeEmailAccount(ctx, ws, bare, "main", at); err != nil {
		t.Fatal(err)
	}
	if got := mustSubscriber(t, st, ws, bare).EmailAccount; got != nil {
		t.Errorf("account %+v made for a subscriber without an address", got)
	}
	if err := st.UnsubscribeEmailAccount(ctx, ws, "no-such-sub", "main", at); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("UnsubscribeEmailAccount(missing) = %v, want ErrNotFound", err)
	}
	// A deleted subscriber is not recreated as a bare item.
	if _, err := st.Subscriber(ctx, ws, "no-such-sub"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("the missing subscriber now exists: %v", err)
	}
}

func TestSendRecord(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "s1")

	// Attempts before the email went out find nothing sent.
	for i := range 2 {
		id, err := st.BeginSend(ctx, ws, sub, "step-a", t0.Add(time.Duration(i)*time.Second))
		if err != nil || id != "" {
			t.Fatalf("BeginSend #%d = %q, %v; want nothing sent", i+1, id, err)
		}
	}
	if err := st.MarkSent(ctx, ws, sub, "step-a", "ses-42", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// After: every attempt answers the sent message.
	for range 2 {
		id, err := st.BeginSend(ctx, ws, sub, "step-a", t0.Add(3*time.Second))
		if err != nil || id != "ses-42" {
			t.Errorf("BeginSend after MarkSent = %q, %v; want ses-42", id, err)
		}
	}
	out, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: sendKey(ws, sub, "step-a"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	it := out.Item
	if str(it, "status") != "sent" || num(it, "attempts") != 2 || str(it, "first_at") != ts(t0) || str(it, "sent_at") != ts(t0.Add(2*time.Second)) ||
		num(it, "expires_at") != t0.Add(time.Second+st.Retention).Unix() {
		t.Errorf("send record: status %s, attempts %d, first_at %s, sent_at %s, expires_at %d",
			str(it, "status"), num(it, "attempts"), str(it, "first_at"), str(it, "sent_at"), num(it, "expires_at"))
	}
	// Another step of the same subscriber has its own record.
	if id, err := st.BeginSend(ctx, ws, sub, "step-b", t0); err != nil || id != "" {
		t.Errorf("BeginSend(step-b) = %q, %v", id, err)
	}
	// The record is not a journey entry: it has no jsk.
	if _, ok := it["jsk"]; ok {
		t.Errorf("send record has a jsk: it would show in the journey")
	}
}

func TestUnsubscribeSecret(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := t.Context()
	// Fresh stores race to read or make it; all get the same 32 bytes.
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = New(testDB, testTable).loadSecret(ctx)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("loadSecret #%d = %x, %v; want the same 32 bytes as #0 (%x)", i, got[i], errs[i], got[0])
		}
	}
	if bytes.Equal(got[0], make([]byte, 32)) {
		t.Error("the secret is all zeros")
	}
	cached, err := st.UnsubscribeSecret(ctx)
	if err != nil || !bytes.Equal(cached, got[0]) {
		t.Errorf("UnsubscribeSecret = %x, %v", cached, err)
	}
}

func TestPublicURL(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := t.Context()
	for _, u := range []string{"https://a.example.com", "https://api.example.com"} {
		if err := st.SetPublicURL(ctx, u); err != nil {
			t.Fatal(err)
		}
		if got, err := st.PublicURL(ctx); err != nil || got != u {
			t.Errorf("PublicURL = %q, %v; want %q", got, err, u)
		}
	}
}
