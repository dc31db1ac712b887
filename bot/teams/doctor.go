package teams

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

var _ bot.Doctor = Platform{}

// Doctor checks that the bot can authenticate and that approvebot has
// learned every configured channel (the app is installed in its team).
func (Platform) Doctor(ctx context.Context, cfg *policy.Config, env bot.DoctorEnv, c bot.Checklist) {
	tc := ConfigOf(cfg)
	if tc == nil {
		return
	}
	var conv store.KV = emptyConversations{}
	if env.Data != nil {
		conv = env.Data
	}
	t, err := New(Config{
		AppID: tc.AppID, AppPassword: tc.AppPassword, TenantID: tc.TenantID,
		OpenIDMetadataURL: tc.OpenIDMetadataURL, TokenURL: tc.TokenURL,
		HTTPClient: &http.Client{Timeout: env.Timeout}, Conversations: conv,
	})
	if err != nil {
		c.Fail("fix the teams section of the config", "teams: %v", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, env.Timeout)
	err = t.Check(cctx)
	cancel()
	if err != nil {
		c.Fail("check teams.app_id, teams.app_password (a current client secret of the app registration) and teams.tenant_id, and that login.microsoftonline.com and login.botframework.com are reachable", "%v", err)
	} else {
		c.Pass("teams: the Bot Framework's signing keys load and a bot token was obtained")
	}

	var known []Channel
	err = nil
	switch {
	case env.Data != nil:
		known, err = t.Channels()
	case env.AskRunning != nil:
		err = env.AskRunning(ctx, "/admin/teams/channels", &known)
	}
	if err != nil {
		c.Fail("start approvebot (or set admin.token so doctor can ask the running one)", "teams: cannot read the channels approvebot knows: %v", err)
		return
	}
	byID := map[string]Channel{}
	for _, k := range known {
		byID[k.ChannelID] = k
	}
	channels := map[string][]string{}
	for name, g := range cfg.Approvers {
		if s, ok := g.Side(Name); ok {
			for _, ch := range s.Channels {
				channels[ch] = append(channels[ch], name)
			}
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(channels)) {
		groups := strings.Join(channels[ch], ", ")
		if k, ok := byID[ch]; ok {
			c.Pass("teams: the app is installed where channel %s is (team %s) (%s)", ch, cmp.Or(k.TeamName, k.TeamID), groups)
			continue
		}
		c.Fail("add the app to the team that holds this channel (build it with approvebot teams package), with approvebot running so it learns the team's channels; approvebot teams channels lists what it knows", "teams: channel %s (%s) is unknown to approvebot: the app is not installed in its team", ch, groups)
	}
}

// emptyConversations stands in for the store when it cannot be read: the
// adapter needs one to be built, and doctor's checks read channels elsewhere.
type emptyConversations struct{}

func (emptyConversations) Put(string, []byte) error         { return errors.New("read only") }
func (emptyConversations) Get(string) ([]byte, error)       { return nil, nil }
func (emptyConversations) List() (map[string][]byte, error) { return map[string][]byte{}, nil }
func (emptyConversations) Delete(string) error              { return errors.New("read only") }
