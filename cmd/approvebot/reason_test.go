package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

// reasonConfig adds routes that ask for reasons and for a confirmed
// approval.
const reasonConfig = baseConfig + `  - match: {rule_name: careful-transfer}
    approvers: [treasury-ops]
    reason: {deny: required, approve: optional}
    timeout: 5m
  - match: {rule_name: confirmed-transfer}
    approvers: [treasury-ops]
    confirm_approve: true
    timeout: 5m
`

// hostileReason tries to format, mention, reorder and break lines.
const hostileReason = "destination not on the allow-list\u202e <@U0CARL> *now* <!channel>\n`x`"

// cleanHostile is hostileReason as kept: one line, no bidi control.
const cleanHostile = "destination not on the allow-list  <@U0CARL> *now* <!channel> `x`"

// plainTexts collects every text object of a Slack message's blocks
// that contains want, with its type.
func plainTexts(t *testing.T, blocks []byte, want string) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(blocks, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok && strings.Contains(s, want) {
				out[s], _ = x["type"].(string)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

func TestSlackDenyReasonRequired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reasonConfig)
	h.start()
	held := h.submit(legacyBody("careful-transfer"), auth())
	msg := h.waitMessagesIn(1)[0]
	id := requestIDOf(t, msg)
	for _, b := range []string{`"action_id":"deny_reason"`, `"action_id":"approve_comment"`} {
		if !bytes.Contains(msg.Blocks, []byte(b)) {
			t.Fatalf("message has no %s: %s", b, msg.Blocks)
		}
	}

	// Deny opens the modal and counts nothing; submitted empty, the modal
	// says a reason is required and still nothing counts.
	r := h.click("U0JANE", "C0TREASURY", msg.TS, "deny_reason", id)
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"response_action":"errors"`)) ||
		!bytes.Contains(r.body, []byte("A reason is required")) {
		t.Fatalf("empty required reason answered %d %s", r.status, r.body)
	}
	views := h.slack.Views()
	if len(views) != 1 || views[0].CallbackID != slack.ReasonCallbackID || views[0].Submit != "Deny" ||
		!bytes.Contains(views[0].Blocks, []byte(`"max_length":500`)) || bytes.Contains(views[0].Blocks, []byte(`"optional":true`)) {
		t.Fatalf("reason modal: %+v", views)
	}
	if a := h.status(id).answer; a.Status != "pending" {
		t.Fatalf("after an empty reason the request is %s", a.Status)
	}

	// Abandoned: opened, then closed; nothing counts.
	payload := slackfake.BlockActionPayload(slackfake.Click{UserID: "U0JANE", UserName: "u0jane", Channel: "C0TREASURY", MessageTS: msg.TS,
		ActionID: "deny_reason", Value: id, TriggerID: h.slack.Trigger("U0JANE")})
	if r, err := h.postInteraction(payload, signingSecret, h.now()); err != nil || r.status != http.StatusOK {
		t.Fatalf("Deny answered %v %v", r, err)
	}
	views = h.slack.Views()
	if len(views) != 2 {
		t.Fatalf("%d modals opened, want 2", len(views))
	}
	if r, err := h.postInteraction(slackfake.ViewClosedPayload(views[1], "U0JANE", "u0jane"), signingSecret, h.now()); err != nil || r.status != http.StatusOK {
		t.Fatalf("view_closed answered %v %v", r, err)
	}
	if a := h.status(id).answer; a.Status != "pending" {
		t.Fatalf("after an abandoned modal the request is %s", a.Status)
	}
	for _, m := range h.messages(id) {
		if m.Updates != 0 {
			t.Fatalf("message updated %d times before any vote", m.Updates)
		}
	}

	// Submitted with a hostile reason: the vote counts, with the reason.
	h.reasonText = hostileReason
	if r := h.click("U0JANE", "C0TREASURY", msg.TS, "deny_reason", id); r.status != http.StatusOK || len(bytes.TrimSpace(r.body)) != 0 {
		t.Fatalf("reason submission answered %d %s", r.status, r.body)
	}
	got := h.await(held)
	if got.answer.Approved || got.answer.Status != "denied" || got.answer.Reason != "Denied by jane@company.com: "+cleanHostile {
		t.Fatalf("agent got %s", got.body)
	}
	story := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	if !bytes.Contains(story.body, []byte(`"reason_code":`+mustJSON(t, cleanHostile))) {
		t.Fatalf("chain entry has no reason_code with the reason: %s", story.body)
	}
	h.waitClosed(id, "Denied by Jane Doe at ")
	// The thread's outcome reply is mrkdwn: it names who denied, without
	// the reason, which stays on the message.
	h.waitFor("the outcome in the thread", func() bool {
		for _, r := range h.slack.Replies("C0TREASURY", msg.TS) {
			if strings.HasPrefix(r.Text, "Denied by Jane Doe at ") {
				return true
			}
		}
		return false
	})
	for _, r := range h.slack.Replies("C0TREASURY", msg.TS) {
		if strings.Contains(r.Text, "allow-list") {
			t.Fatalf("reason in a mrkdwn thread reply: %q", r.Text)
		}
	}
	m := h.messages(id)[0]
	texts := plainTexts(t, m.Blocks, "not on the allow-list")
	if len(texts) != 1 {
		t.Fatalf("reason shown %d times: %v", len(texts), texts)
	}
	for s, typ := range texts {
		if typ != "plain_text" || !strings.Contains(s, `: "`+strings.ReplaceAll(cleanHostile, "`", "`")+`"`) || strings.ContainsRune(s, '\u202e') {
			t.Fatalf("reason shown as %s %q", typ, s)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSlackApproveCommentAndOptionalDeny(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reasonConfig)
	h.start()
	held := h.submit(legacyBody("careful-transfer"), auth())
	msg := h.waitMessagesIn(1)[0]
	id := requestIDOf(t, msg)
	h.reasonText = "checked against invoice 4471"
	if r := h.click("U0JANE", "C0TREASURY", msg.TS, "approve_comment", id); r.status != http.StatusOK {
		t.Fatalf("comment submission answered %d %s", r.status, r.body)
	}
	got := h.await(held)
	if !got.answer.Approved || !strings.HasSuffix(got.answer.Reason, ": checked against invoice 4471") {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitClosed(id, `Jane Doe: \"checked against invoice 4471\"`)

	// The default rule: Deny asks for an optional reason; empty counts.
	held = h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(3)
	var treasury slackfake.Message
	for _, m := range msgs {
		if m.Channel == "C0TREASURY" && m.Actionable {
			treasury = m
		}
	}
	id = requestIDOf(t, treasury)
	h.reasonText = ""
	if r := h.click("U0JANE", "C0TREASURY", treasury.TS, "deny", id); r.status != http.StatusOK || len(bytes.TrimSpace(r.body)) != 0 {
		t.Fatalf("empty optional reason answered %d %s", r.status, r.body)
	}
	if got := h.await(held); got.answer.Status != "denied" || got.answer.Reason != "Denied by jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
}

func TestSlackConfirmApprove(t *testing.T) {
	t.Parallel()
	h := newHarness(t, reasonConfig)
	h.start()
	held := h.submit(legacyBody("confirmed-transfer"), auth())
	msg := h.waitMessagesIn(1)[0]
	id := requestIDOf(t, msg)
	if !bytes.Contains(msg.Blocks, []byte(`"action_id":"approve_confirmed"`)) || !bytes.Contains(msg.Blocks, []byte(`"confirm":{`)) {
		t.Fatalf("Approve has no confirm dialog: %s", msg.Blocks)
	}
	// An approval that did not go through the dialog does not count.
	h.click("U0JANE", "C0TREASURY", msg.TS, "approve", id)
	h.waitFor("refusal told", func() bool { return len(h.ephemeralsFor("U0JANE")) == 1 })
	if e := h.ephemeralsFor("U0JANE")[0]; !strings.Contains(e.Text, "needs a confirmation") {
		t.Fatalf("unconfirmed approval told %q", e.Text)
	}
	if a := h.status(id).answer; a.Status != "pending" {
		t.Fatalf("after an unconfirmed approval the request is %s", a.Status)
	}
	h.click("U0JANE", "C0TREASURY", msg.TS, "approve_confirmed", id)
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
}

func TestTeamsReasonAndConfirm(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("teams-careful"), auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	for _, want := range []string{`"type":"Input.Text"`, `"id":"reason"`, `"maxLength":500`, `"type":"Action.ShowCard"`, `"confirm":true`, "Confirm approval"} {
		if !bytes.Contains(card.Card, []byte(want)) {
			t.Fatalf("card lacks %s: %s", want, card.Card)
		}
	}
	thread := teamsfake.Thread{ChannelID: card.ChannelID, Conversation: card.ConversationID, ActivityID: card.ActivityID}
	rid := teamsCardRequestID(t, card)
	send := func(who teamsfake.From, verb string, data map[string]any) teamsAnswer {
		t.Helper()
		data["request_id"] = rid
		code, body := th.sendActivity(th.teams.ExecuteAction(who, thread, verb, data))
		var a teamsAnswer
		if code != http.StatusOK || json.Unmarshal(body, &a) != nil {
			t.Fatalf("click answered %d %s", code, body)
		}
		return a
	}
	// Approve without the confirmation, and Deny without the required
	// reason, are refused privately; nothing counts.
	if a := send(teamsJane, "approve", map[string]any{"decision": "allow", "reason": ""}); !bytes.Contains(a.Value, []byte("needs a confirmation")) {
		t.Fatalf("unconfirmed approval answered %s", a.Value)
	}
	if a := send(teamsCarl, "deny", map[string]any{"decision": "deny", "reason": "   "}); !bytes.Contains(a.Value, []byte("a reason is required to deny")) {
		t.Fatalf("deny without a reason answered %s", a.Value)
	}
	if s := th.status(rid).answer; s.Status != "pending" {
		t.Fatalf("request is %s", s.Status)
	}
	a := send(teamsCarl, "deny", map[string]any{"decision": "deny", "reason": hostileReason})
	if !bytes.Contains(a.Value, []byte("Denied by Carl")) {
		t.Fatalf("deny answered %s", a.Value)
	}
	got := th.await(held)
	if got.answer.Status != "denied" || got.answer.Reason != "Denied by carl@company.com: "+cleanHostile {
		t.Fatalf("agent got %s", got.body)
	}
	final := th.teamsWaitCard("card shows the reason", card, func(c json.RawMessage) bool { return !hasButtons(c) })
	if !bytes.Contains(final, []byte("not on the allow-list")) || bytes.Contains(final, []byte("\u202e")) {
		t.Fatalf("updated card: %s", final)
	}

	// Confirmed, the approval counts.
	held = th.submit(legacyBody("teams-careful"), auth())
	th.teamsWait("a second card", func() bool { return len(th.teamsCards(teamsApprovals)) == 2 })
	card = th.teamsCards(teamsApprovals)[1]
	thread = teamsfake.Thread{ChannelID: card.ChannelID, Conversation: card.ConversationID, ActivityID: card.ActivityID}
	rid = teamsCardRequestID(t, card)
	th.waitPosted(rid, 1)
	send(teamsJane, "approve", map[string]any{"decision": "allow", "confirm": true, "reason": "ok by me"})
	if got := th.await(held); !got.answer.Approved || !strings.HasSuffix(got.answer.Reason, ": ok by me") {
		t.Fatalf("agent got %s", got.body)
	}
}

// Over Socket Mode the reason modal works the same: Deny opens it, an empty
// required reason is answered with the modal's error in the acknowledgement,
// and the submission votes.
func TestSocketModeDenyReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, strings.Replace(socketConfig, "    timeout: 5m\n", "    timeout: 5m\n    reason: {deny: required}\n", 1))
	h.env["SLACK_APP_TOKEN"] = appToken
	h.slack.EnableSocketMode(appToken)
	h.start()
	h.waitSocketReady(true)
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	treasury := messageIn(t, msgs, "C0TREASURY")

	env := h.slack.SendInteractive(slackfake.BlockActionPayload(slackfake.Click{UserID: "U0JANE", UserName: "jane", Channel: "C0TREASURY",
		MessageTS: treasury.TS, ActionID: "deny_reason", Value: id, TriggerID: h.slack.Trigger("U0JANE")}))
	h.waitAcked(env)
	views := h.slack.Views()
	if len(views) != 1 || views[0].CallbackID != slack.ReasonCallbackID {
		t.Fatalf("views %+v", views)
	}
	env = h.slack.SendInteractive(slackfake.ViewSubmissionWithInput(views[0], "U0JANE", "jane", slack.ReasonBlockID, slack.ReasonInputID, ""))
	h.waitAcked(env)
	if ack := h.slack.AckPayload(env); !bytes.Contains(ack, []byte(`"response_action":"errors"`)) {
		t.Fatalf("empty reason acknowledged with %s", ack)
	}
	if a := h.status(id).answer; a.Status != "pending" {
		t.Fatalf("after an empty reason the request is %s", a.Status)
	}
	env = h.slack.SendInteractive(slackfake.ViewSubmissionWithInput(views[0], "U0JANE", "jane", slack.ReasonBlockID, slack.ReasonInputID, "duplicate of yesterday's"))
	got := h.await(held)
	if got.answer.Status != "denied" || got.answer.Reason != "Denied by jane@company.com: duplicate of yesterday's" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitAcked(env)
}
