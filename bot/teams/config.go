package teams

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// Platform is Teams' part in approvebot.yaml and in who may decide: the
// teams section (the Azure Bot registration, as Config) and each group's
// teams side (channel ids, Entra object ids, emails or UPNs).
type Platform struct{}

var _ policy.Platform = Platform{}

// Name is "teams".
func (Platform) Name() string { return Name }

// ConfigOf returns a copy of cfg's teams section, or nil when it has none.
func ConfigOf(cfg *policy.Config) *Config { return policy.SectionCopy[Config](cfg, Name) }

// DefaultTokenURL is where a single-tenant bot registration exchanges its
// credentials for a token.
func DefaultTokenURL(tenantID string) string {
	return "https://login.microsoftonline.com/" + url.PathEscape(tenantID) + "/oauth2/v2.0/token"
}

// ParseSection reads the teams section into a *Config with its defaults.
func (Platform) ParseSection(r *confnode.Reader, n *yaml.Node, _ policy.File) any {
	o := r.Object(n, "teams", "app_id", "app_password", "app_password_file", "tenant_id", "openid_metadata_url", "token_url")
	tc := &Config{
		AppID:           r.Str(o, "app_id", confnode.Required),
		AppPassword:     r.Secret(o, "app_password", 1),
		TenantID:        r.Str(o, "tenant_id", confnode.Required),
		ChannelInterval: DefaultChannelInterval,
	}
	for key, v := range map[string]string{"app_id": tc.AppID, "tenant_id": tc.TenantID} {
		if v != "" && !guidPattern.MatchString(v) {
			r.Add(o.Val[key].Line, "teams.%s must be a GUID such as 00000000-0000-0000-0000-000000000000 (see the Azure Bot registration)", key)
		}
	}
	tc.OpenIDMetadataURL = r.HTTPURL(o, "openid_metadata_url", DefaultOpenIDMetadataURL)
	tc.TokenURL = r.HTTPURL(o, "token_url", DefaultTokenURL(tc.TenantID))
	return tc
}

// ParseSide reads a group's teams side: where its requests are posted, who
// may decide them, and whether guests may.
func (Platform) ParseSide(r *confnode.Reader, n *yaml.Node, at string, section any, _ policy.File) (approvebot.Side, bool) {
	to := r.Object(n, at, "channels", "users", "allow_guests", "notify")
	if to == nil {
		return approvebot.Side{}, false
	}
	tg := approvebot.Side{AllowGuests: r.Bool(to, "allow_guests")}
	var chans, users []*yaml.Node
	var notifyChannels bool
	tg.DM, notifyChannels = policy.ReadNotify(r, to, at)
	tg.Channels, chans = r.ListNodes(to, "channels")
	tg.Users, users = r.ListNodes(to, "users")
	for i, c := range tg.Channels {
		if !strings.HasPrefix(c, "19:") {
			r.Add(chans[i].Line, "%s.channels: %q is not a Teams channel ID (19:...@thread.tacv2: \"Get link to channel\")", at, c)
		}
	}
	for i, u := range tg.Users {
		if !guidPattern.MatchString(u) && !confnode.IsEmail(u) {
			r.Add(users[i].Line, "%s.users: %q is neither an Entra object ID (a GUID) nor an email or UPN", at, u)
		}
	}
	if section == nil {
		r.Add(to.Line(), "%s: the file has no teams section: add one (app_id, app_password, tenant_id) or remove this side", at)
	}
	switch {
	case tg.DM && len(tg.Users) == 0:
		r.Add(to.LineOf("notify"), "%s.notify: dm needs users to message", at)
	case !notifyChannels && len(tg.Channels) > 0:
		r.Add(to.LineOf("channels"), "%s: channels are listed but notify has no channels: add channels to notify or remove them", at)
	case notifyChannels:
		policy.CheckChatSide(r, to.Line(), at, "Teams", len(tg.Channels), len(tg.Users), "users")
	}
	return tg, true
}

// Member reports whether a may decide for side. Only members may, and
// guests too where the side allows them; an account whose role is unknown
// may not. A listed user is an object id (compared without case, as Entra
// writes GUIDs either way), or an email or UPN the roster reported.
func (Platform) Member(side approvebot.Side, a approvebot.Approver) bool {
	if a.UserID == "" || !(a.Role == approvebot.RoleMember || a.Role == approvebot.RoleGuest && side.AllowGuests) {
		return false
	}
	for _, u := range side.Users {
		if strings.EqualFold(u, a.UserID) {
			return true
		}
		if strings.Contains(u, "@") && (policy.SameAddress(u, a.Email) || policy.SameAddress(u, a.UPN)) {
			return true
		}
	}
	return false
}

// Deciders lists the side's users: Teams sides name no groups.
func (Platform) Deciders(side approvebot.Side) ([]string, bool) { return side.Users, false }

// DescribeSection names the app, tenant and token URL.
func (Platform) DescribeSection(section any) string {
	c, _ := section.(*Config)
	if c == nil {
		return Name
	}
	return fmt.Sprintf("teams (app %s, tenant %s, token URL %s)", c.AppID, c.TenantID, policy.RedactURL(c.TokenURL))
}

// DescribeSide lists the side's channels and users, and whether guests may
// decide.
func (Platform) DescribeSide(s approvebot.Side) string {
	guests := ""
	if s.AllowGuests {
		guests = "; guests allowed"
	}
	return fmt.Sprintf("channels %s; users %s%s", policy.ListText(s.Channels), policy.ListText(s.Users), guests)
}
