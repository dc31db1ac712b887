package slack

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

func FuzzParseInteraction(f *testing.F) {
	for _, c := range []slackfake.Click{
		{ActionID: "approve", Value: "req_1"},
		{ActionID: "deny", Value: "req_2", UserID: "W1"},
		{ActionID: "approve", OmitBlockID: true, Value: "r"},
		{Type: "view_submission", ActionID: "approve", Value: "r"},
	} {
		body, _ := slackfake.SignInteraction(testSecret, slackfake.BlockActionPayload(c), time.Now())
		f.Add(body)
	}
	for _, js := range []string{
		`{"type":"block_actions","actions":[{"block_id":"approvebot_review","action_id":"approve","value":"x"}]}`,
		`{"type":"block_actions","actions":[{"block_id":1}],"user":{"id":"U"}}`,
		`{"type":"block_actions","actions":null,"state":{"values":{"a":{"b":{}}}}}`,
		`{"type":"block_actions","container":{"attachment_id":"x"}}`,
		`[]`, `null`, `"x"`,
	} {
		f.Add([]byte(url.Values{"payload": {js}}.Encode()))
	}
	f.Add([]byte("%"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseInteraction(body)
		if err != nil {
			if c != (click{}) {
				t.Errorf("error %v came with a click %+v", err, c)
			}
			if !errors.Is(err, errNotOurs) && err.Error() == "" {
				t.Error("empty error text")
			}
			return
		}
		if c.Decision != approvebot.Allow && c.Decision != approvebot.Deny {
			t.Errorf("decision %q", c.Decision)
		}
		if c.RequestID == "" || len(c.RequestID) > maxRequestID || c.UserID == "" || c.TeamID == "" || c.Channel == "" || c.MessageTS == "" {
			t.Errorf("accepted an incomplete click %+v", c)
		}
		// What was accepted must really be a review click in the payload.
		form, _ := url.ParseQuery(string(body))
		var raw struct {
			Type    string `json:"type"`
			Actions []struct {
				BlockID  string `json:"block_id"`
				ActionID string `json:"action_id"`
				Value    string `json:"value"`
			} `json:"actions"`
		}
		if err := json.Unmarshal([]byte(form.Get("payload")), &raw); err != nil {
			t.Fatalf("accepted a payload encoding/json refuses: %v", err)
		}
		found := false
		for _, a := range raw.Actions {
			found = found || (a.BlockID == ReviewBlockID && a.Value == c.RequestID &&
				(a.ActionID == ApproveActionID && c.Decision == approvebot.Allow || a.ActionID == DenyActionID && c.Decision == approvebot.Deny))
		}
		if raw.Type != "block_actions" || !found {
			t.Errorf("accepted %+v from a payload without a matching review action: %s", c, form.Get("payload"))
		}
	})
}
