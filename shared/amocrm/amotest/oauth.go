package amotest

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/amocrm"
)

const oauthProblemType = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"

// IssueTokens mints a token pair as a completed OAuth connect would.
func (s *Server) IssueTokens() amocrm.Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, r, exp := s.issue()
	return amocrm.Tokens{AccessToken: a, RefreshToken: r, ExpiresAt: exp}
}

// IssueLongLived mints a long-lived token (private integration): an access
// token valid for ttl and no refresh token.
func (s *Server) IssueLongLived(ttl time.Duration) amocrm.Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := "ll-" + randomHex(20)
	exp := s.now().Add(ttl)
	s.access[a] = &accessToken{expires: exp}
	return amocrm.Tokens{AccessToken: a, ExpiresAt: exp}
}

// AuthCode mints an authorization code, valid once for 20 minutes.
func (s *Server) AuthCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := "code-" + randomHex(16)
	s.codes[c] = s.now().Add(20 * time.Minute)
	return c
}

// Expire makes every access token issued so far expired.
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, a := range s.access {
		a.expires = past
	}
}

// RevokeAll revokes every token, as when the user removes the integration.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.access {
		a.revoked = true
	}
	for _, r := range s.refresh {
		r.used = true
	}
}

// RefreshCalls counts refresh_token grants received, refused ones included.
func (s *Server) RefreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshCalls
}

// AccessValid reports whether an access token would be accepted now.
func (s *Server) AccessValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accessValid(token)
}

func (s *Server) accessValid(token string) bool {
	a := s.access[token]
	return a != nil && !a.revoked && s.now().Before(a.expires)
}

// issue mints a pair. Caller holds mu.
func (s *Server) issue() (access, refresh string, expires time.Time) {
	access = "at-" + randomHex(20)
	refresh = "rt-" + randomHex(20)
	now := s.now()
	expires = now.Add(s.opts.AccessTTL)
	s.access[access] = &accessToken{expires: expires}
	s.refresh[refresh] = &refreshToken{expires: now.Add(s.opts.RefreshTTL), access: access}
	return access, refresh, expires
}

func writeOAuthProblem(w http.ResponseWriter, status int, hint, detail string) {
	body := map[string]any{
		"hint":   hint,
		"title":  http.StatusText(status),
		"type":   oauthProblemType,
		"status": status,
		"detail": detail,
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handleToken is POST /oauth2/access_token (a JSON body, or a form).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		GrantType    string `json:"grant_type"`
		Code         string `json:"code"`
		RefreshToken string `json:"refresh_token"`
		RedirectURI  string `json:"redirect_uri"`
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			writeOAuthProblem(w, http.StatusBadRequest, "Malformed request", "The request body could not be read.")
			return
		}
		in.ClientID, in.ClientSecret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		in.GrantType, in.Code = r.PostForm.Get("grant_type"), r.PostForm.Get("code")
		in.RefreshToken, in.RedirectURI = r.PostForm.Get("refresh_token"), r.PostForm.Get("redirect_uri")
	} else if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeOAuthProblem(w, http.StatusBadRequest, "Malformed request", "The request body is not valid JSON.")
		return
	}
	if in.ClientID != s.opts.ClientID || in.ClientSecret != s.opts.ClientSecret {
		writeOAuthProblem(w, http.StatusUnauthorized, "Client authentication failed", "The client credentials are invalid.")
		return
	}
	if in.RedirectURI != s.opts.RedirectURI {
		writeOAuthProblem(w, http.StatusBadRequest, "Redirect URI does not match", "The redirect_uri is not the integration's.")
		return
	}
	s.mu.Lock()
	now := s.now()
	switch in.GrantType {
	case "authorization_code":
		exp, ok := s.codes[in.Code]
		if !ok || !now.Before(exp) {
			s.mu.Unlock()
			writeOAuthProblem(w, http.StatusBadRequest, "Authorization code has been revoked", "The authorization code is invalid or expired.")
			return
		}
		delete(s.codes, in.Code) // single use
	case "refresh_token":
		s.refreshCalls++
		rt := s.refresh[in.RefreshToken]
		switch {
		case rt == nil:
			s.mu.Unlock()
			writeOAuthProblem(w, http.StatusUnauthorized, "Cannot decrypt the refresh token", "The refresh token is invalid.")
			return
		case rt.used || !now.Before(rt.expires):
			s.mu.Unlock()
			writeOAuthProblem(w, http.StatusUnauthorized, "Token has been revoked", "The refresh token is invalid.")
			return
		}
		rt.used = true // single use
		if a := s.access[rt.access]; a != nil && !s.opts.KeepAccessOnRefresh {
			a.revoked = true
		}
	default:
		s.mu.Unlock()
		writeOAuthProblem(w, http.StatusBadRequest, "Unsupported grant type", "The authorization grant type is not supported.")
		return
	}
	access, refresh, _ := s.issue()
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int64(s.opts.AccessTTL / time.Second),
		"access_token":  access,
		"refresh_token": refresh,
		"server_time":   now.Unix(),
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// authed wraps an /api/v4 handler with Bearer auth and the account error.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		valid := ok && s.accessValid(strings.TrimSpace(tok))
		accountErr := s.accountError
		s.mu.Unlock()
		if !valid {
			writeProblem(w, http.StatusUnauthorized, "Unauthorized", "Authorization required: the access token is missing, invalid or expired", nil)
			return
		}
		if accountErr != "" {
			writeBadRequest(w, accountErr)
			return
		}
		h(w, r)
	}
}
