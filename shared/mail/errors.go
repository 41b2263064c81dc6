package mail

import "errors"

// Kinds of send failure, for errors.Is. Exactly one of ErrTransient and
// ErrRejected matches any error a Mailer returns.
var (
	// ErrTransient: the send may succeed if tried again later (throttling,
	// a provider 5xx, a timeout, a connection error). Note that a timeout may
	// hide a send that did happen; SES has no idempotent send, so a retry
	// after a timeout can deliver twice. The caller's step claim narrows
	// that window; it cannot close it.
	ErrTransient = errors.New("mail: transient send failure")
	// ErrThrottled is the provider asking to slow down. It also matches
	// ErrTransient.
	ErrThrottled = errors.New("mail: throttled")
	// ErrRejected: sending this message will not succeed by retrying it
	// (the provider refused it, the sender is not allowed to send, a quota
	// that resets only after hours, or the message is invalid).
	ErrRejected = errors.New("mail: rejected")
	// ErrInvalid: the message failed Validate and was not sent. It also
	// matches ErrRejected.
	ErrInvalid = errors.New("mail: invalid message")
)

// SendError is a classified failure of a provider call.
type SendError struct {
	Kind error  // ErrThrottled, ErrTransient or ErrRejected
	Code string // the provider's error code ("MessageRejected"), "" when there was no answer
	Err  error  // the provider or transport error
}

// Throttled, Transient and Rejected wrap err (the provider's code, if any,
// in code) as a SendError of that kind.
func Throttled(code string, err error) error { return &SendError{ErrThrottled, code, err} }
func Transient(code string, err error) error { return &SendError{ErrTransient, code, err} }
func Rejected(code string, err error) error  { return &SendError{ErrRejected, code, err} }

func (e *SendError) Error() string {
	kind := "transient"
	switch e.Kind {
	case ErrThrottled:
		kind = "throttled"
	case ErrRejected:
		kind = "rejected"
	}
	s := "mail: send " + kind
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes the kind (and ErrTransient under ErrThrottled) and the
// underlying error to errors.Is and errors.As.
func (e *SendError) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Kind == ErrThrottled {
		errs = append(errs, ErrTransient)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Retryable reports whether err is worth retrying later.
func Retryable(err error) bool { return errors.Is(err, ErrTransient) }
