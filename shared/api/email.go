package api

import (
	"errors"
	"net/http"
	"sync"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
)

// publicRoute is a path served without an API key.
type publicRoute struct {
	pattern string
	h       http.HandlerFunc
}

// publicRoutes are the paths that need no API key besides health and the
// OpenAPI document: the unsubscribe link every email carries.
func (s *Server) publicRoutes() []publicRoute {
	return []publicRoute{
		{"GET " + actions.UnsubscribePath, s.unsubscribe},
		// RFC 8058 one-click: a mailbox provider POSTs List-Unsubscribe=One-Click.
		{"POST " + actions.UnsubscribePath, s.unsubscribe},
		// Telegram posts a bot's updates, proven by the channel's secret token.
		{"POST /v1/channels/{id}/telegram", s.telegramWebhook},
	}
}

// unsubscribe is GET /v1/email-accounts/unsubscribe?token=...: it marks the
// token's email account unsubscribed (again: nothing changes) and answers a
// short page. A token this deployment did not sign answers 404, as an id
// that does not exist. HEAD (link checkers, mail scanners) only checks the
// token: a probe must not unsubscribe anyone.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		writeProblem(w, invalid("the token query parameter is required",
			FieldError{Pointer: "", Detail: "query parameter token is required"}).body.(problem))
		return
	}
	secret, err := s.Store.UnsubscribeSecret(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	ws, sub, bot, ok := actions.ParseUnsubscribeToken(secret, token)
	if !ok {
		writeProblem(w, problem{Status: http.StatusNotFound, Code: "not_found", Detail: "this unsubscribe link is not valid"})
		return
	}
	if r.Method != http.MethodHead {
		err = s.Store.UnsubscribeEmailAccount(r.Context(), ws, sub, bot, s.now())
		if errors.Is(err, engine.ErrNotFound) {
			writeProblem(w, problem{Status: http.StatusNotFound, Code: "not_found", Detail: "the email account of this link does not exist"})
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The link is a credential of sorts: keep it out of caches, referrers
	// and search engines, and let the page run nothing.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(unsubscribedPage))
	}
}

const unsubscribedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Unsubscribed</title></head>
<body><h1>You are unsubscribed</h1><p>You will receive no more email from this sender.</p></body></html>
`

// publicURLs remembers, per store (one per deployment and process), the base
// URL this process last recorded, so the deployment item is written once per
// change, not on every request.
var publicURLs sync.Map // *store.Store -> string

// notePublicURL records the https base URL the API is called at, for the
// unsubscribe links the email function builds: the deployment is configured
// with no URL of its own, and on AWS only the requests know the API's
// address. It is taken from authorized requests only (a workspace key or the
// admin token), so an anonymous caller cannot steer it; behind API Gateway
// the Host header is a domain that routes to this API (its execute-api
// domain or a custom domain), since API Gateway selects the API by it. The
// last address used wins, so a custom domain takes over once it is called.
func (s *Server) notePublicURL(r *http.Request) {
	if s.Store == nil {
		return
	}
	base := actions.PublicBaseURL(r.Host)
	if base == "" {
		return
	}
	if last, ok := publicURLs.Load(s.Store); ok && last.(string) == base {
		return
	}
	if err := s.Store.SetPublicURL(r.Context(), base); err != nil {
		// The next request tries again; email steps retry until it is known.
		s.log().Warn("record the API's public address", "error", err)
		return
	}
	publicURLs.Store(s.Store, base)
}
