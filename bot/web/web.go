// Package web owns approvebot's own web inbox, a platform like Slack and
// Teams: its config section and approver groups' web sides (config.go), who
// of them may decide, and the pages: approvers sign in with the
// organisation's OpenID Connect provider (or, in approvebot demo only, pick
// a demo person on loopback), see the requests pending for them, read each
// request's full view, and approve or deny it. Pages update live over
// Server-Sent Events.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/store"
	"github.com/gorilla/securecookie"
)

// Name is the platform's name, as in approvebot.Destination.Platform.
const Name = "web"

// Assurance names how a web approver was authenticated: an ID token of the
// organisation's OpenID Connect provider (or the demo's sign-in, which
// exists only in approvebot demo, on loopback).
const Assurance = "oidc"

// SessionLifetime is how long a sign-in lasts.
const SessionLifetime = time.Hour

// OIDC is the identity provider's client, as the web section of
// approvebot.yaml configures it (ParseSection).
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string // <public_url>/inbox/callback
	GroupsClaim  string
}

// Config is the inbox's setup.
type Config struct {
	// OIDC signs people in. Exactly one of OIDC and Demo is set.
	OIDC *OIDC
	// Demo, only in approvebot demo, offers these people instead of an
	// identity provider. New refuses it unless Listen is a loopback address,
	// and the handler serves it to loopback clients only.
	Demo []bot.DemoPerson
	// Subjects are the sub: entries of approvers' web users: people whose
	// email the provider has not verified may sign in only under one.
	Subjects map[string]bool
	Listen   string // the address approvebot listens on
	// SecureCookies marks cookies Secure: always, except when approvebot
	// is tried over plain HTTP on loopback.
	SecureCookies bool
	Logger        *slog.Logger
	// Clock is the inbox's time: sessions', sign-ins' and ID tokens'
	// expiry. Nil means the wall clock.
	Clock bot.Clock
}

// Engine is what the inbox needs from the engine.
type Engine interface {
	bot.Decider
	Get(id string) (*approvebot.Request, error)
	Store() store.Store
}

// Web is the inbox platform.
type Web struct {
	cfg     Config
	log     *slog.Logger
	cookies *securecookie.SecureCookie
	issuer  string // Workspace of every web approver

	mu   sync.Mutex
	subs map[chan string]struct{}

	oidcMu sync.Mutex
	oidc   *oidcClient // discovered on first sign-in

	subjects atomic.Pointer[map[string]bool] // Config.Subjects, as last reloaded
}

// SetSubjects replaces the listed subjects (a configuration reload).
func (w *Web) SetSubjects(subs map[string]bool) { w.subjects.Store(&subs) }

func (w *Web) listedSubject(sub string) bool {
	if p := w.subjects.Load(); p != nil {
		return (*p)[sub]
	}
	return false
}

// New builds the inbox. Its session keys are made at start, so a restart
// signs everyone out (sessions are short-lived anyway).
func New(cfg Config) (*Web, error) {
	if (cfg.OIDC == nil) == (len(cfg.Demo) == 0) {
		return nil, errors.New("web: configure exactly one of OIDC sign-in and the demo sign-in")
	}
	if len(cfg.Demo) > 0 && !loopbackAddr(cfg.Listen) {
		return nil, fmt.Errorf("web: the demo sign-in is served on loopback only, not on %s", cfg.Listen)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = bot.SystemClock{}
	}
	hashKey := securecookie.GenerateRandomKey(64)
	blockKey := securecookie.GenerateRandomKey(32)
	if hashKey == nil || blockKey == nil {
		return nil, errors.New("web: cannot make session keys")
	}
	sc := securecookie.New(hashKey, blockKey)
	// securecookie stamps and checks this bound on the wall clock; the
	// session's own Expires, on Config.Clock, is the one that decides.
	sc.MaxAge(int(SessionLifetime / time.Second))
	sc.SetSerializer(securecookie.JSONEncoder{})
	w := &Web{cfg: cfg, log: slog.New(bot.LogRequests(cfg.Logger.Handler())).With("platform", Name), cookies: sc, subs: map[chan string]struct{}{}, issuer: "demo"}
	if cfg.OIDC != nil {
		w.issuer = cfg.OIDC.Issuer
	}
	w.SetSubjects(cfg.Subjects)
	return w, nil
}

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SecureCookiesFor says whether cookies for publicURL must be Secure: yes,
// unless approvebot is reached over plain HTTP on loopback.
func SecureCookiesFor(publicURL string) bool {
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme == "https" {
		return true
	}
	return !loopbackAddr(net.JoinHostPort(u.Hostname(), "0"))
}

var _ bot.Destiner = (*Web)(nil)

// Name is "web".
func (w *Web) Name() string { return Name }

// Post shows a request in the inbox. Pages are drawn from the store, so
// there is nothing to send: open pages are told once the post is recorded
// (Recorded), when a click on it can count.
func (w *Web) Post(_ context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error) {
	return approvebot.MessageRef{Channel: channel, ID: msg.RequestID}, nil
}

// Destinations is one inbox copy per stage, whatever the group's side
// lists: a vote in the inbox must name the stage's copy, as a click names
// its message.
func (w *Web) Destinations(_ approvebot.Side, stage int) []string {
	return []string{fmt.Sprintf("inbox-%d", stage+1)}
}

// Recorded tells open pages a request is now in the inbox.
func (w *Web) Recorded(ref approvebot.MessageRef) { w.publish(ref.ID) }

// Update tells open pages the request changed (decided, expired, a vote).
func (w *Web) Update(_ context.Context, ref approvebot.MessageRef, _ approvebot.Message) error {
	w.publish(ref.ID)
	return nil
}

// Identify completes a signed-in approver: the session already says who
// they are (the provider's subject, a verified email, the groups claim),
// so it only keeps the groups the chain asks about.
func (w *Web) Identify(_ context.Context, who approvebot.Approver, _ approvebot.MessageRef, usergroups []string) (approvebot.Approver, error) {
	if who.Platform != Name || who.UserID == "" || who.Workspace != w.issuer {
		return who, approvebot.ErrIneligible
	}
	var keep []string
	for _, g := range who.Usergroups {
		for _, want := range usergroups {
			if g == want {
				keep = append(keep, g)
				break
			}
		}
	}
	who.Usergroups = keep
	return who, nil
}

// subscribe returns a channel of ids of requests that changed.
func (w *Web) subscribe() (chan string, func()) {
	ch := make(chan string, 64)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

func (w *Web) publish(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- id:
		default: // a stalled page reloads on its next event
		}
	}
}
