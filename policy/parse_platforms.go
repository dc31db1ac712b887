package policy

import (
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/approvebot/approvebot/policy/confnode"
)

var (
	guid       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	slackUser  = regexp.MustCompile(`^[UW][A-Z0-9]+$`)
	slackGroup = regexp.MustCompile(`^S[A-Z0-9]+$`)
)

// web reads the web inbox's sign-in: the identity provider's issuer and
// the client registered with it. Its redirect URL is public_url's
// /inbox/callback, so public_url is required.
func (p *parser) web(top *confnode.Object, cfg *Config) {
	if !top.Has("web") {
		return
	}
	o := p.Object(top.Val["web"], "web", "issuer", "client_id", "client_secret", "client_secret_file", "groups_claim")
	if o == nil {
		return
	}
	wc := &WebConfig{
		Issuer:       p.HTTPURL(o, "issuer", ""),
		ClientID:     p.Str(o, "client_id", confnode.Required),
		ClientSecret: p.Secret(o, "client_secret", 1),
		GroupsClaim:  p.Str(o, "groups_claim", confnode.Optional),
	}
	if !o.Has("issuer") {
		p.Add(o.Line(), "web.issuer is missing: the identity provider's issuer URL (e.g. https://login.microsoftonline.com/<tenant>/v2.0)")
	}
	switch {
	case cfg.PublicURL == "":
		p.Add(o.Line(), "web needs public_url: the sign-in redirect URL is <public_url>/inbox/callback")
	default:
		u, _ := url.Parse(cfg.PublicURL)
		if u != nil && u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
			p.Add(top.Val["public_url"].Line, "public_url must be https:// for the web inbox (sign-in cookies are Secure), or a loopback address to try it locally")
		}
		wc.RedirectURL = strings.TrimSuffix(cfg.PublicURL, "/") + "/inbox/callback"
	}
	cfg.Web = wc
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
