package bot

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// Plugin is a platform package's whole part in approvebot: the rules' side
// (policy.Platform: its section of the file, its approver sides, whom they
// let decide) and the running side, which Start builds. The service is
// built with a list of them (Plugins) and names no platform itself, so a
// new platform is its package and one entry in that list.
type Plugin interface {
	policy.Platform
	// Start builds the platform's running side from cfg, or returns nil,
	// nil when cfg does not configure the platform. It makes no network
	// call: readiness (Platform's Check) and Runner do.
	Start(cfg *policy.Config, env Env) (Running, error)
}

// Env is what the service hands every platform's Start besides the
// configuration.
type Env struct {
	Logger *slog.Logger
	Clock  Clock
	// Data is the platform's own corner of the store: opaque values under
	// its own keys, which no other platform sees (Teams keeps its
	// conversation references there). Plugins.Start sets it.
	Data store.KV
	// Demo, set by approvebot demo alone, are the people its loopback
	// sign-in offers in place of an identity provider; a platform with such
	// a sign-in starts on them even without its section.
	Demo []DemoPerson
}

// DemoPerson is someone approvebot demo lets sign in without an identity
// provider.
type DemoPerson struct {
	Name  string
	Email string
	Note  string // what they may do, shown on the sign-in page
}

// Running is a platform's running side, as Start built it.
type Running interface {
	// Platform is what the engine posts, updates and identifies through.
	Platform() Platform
	// Routes are the HTTP routes the platform serves, deciding through e.
	Routes(e *Engine) Routes
	// Reload takes on next, a configuration RestartOnly found nothing in
	// to restart for: the secrets rotated in place and the like. It cannot
	// fail, so a reload is taken whole or not at all.
	Reload(next *policy.Config)
	// Close stops what Start started (Slack's click workers): once no
	// more clicks can arrive, or when the service fails to start.
	Close()
}

// Routes are a platform's HTTP routes, by ServeMux pattern.
type Routes struct {
	// Callbacks are where the platform's own servers call approvebot
	// (Slack's interactions, the Bot Connector's activities): anyone can
	// reach them and they are unauthenticated until their body is read, so
	// the service guards them (a bounded body, read in bounded time).
	Callbacks map[string]http.Handler
	// Pages are served as they are (the web inbox's /inbox/, which
	// bounds its own bodies and signs people in itself).
	Pages map[string]http.Handler
}

// Runner is an optional Running method, of a platform that keeps a
// connection of its own to receive clicks (Slack's Socket Mode).
type Runner interface {
	// Run receives clicks until ctx ends. Should it end before, no click
	// can arrive any more: the service stops, logging that Connection is
	// gone, and exits with Run's error.
	Run(ctx context.Context, e *Engine) error
	// Connection names it in that line ("the Slack socket").
	Connection() string
}

// AdminRouter is an optional Running method: routes served behind the
// admin token (Teams' GET /admin/teams/channels).
type AdminRouter interface {
	AdminRoutes() map[string]http.HandlerFunc
}

// RequestPages is an optional Running method, of a platform with a page of
// its own for each request (the web inbox): chat messages link to it when
// public_url is set.
type RequestPages interface {
	// RequestPath is the page's path, to be followed by the request's id
	// ("/inbox/r/").
	RequestPath() string
}

// DemoSignIn is an optional Plugin method, of a platform whose sign-in
// approvebot demo can stand in for (Env.Demo): the people cfg's approver
// sides on the platform name, for approvebot demo --config to offer.
type DemoSignIn interface {
	DemoPeople(cfg *policy.Config) []DemoPerson
}

// StartLogger is an optional Plugin method: what the startup line says of
// the platform besides whether it runs, r being its running side (nil when
// it does not run).
type StartLogger interface {
	StartLog(r Running) []slog.Attr
}

// RestartChecker is an optional Plugin method: which changes between cur's
// and next's section of the platform a running service cannot take on
// (keys, as the reload's refusal names them), and notes on those it takes
// on only later. Without it, any change to the section is for a restart,
// named by the platform's name.
type RestartChecker interface {
	RestartOnly(cur, next *policy.Config) (keys, notes []string)
}

// DataNamer is an optional Plugin method, of a platform whose data in the
// store (Env.Data) predates a place per platform and is kept under another
// name than its own (Teams' "conversations").
type DataNamer interface {
	DataName() string
}

// DataName is the name p's data is kept under in the store.
func DataName(p Plugin) string {
	if n, ok := p.(DataNamer); ok {
		return n.DataName()
	}
	return p.Name()
}

// Doctor is an optional Plugin method: approvebot doctor's checks of the
// platform's setup in cfg (credentials, scopes, channels, people), made
// in order onto c. They change nothing, and check nothing when cfg has no
// section for the platform.
type Doctor interface {
	Doctor(ctx context.Context, cfg *policy.Config, env DoctorEnv, c Checklist)
}

// DoctorEnv is what doctor hands a platform's checks.
type DoctorEnv struct {
	// Timeout bounds each outside call, so one unreachable platform
	// cannot hang the whole checklist.
	Timeout time.Duration
	// Data is the platform's data in the store, read only, when doctor
	// could open the file; nil when it could not.
	Data store.KV
	// AskRunning, set when Data is nil but the store file exists (a
	// running approvebot holds it), reads path from that approvebot's
	// admin API into out. Neither is set when approvebot never started.
	AskRunning func(ctx context.Context, path string, out any) error
}

// Checklist is doctor's list of findings, in the order they are made. fix
// says what to do about a warning or a failure.
type Checklist interface {
	Pass(format string, args ...any)
	Warn(fix, format string, args ...any)
	Fail(fix, format string, args ...any)
}

// Plugins are the platforms a service is built with, in order: sections
// are read, destinations listed and platforms started in it.
type Plugins []Plugin

// Platforms is the rules' side of ps, for reading a file.
func (ps Plugins) Platforms() policy.Platforms {
	out := make(policy.Platforms, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Start starts every platform cfg configures (or env.Demo asks for), in
// order, each with data(DataName(p)) as env.Data. running[i] is ps[i]'s
// running side, nil for one not started. On an error, those already
// started are closed again.
func (ps Plugins) Start(cfg *policy.Config, env Env, data func(name string) store.KV) ([]Running, error) {
	running := make([]Running, len(ps))
	for i, p := range ps {
		env.Data = data(DataName(p))
		r, err := p.Start(cfg, env)
		if err != nil {
			for _, r := range running[:i] {
				if r != nil {
					r.Close()
				}
			}
			return nil, err
		}
		running[i] = r
	}
	return running, nil
}

// SectionRestart is the usual RestartChecker rule, cur and next being a
// platform's section in the running and the reloaded file (nil where it has
// none): adding or removing the section needs a restart, named by name, and
// so does any change to it but what rotated clears on a copy (the secrets
// the platform takes on in place), named by what.
func SectionRestart[T any](name string, cur, next *T, what string, rotated func(*T)) []string {
	switch {
	case (cur == nil) != (next == nil):
		return []string{name}
	case cur == nil:
		return nil
	}
	a, b := *cur, *next
	rotated(&a)
	rotated(&b)
	if !reflect.DeepEqual(a, b) {
		return []string{what}
	}
	return nil
}

// RestartOnly lists, in order, the platforms' changes between cur and next
// that need a restart, and their notes on changes taken on later.
func (ps Plugins) RestartOnly(cur, next *policy.Config) (keys, notes []string) {
	for _, p := range ps {
		if rc, ok := p.(RestartChecker); ok {
			k, n := rc.RestartOnly(cur, next)
			keys, notes = append(keys, k...), append(notes, n...)
			continue
		}
		if !reflect.DeepEqual(cur.Section(p.Name()), next.Section(p.Name())) {
			keys = append(keys, p.Name())
		}
	}
	return keys, notes
}

// StartLog is what the startup line says of the platforms: each one's name,
// true when it runs, and what it adds (StartLogger).
func (ps Plugins) StartLog(running []Running) []any {
	var out []any
	for i, p := range ps {
		out = append(out, slog.Bool(p.Name(), running[i] != nil))
		if sl, ok := p.(StartLogger); ok {
			for _, a := range sl.StartLog(running[i]) {
				out = append(out, a)
			}
		}
	}
	return out
}
