package main

import (
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/policy"
)

// platforms are the platforms approvebot is built with, in the order their
// sections are read and requests posted. A new platform is its package and
// one line here.
func platforms() policy.Platforms {
	return policy.Platforms{
		slack.Platform{},
		teams.Platform{},
		web.Platform{},
	}
}
