package sesmail

import (
	"errors"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/tunnels/tunnels/shared/mail"
)

// kinds decides, per SES v2 error code, whether retrying later can help.
// The SDK has already retried throttling and 5xx answers a few times (its
// standard retryer) by the time an error reaches classify.
var kinds = map[string]error{
	// The send rate: SES answers this when the per-second maximum is hit
	// (message "Maximum sending rate exceeded"); back off and retry.
	"TooManyRequestsException": mail.ErrThrottled,
	// Generic AWS throttling codes (the SDK's own list), in case a gateway
	// in front of SES answers with one.
	"Throttling":                mail.ErrThrottled,
	"ThrottlingException":       mail.ErrThrottled,
	"ThrottledException":        mail.ErrThrottled,
	"RequestThrottled":          mail.ErrThrottled,
	"RequestThrottledException": mail.ErrThrottled,
	"RequestLimitExceeded":      mail.ErrThrottled,
	"SlowDown":                  mail.ErrThrottled,

	// SES-side failures.
	"InternalServiceErrorException": mail.ErrTransient,
	"InternalFailure":               mail.ErrTransient,
	"InternalError":                 mail.ErrTransient,
	"ServiceUnavailable":            mail.ErrTransient,
	"ServiceUnavailableException":   mail.ErrTransient,
	"RequestTimeout":                mail.ErrTransient,
	"RequestTimeoutException":       mail.ErrTransient,
	// A concurrent change of the configuration set or identity; settles.
	"ConcurrentModificationException": mail.ErrTransient,
	// Temporary credentials expired mid-flight (Lambda refreshes them).
	"ExpiredToken":          mail.ErrTransient,
	"ExpiredTokenException": mail.ErrTransient,

	// SES refused this message (a sandbox recipient not verified, a
	// suppressed address, content it will not send).
	"MessageRejected": mail.ErrRejected,
	// The sender's custom MAIL FROM domain failed verification and the
	// identity is set to reject rather than fall back.
	"MailFromDomainNotVerifiedException": mail.ErrRejected,
	// The account is suspended, or sending is paused for it or for the
	// configuration set: an operator must act; retries within the queue's
	// back-off would fail the same way.
	"AccountSuspendedException": mail.ErrRejected,
	"SendingPausedException":    mail.ErrRejected,
	// The request is malformed or names an identity, configuration set or
	// template that does not exist.
	"BadRequestException": mail.ErrRejected,
	"ValidationException": mail.ErrRejected,
	"NotFoundException":   mail.ErrRejected,
	// A quota, not a rate: SES v2 models LimitExceededException as "too many
	// of a resource" and the account's 24-hour sending quota is reached for
	// hours, beyond any queue back-off. The step fails with the code in its
	// reason, visible in the journey. (The SDK counts it as a throttle and
	// has retried it already.)
	"LimitExceededException": mail.ErrRejected,
	// Permissions and identity: configuration errors, not weather.
	"AccessDeniedException":       mail.ErrRejected,
	"AccessDenied":                mail.ErrRejected,
	"UnrecognizedClientException": mail.ErrRejected,
	"InvalidClientTokenId":        mail.ErrRejected,
}

// classify turns an SES call error into a mail.SendError.
//
//   - A known code (kinds) decides, except that any answer saying the daily
//     message quota is exceeded is ErrRejected whatever its code (SES sends
//     it as a throttling error too).
//   - An unknown code: 429 is ErrThrottled, 5xx or a server fault is
//     ErrTransient, other 4xx (the emulator's "UnknownError" 400s among
//     them) ErrRejected.
//   - No API answer at all (timeout, cancelled context, connection refused
//     or reset, DNS): ErrTransient. The message may or may not have been
//     accepted; see mail.ErrTransient.
func classify(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return mail.Transient("", err)
	}
	code := apiErr.ErrorCode()
	msg := strings.ToLower(apiErr.ErrorMessage())
	if strings.Contains(msg, "daily") && strings.Contains(msg, "quota") {
		return mail.Rejected(code, err)
	}
	if kind, ok := kinds[code]; ok {
		return &mail.SendError{Kind: kind, Code: code, Err: err}
	}
	status := 0
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.ResponseError != nil && respErr.Response != nil && respErr.Response.Response != nil {
		status = respErr.HTTPStatusCode()
	}
	switch {
	case status == 429:
		return mail.Throttled(code, err)
	case status >= 500 || (status == 0 && apiErr.ErrorFault() != smithy.FaultClient):
		return mail.Transient(code, err)
	default:
		return mail.Rejected(code, err)
	}
}
