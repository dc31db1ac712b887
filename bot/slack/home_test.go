package slack

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/bot/viewtest"
)

func FuzzParseEvent(f *testing.F) {
	for _, ev := range []any{
		slackfake.AppHomeOpened("U0JANE", "home"), slackfake.AppHomeOpened("U0JANE", "messages"),
		slackfake.URLVerification("challenge-123"),
	} {
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"type":"event_callback","event":{"type":"app_home_opened"}}`, `{"type":"url_verification"}`, `[]`, `null`, `{"type":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parseEvent(body)
		if err != nil {
			return
		}
		switch {
		case ev.Type == "":
			t.Fatal("accepted an event without a type")
		case ev.Type == "url_verification" && (ev.Challenge == "" || len(ev.Challenge) > maxChallenge):
			t.Fatalf("accepted challenge %q", ev.Challenge)
		case ev.Type == "event_callback" && ev.Event.Type == "app_home_opened" && (ev.Event.User == "" || ev.TeamID == ""):
			t.Fatalf("accepted app_home_opened without a user or team: %+v", ev)
		}
	})
}

func FuzzHomeClick(f *testing.F) {
	for _, s := range [][2]string{
		{"home_review.0.f.ar_1", "ar_1"}, {"home_review.1.p.ar_1", "ar_1"}, {"home_review.0.f.ar_1", "ar_2"},
		{"home_review.-1.f.x", "x"}, {"home_review.0.q.x", "x"}, {"approvebot_review", "x"}, {"home_review.0.f.a.b", "a.b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, blockID, value string) {
		stage, partial, ok := homeClick(blockID, value)
		if !ok {
			return
		}
		shown := ".f."
		if partial {
			shown = ".p."
		}
		if stage < 0 || !strings.HasPrefix(blockID, HomeBlockPrefix) || !strings.HasSuffix(blockID, shown+value) {
			t.Fatalf("homeClick(%q, %q) = %d, %v", blockID, value, stage, partial)
		}
	})
}

// The Home tab lists each request with its own buttons (Approve only when
// every bound fact shows), stays within Slack's 100 blocks however many
// requests wait, and says when it cannot list them.
func TestHomeBlocks(t *testing.T) {
	small := bot.View(viewtest.V1("ar_small", `{"amount": 10}`, ""), -1)
	var hv bot.HomeView
	for range 40 {
		hv.Pending = append(hv.Pending, bot.HomeItem{View: small, Stage: 1})
	}
	hv.Decided = []bot.HomeDecision{{RequestID: "ar_old", Title: "transfer", Decision: approvebot.Deny, Status: approvebot.StatusDenied, At: "2026-12-01T10:00:00Z"}}
	blocks := HomeBlocks(hv, nil, "")
	if len(blocks) > homeBlocks {
		t.Fatalf("%d blocks", len(blocks))
	}
	js, _ := json.Marshal(blocks)
	if !strings.Contains(string(js), "home_review.1.f.ar_small") || !strings.Contains(string(js), "more waiting for you") ||
		!strings.Contains(string(js), "Denied transfer (request ar_old)") {
		t.Fatalf("home blocks:\n%s", js)
	}
	js, _ = json.Marshal(HomeBlocks(bot.HomeView{}, errors.New("approvebot could not verify who you are"), ""))
	if strings.Contains(string(js), "home_review") || !strings.Contains(string(js), "could not verify who you are") {
		t.Fatalf("error home:\n%s", js)
	}
}
