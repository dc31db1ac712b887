// Package manifests holds the files operators upload to chat platforms to
// register approvebot: the Microsoft Teams app package sources (teams/) and,
// beside them, other platforms' manifests. They are embedded so the binary
// can build a ready-to-upload package without the source tree.
package manifests

import "embed"

// Teams holds teams/manifest.json (with placeholders for the bot's app id and
// the privacy and terms links) and its icons teams/color.png and
// teams/outline.png.
//
//go:embed teams
var Teams embed.FS

// SlackManifest is slack/manifest.yaml, the Slack app manifest; its bot
// scopes are the ones approvebot needs, which `approvebot doctor` checks the
// installed token for.
//
//go:embed slack/manifest.yaml
var SlackManifest []byte
