package web

import (
	"context"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/policy"
)

var _ bot.Doctor = Platform{}

// Doctor checks that the web inbox's identity provider publishes its
// discovery document at the configured issuer.
func (Platform) Doctor(ctx context.Context, cfg *policy.Config, _ bot.DoctorEnv, c bot.Checklist) {
	wc := ConfigOf(cfg)
	if wc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := oidc.NewProvider(ctx, wc.Issuer); err != nil {
		c.Fail("check web.issuer: it must be the provider's issuer exactly (its /.well-known/openid-configuration names it)",
			"web inbox: identity provider %s: %v", wc.Issuer, err)
		return
	}
	c.Pass("web inbox: identity provider %s answers; register the redirect URL %s with it", wc.Issuer, wc.RedirectURL)
}
