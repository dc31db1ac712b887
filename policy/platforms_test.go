package policy_test

import (
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/policy"
)

// platforms are the ones approvebot is built with: the sections and sides
// the tests' files use are theirs to read.
var platforms = policy.Platforms{slack.Platform{}, teams.Platform{}, web.Platform{}}

func Parse(data []byte, getenv func(string) (string, bool)) (*policy.Config, error) {
	return policy.Parse(data, getenv, platforms)
}

func Load(path string, getenv func(string) (string, bool)) (*policy.Config, error) {
	return policy.Load(path, getenv, platforms)
}

func ParseDemo(data []byte, getenv func(string) (string, bool)) (*policy.Config, error) {
	return policy.ParseDemo(data, getenv, platforms)
}

func LoadDemo(path string, getenv func(string) (string, bool)) (*policy.Config, error) {
	return policy.LoadDemo(path, getenv, platforms)
}
