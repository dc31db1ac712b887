package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	sessionCookie = "approvebot_session"
	loginCookie   = "approvebot_login"
	loginLifetime = 10 * time.Minute
)

// session is what the signed and encrypted session cookie holds.
type session struct {
	Approver approvebot.Approver `json:"approver"`
	CSRF     string              `json:"csrf"` // per-session token every form carries
	Expires  int64               `json:"exp"`
}

// pendingLogin is what the login cookie holds between the redirect to the
// provider and its answer.
type pendingLogin struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE
	Expires  int64  `json:"exp"`
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (w *Web) setCookie(rw http.ResponseWriter, name string, v any, lifetime time.Duration) error {
	enc, err := w.cookies.Encode(name, v)
	if err != nil {
		return err
	}
	http.SetCookie(rw, &http.Cookie{
		Name: name, Value: enc, Path: "/inbox", MaxAge: int(lifetime / time.Second),
		Secure: w.cfg.SecureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

func (w *Web) clearCookie(rw http.ResponseWriter, name string) {
	http.SetCookie(rw, &http.Cookie{Name: name, Value: "", Path: "/inbox", MaxAge: -1,
		Secure: w.cfg.SecureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// session returns the signed-in person, or nil.
func (w *Web) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	var s session
	if err := w.cookies.Decode(sessionCookie, c.Value, &s); err != nil {
		return nil
	}
	if w.cfg.Clock.Now().Unix() >= s.Expires || s.Approver.Platform != Name || s.Approver.Workspace != w.issuer {
		return nil
	}
	return &s
}

func (w *Web) startSession(rw http.ResponseWriter, a approvebot.Approver) error {
	return w.setCookie(rw, sessionCookie, session{Approver: a, CSRF: randomToken(), Expires: w.cfg.Clock.Now().Add(SessionLifetime).Unix()}, SessionLifetime)
}

// validCSRF checks a form's token against the session's.
func validCSRF(s *session, token string) bool {
	return s != nil && token != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}

// oidcClient is the provider, discovered.
type oidcClient struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// provider discovers the identity provider on first use, so that approvebot
// starts while the provider is unreachable (sign-in then says so).
func (w *Web) provider(ctx context.Context) (*oidcClient, error) {
	w.oidcMu.Lock()
	defer w.oidcMu.Unlock()
	if w.oidc != nil {
		return w.oidc, nil
	}
	o := w.cfg.OIDC
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, err
	}
	w.oidc = &oidcClient{
		oauth: oauth2.Config{
			ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: o.ClientID, Now: w.cfg.Clock.Now}),
	}
	return w.oidc, nil
}

// handleLogin starts sign-in: the demo's chooser, or the redirect to the
// provider with state, nonce and a PKCE challenge kept in a login cookie.
func (w *Web) handleLogin(rw http.ResponseWriter, r *http.Request) {
	if len(w.cfg.Demo) > 0 {
		w.render(rw, r, http.StatusOK, "login", page{Title: "Sign in (demo)", Demo: w.cfg.Demo})
		return
	}
	p, err := w.provider(r.Context())
	if err != nil {
		w.log.Error("sign-in refused: identity provider not reachable", "issuer", w.cfg.OIDC.Issuer, "err", err)
		w.refuse(rw, r, http.StatusBadGateway, "The identity provider could not be reached. Try again in a moment.")
		return
	}
	l := pendingLogin{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Expires: w.cfg.Clock.Now().Add(loginLifetime).Unix()}
	if err := w.setCookie(rw, loginCookie, l, loginLifetime); err != nil {
		w.log.Error("sign-in: login cookie", "err", err)
		w.refuse(rw, r, http.StatusInternalServerError, "Sign-in could not start.")
		return
	}
	http.Redirect(rw, r, p.oauth.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier)), http.StatusFound)
}

// handleCallback finishes sign-in: the state must be the login cookie's,
// the code is exchanged with the PKCE verifier, and the ID token must be
// the provider's, for this client, unexpired, with the login's nonce.
func (w *Web) handleCallback(rw http.ResponseWriter, r *http.Request) {
	if w.cfg.OIDC == nil {
		http.NotFound(rw, r)
		return
	}
	refuse := func(why, detail string, args ...any) {
		w.log.Warn("sign-in refused: "+why, append([]any{"remote", r.RemoteAddr}, args...)...)
		w.refuse(rw, r, http.StatusForbidden, "Sign-in refused: "+detail)
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		refuse("the identity provider answered with an error", "the identity provider said: "+e+".", "error", e)
		return
	}
	c, err := r.Cookie(loginCookie)
	var l pendingLogin
	if err != nil || w.cookies.Decode(loginCookie, c.Value, &l) != nil || w.cfg.Clock.Now().Unix() >= l.Expires {
		refuse("no sign-in in progress (state missing, expired or replayed)", "this sign-in was not started here, has expired, or was already used. Start again.")
		return
	}
	w.clearCookie(rw, loginCookie) // one answer per login
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.State)) != 1 {
		refuse("state mismatch", "the answer does not belong to this sign-in (state mismatch). Start again.")
		return
	}
	p, err := w.provider(r.Context())
	if err != nil {
		refuse("identity provider not reachable", "the identity provider could not be reached.", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	tok, err := p.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		refuse("code exchange failed (replayed or invalid code, or wrong client secret)", "the identity provider did not accept the sign-in code (it may have been used already).", "err", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse("no ID token", "the identity provider sent no ID token.")
		return
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		refuse("ID token not valid (issuer, audience, signature or expiry)", "the identity provider's ID token is not valid here: "+tokenProblem(err)+".", "err", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		refuse("nonce mismatch", "the ID token was not issued for this sign-in (nonce mismatch).")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		refuse("ID token claims unreadable", "the ID token's claims could not be read.", "err", err)
		return
	}
	a := approvebot.Approver{Platform: Name, Workspace: w.issuer, UserID: idt.Subject, Role: approvebot.RoleMember}
	a.Name, _ = claims["name"].(string)
	email, _ := claims["email"].(string)
	if verifiedEmail(claims["email_verified"]) {
		a.Email = email
	}
	if gc := w.cfg.OIDC.GroupsClaim; gc != "" {
		if gs, ok := claims[gc].([]any); ok {
			for _, g := range gs {
				if s, ok := g.(string); ok {
					a.Usergroups = append(a.Usergroups, s)
				}
			}
		}
	}
	if a.Email == "" && !w.listedSubject(idt.Subject) && len(a.Usergroups) == 0 {
		// An unverified email names nobody: only a listed subject, or the
		// groups claim, may stand in for it.
		refuse("email not verified", "your identity provider has not verified your email address, and approvebot lists no subject (sub:) or group for you.", "sub", idt.Subject, "email", email)
		return
	}
	if err := w.startSession(rw, a); err != nil {
		refuse("session cookie", "the session could not be made.", "err", err)
		return
	}
	w.log.Info("signed in", "sub", idt.Subject, "email", a.Email)
	http.Redirect(rw, r, "/inbox/", http.StatusSeeOther)
}

// verifiedEmail reads email_verified, which some providers send as a string.
func verifiedEmail(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	}
	return false
}

func tokenProblem(err error) string {
	var exp *oidc.TokenExpiredError
	switch {
	case errors.As(err, &exp):
		return "it has expired"
	default:
		return err.Error()
	}
}

// handleDemoLogin signs in one of the demo's people. It exists only with
// the demo sign-in, and answers loopback clients only.
func (w *Web) handleDemoLogin(rw http.ResponseWriter, r *http.Request) {
	if len(w.cfg.Demo) == 0 || !loopbackRemote(r) {
		http.NotFound(rw, r)
		return
	}
	i, err := strconv.Atoi(r.PostFormValue("person"))
	if err != nil || i < 0 || i >= len(w.cfg.Demo) {
		w.refuse(rw, r, http.StatusBadRequest, "Choose one of the people offered.")
		return
	}
	p := w.cfg.Demo[i]
	a := approvebot.Approver{Platform: Name, Workspace: w.issuer, UserID: "demo-" + strconv.Itoa(i), Email: p.Email, Name: p.Name, Role: approvebot.RoleMember}
	if err := w.startSession(rw, a); err != nil {
		w.refuse(rw, r, http.StatusInternalServerError, "The session could not be made.")
		return
	}
	w.log.Info("signed in (demo)", "email", p.Email)
	http.Redirect(rw, r, "/inbox/", http.StatusSeeOther)
}

func loopbackRemote(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (w *Web) handleLogout(rw http.ResponseWriter, r *http.Request) {
	s := w.session(r)
	if s != nil && !validCSRF(s, r.PostFormValue("csrf")) {
		w.refuse(rw, r, http.StatusForbidden, "Refused: the form did not come from this session.")
		return
	}
	w.clearCookie(rw, sessionCookie)
	http.Redirect(rw, r, "/inbox/login", http.StatusSeeOther)
}
