package store

// Email items (issue 4):
//
//	profile attribute email_account (map)        the linked email account (engine.EmailAccount)
//	pk WS#<ws>#SUB#<sub>  sk EMAILSEND#<step id>  one send record per email step (TTL)
//	pk DEPLOYMENT         sk SECRET               the key of unsubscribe links, made once
//	pk DEPLOYMENT         sk PUBLIC_URL           the https base URL the API was last called at

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail"
)

const (
	deploymentPK  = "DEPLOYMENT"
	sendPrefix    = "EMAILSEND#"
	sendSending   = "sending"
	sendSent      = "sent"
	secretSize    = 32
	emailAcctAttr = "email_account"
)

// EmailBot answers the sender of an email bot, or engine.ErrNotFound when
// the bot was deleted.
func (st *Store) EmailBot(ctx context.Context, ws, id string) (mail.Sender, error) {
	e, err := st.GetEntity(ctx, ws, KindEmailBot, id)
	if err != nil {
		return mail.Sender{}, err
	}
	var doc struct {
		FromAddress string `json:"from_address"`
		FromName    string `json:"from_name"`
		ReplyTo     string `json:"reply_to"`
	}
	if err := json.Unmarshal(e.Doc, &doc); err != nil {
		return mail.Sender{}, fmt.Errorf("email bot %s: %w", id, err)
	}
	return mail.Sender{Address: doc.FromAddress, Name: doc.FromName, ReplyTo: doc.ReplyTo}, nil
}

// CreateEmailAccount links an email account to the subscriber unless one is
// linked already (a conditional write, so two runs of the action, or a retry
// racing the first attempt, make one account). It answers the account the
// profile holds and whether this call created it; engine.ErrNotFound when
// the subscriber does not exist.
func (st *Store) CreateEmailAccount(ctx context.Context, ws, sub string, a engine.EmailAccount) (engine.EmailAccount, bool, error) {
	av, err := attributevalue.Marshal(a)
	if err != nil {
		return engine.EmailAccount{}, false, err
	}
	_, err = st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String("SET #ea = :a, #upd = :now"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(#ea)"),
		ExpressionAttributeNames:  map[string]string{"#ea": emailAcctAttr, "#upd": "updated_at"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": av, ":now": s(ts(st.now()))},
	})
	if err == nil {
		return a, true, nil
	}
	if !isConditionFailed(err) {
		return engine.EmailAccount{}, false, err
	}
	cur, err := st.Subscriber(ctx, ws, sub)
	if err != nil {
		return engine.EmailAccount{}, false, err
	}
	if cur.EmailAccount == nil {
		// The condition failed on an account that is gone again: nothing
		// deletes accounts, so this is a bug or a hand edit, not a race.
		return engine.EmailAccount{}, false, fmt.Errorf("create email account: %w", ErrConflict)
	}
	return *cur.EmailAccount, false, nil
}

// UnsubscribeEmailAccount marks the subscriber's linked email account
// unsubscribed (repeating it changes nothing). A subscriber who got email
// from a send_email step without having a linked account gets one now,
// already unsubscribed, tied to bot and the default tunnel: the card then
// shows why no more email goes out. A subscriber without an email address has
// nothing to unsubscribe: nil. engine.ErrNotFound when the subscriber does not
// exist.
func (st *Store) UnsubscribeEmailAccount(ctx context.Context, ws, sub, bot string, at time.Time) error {
	for range 3 {
		_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
			UpdateExpression: aws.String("SET #ea.#u = :t, #ea.#uat = if_not_exists(#ea.#uat, :at)"),
			// Only a map can take a nested SET; the condition also keeps a
			// deleted subscriber from being recreated as a bare item.
			ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_type(#ea, :map)"),
			ExpressionAttributeNames:  map[string]string{"#ea": emailAcctAttr, "#u": "unsubscribed", "#uat": "unsubscribed_at"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": boolean(true), ":at": s(ts(at)), ":map": s("M")},
		})
		if !isConditionFailed(err) {
			return err
		}
		cur, err := st.Subscriber(ctx, ws, sub)
		if err != nil {
			return err
		}
		if cur.EmailAccount != nil {
			continue // linked meanwhile: mark that one
		}
		if cur.Email == "" {
			return nil
		}
		_, _, err = st.CreateEmailAccount(ctx, ws, sub, engine.EmailAccount{
			Email: cur.Email, EmailBot: bot, Tunnel: "default", Unsubscribed: true, CreatedAt: at,
		})
		if err != nil {
			return err
		}
		// Created unsubscribed, or another writer linked one first: the next
		// round marks it (a no-op for ours).
	}
	return fmt.Errorf("unsubscribe email account: %w", ErrConflict)
}

func sendKey(ws, sub, stepID string) map[string]types.AttributeValue {
	return key(subPK(ws, sub), sendPrefix+stepID)
}

// BeginSend notes that an attempt to send the email of a step starts. When an
// earlier attempt of the step already sent it (the step's own record was
// never completed: a crash, or a failed completion), it answers that email's
// message id and the caller must not send again; otherwise "".
//
// SES has no idempotent send, so this record only narrows the window for a
// second email to the time between SES accepting the message and MarkSent;
// an attempt that finds the record still "sending" cannot tell whether its
// predecessor's email left, and sends (at least once, rather than maybe never).
func (st *Store) BeginSend(ctx context.Context, ws, sub, stepID string, at time.Time) (string, error) {
	k := sendKey(ws, sub, stepID)
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: k,
		UpdateExpression: aws.String("SET #st = :sending, #first = if_not_exists(#first, :at), #last = :at, #exp = :exp " +
			"ADD #att :one"),
		ConditionExpression: aws.String("attribute_not_exists(#st) OR #st <> :sent"),
		ExpressionAttributeNames: map[string]string{
			"#st": "status", "#first": "first_at", "#last": "last_at", "#exp": "expires_at", "#att": "attempts",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":sending": s(sendSending), ":sent": s(sendSent), ":at": s(ts(at)), ":exp": st.ttl(at), ":one": n(1),
		},
	})
	if err == nil {
		return "", nil
	}
	if !isConditionFailed(err) {
		return "", err
	}
	got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", err
	}
	if id := str(got.Item, "message_id"); id != "" {
		return id, nil
	}
	return "", fmt.Errorf("send record of step %s is sent without a message id", stepID)
}

// MarkSent records that the step's email was accepted with messageID.
func (st *Store) MarkSent(ctx context.Context, ws, sub, stepID, messageID string, at time.Time) error {
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: sendKey(ws, sub, stepID),
		UpdateExpression:         aws.String("SET #st = :sent, #mid = :mid, #at = :at"),
		ExpressionAttributeNames: map[string]string{"#st": "status", "#mid": "message_id", "#at": "sent_at"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":sent": s(sendSent), ":mid": s(messageID), ":at": s(ts(at)),
		},
	})
	return err
}

// secrets caches the unsubscribe key per table: it never changes once made.
var secrets sync.Map // table name -> []byte

// UnsubscribeSecret answers the deployment's key for unsubscribe links. The
// deployment is configured with no such secret, so the first caller makes 32
// random bytes and stores them with a conditional put; everyone else (and
// every later process) reads that one. It is kept in memory once read.
func (st *Store) UnsubscribeSecret(ctx context.Context) ([]byte, error) {
	if v, ok := secrets.Load(st.table); ok {
		return v.([]byte), nil
	}
	secret, err := st.loadSecret(ctx)
	if err != nil {
		return nil, err
	}
	secrets.Store(st.table, secret)
	return secret, nil
}

// loadSecret reads the key, creating it if it does not exist yet.
func (st *Store) loadSecret(ctx context.Context) ([]byte, error) {
	k := key(deploymentPK, "SECRET")
	for range 2 {
		got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(st.table), Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, err
		}
		if b, ok := got.Item["secret"].(*types.AttributeValueMemberB); ok && len(b.Value) == secretSize {
			return b.Value, nil
		}
		if len(got.Item) > 0 {
			return nil, errors.New("the deployment's unsubscribe secret is malformed")
		}
		secret := make([]byte, secretSize)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		item := key(deploymentPK, "SECRET")
		item["secret"] = &types.AttributeValueMemberB{Value: secret}
		item["created_at"] = s(ts(st.now()))
		_, err = st.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(st.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		if err == nil {
			return secret, nil
		}
		if !isConditionFailed(err) {
			return nil, err
		}
		// Another process made it first: read theirs.
	}
	return nil, fmt.Errorf("unsubscribe secret: %w", ErrConflict)
}

// PublicURL answers the base URL the API was last called at (https, no
// path), or engine.ErrNotFound before any authorized request recorded one.
func (st *Store) PublicURL(ctx context.Context) (string, error) {
	got, err := st.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(st.table), Key: key(deploymentPK, "PUBLIC_URL"), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", err
	}
	u := str(got.Item, "base_url")
	if u == "" {
		return "", engine.ErrNotFound
	}
	return u, nil
}

// SetPublicURL records the base URL the API is called at.
func (st *Store) SetPublicURL(ctx context.Context, base string) error {
	item := key(deploymentPK, "PUBLIC_URL")
	item["base_url"] = s(base)
	item["updated_at"] = s(ts(st.now()))
	_, err := st.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(st.table), Item: item})
	return err
}
