package web

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// Platform is the web inbox's part in approvebot.yaml and in who may decide:
// the web section (the identity provider's client, as *OIDC) and each
// group's web side (verified emails or sub:<subject>, groups claim values).
type Platform struct{}

var (
	_ policy.Platform = Platform{}
	_ policy.Inbox    = Platform{}
)

// Name is "web".
func (Platform) Name() string { return Name }

// InboxName is how a decision made here says where it was made.
func (Platform) InboxName() string { return "the web inbox" }

// ConfigOf returns a copy of cfg's web section, or nil when it has none.
func ConfigOf(cfg *policy.Config) *OIDC { return policy.SectionCopy[OIDC](cfg, Name) }

// ParseSection reads the web inbox's sign-in: the identity provider's
// issuer and the client registered with it. Its redirect URL is
// public_url's /inbox/callback, so public_url is required.
func (Platform) ParseSection(r *confnode.Reader, n *yaml.Node, f policy.File) any {
	o := r.Object(n, "web", "issuer", "client_id", "client_secret", "client_secret_file", "groups_claim")
	if o == nil {
		return nil
	}
	wc := &OIDC{
		Issuer:       r.HTTPURL(o, "issuer", ""),
		ClientID:     r.Str(o, "client_id", confnode.Required),
		ClientSecret: r.Secret(o, "client_secret", 1),
		GroupsClaim:  r.Str(o, "groups_claim", confnode.Optional),
	}
	if !o.Has("issuer") {
		r.Add(o.Line(), "web.issuer is missing: the identity provider's issuer URL (e.g. https://login.microsoftonline.com/<tenant>/v2.0)")
	}
	switch {
	case f.PublicURL == "":
		r.Add(o.Line(), "web needs public_url: the sign-in redirect URL is <public_url>/inbox/callback")
	default:
		u, _ := url.Parse(f.PublicURL)
		if u != nil && u.Scheme != "https" && !loopbackAddr(net.JoinHostPort(u.Hostname(), "0")) {
			r.Add(f.PublicURLLine, "public_url must be https:// for the web inbox (sign-in cookies are Secure), or a loopback address to try it locally")
		}
		wc.RedirectURL = strings.TrimSuffix(f.PublicURL, "/") + "/inbox/callback"
	}
	return wc
}

// ParseSide reads a group's web side: who, signed in with the identity
// provider, may decide in the inbox.
func (Platform) ParseSide(r *confnode.Reader, n *yaml.Node, at string, section any, f policy.File) (approvebot.Side, bool) {
	wo := r.Object(n, at, "users", "groups")
	if wo == nil {
		return approvebot.Side{}, false
	}
	var wg approvebot.Side
	var users []*yaml.Node
	wg.Users, users = r.ListNodes(wo, "users")
	wg.Groups = r.List(wo, "groups")
	for i, u := range wg.Users {
		if sub, ok := strings.CutPrefix(u, "sub:"); ok {
			if sub == "" || strings.ContainsFunc(sub, unicode.IsSpace) {
				r.Add(users[i].Line, "%s.users: %q: give the subject after sub:, without spaces", at, u)
			}
		} else if !confnode.IsEmail(u) {
			r.Add(users[i].Line, "%s.users: %q is neither an email nor sub:<subject>", at, u)
		}
	}
	oidc, _ := section.(*OIDC)
	if len(wg.Groups) > 0 && oidc != nil && oidc.GroupsClaim == "" {
		r.Add(wo.LineOf("groups"), "%s.groups needs web.groups_claim: name the ID token claim that lists a person's groups", at)
	}
	if len(wg.Users)+len(wg.Groups) == 0 {
		r.Add(wo.Line(), "%s is empty: list users (emails or sub:<subject>) or groups", at)
	}
	if section == nil && !f.Demo {
		r.Add(wo.Line(), "%s: the file has no web section: add one (issuer, client_id, client_secret) or remove this side", at)
	}
	return wg, true
}

// Member reports whether a, signed in, may decide for side: their
// provider's subject listed as "sub:<subject>", their email (set only when
// the provider verified it), or a value of their groups claim.
func (Platform) Member(side approvebot.Side, a approvebot.Approver) bool {
	if a.UserID == "" {
		return false
	}
	for _, u := range side.Users {
		if u == "sub:"+a.UserID || (!strings.HasPrefix(u, "sub:") && policy.SameAddress(u, a.Email)) {
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

// Deciders names nobody: who a web side lets decide is counted by no quorum
// check.
func (Platform) Deciders(approvebot.Side) ([]string, bool) { return nil, false }

// DescribeSection names the provider, client and redirect URL.
func (Platform) DescribeSection(section any) string {
	c, _ := section.(*OIDC)
	if c == nil {
		return "web inbox"
	}
	return fmt.Sprintf("web inbox (issuer %s, client %s, redirect %s)", policy.RedactURL(c.Issuer), c.ClientID, c.RedirectURL)
}

// DescribeSide lists the side's users and groups.
func (Platform) DescribeSide(s approvebot.Side) string {
	return fmt.Sprintf("users %s; groups %s", policy.ListText(s.Users), policy.ListText(s.Groups))
}
