package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/policy"
)

var (
	_ bot.Plugin       = Platform{}
	_ bot.DemoSignIn   = Platform{}
	_ bot.Running      = (*Web)(nil)
	_ bot.RequestPages = (*Web)(nil)
)

// Start builds the inbox from cfg's web section, or on env.Demo's people
// (in place of the identity provider, whatever the section says); nothing
// when there is neither. Any change to the section needs a restart (the
// identity provider is discovered once); the approvers' subjects are
// reloaded.
func (Platform) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	oidc := ConfigOf(cfg)
	if oidc == nil && len(env.Demo) == 0 {
		return nil, nil
	}
	wc := Config{
		Demo:          env.Demo,
		Listen:        cfg.Listen,
		SecureCookies: SecureCookiesFor(cfg.PublicURL),
		Subjects:      subjects(cfg),
		Logger:        env.Logger,
		Clock:         env.Clock,
	}
	if len(env.Demo) == 0 {
		wc.OIDC = oidc
	}
	w, err := New(wc)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// DemoPeople offers the emails cfg's web sides list, each once, in the
// order of their groups' names.
func (Platform) DemoPeople(cfg *policy.Config) []bot.DemoPerson {
	var out []bot.DemoPerson
	seen := map[string]bool{}
	names := make([]string, 0, len(cfg.Approvers))
	for n := range cfg.Approvers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s, ok := cfg.Approvers[n].Side(Name)
		if !ok {
			continue
		}
		for _, u := range s.Users {
			if strings.HasPrefix(u, "sub:") || seen[strings.ToLower(u)] {
				continue
			}
			seen[strings.ToLower(u)] = true
			out = append(out, bot.DemoPerson{Name: u, Email: u, Note: "listed in " + n})
		}
	}
	return out
}

// subjects lists the subjects (sub:<sub>) approvers' web sides name.
func subjects(cfg *policy.Config) map[string]bool {
	subs := map[string]bool{}
	for _, g := range cfg.Approvers {
		s, ok := g.Side(Name)
		if !ok {
			continue
		}
		for _, u := range s.Users {
			if s, ok := strings.CutPrefix(u, "sub:"); ok {
				subs[s] = true
			}
		}
	}
	return subs
}

// Platform is the inbox itself.
func (w *Web) Platform() bot.Platform { return w }

// Routes is the inbox, under /inbox/: pages that sign people in and bound
// their bodies themselves.
func (w *Web) Routes(e *bot.Engine) bot.Routes {
	return bot.Routes{Pages: map[string]http.Handler{"/inbox/": w.Handler(e)}}
}

// RequestPath is where a request's page is, under public_url.
func (w *Web) RequestPath() string { return "/inbox/r/" }

// Reload takes on the subjects next's approvers name.
func (w *Web) Reload(next *policy.Config) { w.SetSubjects(subjects(next)) }

// Close has nothing to stop: the inbox's pages and event streams are the
// HTTP server's, which the service shuts down.
func (w *Web) Close() {}
