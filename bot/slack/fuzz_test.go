package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/bot/viewtest"
	"github.com/approvebot/approvebot/display"
)

func FuzzParseInteraction(f *testing.F) {
	for _, c := range []slackfake.Click{
		{ActionID: "approve", Value: "req_1"},
		{ActionID: "deny", Value: "req_2", UserID: "W1"},
		{ActionID: "approve", OmitBlockID: true, Value: "r"},
		{Type: "view_submission", ActionID: "approve", Value: "r"},
		{ActionID: "view_all", Value: "ar_x", TriggerID: "1.2"},
		{ActionID: "deny_reason", Value: "ar_y", TriggerID: "1.3"},
		{ActionID: "approve_comment", Value: "ar_y", TriggerID: "1.3"},
		{ActionID: "approve_confirmed", Value: "ar_z"},
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
	view := slackfake.View{ID: "V1", CallbackID: FullViewCallbackID, PrivateMetadata: "abc.def", Title: "t", Blocks: []byte("[]")}
	reasonView := slackfake.View{ID: "V2", CallbackID: ReasonCallbackID, PrivateMetadata: "abc.def", Title: "t", Blocks: []byte("[]")}
	for _, p := range []any{
		slackfake.ViewSubmissionWithInput(reasonView, "U1", "u", ReasonBlockID, ReasonInputID, "wrong \u202e IBAN"),
		slackfake.ViewSubmissionPayload(reasonView, "U1", "u"),
		slackfake.ViewClosedPayload(reasonView, "U1", "u"),
		slackfake.ViewSubmissionPayload(view, "U1", "u"),
		slackfake.ViewActionPayload(view, "U1", "u", "1.2", PagesBlockID, NextPageActionID, "2"),
		homePayload("home_review.0.f.ar_1", ApproveActionID, "ar_1"),
		homePayload("home_review.1.p.ar_1", DenyActionID, "ar_1"),
		homePayload("home_review.0.f.ar_1", ApproveActionID, "ar_2"),
	} {
		body, _ := slackfake.SignInteraction(testSecret, p, time.Now())
		f.Add(body)
	}
	f.Add([]byte("%"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseInteraction(body)
		c := in.click
		if err != nil {
			if in != (interaction{}) {
				t.Errorf("error %v came with an interaction %+v", err, in)
			}
			if !errors.Is(err, errNotOurs) && err.Error() == "" {
				t.Error("empty error text")
			}
			return
		}
		if c.UserID == "" || c.TeamID == "" {
			t.Errorf("accepted an interaction without its user %+v", in)
		}
		if in.kind == kindReasonSubmit {
			// The decision and request come from the sealed metadata.
			if in.metadata == "" || c.Decision != "" || c.RequestID != "" {
				t.Errorf("reason submission %+v", in)
			}
			return
		}
		if in.kind == kindReasonOpen && (in.triggerID == "" || in.rule != approvebot.ReasonRequired && in.rule != approvebot.ReasonOptional) {
			t.Errorf("reason modal without trigger or rule %+v", in)
		}
		if in.kind == kindNextPage || in.metadata != "" {
			// Full-view interactions: everything else comes from the
			// sealed metadata, checked when they are served.
			if in.metadata == "" || in.kind == kindNextPage && in.viewID == "" {
				t.Errorf("full-view interaction without its view %+v", in)
			}
			return
		}
		if in.kind == kindViewAll {
			if in.triggerID == "" || c.RequestID == "" {
				t.Errorf("view all without trigger or request %+v", in)
			}
			return
		}
		if c.Decision != approvebot.Allow && c.Decision != approvebot.Deny {
			t.Errorf("decision %q", c.Decision)
		}
		if c.Home {
			// A Home tab click: no message, but a button of the Home tab
			// whose block id names the request it carries.
			if c.RequestID == "" || len(c.RequestID) > approvebot.MaxIDLength || c.Channel != "" || c.MessageTS != "" || c.HomeStage < 0 {
				t.Errorf("accepted an incomplete Home click %+v", c)
			}
			if !strings.Contains(string(body), url.QueryEscape(HomeCallbackID)) {
				t.Errorf("Home click accepted from a view that is not the Home tab: %q", body)
			}
			return
		}
		if c.RequestID == "" || len(c.RequestID) > approvebot.MaxIDLength || c.Channel == "" || c.MessageTS == "" {
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
			want := map[string]string{ApproveActionID: approvebot.Allow, ApproveConfirmActionID: approvebot.Allow, ApproveCommentActionID: approvebot.Allow,
				DenyActionID: approvebot.Deny, DenyReasonActionID: approvebot.Deny}[a.ActionID]
			found = found || (a.BlockID == ReviewBlockID && a.Value == c.RequestID && want == c.Decision &&
				c.Confirmed == (a.ActionID == ApproveConfirmActionID) &&
				(in.kind == kindReasonOpen) == (a.ActionID == DenyActionID || a.ActionID == DenyReasonActionID || a.ActionID == ApproveCommentActionID))
		}
		if raw.Type != "block_actions" || !found {
			t.Errorf("accepted %+v from a payload without a matching review action: %s", c, form.Get("payload"))
		}
	})
}

// FuzzFullView is the property the full view exists for: for any binding
// parameters and any context, every bound parameter's path and exact value
// (number text as sent) appear in the full view, Approve is on its last
// page only, and nothing from the context carries a bound label.
func FuzzFullView(f *testing.F) {
	f.Add(`{"amount": 1000000, "destination": "ACC-ATTACKER"}`, `{"parameters": {"amount": 10}, "a00": "ok"}`)
	f.Add(`{"amount": 1e6, "fee": 1000000.00, "n": [1, {"x": null}], "e": {}, "a.b": -0.0}`, `{"parameters.amount": 10}`)
	f.Add(`{"blob": "`+strings.Repeat("x", 12000)+`"}`, `{}`)
	f.Add(`{"\u202e": "\u200b<!channel>"}`, `{"context": {"parameters": 1}}`)
	f.Fuzz(func(t *testing.T, params, ctx string) {
		if !json.Valid([]byte(params)) || !strings.HasPrefix(strings.TrimSpace(params), "{") {
			return
		}
		if !json.Valid([]byte(ctx)) || !strings.HasPrefix(strings.TrimSpace(ctx), "{") {
			ctx = ""
		}
		msg := bot.View(viewtest.V1("ar_fuzz", params, ctx), 0)
		out := Render(msg)
		pages := fullViewPages(msg)
		var text strings.Builder
		for p := range pages {
			m := fullViewModal(msg, pages, p, "m")
			if (m.Submit != nil) != (p == len(pages)-1) {
				t.Fatalf("page %d of %d: submit %v", p+1, len(pages), m.Submit)
			}
			b, _ := json.Marshal(m.Blocks)
			var blocks []map[string]any
			_ = json.Unmarshal(b, &blocks)
			if len(blocks) > 100 || len(b) > 250<<10 {
				t.Fatalf("page %d: %d blocks, %d bytes", p+1, len(blocks), len(b))
			}
			s, _ := walkTexts(t, blocks, msg)
			text.WriteString(s)
		}
		all := strings.ReplaceAll(text.String(), "\n↳ ", "")
		want, _ := display.Flatten("parameters", json.RawMessage(params), 0)
		for _, e := range want {
			if !strings.Contains(all, e.Path+"\n"+e.Value+"\n") {
				t.Fatalf("full view lacks %s = %.80s", e.Path, e.Value)
			}
		}
		dec := json.NewDecoder(strings.NewReader(params))
		dec.UseNumber()
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if n, ok := tok.(json.Number); ok && !strings.Contains(all, "\n"+string(n)+"\n") {
				t.Fatalf("number %s not shown as sent", n)
			}
		}
		bound := map[string]bool{}
		for _, b := range msg.Bound {
			bound[b.Label] = true
		}
		for _, c := range msg.Context {
			if bound[c.Label] || !strings.HasPrefix(c.Label, "context") {
				t.Fatalf("context label %q", c.Label)
			}
		}
		// Approve on the message only when it shows every bound fact.
		raw, _ := json.Marshal(out.Blocks)
		if bytes.Contains(raw, []byte(`"action_id":"approve"`)) == out.Partial {
			t.Fatalf("partial %v with approve button %v", out.Partial, !out.Partial)
		}
	})
}

// homePayload is a click on a Home tab button.
func homePayload(blockID, actionID, value string) map[string]any {
	return map[string]any{
		"type": "block_actions", "team": map[string]any{"id": "T1"}, "user": map[string]any{"id": "U1", "team_id": "T1"},
		"container": map[string]any{"type": "view", "view_id": "VH1"},
		"view":      map[string]any{"id": "VH1", "type": "home", "callback_id": HomeCallbackID},
		"actions":   []any{map[string]any{"type": "button", "block_id": blockID, "action_id": actionID, "value": value}},
	}
}
