package slack

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// Platform is Slack's part in approvebot.yaml and in who may decide: the
// slack section (the app's credentials, as Config) and each group's slack
// side (channel ids, user ids or emails, user group ids).
type Platform struct{}

var (
	_ policy.Platform      = Platform{}
	_ policy.SecretChecker = Platform{}
)

// Name is "slack".
func (Platform) Name() string { return Name }

// ConfigOf returns a copy of cfg's slack section, or nil when it has none.
func ConfigOf(cfg *policy.Config) *Config { return policy.SectionCopy[Config](cfg, Name) }

var (
	userID  = regexp.MustCompile(`^[UW][A-Z0-9]+$`)
	groupID = regexp.MustCompile(`^S[A-Z0-9]+$`)
)

// ParseSection reads the slack section into a *Config with its defaults.
func (Platform) ParseSection(r *confnode.Reader, n *yaml.Node, _ policy.File) any {
	o := r.Object(n, "slack", "bot_token", "bot_token_file", "signing_secret", "signing_secret_file", "api_url", "channel_interval", "socket_mode", "app_token", "app_token_file")
	sc := &Config{
		BotToken:        r.Secret(o, "bot_token", 1),
		APIURL:          r.HTTPURL(o, "api_url", DefaultAPIURL),
		ChannelInterval: r.Duration(o, "channel_interval", DefaultChannelInterval, true),
	}
	socketMode := r.Bool(o, "socket_mode")
	if sc.BotToken != "" && !strings.HasPrefix(sc.BotToken, "xoxb-") {
		r.Add(o.Val["bot_token"].Line, "slack.bot_token must be the app's bot token (it starts with xoxb-)")
	}
	// In Socket Mode clicks arrive over a websocket that approvebot opens
	// with the app-level token, so there is no signed request to verify
	// and the signing secret is optional; over HTTP it is what
	// authenticates every click.
	if socketMode {
		sc.AppToken = r.Secret(o, "app_token", 1)
		sc.SigningSecret = r.Secret(o, "signing_secret", 0)
		if sc.AppToken != "" && !strings.HasPrefix(sc.AppToken, "xapp-") {
			r.Add(o.Val["app_token"].Line, "slack.app_token must be an app-level token (it starts with xapp-; Basic Information > App-Level Tokens, scope connections:write)")
		}
	} else {
		sc.SigningSecret = r.Secret(o, "signing_secret", 1)
		if o != nil && o.Has("app_token") {
			r.Add(o.Val["app_token"].Line, "slack.app_token is only used with slack.socket_mode: true; set socket_mode or remove app_token")
		}
	}
	if sc.ChannelInterval > time.Minute {
		r.Add(o.Val["channel_interval"].Line, "slack.channel_interval may be at most 1m")
	}
	if !strings.HasSuffix(sc.APIURL, "/") {
		sc.APIURL += "/"
	}
	return sc
}

// ParseSide reads a group's slack side: where its requests are posted and
// who may decide them.
func (Platform) ParseSide(r *confnode.Reader, n *yaml.Node, at string, section any, _ policy.File) (approvebot.Side, bool) {
	so := r.Object(n, at, "channels", "users", "usergroups", "notify")
	if so == nil {
		return approvebot.Side{}, false
	}
	var sg approvebot.Side
	var chans, users, ugs []*yaml.Node
	var notifyChannels bool
	sg.DM, notifyChannels = policy.ReadNotify(r, so, at)
	sg.Channels, chans = r.ListNodes(so, "channels")
	sg.Users, users = r.ListNodes(so, "users")
	sg.Groups, ugs = r.ListNodes(so, "usergroups")
	for i, c := range sg.Channels {
		if strings.Contains(c, "#") || strings.ContainsFunc(c, unicode.IsSpace) {
			r.Add(chans[i].Line, "%s.channels: %q is a channel name; give its ID instead (C0123ABC: channel details, at the bottom)", at, c)
		}
	}
	for i, u := range sg.Users {
		if !userID.MatchString(u) && !confnode.IsEmail(u) {
			r.Add(users[i].Line, "%s.users: %q is neither a Slack user ID (U0123ABC) nor an email", at, u)
		}
	}
	for i, ug := range sg.Groups {
		if !groupID.MatchString(ug) {
			r.Add(ugs[i].Line, "%s.usergroups: %q is not a user group ID (they start with S, e.g. S0123ABC)", at, ug)
		}
	}
	if section == nil {
		r.Add(so.Line(), "%s: the file has no slack section: add one (bot_token, signing_secret) or remove this side", at)
	}
	switch {
	case sg.DM && len(sg.Users) == 0:
		r.Add(so.LineOf("notify"), "%s.notify: dm needs users to message (user groups cannot be messaged)", at)
	case !notifyChannels && len(sg.Channels) > 0:
		r.Add(so.LineOf("channels"), "%s: channels are listed but notify has no channels: add channels to notify or remove them", at)
	case notifyChannels:
		policy.CheckChatSide(r, so.Line(), at, "Slack", len(sg.Channels), len(sg.Users)+len(sg.Groups), "users or usergroups")
	}
	return sg, true
}

// signingSecretLength is the length of the signing secrets Slack issues
// (32 hexadecimal characters).
const signingSecretLength = 32

// WeakSecrets refuses a signing secret shorter than Slack's. In Socket
// Mode there may be none: clicks come over the app-token websocket.
func (Platform) WeakSecrets(section any) []string {
	sc, _ := section.(*Config)
	if sc == nil || sc.SigningSecret == "" || len(sc.SigningSecret) >= signingSecretLength {
		return nil
	}
	return []string{fmt.Sprintf("slack.signing_secret: %d characters, but Slack's signing secrets have %d: copy the whole Signing Secret from the app's Basic Information page", len(sc.SigningSecret), signingSecretLength)}
}

// Member reports whether a may decide for side: a listed user id, a listed
// email Slack reported for them, or membership of a listed user group
// (Identify resolved which of the side's user groups a belongs to).
func (Platform) Member(side approvebot.Side, a approvebot.Approver) bool {
	if a.UserID == "" {
		return false
	}
	for _, u := range side.Users {
		if u == a.UserID {
			return true
		}
		if strings.Contains(u, "@") && (policy.SameAddress(u, a.Email) || policy.SameAddress(u, a.UPN)) {
			return true
		}
	}
	for _, want := range side.Groups {
		for _, have := range a.Usergroups {
			if want == have {
				return true
			}
		}
	}
	return false
}

// Deciders lists the side's users; user groups' members are known only
// when they click.
func (Platform) Deciders(side approvebot.Side) ([]string, bool) {
	return side.Users, len(side.Groups) > 0
}

// DescribeSection says which API approvebot calls and how it paces posts.
func (Platform) DescribeSection(section any) string {
	c, _ := section.(*Config)
	if c == nil {
		return Name
	}
	return fmt.Sprintf("slack (API %s, %s between posts to a channel)", policy.RedactURL(c.APIURL), c.ChannelInterval)
}

// DescribeSide lists the side's channels, users and user groups.
func (Platform) DescribeSide(s approvebot.Side) string {
	return fmt.Sprintf("channels %s; users %s; usergroups %s", policy.ListText(s.Channels), policy.ListText(s.Users), policy.ListText(s.Groups))
}
