package slack

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/manifests"
	"github.com/approvebot/approvebot/policy"
)

var _ bot.Doctor = Platform{}

// Doctor checks the bot token, its scopes, the bot's membership of every
// configured channel, and every listed person and user group.
func (Platform) Doctor(ctx context.Context, cfg *policy.Config, env bot.DoctorEnv, c bot.Checklist) {
	sc := ConfigOf(cfg)
	if sc == nil {
		return
	}
	api := NewInspector(sc.BotToken, sc.APIURL, &http.Client{Timeout: env.Timeout})
	actx, cancel := context.WithTimeout(ctx, env.Timeout)
	scopes, team, err := api.AuthTest(actx)
	cancel()
	if err != nil {
		c.Fail("copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page into slack.bot_token", "slack: bot token: %v", err)
		return
	}
	c.Pass("slack: bot token is valid (workspace %s)", team)
	if scopes == nil {
		c.Warn("check the app's scopes by hand against manifests/slack/manifest.yaml", "slack: Slack did not list the token's scopes")
	} else if missing := missingScopes(scopes, usesDMs(cfg)); len(missing) > 0 {
		c.Fail("add "+strings.Join(missing, ", ")+" under OAuth & Permissions > Bot Token Scopes (or re-apply manifests/slack/manifest.yaml), then reinstall the app", "slack: the bot token lacks scopes %s", strings.Join(missing, ", "))
	} else {
		c.Pass("slack: the bot token has every scope approvebot needs")
	}

	channels, users, usergroups := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for name, g := range cfg.Approvers {
		s, ok := g.Side(Name)
		if !ok {
			continue
		}
		for _, ch := range s.Channels {
			channels[ch] = append(channels[ch], name)
		}
		for _, u := range s.Users {
			users[u] = append(users[u], name)
		}
		for _, ug := range s.Groups {
			usergroups[ug] = append(usergroups[ug], name)
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(channels)) {
		groups := strings.Join(channels[ch], ", ")
		if strings.HasPrefix(ch, "D") {
			c.Pass("slack: channel %s (%s) is a direct message; membership is not checked", ch, groups)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, env.Timeout)
		info, err := api.Channel(cctx, ch)
		cancel()
		switch {
		case err != nil && ErrorCode(err) == "channel_not_found":
			c.Fail("check the channel id (channel details > About, at the bottom); for a private channel, invite the bot first: /invite @approvebot", "slack: channel %s (%s) does not exist or the bot cannot see it", ch, groups)
		case err != nil && ErrorCode(err) == "missing_scope":
			c.Fail("add channels:read and groups:read to the bot's scopes and reinstall the app", "slack: cannot check channel %s (%s): the token lacks the scope to read channels", ch, groups)
		case err != nil:
			c.Fail("check that Slack is reachable from here", "slack: channel %s (%s): %v", ch, groups, err)
		case !info.Member:
			c.Fail(fmt.Sprintf("in Slack, open #%s and run /invite @approvebot", info.Name), "slack: the bot is not a member of channel %s #%s (%s)", ch, info.Name, groups)
		case info.Archived:
			c.Fail("unarchive the channel or configure another one", "slack: channel %s #%s (%s) is archived", ch, info.Name, groups)
		default:
			c.Pass("slack: the bot is a member of channel %s #%s (%s)", ch, info.Name, groups)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		groups := strings.Join(users[u], ", ")
		cctx, cancel := context.WithTimeout(ctx, env.Timeout)
		user, err := api.Person(cctx, u)
		cancel()
		switch {
		case err != nil && (ErrorCode(err) == "users_not_found" || ErrorCode(err) == "user_not_found"):
			c.Fail("check the spelling, or list the person by Slack user id (profile > ... > Copy member ID)", "slack: approver %s (%s) is not a member of the workspace", u, groups)
		case err != nil:
			c.Fail("check that Slack is reachable from here and the token has users:read and users:read.email", "slack: approver %s (%s): %v", u, groups, err)
		case user.Deleted:
			c.Fail("remove the person from the group or list someone else", "slack: approver %s (%s) is deactivated", u, groups)
		case user.Bot:
			c.Fail("list people, not bots", "slack: approver %s (%s) is a bot", u, groups)
		default:
			c.Pass("slack: approver %s (%s) resolves to %s", u, groups, user.UserID)
		}
	}
	for _, ug := range slices.Sorted(maps.Keys(usergroups)) {
		groups := strings.Join(usergroups[ug], ", ")
		cctx, cancel := context.WithTimeout(ctx, env.Timeout)
		members, err := api.UsergroupMembers(cctx, ug)
		cancel()
		switch {
		case err != nil && ErrorCode(err) == "no_such_subteam":
			c.Fail("check the user group id (it starts with S; find it in the group's page URL)", "slack: user group %s (%s) does not exist", ug, groups)
		case err != nil:
			c.Fail("check that Slack is reachable from here and the token has usergroups:read", "slack: user group %s (%s): %v", ug, groups, err)
		case len(members) == 0:
			c.Fail("add people to the user group, or list approvers another way", "slack: user group %s (%s) has no members, so nobody can approve through it", ug, groups)
		default:
			c.Pass("slack: user group %s (%s) has %d members", ug, groups, len(members))
		}
	}
}

// requiredScopes reads the bot scopes from the embedded app manifest,
// so the manifest stays the one list of what approvebot needs.
func requiredScopes() []string {
	var m struct {
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
	}
	if err := yaml.Unmarshal(manifests.SlackManifest, &m); err != nil {
		panic("embedded Slack manifest: " + err.Error()) // a build defect, caught by the tests
	}
	return m.OAuth.Scopes.Bot
}

// missingScopes lists the manifest's scopes the token lacks. im:write is
// needed only where a group has approvers messaged directly, so an app
// installed before direct messages existed is not failed for it.
func missingScopes(have []string, dms bool) []string {
	var missing []string
	for _, s := range requiredScopes() {
		if s == "im:write" && !dms {
			continue
		}
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func usesDMs(cfg *policy.Config) bool {
	for _, g := range cfg.Approvers {
		if g.Sides[Name].DM {
			return true
		}
	}
	return false
}
