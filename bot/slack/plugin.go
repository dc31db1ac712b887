package slack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/policy"
)

var (
	_ bot.Plugin         = Platform{}
	_ bot.RestartChecker = Platform{}
	_ bot.StartLogger    = Platform{}
	_ bot.Running        = (*Slack)(nil)
	_ bot.Runner         = socketMode{}
)

// Start builds the adapter from cfg's slack section, or nothing when there
// is none. In Socket Mode it also keeps the socket (bot.Runner), and has no
// callback routes.
func (Platform) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	sc := ConfigOf(cfg)
	if sc == nil {
		return nil, nil
	}
	sc.Logger, sc.Clock = env.Logger, env.Clock
	s, err := New(*sc)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	if s.SocketMode() {
		return socketMode{s}, nil
	}
	return s, nil
}

// StartLog says whether clicks arrive over Socket Mode.
func (Platform) StartLog(r bot.Running) []slog.Attr {
	_, socket := r.(socketMode)
	return []slog.Attr{slog.Bool("slack_socket_mode", socket)}
}

// RestartOnly: the signing secret and the bot token rotate in place; the
// app token is read at the socket's next start, so a new one waits for a
// restart; all else of the section needs one.
func (Platform) RestartOnly(cur, next *policy.Config) (keys, notes []string) {
	a, b := ConfigOf(cur), ConfigOf(next)
	if a != nil && b != nil && a.AppToken != b.AppToken {
		// The Socket Mode connection is open; the new token is used when
		// approvebot next starts. If the old one is revoked first, the
		// reconnect is refused and approvebot stops, to be restarted.
		notes = append(notes, "slack.app_token changed: the open Socket Mode connection keeps the old token; restart approvebot to use the new one")
	}
	return bot.SectionRestart(Name, a, b, "slack (other than its secrets)", func(c *Config) {
		c.SigningSecret, c.BotToken, c.AppToken = "", "", ""
	}), notes
}

// Platform is the adapter itself.
func (s *Slack) Platform() bot.Platform { return s }

// Routes are the interactivity and events request URLs, none in Socket
// Mode (clicks arrive over the socket).
func (s *Slack) Routes(e *bot.Engine) bot.Routes {
	if s.SocketMode() {
		return bot.Routes{}
	}
	h := s.Handler(e)
	return bot.Routes{Callbacks: map[string]http.Handler{
		"POST /slack/interactions": h,
		"POST /slack/events":       h,
	}}
}

// Reload rotates the signing secret and the bot token.
func (s *Slack) Reload(next *policy.Config) {
	sc := ConfigOf(next)
	s.SetSigningSecret(sc.SigningSecret)
	s.SetBotToken(sc.BotToken)
}

// socketMode is the adapter when clicks arrive over Socket Mode.
type socketMode struct{ *Slack }

// Run keeps the socket until ctx ends.
func (s socketMode) Run(ctx context.Context, e *bot.Engine) error { return s.RunSocketMode(ctx, e) }

// Connection is what goes when Run ends early.
func (socketMode) Connection() string { return "the Slack socket" }
