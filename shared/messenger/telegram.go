package messenger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/telegram"
)

// Pace of a Telegram bot (its documented limits).
const (
	TelegramPerBot = 30 // messages a second
	// telegramMaxWait is the longest a step waits in the function for a send
	// slot; past it the step goes back to its queue for that long.
	telegramMaxWait = 3 * time.Second
)

// TelegramSender sends chat messages through a workspace's Telegram bot,
// paced per bot and per chat across every function (store.TakeSendSlot).
type TelegramSender struct {
	Store *store.Store
	API   string       // the Bot API's address ("" for Telegram's)
	HTTP  *http.Client // the egress client
	Now   func() time.Time
}

// retryLater is a transient failure that knows when to try again: the step
// goes back to its queue for that long (stepbatch.RetryAfter).
type retryLater struct {
	after  time.Duration
	reason string
}

func (e *retryLater) Error() string {
	return fmt.Sprintf("telegram: %s; retried in %s", e.reason, e.after.Round(time.Millisecond))
}
func (e *retryLater) RetryAfter() time.Duration { return e.after }

func (t *TelegramSender) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Send implements the telegram half of Messenger.Deliver. A chat that blocked
// the bot is marked unreachable and the message skipped; a 429 pauses the
// whole bot for its retry_after. The token never appears in what it answers.
func (t *TelegramSender) Send(ctx context.Context, ws string, ch store.ChannelConfig, d engine.ChatDelivery) (map[string]any, error) {
	chatID, err := strconv.ParseInt(d.ExternalID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: external_id %q is not a Telegram chat id", engine.ErrPermanent, d.ExternalID)
	}
	bot, err := telegram.NewClient(ch.BotToken, t.API, t.HTTP)
	if err != nil {
		return nil, fmt.Errorf("%w: channel %q: the bot token is not usable", engine.ErrPermanent, ch.ID)
	}
	for {
		wait, err := t.Store.TakeSendSlot(ctx, bot.BotID(), d.ExternalID, t.now(), TelegramPerBot)
		if err != nil {
			return nil, fmt.Errorf("telegram send slot: %w", err)
		}
		if wait == 0 {
			break
		}
		if wait > telegramMaxWait {
			return nil, &retryLater{after: wait, reason: "the bot is paused by Telegram (429)"}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	buttons := make([]telegram.Button, len(d.Buttons))
	for i, b := range d.Buttons {
		buttons[i] = telegram.Button{ID: b.ID, Text: b.Text}
	}
	msgID, err := bot.SendMessage(ctx, chatID, d.Text, buttons)
	var ra *telegram.RetryAfterError
	switch {
	case err == nil:
		return map[string]any{"channel_kind": "telegram", "telegram_message_id": msgID}, nil
	case errors.Is(err, telegram.ErrBlocked):
		if err := t.Store.SetUnreachable(ctx, ws, d.SubscriberID, d.Channel, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return nil, fmt.Errorf("mark unreachable: %w", err)
		}
		return map[string]any{"channel_kind": "telegram"}, engine.ErrUnreachable
	case errors.As(err, &ra):
		if err := t.Store.PauseBot(ctx, bot.BotID(), t.now().Add(ra.After)); err != nil {
			return nil, fmt.Errorf("pause bot: %w", err)
		}
		return nil, &retryLater{after: ra.After, reason: "Telegram asked to slow down (429)"}
	case errors.Is(err, telegram.ErrUnauthorized):
		return map[string]any{"channel_kind": "telegram"}, fmt.Errorf("%w: Telegram refused the bot token of channel %q (revoked?)", engine.ErrPermanent, ch.ID)
	case errors.Is(err, telegram.ErrPermanent):
		return map[string]any{"channel_kind": "telegram"}, fmt.Errorf("%w: %s", engine.ErrPermanent, err.Error())
	default:
		return nil, err // transient: the queue tries again
	}
}
