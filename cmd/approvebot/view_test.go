package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// largeBinding is a 1.0 request whose action binding cannot fit one chat
// message: 100 parameters, the attack's amount among them as number text
// that must stay as sent, and context that shadows the bound labels.
func largeBinding(chain, version string) ([]byte, map[string]any) {
	params := intaketest.Object{
		{Key: "amount", Value: json.RawMessage("1e6")},
		{Key: "fee", Value: json.RawMessage("1000000.00")},
		{Key: "destination", Value: "ACC-ATTACKER"},
	}
	for i := range 100 {
		params = append(params, intaketest.KV{Key: fmt.Sprintf("line%03d", i),
			Value: fmt.Sprintf("payment line %d of the batch, bound by the action digest like every other", i)})
	}
	ctx := intaketest.Object{{Key: "parameters", Value: intaketest.Object{{Key: "amount", Value: 10}, {Key: "destination", Value: "ACC-SAFE"}}}}
	for i := range 9 {
		ctx = append(ctx, intaketest.KV{Key: fmt.Sprintf("a%02d", i), Value: "ok"})
	}
	return intaketest.V1Body(intaketest.V1{
		ApprovalChainID: chain, ApprovalChainVersion: version,
		IncludeBinding: true, Parameters: params, Context: ctx,
	})
}

// boundLines are the "label\nvalue" texts every full view must show.
func boundLines() []string {
	out := []string{"parameters.amount\n1e6", "parameters.fee\n1000000.00", "parameters.destination\n\"ACC-ATTACKER\""}
	for i := range 100 {
		out = append(out, fmt.Sprintf("parameters.line%03d\n\"payment line %d of the batch, bound by the action digest like every other\"", i, i))
	}
	return out
}

// buttonValue is the value of the button actionID in a message's blocks.
func buttonValue(t *testing.T, blocks []byte, actionID string) string {
	t.Helper()
	m := regexp.MustCompile(`"action_id":"` + actionID + `","value":"([^"]+)"`).FindSubmatch(blocks)
	if m == nil {
		t.Fatalf("no %s button in %s", actionID, blocks)
	}
	return string(m[1])
}

func (h *harness) interact(payload any) response {
	h.t.Helper()
	body, header := slackfake.SignInteraction(signingSecret, payload, h.now())
	r, err := h.postSigned("/slack/interactions", body, header)
	if err != nil {
		h.t.Fatalf("interaction: %v", err)
	}
	return r
}

// TestSlackLargeActionApprovedFromFullView: a binding too large for one
// message gets no Approve button there, a forged Approve on the message is
// refused, and Approve from the full view (a paged modal) counts and
// answers with the same action digest.
func TestSlackLargeActionApprovedFromFullView(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body, fields := largeBinding("payments", "7")
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	msg := h.waitMessages(id, 1)[0]
	text := blockText(msg)
	id = buttonValue(t, msg.Blocks, "view_all") // approvebot's id for the request
	if bytes.Contains(msg.Blocks, []byte(`"action_id":"approve"`)) || !bytes.Contains(msg.Blocks, []byte(`"action_id":"view_all"`)) {
		t.Fatalf("a message that cannot show the whole action offers Approve, or no View all:\n%s", msg.Blocks)
	}
	if !strings.Contains(text, "too large to show here") || !strings.Contains(text, "parameters.amount\n1e6") {
		t.Errorf("message does not say it is partial, or misshows the amount:\n%s", text)
	}

	// A forged Approve on the partial message is refused, and says why.
	h.click("U0JANE", "C0TREASURY", msg.TS, "approve", id)
	h.waitFor("refusal", func() bool {
		for _, e := range h.ephemeralsFor("U0JANE") {
			if strings.Contains(e.Text, "could not show the whole action") {
				return true
			}
		}
		return false
	})
	if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status != "pending" {
		t.Fatalf("after the forged click the request is %q: %s", r.answer.Status, r.body)
	}

	// View all opens the modal with the click's trigger.
	payload := slackfake.BlockActionPayload(slackfake.Click{UserID: "U0JANE", UserName: "jane", Channel: "C0TREASURY", MessageTS: msg.TS,
		ActionID: "view_all", Value: id, TriggerID: h.slack.Trigger("U0JANE")})
	if r := h.interact(payload); r.status != http.StatusOK {
		t.Fatalf("view all: %d %s", r.status, r.body)
	}
	h.waitFor("the full view", func() bool { return len(h.slack.Views()) == 1 })
	view := h.slack.Views()[0]
	if view.Submit != "" {
		t.Fatalf("this action needs two modal pages; the first offers %q", view.Submit)
	}

	// Submitting from a page that is not the last is refused.
	if r := h.interact(slackfake.ViewSubmissionPayload(view, "U0JANE", "jane")); r.status != http.StatusOK ||
		!strings.Contains(string(r.body), "last page") {
		t.Fatalf("submission from page 1: %d %s", r.status, r.body)
	}
	var shown strings.Builder
	for pages := 1; view.Submit == ""; pages++ {
		if pages > 10 {
			t.Fatal("the full view never reaches a page with Approve")
		}
		shown.WriteString(blockText(slackfake.Message{Blocks: view.Blocks}))
		updates := view.Updates
		if r := h.interact(slackfake.ViewActionPayload(view, "U0JANE", "jane", h.slack.Trigger("U0JANE"), "approvebot_pages", "next_page", "")); r.status != http.StatusOK {
			t.Fatalf("next page: %d %s", r.status, r.body)
		}
		h.waitFor("next page", func() bool {
			v, _ := h.slack.ViewByID(view.ID)
			return v.Updates > updates
		})
		view, _ = h.slack.ViewByID(view.ID)
	}
	shown.WriteString(blockText(slackfake.Message{Blocks: view.Blocks}))
	all := strings.ReplaceAll(shown.String(), "\n↳ ", "")
	for _, line := range boundLines() {
		if !strings.Contains(all, line) {
			t.Errorf("the full view never showed %q", line)
		}
	}
	if view.Submit != "Approve" {
		t.Fatalf("last page submit %q", view.Submit)
	}
	// Someone else cannot submit Jane's view.
	if r := h.interact(slackfake.ViewSubmissionPayload(view, "U0BOB", "bob")); !strings.Contains(string(r.body), "someone else") {
		t.Fatalf("another user's submission: %d %s", r.status, r.body)
	}
	if r := h.interact(slackfake.ViewSubmissionPayload(view, "U0JANE", "jane")); r.status != http.StatusOK || len(bytes.TrimSpace(r.body)) != 0 {
		t.Fatalf("submission: %d %s", r.status, r.body)
	}
	a := v1Of(t, h.await(held))
	if !a.Approved || a.ActionDigest != fields["action_digest"].(string) {
		t.Fatalf("answer %+v", a)
	}
	checkAssertion(t, h, a, want{sub: "jane@company.com", decision: "allow", status: "approved",
		assurance: "slack_signed_interaction", fields: fields})

	// The audit shows the refused click for what it was.
	r := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	if !bytes.Contains(r.body, []byte(`not_all_shown`)) {
		t.Errorf("the refused approval is not audited as not_all_shown: %s", r.body)
	}
}

const teamsChainConfig = `chains:
  payments:
    version: "7"
    stages:
      - approvers: [payments-teams]
`

var teamsNextToken = regexp.MustCompile(`"verb":\s*"view_all",\s*"style":\s*"positive",\s*"data":\s*\{\s*"request_id":\s*"[^"]+",\s*"page":\s*(\d+),\s*"token":\s*"([^"]+)"`)
var teamsApproveToken = regexp.MustCompile(`"full_view":\s*"([^"]+)"`)

// TestTeamsLargeActionApprovedFromFullView: the same on Teams, where the
// full view is the card paged in place for the clicker.
func TestTeamsLargeActionApprovedFromFullView(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	if err := os.WriteFile(th.config, []byte(teamsConfig+teamsChainConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	th.startInstalled()
	body, fields := largeBinding("payments", "7")
	held := th.submit(body, auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	id := teamsCardRequestID(t, card) // approvebot's id for the request
	if bytes.Contains(card.Card, []byte(`"verb":"approve"`)) || !bytes.Contains(card.Card, []byte(`"verb":"view_all"`)) ||
		!bytes.Contains(card.Card, []byte("too large to show here")) {
		t.Fatalf("partial card offers Approve or lacks View all:\n%s", card.Card)
	}
	thread := teamsfake.Thread{ChannelID: card.ChannelID, Conversation: card.ConversationID, ActivityID: card.ActivityID}
	invoke := func(verb string, data map[string]any) teamsAnswer {
		t.Helper()
		code, b := th.sendActivity(th.teams.ExecuteAction(teamsJane, thread, verb, data))
		var a teamsAnswer
		if code != http.StatusOK || json.Unmarshal(b, &a) != nil {
			t.Fatalf("invoke %s: %d %s", verb, code, b)
		}
		return a
	}

	// A forged Approve on the partial card is refused privately.
	if a := th.teamsClick(teamsJane, card, "allow"); !strings.Contains(a.text(), "could not show the whole action") {
		t.Fatalf("forged approve answered %s", a)
	}
	// A page asked for out of turn is refused.
	if a := invoke("view_all", map[string]any{"request_id": id, "page": 2, "token": "forged"}); !strings.Contains(a.text(), "one after the other") {
		t.Fatalf("page 2 without a token answered %s", a)
	}
	// A forged full-view token does not make an approval count.
	if a := invoke("approve", map[string]any{"request_id": id, "decision": "allow", "full_view": "forged"}); !strings.Contains(a.text(), "could not show the whole action") {
		t.Fatalf("approve with a forged token answered %s", a)
	}

	var shown strings.Builder
	page := invoke("view_all", map[string]any{"request_id": id, "page": 1})
	for n := 1; ; n++ {
		if page.Type != teamsCardType || n > 20 {
			t.Fatalf("full view page %d: %s", n, page)
		}
		shown.Write(page.Value)
		m := teamsNextToken.FindSubmatch(page.Value)
		if m == nil {
			break
		}
		var p int
		fmt.Sscan(string(m[1]), &p)
		page = invoke("view_all", map[string]any{"request_id": id, "page": p, "token": string(m[2])})
	}
	var runs strings.Builder
	for _, chunk := range regexp.MustCompile(`"text":\s*"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(shown.String(), -1) {
		var s string
		_ = json.Unmarshal([]byte(`"`+chunk[1]+`"`), &s)
		runs.WriteString(s)
	}
	for _, line := range boundLines() {
		if !strings.Contains(runs.String(), strings.Replace(line, "\n", "  ", 1)) {
			t.Errorf("the full view never showed %q", line)
		}
	}
	m := teamsApproveToken.FindSubmatch(page.Value)
	if m == nil {
		t.Fatalf("last page has no Approve:\n%s", page.Value)
	}
	// Another person cannot use Jane's token.
	code, b := th.sendActivity(th.teams.ExecuteAction(teamsCarl, thread, "approve", map[string]any{"request_id": id, "decision": "allow", "full_view": string(m[1])}))
	if code != http.StatusOK || !bytes.Contains(b, []byte("could not show the whole action")) {
		t.Fatalf("Carl with Jane's token: %d %s", code, b)
	}
	if a := invoke("approve", map[string]any{"request_id": id, "decision": "allow", "full_view": string(m[1])}); a.Type != teamsCardType {
		t.Fatalf("approve from the full view answered %s", a)
	}
	a := v1Of(t, th.await(held))
	if !a.Approved || a.ActionDigest != fields["action_digest"].(string) {
		t.Fatalf("answer %+v", a)
	}
	checkAssertion(t, th.harness, a, want{sub: "jane@company.com", decision: "allow", status: "approved",
		assurance: "botframework_jwt", fields: fields})
}

// attackBody is the request that once made approvers see amount 10 while
// the binding, digest-checked and signed, said 1000000 to ACC-ATTACKER:
// context shadowing "parameters.amount", and filler keys pushing the bound
// parameters past what a message showed.
func attackBody(chain, version string, filler int) ([]byte, map[string]any) {
	ctx := intaketest.Object{{Key: "parameters", Value: intaketest.Object{{Key: "amount", Value: 10}, {Key: "destination", Value: "ACC-SAFE"}}}}
	for i := range filler {
		ctx = append(ctx, intaketest.KV{Key: fmt.Sprintf("a%02d", i), Value: "ok"})
	}
	return intaketest.V1Body(intaketest.V1{
		ApprovalChainID: chain, ApprovalChainVersion: version, IncludeBinding: true,
		Parameters: intaketest.Object{{Key: "amount", Value: 1000000}, {Key: "destination", Value: "ACC-ATTACKER"}},
		Context:    ctx,
	})
}

// boundBeforeContext checks that text shows the bound amount and
// destination, each right after its label, before anything from the
// context, and that the context's amount carries a context label.
func boundBeforeContext(t *testing.T, text, sep string) {
	t.Helper()
	amount := strings.Index(text, "parameters.amount"+sep+"1000000")
	dest := strings.Index(text, "parameters.destination"+sep+`"ACC-ATTACKER"`)
	ctx := strings.Index(text, "ACC-SAFE")
	if amount < 0 || dest < 0 {
		t.Fatalf("the bound amount 1000000 or destination ACC-ATTACKER is not shown:\n%s", text)
	}
	if ctx >= 0 && ctx < amount {
		t.Errorf("context is shown before the bound facts:\n%s", text)
	}
	if strings.Contains(text, "parameters.amount"+sep+"10\n") && !strings.Contains(text, "context.parameters.amount"+sep+"10") {
		t.Errorf("the context's amount is shown under the bound label:\n%s", text)
	}
}

func TestSlackAttackShowsTheBoundAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body, fields := attackBody("payments", "7", 9)
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	msg := h.waitMessages(id, 1)[0]
	boundBeforeContext(t, blockText(msg), "\n")
	// Small enough for one message: Approve is there and counts.
	h.click("U0JANE", "C0TREASURY", msg.TS, "approve", buttonValue(t, msg.Blocks, "approve"))
	if a := v1Of(t, h.await(held)); !a.Approved || a.ActionDigest != fields["action_digest"] {
		t.Fatalf("answer %+v", a)
	}
}

func TestTeamsAttackShowsTheBoundAction(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	if err := os.WriteFile(th.config, []byte(teamsConfig+teamsChainConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	th.startInstalled()
	body, _ := attackBody("payments", "7", 40)
	held := th.submit(body, auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	var runs strings.Builder
	var c struct {
		Body []struct {
			Text    string `json:"text"`
			Inlines []struct {
				Text string `json:"text"`
			} `json:"inlines"`
		} `json:"body"`
	}
	if err := json.Unmarshal(card.Card, &c); err != nil {
		t.Fatal(err)
	}
	for _, el := range c.Body {
		runs.WriteString(el.Text)
		for _, in := range el.Inlines {
			runs.WriteString(in.Text)
		}
		runs.WriteString("\n")
	}
	boundBeforeContext(t, runs.String(), "  ")
	// Small enough for one card: Approve is there and counts.
	if a := th.teamsClick(teamsJane, card, "allow"); a.Type != teamsCardType {
		t.Fatalf("approve answered %s", a)
	}
	if a := v1Of(t, th.await(held)); !a.Approved {
		t.Fatalf("answer %+v", a)
	}
}

// TestAuditShowIsTerminalSafe: an agent's escape sequences, bell and bidi
// override reach the operator's terminal only as visible escapes.
func TestAuditShowIsTerminalSafe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	hostile := "transfer \x1b]0;pwned\x07\x1b[2J\r\u202Eevil\u200b"
	body, _ := intaketest.LegacyBody(intaketest.Legacy{Action: hostile, AgentID: "agent\x1b[31m", Approvers: []string{}})
	id := h.pendingID(body)
	h.waitMessages(id, 1)
	h.stop()
	out, err := h.cli("audit", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\x07\r\u202E\u200b") {
		t.Fatalf("audit show passes control or bidi characters to the terminal: %q", out)
	}
	if !strings.Contains(out, `transfer \u001B]0;pwned\u0007\u001B[2J\r\u202Eevil\u200B`) {
		t.Errorf("audit show does not show the action with visible escapes:\n%s", out)
	}

	// To a terminal, export escapes what JSON leaves raw (bidi, zero-width)
	// and stays valid JSON; line breaks between records survive.
	var buf bytes.Buffer
	tw := &terminalWriter{w: &buf}
	fmt.Fprintf(tw, "{\"a\":\"x\u202Ey\"}\n{\"b\":")
	fmt.Fprintf(tw, "\"\u200b\"}")
	tw.Flush()
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != 2 || !json.Valid([]byte(lines[0])) || !json.Valid([]byte(lines[1])) || strings.ContainsAny(buf.String(), "\u202E\u200b") {
		t.Errorf("terminal export %q", buf.String())
	}
}

// TestSocketModeFullView: over Socket Mode the full view opens, pages,
// refuses a submission from another user (the refusal rides on the
// acknowledgement) and approves from its last page.
func TestSocketModeFullView(t *testing.T) {
	t.Parallel()
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)
	body, _ := intaketest.LegacyBody(intaketest.Legacy{RuleName: "approve-large-transfer", Approvers: []string{},
		Action: "transfer " + strings.Repeat("with a very long description that the agent insists on ", 60)})
	held := h.submit(body, auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	msg := messageIn(t, msgs, "C0TREASURY")
	if bytes.Contains(msg.Blocks, []byte(`"action_id":"approve"`)) {
		t.Fatalf("a 3,400-character action fits no message field, yet Approve is offered:\n%s", msg.Blocks)
	}
	env := h.slack.SendInteractive(slackfake.BlockActionPayload(slackfake.Click{UserID: "U0JANE", UserName: "jane",
		Channel: "C0TREASURY", MessageTS: msg.TS, ActionID: "view_all", Value: id, TriggerID: h.slack.Trigger("U0JANE")}))
	h.waitAcked(env)
	h.waitFor("the full view", func() bool { return len(h.slack.Views()) == 1 })
	view := h.slack.Views()[0]
	if view.Submit != "Approve" || !strings.Contains(blockText(slackfake.Message{Blocks: view.Blocks}), "with a very long description") {
		t.Fatalf("full view: submit %q\n%s", view.Submit, view.Blocks)
	}
	env = h.slack.SendInteractive(slackfake.ViewSubmissionPayload(view, "U0MALLORY", "mallory"))
	h.waitAcked(env)
	if p := h.slack.AckPayload(env); !bytes.Contains(p, []byte("someone else")) || !bytes.Contains(p, []byte(`"response_action":"update"`)) {
		t.Fatalf("another user's submission acknowledged with %s", p)
	}
	env = h.slack.SendInteractive(slackfake.ViewSubmissionPayload(view, "U0JANE", "jane"))
	got := h.await(held)
	if !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitAcked(env)
}
