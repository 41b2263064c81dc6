package store

import (
	"testing"
	"time"
)

func TestTakeSendSlot(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	bot := "bot-" + ws
	now := time.Date(2026, 12, 5, 10, 0, 0, 100e6, time.UTC)

	// One message a second per chat.
	if wait, err := st.TakeSendSlot(ctx, bot, "chat-a", now, 3); err != nil || wait != 0 {
		t.Fatalf("first message: %v %v", wait, err)
	}
	if wait, _ := st.TakeSendSlot(ctx, bot, "chat-a", now.Add(400*time.Millisecond), 3); wait != 600*time.Millisecond {
		t.Fatalf("second message to the chat 0.4 s later waits %v, want 0.6 s", wait)
	}
	if wait, _ := st.TakeSendSlot(ctx, bot, "chat-a", now.Add(time.Second), 3); wait != 0 {
		t.Fatalf("a second later waits %v", wait)
	}
	// perBot a second for the bot (3 here): chat-a took 1 of this second, then b and c.
	later := now.Add(time.Second)
	for _, chat := range []string{"chat-b", "chat-c"} {
		if wait, _ := st.TakeSendSlot(ctx, bot, chat, later, 3); wait != 0 {
			t.Fatalf("%s waits %v", chat, wait)
		}
	}
	if wait, _ := st.TakeSendSlot(ctx, bot, "chat-d", later, 3); wait != 900*time.Millisecond {
		t.Fatalf("the fourth message of the second waits %v, want until the next second", wait)
	}
	// Another bot is not affected.
	if wait, _ := st.TakeSendSlot(ctx, "other-"+ws, "chat-d", later, 3); wait != 0 {
		t.Fatalf("another bot waits %v", wait)
	}
	// A 429 pauses the whole bot; a shorter pause does not shorten it.
	if err := st.PauseBot(ctx, bot, later.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := st.PauseBot(ctx, bot, later.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if wait, _ := st.TakeSendSlot(ctx, bot, "chat-e", later.Add(time.Second), 3); wait != 4*time.Second {
		t.Fatalf("paused bot waits %v, want 4 s", wait)
	}
}
