package teams

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

const (
	riskChannelID = "19:risk@thread.tacv2"
	opsChannelID  = "19:ops@thread.tacv2"
)

func channelsByID(t *testing.T, e *env) map[string]Channel {
	t.Helper()
	chs, err := e.teams.Channels()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Channel{}
	for _, c := range chs {
		out[c.ChannelID] = c
	}
	return out
}

func TestInstallDiscoversEveryChannel(t *testing.T) {
	e := newEnv(t)
	e.fake.AddChannel(testTeamID, riskChannelID, "risk")
	e.fake.AddChannel(testTeamID, opsChannelID, "ops")
	if code, body := e.send(t, e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)); code != http.StatusOK {
		t.Fatalf("install: HTTP %d %s", code, body)
	}
	got := channelsByID(t, e)
	want := map[string]string{testTeamID: "General", riskChannelID: "risk", opsChannelID: "ops"}
	if len(got) != len(want) {
		t.Fatalf("stored %+v, want %v", got, want)
	}
	for id, name := range want {
		c := got[id]
		if c.ChannelName != name || c.TeamID != testTeamID || c.TeamName != testTeamName || c.ServiceURL != e.fake.ServiceURL() ||
			c.TenantID != e.fake.TenantID || c.BotID != "28:"+e.fake.AppID || c.UpdatedAt.IsZero() {
			t.Errorf("channel %s stored as %+v", id, c)
		}
	}
	// Nobody wrote in the risk channel, yet the bot can post there.
	ref, err := e.teams.Post(testCtx(t), riskChannelID, testMessage("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	if p := e.fake.Posted(); len(p) != 1 || p[0].ChannelID != riskChannelID || ref.Channel != riskChannelID {
		t.Fatalf("posted %+v, ref %+v", p, ref)
	}
}

func TestInstallationUpdateDiscoversChannels(t *testing.T) {
	e := newEnv(t)
	e.fake.AddChannel(testTeamID, riskChannelID, "risk")
	// installationUpdate carries no team name; the conversationUpdate that
	// follows fills it in without losing the channel names.
	if code, _ := e.send(t, e.fake.InstallationUpdate("add", testTeamID)); code != http.StatusOK {
		t.Fatalf("installationUpdate: HTTP %d", code)
	}
	got := channelsByID(t, e)
	if got[riskChannelID].ChannelName != "risk" || got[testTeamID].ChannelName != "General" || len(got) != 2 {
		t.Fatalf("after installationUpdate: %+v", got)
	}
	e.send(t, e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin))
	got = channelsByID(t, e)
	if got[riskChannelID].ChannelName != "risk" || got[riskChannelID].TeamName != testTeamName || got[testTeamID].TeamName != testTeamName {
		t.Fatalf("after conversationUpdate: %+v", got)
	}
	if n := e.fake.Requests("channels"); n != 2 {
		t.Fatalf("%d channel listings, want one per install activity", n)
	}
}

func TestOtherActivitiesDoNotListChannels(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.fake.ChannelEvent("channelCreated", testTeamID, testTeamName, testChannelID, "approvals"))
	e.send(t, e.fake.InstallationUpdate("remove", testTeamID))
	if n := e.fake.Requests("channels"); n != 0 {
		t.Fatalf("%d channel listings for activities that add no bot", n)
	}
}

func TestChannelListFailureKeepsGeneral(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t)
			e.fake.AddChannel(testTeamID, riskChannelID, "risk")
			e.fake.FailNext(1, status, 0)
			if code, body := e.send(t, e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)); code != http.StatusOK {
				t.Fatalf("install answered HTTP %d %s: a failed listing must not fail the activity", code, body)
			}
			got := channelsByID(t, e)
			if len(got) != 1 || got[testTeamID].ChannelName != "General" {
				t.Fatalf("stored %+v, want General only", got)
			}
			if _, err := e.teams.Post(testCtx(t), riskChannelID, testMessage("req-1")); !approvebot.IsPermanent(err) {
				t.Fatalf("post to the unlisted channel: %v, want a permanent error", err)
			}
		})
	}
}

func TestStoredChannelsOutliveTheAdapter(t *testing.T) {
	e := newEnv(t)
	e.fake.AddChannel(testTeamID, riskChannelID, "risk")
	e.install(t)
	// A restart: a new adapter on the same bbolt file, no activity since.
	again, err := New(Config{
		AppID: e.fake.AppID, AppPassword: e.fake.AppPassword, TenantID: e.fake.TenantID,
		OpenIDMetadataURL: e.fake.MetadataURL(), TokenURL: e.fake.TokenURL(),
		HTTPClient: e.fake.Client(), Conversations: e.store.PlatformData(Name), ChannelInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	chs, err := again.Channels()
	if err != nil || len(chs) != 3 {
		t.Fatalf("channels after restart: %+v, %v", chs, err)
	}
	if _, err := again.Post(testCtx(t), riskChannelID, testMessage("req-1")); err != nil {
		t.Fatalf("post after restart: %v", err)
	}
}

func TestNamesAreCleaned(t *testing.T) {
	e := newEnv(t)
	e.fake.AddChannel(testTeamID, riskChannelID, "risk\tchannel\nnext line")
	e.send(t, e.fake.BotAddedToTeam(testTeamID, "Pay\x00ments", testAdmin))
	got := channelsByID(t, e)
	if c := got[riskChannelID]; c.ChannelName != "risk channel next line" || c.TeamName != "Pay ments" {
		t.Fatalf("stored %+v", c)
	}
}

func TestParseTeamChannels(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []teamChannel
		wantErr string
	}{
		{"general and named", `{"conversations":[{"id":"19:t@thread.tacv2","name":null},{"id":"19:c@thread.tacv2","name":"risk"}]}`,
			[]teamChannel{{ID: "19:t@thread.tacv2"}, {ID: "19:c@thread.tacv2", Name: "risk"}}, ""},
		{"empty list", `{"conversations":[]}`, nil, ""},
		{"missing list", `{}`, nil, "conversations is missing"},
		{"not JSON", `<html>`, nil, "team channel list"},
		{"bad entries skipped", `{"conversations":[{"name":"x"},{"id":"29:user"},{"id":"19:a"},{"id":"19:a"}]}`,
			[]teamChannel{{ID: "19:a"}}, "conversations[0].id is missing"},
		{"wrong type", `{"conversations":[{"id":19}]}`, nil, "team channel list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTeamChannels([]byte(tt.body))
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
	_, err := parseTeamChannels([]byte(`{"conversations":[{"name":"x"},{"id":"29:user"},{"id":"19:a"},{"id":"19:a"}]}`))
	for _, want := range []string{"conversations[1].id", "not a Teams channel id", "conversations[3].id", "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func FuzzParseTeamChannels(f *testing.F) {
	for _, s := range []string{
		`{"conversations":[{"id":"19:t@thread.tacv2","name":null},{"id":"19:c@thread.tacv2","name":"risk"}]}`,
		`{"conversations":[{"id":"19:a","name":"\u0000\t"},{"id":"19:a"}]}`,
		`{"conversations":null}`, `{}`, `[]`, `null`, `{"conversations":[{"id":19}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		chans, _ := parseTeamChannels(body)
		seen := map[string]bool{}
		for _, c := range chans {
			if !strings.HasPrefix(c.ID, "19:") || len(c.ID) > maxChannelID || seen[c.ID] {
				t.Fatalf("accepted channel id %q", c.ID)
			}
			seen[c.ID] = true
			if strings.ContainsAny(c.Name, "\t\n\r\x00") || len([]rune(c.Name)) > maxChannelName {
				t.Fatalf("name %q not cleaned", c.Name)
			}
		}
	})
}

// The adapter reports its pace and leaves the pacing to the engine: a post
// is made when asked, whatever the interval.
func TestPostInterval(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	e.teams.cfg.ChannelInterval = time.Hour
	if got := e.teams.PostInterval(testChannelID); got != time.Hour {
		t.Fatalf("PostInterval = %v, want 1h", got)
	}
	for i := range 2 {
		if _, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.fake.Posted()); n != 2 {
		t.Fatalf("%d posts reached Teams, want 2", n)
	}
}
