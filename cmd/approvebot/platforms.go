package main

import (
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
)

// platforms are the platforms approvebot is built with, in the order their
// sections are read, they are started and requests posted. Each is the
// whole of its platform: its section and approver sides (policy.Platform)
// and its running side (bot.Plugin's Start: routes, reloadable secrets,
// any connection it keeps). A new platform is its package and one line
// here; serve, reload and demo name none.
func platforms() bot.Plugins {
	return bot.Plugins{
		slack.Platform{},
		teams.Platform{},
		web.Platform{},
	}
}
