package main

import (
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
)

// platforms are the platforms approvebot is built with, in the order their
// sections are read, they are started and checked, and requests posted.
// Each is the whole of its platform: its section and approver sides
// (policy.Platform) and its running side (bot.Plugin's Start: routes,
// reloadable secrets, any connection it keeps), and doctor's checks of it.
// A new platform is its package and one line here; serve, reload, demo and
// doctor name none. (The operator's approvebot teams commands are Teams'
// own, and name it.)
func platforms() bot.Plugins {
	return bot.Plugins{
		slack.Platform{},
		teams.Platform{},
		web.Platform{},
	}
}
