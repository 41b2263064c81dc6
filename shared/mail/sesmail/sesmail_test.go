package sesmail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tunnels/tunnels/shared/mail"
)

// fakeSES records requests and answers with out or err.
type fakeSES struct {
	calls []*sesv2.SendEmailInput
	out   *sesv2.SendEmailOutput
	err   error
}

func (f *fakeSES) SendEmail(_ context.Context, in *sesv2.SendEmailInput, _ ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	return f.out, nil
}

func message() mail.Message {
	return mail.Message{
		From:    mail.Sender{Address: "news@tunnels.example.com", Name: "Школа «Тоннели»", ReplyTo: "help@tunnels.example.com"},
		To:      "ann@example.org",
		Subject: "Привет, Анна",
		HTML:    `<p>Hi <a href="https://ex.com/w">the webinar</a></p>`,
	}
}

func TestSendBuildsRequest(t *testing.T) {
	f := &fakeSES{out: &sesv2.SendEmailOutput{MessageId: aws.String("0100-abc")}}
	mr := &Mailer{API: f, FromArn: "arn:aws:ses:us-east-1:123456789012:identity/tunnels.example.com", ConfigurationSet: "tunnels"}
	m := message()
	m.ListUnsubscribe, m.ListUnsubscribePost = "https://t.example.com/u/1", true
	m.IdempotencyKey = "step-42"
	m.Tags = map[string]string{"workspace": "ws1", "kind": "send_email"}

	id, err := mr.Send(context.Background(), m)
	if err != nil || id != "0100-abc" {
		t.Fatalf("Send = %q, %v; want 0100-abc, nil", id, err)
	}
	if len(f.calls) != 1 {
		t.Fatalf("%d calls, want 1", len(f.calls))
	}
	in := f.calls[0]
	s := in.Content.Simple
	got := map[string]any{
		"from":     aws.ToString(in.FromEmailAddress),
		"arn":      aws.ToString(in.FromEmailAddressIdentityArn),
		"confset":  aws.ToString(in.ConfigurationSetName),
		"to":       in.Destination.ToAddresses,
		"cc":       len(in.Destination.CcAddresses) + len(in.Destination.BccAddresses),
		"replyTo":  in.ReplyToAddresses,
		"subject":  aws.ToString(s.Subject.Data),
		"charsets": []string{aws.ToString(s.Subject.Charset), aws.ToString(s.Body.Html.Charset), aws.ToString(s.Body.Text.Charset)},
		"html":     aws.ToString(s.Body.Html.Data),
		"text":     aws.ToString(s.Body.Text.Data),
		"raw":      in.Content.Raw == nil && in.Content.Template == nil,
	}
	want := map[string]any{
		"from":     "=?utf-8?q?=D0=A8=D0=BA=D0=BE=D0=BB=D0=B0_=C2=AB=D0=A2=D0=BE=D0=BD=D0=BD?= =?utf-8?q?=D0=B5=D0=BB=D0=B8=C2=BB?= <news@tunnels.example.com>",
		"arn":      "arn:aws:ses:us-east-1:123456789012:identity/tunnels.example.com",
		"confset":  "tunnels",
		"to":       []string{"ann@example.org"},
		"cc":       0,
		"replyTo":  []string{"help@tunnels.example.com"},
		"subject":  "=?UTF-8?b?0J/RgNC40LLQtdGCLCDQkNC90L3QsA==?=",
		"charsets": []string{"UTF-8", "UTF-8", "UTF-8"},
		"html":     `<p>Hi <a href="https://ex.com/w">the webinar</a></p>`,
		"text":     "Hi the webinar (https://ex.com/w)",
		"raw":      true,
	}
	for k := range want {
		if !reflect.DeepEqual(got[k], want[k]) {
			t.Errorf("%s = %#v, want %#v", k, got[k], want[k])
		}
	}
	var headers []string
	for _, h := range s.Headers {
		headers = append(headers, aws.ToString(h.Name)+": "+aws.ToString(h.Value))
	}
	wantHeaders := []string{
		"List-Unsubscribe: <https://t.example.com/u/1>",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		"X-Tunnels-Idempotency-Key: step-42",
	}
	if !reflect.DeepEqual(headers, wantHeaders) {
		t.Errorf("headers = %q, want %q", headers, wantHeaders)
	}
	var tags []string
	for _, tg := range in.EmailTags {
		tags = append(tags, aws.ToString(tg.Name)+"="+aws.ToString(tg.Value))
	}
	if want := []string{"kind=send_email", "workspace=ws1"}; !reflect.DeepEqual(tags, want) {
		t.Errorf("tags = %q, want %q (sorted)", tags, want)
	}
}

func TestSendMinimal(t *testing.T) {
	f := &fakeSES{out: &sesv2.SendEmailOutput{MessageId: aws.String("id")}}
	m := message()
	m.From = mail.Sender{Address: "a@tunnels.example.com"}
	m.Subject = "Plain"
	m.Text = "Given text"
	if _, err := (&Mailer{API: f}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	in := f.calls[0]
	if got := aws.ToString(in.FromEmailAddress); got != "a@tunnels.example.com" {
		t.Errorf("from = %q", got)
	}
	if in.ReplyToAddresses != nil || in.FromEmailAddressIdentityArn != nil || in.ConfigurationSetName != nil ||
		in.EmailTags != nil || in.Content.Simple.Headers != nil {
		t.Errorf("optional fields set: %+v", in)
	}
	if got := aws.ToString(in.Content.Simple.Subject.Data); got != "Plain" {
		t.Errorf("ASCII subject = %q, want it unencoded", got)
	}
	if got := aws.ToString(in.Content.Simple.Body.Text.Data); got != "Given text" {
		t.Errorf("text = %q, want the given text", got)
	}
}

func TestSendRefusesInvalidWithoutCalling(t *testing.T) {
	for _, edit := range []func(*mail.Message){
		func(m *mail.Message) { m.Subject = "Hi\r\nBcc: x@example.org" },
		func(m *mail.Message) { m.From.Name = "Shop\nBcc: x@example.org" },
		func(m *mail.Message) { m.To = "ann@example.org\r\nBcc: x@example.org" },
		func(m *mail.Message) { m.To = "Boss <ann@example.org>" },
		func(m *mail.Message) { m.HTML = "" },
	} {
		f := &fakeSES{out: &sesv2.SendEmailOutput{MessageId: aws.String("id")}}
		m := message()
		edit(&m)
		id, err := (&Mailer{API: f}).Send(context.Background(), m)
		if !errors.Is(err, mail.ErrInvalid) || id != "" {
			t.Errorf("Send(%+v) = %q, %v; want ErrInvalid", m, id, err)
		}
		if len(f.calls) != 0 {
			t.Errorf("SES called %d times for an invalid message", len(f.calls))
		}
	}
}

// respErr wraps an API error the way the SDK does: operation error, then an
// HTTP response error with the status, then the modeled error.
func respErr(status int, apiErr error) error {
	return &smithy.OperationError{ServiceID: "SESv2", OperationName: "SendEmail", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      apiErr,
		},
		RequestID: "req-1",
	}}
}

func TestClassify(t *testing.T) {
	generic := func(code, msg string, fault smithy.ErrorFault) error {
		return &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault}
	}
	tests := []struct {
		name string
		err  error
		kind error // ErrThrottled, ErrTransient or ErrRejected
		code string
	}{
		{"too many requests", respErr(429, &types.TooManyRequestsException{Message: aws.String("Maximum sending rate exceeded.")}), mail.ErrThrottled, "TooManyRequestsException"},
		{"generic Throttling", respErr(400, generic("Throttling", "Maximum sending rate exceeded.", smithy.FaultClient)), mail.ErrThrottled, "Throttling"},
		{"daily quota as throttling", respErr(400, generic("Throttling", "Daily message quota exceeded.", smithy.FaultClient)), mail.ErrRejected, "Throttling"},
		{"daily quota as TooManyRequests", &types.TooManyRequestsException{Message: aws.String("Daily message quota exceeded")}, mail.ErrRejected, "TooManyRequestsException"},
		{"limit exceeded", respErr(400, &types.LimitExceededException{Message: aws.String("limit")}), mail.ErrRejected, "LimitExceededException"},
		{"message rejected", respErr(400, &types.MessageRejected{Message: aws.String("Email address is not verified.")}), mail.ErrRejected, "MessageRejected"},
		{"mail from not verified", respErr(400, &types.MailFromDomainNotVerifiedException{}), mail.ErrRejected, "MailFromDomainNotVerifiedException"},
		{"account suspended", respErr(400, &types.AccountSuspendedException{}), mail.ErrRejected, "AccountSuspendedException"},
		{"sending paused", respErr(400, &types.SendingPausedException{}), mail.ErrRejected, "SendingPausedException"},
		{"bad request", respErr(400, &types.BadRequestException{}), mail.ErrRejected, "BadRequestException"},
		{"not found", respErr(404, &types.NotFoundException{}), mail.ErrRejected, "NotFoundException"},
		{"internal", respErr(500, &types.InternalServiceErrorException{}), mail.ErrTransient, "InternalServiceErrorException"},
		{"concurrent modification", respErr(500, &types.ConcurrentModificationException{}), mail.ErrTransient, "ConcurrentModificationException"},
		{"unknown 503", respErr(503, generic("UnknownError", "", smithy.FaultUnknown)), mail.ErrTransient, "UnknownError"},
		{"unknown 429", respErr(429, generic("UnknownError", "", smithy.FaultUnknown)), mail.ErrThrottled, "UnknownError"},
		{"unknown 400 (the emulator's refusals)", respErr(400, generic("UnknownError", "Bad Request Exception", smithy.FaultUnknown)), mail.ErrRejected, "UnknownError"},
		{"unknown server fault without status", generic("Weird", "", smithy.FaultServer), mail.ErrTransient, "Weird"},
		{"unknown client fault without status", generic("Weird", "", smithy.FaultClient), mail.ErrRejected, "Weird"},
		{"deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), mail.ErrTransient, ""},
		{"canceled", context.Canceled, mail.ErrTransient, ""},
		{"connection refused", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}, mail.ErrTransient, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSES{err: tt.err}
			id, err := (&Mailer{API: f}).Send(context.Background(), message())
			if id != "" || err == nil {
				t.Fatalf("Send = %q, %v; want an error", id, err)
			}
			for _, k := range []error{mail.ErrThrottled, mail.ErrTransient, mail.ErrRejected} {
				want := k == tt.kind || (k == mail.ErrTransient && tt.kind == mail.ErrThrottled)
				if errors.Is(err, k) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, !want, want)
				}
			}
			if errors.Is(err, mail.ErrInvalid) {
				t.Errorf("%v matches ErrInvalid", err)
			}
			var se *mail.SendError
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("code = %+v, want %q", se, tt.code)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("%v does not wrap the SDK error", err)
			}
		})
	}
}

func TestSendWithoutClient(t *testing.T) {
	_, err := (&Mailer{}).Send(context.Background(), message())
	if !errors.Is(err, mail.ErrTransient) || errors.Is(err, mail.ErrRejected) {
		t.Errorf("Send without API = %v, want ErrTransient", err)
	}
}
