package teams

import (
	"fmt"
	"net/http"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/policy"
)

var (
	_ bot.Plugin         = Platform{}
	_ bot.RestartChecker = Platform{}
	_ bot.DataNamer      = Platform{}
	_ bot.Running        = (*Teams)(nil)
	_ bot.AdminRouter    = (*Teams)(nil)
)

// Start builds the adapter from cfg's teams section, or nothing when there
// is none. Where the bot is installed is kept in env.Data.
func (Platform) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	tc := ConfigOf(cfg)
	if tc == nil {
		return nil, nil
	}
	tc.Conversations, tc.Logger, tc.Clock = env.Data, env.Logger, env.Clock
	t, err := New(*tc)
	if err != nil {
		return nil, fmt.Errorf("teams: %w", err)
	}
	return t, nil
}

// DataName keeps where the bot is installed in the store's
// "conversations", where releases before a place per platform kept it.
func (Platform) DataName() string { return "conversations" }

// RestartOnly: the app password rotates in place; all else of the section
// needs a restart.
func (Platform) RestartOnly(cur, next *policy.Config) (keys, notes []string) {
	return bot.SectionRestart(Name, ConfigOf(cur), ConfigOf(next), "teams (other than app_password)", func(c *Config) { c.AppPassword = "" }), nil
}

// Platform is the adapter itself.
func (t *Teams) Platform() bot.Platform { return t }

// Routes is the messaging endpoint the Bot Connector posts activities to.
func (t *Teams) Routes(e *bot.Engine) bot.Routes {
	return bot.Routes{Callbacks: map[string]http.Handler{"POST /teams/messages": t.Handler(e)}}
}

// AdminRoutes lists the channels the bot has been installed in, as the
// store remembers them.
func (t *Teams) AdminRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /admin/teams/channels": func(w http.ResponseWriter, r *http.Request) {
			chans, err := t.Channels()
			if err != nil {
				jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"error": "could not read the store"})
				return
			}
			jsonhttp.Write(w, http.StatusOK, chans)
		},
	}
}

// Reload rotates the app password.
func (t *Teams) Reload(next *policy.Config) { t.SetAppPassword(ConfigOf(next).AppPassword) }

// Close has nothing to stop: every call the adapter makes is bounded by its
// caller's context.
func (t *Teams) Close() {}
