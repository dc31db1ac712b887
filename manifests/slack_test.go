package manifests

import (
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

type slackManifest struct {
	OAuth struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Interactivity struct {
			Enabled    bool   `yaml:"is_enabled"`
			RequestURL string `yaml:"request_url"`
		} `yaml:"interactivity"`
		SocketMode bool `yaml:"socket_mode_enabled"`
		Events     struct {
			RequestURL string   `yaml:"request_url"`
			BotEvents  []string `yaml:"bot_events"`
		} `yaml:"event_subscriptions"`
	} `yaml:"settings"`
	Features struct {
		AppHome struct {
			HomeTab bool `yaml:"home_tab_enabled"`
		} `yaml:"app_home"`
	} `yaml:"features"`
}

func readSlackManifest(t *testing.T, path string) slackManifest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m slackManifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// The Socket Mode manifest differs from the HTTP one only in how clicks
// arrive: the same scopes, Socket Mode on, no request URL.
func TestSlackManifestsAgree(t *testing.T) {
	httpM := readSlackManifest(t, "slack/manifest.yaml")
	sockM := readSlackManifest(t, "slack/manifest-socket-mode.yaml")
	if !slices.Equal(httpM.OAuth.Scopes.Bot, sockM.OAuth.Scopes.Bot) {
		t.Errorf("scopes differ: %v (HTTP) vs %v (Socket Mode)", httpM.OAuth.Scopes.Bot, sockM.OAuth.Scopes.Bot)
	}
	if httpM.Settings.SocketMode || httpM.Settings.Interactivity.RequestURL == "" || !httpM.Settings.Interactivity.Enabled {
		t.Errorf("HTTP manifest settings %+v", httpM.Settings)
	}
	if !sockM.Settings.SocketMode || sockM.Settings.Interactivity.RequestURL != "" || !sockM.Settings.Interactivity.Enabled {
		t.Errorf("Socket Mode manifest settings %+v", sockM.Settings)
	}
	// The Home tab, published on app_home_opened: over HTTP to /slack/events,
	// in Socket Mode on the socket.
	for name, m := range map[string]slackManifest{"HTTP": httpM, "Socket Mode": sockM} {
		if !m.Features.AppHome.HomeTab || !slices.Equal(m.Settings.Events.BotEvents, []string{"app_home_opened"}) {
			t.Errorf("%s manifest: home tab %v, bot events %v", name, m.Features.AppHome.HomeTab, m.Settings.Events.BotEvents)
		}
	}
	if want := "https://approvebot.example.com/slack/events"; httpM.Settings.Events.RequestURL != want || sockM.Settings.Events.RequestURL != "" {
		t.Errorf("events request URLs %q (HTTP), %q (Socket Mode)", httpM.Settings.Events.RequestURL, sockM.Settings.Events.RequestURL)
	}
	var embedded slackManifest
	if err := yaml.Unmarshal(SlackManifest, &embedded); err != nil || !slices.Equal(embedded.OAuth.Scopes.Bot, httpM.OAuth.Scopes.Bot) {
		t.Errorf("embedded manifest scopes %v (%v)", embedded.OAuth.Scopes.Bot, err)
	}
}
