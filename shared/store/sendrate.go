package store

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// Messages to a Telegram bot's chats are paced across every function that
// sends them, in the table: Telegram allows about 30 messages a second per
// bot and one a second per chat, and answers 429 retry_after past that. The
// items live under "SEND#<bot id>" (the numeric part of the token, never the
// token) and expire by TTL.

func sendPK(bot string) string { return "SEND#" + bot }

// TakeSendSlot reserves the right to send one message to chat through bot
// now. It answers 0 when the message may go now, else how long to wait
// before asking again: the bot is paused by a 429, the chat had a message
// less than a second ago, or this second's perBot messages are taken.
func (st *Store) TakeSendSlot(ctx context.Context, bot, chat string, now time.Time, perBot int) (time.Duration, error) {
	nowMS := now.UnixMilli()
	pause, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(sendPK(bot), "PAUSE"),
	})
	if err != nil {
		return 0, err
	}
	if until := num(pause.Item, "until_ms"); until > nowMS {
		return time.Duration(until-nowMS) * time.Millisecond, nil
	}
	exp := n(now.Add(time.Hour).Unix())
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(sendPK(bot), "CHAT#"+chat),
		UpdateExpression:    aws.String("SET next_ms = :next, expires_at = :exp"),
		ConditionExpression: aws.String("attribute_not_exists(next_ms) OR next_ms <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":next": n(nowMS + 1000), ":now": n(nowMS), ":exp": exp,
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if isConditionFailed(err) {
		wait := num(conditionItem(err), "next_ms") - nowMS
		return time.Duration(max(wait, 1)) * time.Millisecond, nil
	}
	if err != nil {
		return 0, err
	}
	sec := nowMS / 1000
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(sendPK(bot), "SEC#"+strconv.FormatInt(sec, 10)),
		UpdateExpression:    aws.String("ADD sent :one SET expires_at = :exp"),
		ConditionExpression: aws.String("attribute_not_exists(sent) OR sent < :max"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": n(1), ":max": n(int64(perBot)), ":exp": exp,
		},
	})
	if isConditionFailed(err) {
		// This second is full. The chat's slot stays taken: it was this
		// message's, and the next try comes after it anyway.
		return time.Duration((sec+1)*1000-nowMS) * time.Millisecond, nil
	}
	return 0, err
}

// PauseBot stops every send through bot until until (a 429's retry_after).
func (st *Store) PauseBot(ctx context.Context, bot string, until time.Time) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(sendPK(bot), "PAUSE"),
		UpdateExpression:    aws.String("SET until_ms = :u, expires_at = :exp"),
		ConditionExpression: aws.String("attribute_not_exists(until_ms) OR until_ms < :u"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":u": n(until.UnixMilli()), ":exp": n(until.Add(time.Hour).Unix()),
		},
	})
	if isConditionFailed(err) {
		return nil // a longer pause is already there
	}
	return err
}

// ChannelConfig is a channel as the Messenger needs it, secrets included.
type ChannelConfig struct {
	ID       string
	Kind     string // webhook or telegram
	URL      string // webhook
	Secret   string // webhook
	BotToken string // telegram
}

// ChannelFor answers the channel named by a subscriber identity's channel,
// or the workspace's "default" channel when no channel has that id.
func (st *Store) ChannelFor(ctx context.Context, ws, name string) (ChannelConfig, error) {
	e, err := st.GetEntity(ctx, ws, KindChannel, name)
	if errors.Is(err, engine.ErrNotFound) && name != "default" {
		e, err = st.GetEntity(ctx, ws, KindChannel, "default")
	}
	if err != nil {
		return ChannelConfig{}, err
	}
	var pub struct {
		Kind string `json:"kind"`
		URL  string `json:"url"`
	}
	var sec struct {
		Secret   string `json:"secret"`
		BotToken string `json:"bot_token"`
	}
	_ = json.Unmarshal(e.Doc, &pub)
	_ = json.Unmarshal(e.Secret, &sec)
	if pub.Kind == "" {
		pub.Kind = "webhook"
	}
	return ChannelConfig{ID: e.ID, Kind: pub.Kind, URL: pub.URL, Secret: sec.Secret, BotToken: sec.BotToken}, nil
}
