// Package messenger delivers chat messages through the channel a
// subscriber's identity names: the signed webhook connector or a Telegram
// bot. The flow function sends with it, and the API (a test message).
package messenger

import (
	"context"
	"errors"
	"fmt"

	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/connector"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// New is the Messenger of a function over st, with its egress client.
func New(st *store.Store, cfg config.Config) *Messenger {
	hc := egress.NewClient(egress.Policy{Allow: cfg.EgressAllow}, egress.Options{})
	return &Messenger{Store: st, Client: &connector.Client{HTTP: hc},
		Telegram: &TelegramSender{Store: st, API: cfg.TelegramAPI, HTTP: hc}}
}

// Messenger implements engine.Messenger.
type Messenger struct {
	Store    *store.Store
	Client   *connector.Client
	Telegram *TelegramSender
}

// Deliver implements engine.Messenger.
func (m *Messenger) Deliver(ctx context.Context, ws string, d engine.ChatDelivery) (map[string]any, error) {
	cfg, err := m.Store.ChannelFor(ctx, ws, d.Channel)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, engine.ErrNoChannel
	}
	if err != nil {
		return nil, err
	}
	if cfg.Kind == "telegram" {
		return m.Telegram.Send(ctx, ws, cfg, d)
	}
	ch := connector.Channel{URL: cfg.URL, Secret: cfg.Secret}
	res, err := m.Client.Send(ctx, ch, connector.Message{
		StepID: d.StepID, SubscriberID: d.SubscriberID, Channel: d.Channel, ExternalID: d.ExternalID,
		Tunnel: d.Tunnel, Block: d.Block, Text: d.Text, Buttons: buttons(d.Buttons),
	})
	detail := map[string]any{"connector_status": res.Status}
	switch {
	case err == nil:
		return detail, nil
	case errors.Is(err, connector.ErrPermanent):
		return detail, fmt.Errorf("%w: %s", engine.ErrPermanent, err.Error())
	default:
		return detail, err
	}
}

func buttons(bs []engine.ChatButton) []connector.Button {
	if len(bs) == 0 {
		return nil
	}
	out := make([]connector.Button, len(bs))
	for i, b := range bs {
		out[i] = connector.Button{ID: b.ID, Text: b.Text}
	}
	return out
}
