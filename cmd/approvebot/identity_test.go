package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// Who a person is must not depend on anything the clicker's payload can
// vary, a click counts only for the message's own stage and groups, and an
// agent cannot pick its approvers by naming a rule.

// clickFrom sends a signed block_actions interaction whose team.id (and
// user.team_id) is team, as Slack sends from one workspace of an Enterprise
// Grid organisation or another.
func (h *harness) clickFrom(user, team, channel, ts, action, requestID string) {
	h.t.Helper()
	payload := slackfake.BlockActionPayload(slackfake.Click{
		UserID: user, UserName: strings.ToLower(user), TeamID: team, Channel: channel, MessageTS: ts,
		ActionID: action, Value: requestID,
	})
	r, err := h.slackClick(user, payload, signingSecret, h.now())
	if err != nil {
		h.t.Fatalf("click: %v", err)
	}
	if r.status != http.StatusOK {
		h.t.Fatalf("click answered %d", r.status)
	}
}

// identityConfig: "pair" needs two distinct approvers; "split" is a two-stage
// chain with separation of duties where Nora, who has no email, is in both
// stages; "grid" is approved by a member of a sister workspace.
const identityConfig = configHead + configOperations + `approvers:
  pair:
    slack:
      channels: [C0PAIR]
      users: [U0NOMAIL, U0JANE, W0GRACE]
  first:
    slack:
      channels: [C0FIRST]
      users: [U0NOMAIL, U0BOB]
  second:
    slack:
      channels: [C0SECOND]
      users: [U0NOMAIL, U0SAM]
  stray:
    slack:
      channels: [C0STRAY]
      users: [U0NOTEAM, U0JANE]
routes:
  - match: {rule_name: pair-transfer}
    approvers: [pair]
    quorum: 2
    timeout: 5m
  - match: {rule_name: stray-transfer}
    approvers: [stray]
    timeout: 5m
chains:
  split:
    version: "1"
    separation_of_duties: true
    timeout: 5m
    stages:
      - approvers: [first]
      - approvers: [second]
`

func newIdentityHarness(t *testing.T) *harness {
	h := newHarness(t, identityConfig)
	h.slack.AddUser("U0NOMAIL", "Nora", "")
	h.slack.AddUser("U0SAM", "Sam Security", "sam@company.com")
	h.slack.AddUserWithoutTeam("U0NOTEAM", "Nobody's", "")
	return h
}

// TestSlackPersonIsNotTheClicksTeam: one Slack user without an email,
// clicking with two team.id values, is one person: they cannot meet a
// quorum of 2 alone.
func TestSlackPersonIsNotTheClicksTeam(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t)
	h.start()
	held := h.submit(legacyBody("pair-transfer"), auth())
	msgs := h.waitMessagesIn(1)
	id := requestIDOf(t, msgs[0])
	pair := messageIn(t, msgs, "C0PAIR")
	h.clickFrom("U0NOMAIL", slackfake.TeamID, "C0PAIR", pair.TS, "approve", id)
	if got := h.told("U0NOMAIL", 1); !strings.Contains(got, "Your approval is recorded") {
		t.Fatalf("Nora was told %q", got)
	}
	h.clickFrom("U0NOMAIL", "T0SISTERWS", "C0PAIR", pair.TS, "approve", id)
	if got := h.told("U0NOMAIL", 2); !strings.Contains(got, "you already approved") {
		t.Fatalf("Nora, clicking again from another team, was told %q", got)
	}
	if r := h.status(id); r.answer.Status != "pending" || r.answer.Approved {
		t.Fatalf("one person met quorum 2 alone: %s", r.body)
	}
	h.click("U0JANE", "C0PAIR", pair.TS, "approve", id)
	got := h.await(held)
	want := "slack:" + slackfake.TeamID + "/U0NOMAIL (pair), jane@company.com (pair)"
	if !got.answer.Approved || !strings.Contains(got.answer.Reason, want) {
		t.Fatalf("agent got %s, want a reason naming %s", got.body, want)
	}
	if r := h.story(id).refusals(); !slices.Equal(r, []string{"already_voted"}) {
		t.Errorf("refusals audited: %v", r)
	}

}

// TestSlackSeparationOfDutiesAcrossTeams: Nora approves stage 1 from one
// team and is refused at stage 2 from another.
func TestSlackSeparationOfDutiesAcrossTeams(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t)
	h.start()
	body, fields := intaketest.V1Body(intaketest.V1{ApprovalChainID: "split", ApprovalChainVersion: "1"})
	chained := fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	first := h.messageAt(chained, "C0FIRST")
	h.waitPosted(chained, 1)
	// The buttons carry approvebot's id for the request, not the agent's.
	own := requestIDOf(t, first)
	h.clickFrom("U0NOMAIL", slackfake.TeamID, "C0FIRST", first.TS, "approve", own)
	second := h.messageAt(chained, "C0SECOND")
	h.waitPosted(chained, 2)
	h.clickFrom("U0NOMAIL", "T0SISTERWS", "C0SECOND", second.TS, "approve", own)
	if got := h.told("U0NOMAIL", 2); !strings.Contains(got, "you already approved stage 1") {
		t.Fatalf("Nora, at stage 2 from another team, was told %q", got)
	}
	if r := h.status(chained); r.answer.Status != "pending" || r.answer.Approved {
		t.Fatalf("one person approved both stages: %s", r.body)
	}
	if r := h.story(chained).refusals(); !slices.Equal(r, []string{"separation_of_duties_two_stages"}) {
		t.Errorf("refusals audited: %v", r)
	}

}

// TestSlackUserWithoutTeamIsNotOurs: users.info names no team for the
// clicker: not one of ours, whatever the click says.
func TestSlackUserWithoutTeamIsNotOurs(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t)
	h.start()
	stray := h.pendingID(legacyBody("stray-transfer"))
	m := h.messageAt(stray, "C0STRAY")
	h.waitPosted(stray, 1)
	h.clickFrom("U0NOTEAM", slackfake.TeamID, "C0STRAY", m.TS, "approve", stray)
	if got := h.told("U0NOTEAM", 1); !strings.Contains(got, "may not approve") {
		t.Fatalf("a user without a team was told %q", got)
	}
	if r := h.status(stray); r.answer.Status != "pending" {
		t.Fatalf("a user without a team decided: %s", r.body)
	}
	if r := h.story(stray).refusals(); !slices.Equal(r, []string{"account_ineligible"}) {
		t.Errorf("refusals audited: %v", r)
	}
}

// TestSlackGridMemberKeyedOnTheOrganisation: on Enterprise Grid a user id is
// org-wide; a member of a sister workspace may approve, is named by the
// organisation, and is still one person from any workspace.
func TestSlackGridMemberKeyedOnTheOrganisation(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t)
	h.slack.SetEnterprise("E0ORG")
	h.slack.AddGridUser("W0GRACE", "Grace", "", "T0SISTERWS", "E0ORG")
	h.start()
	held := h.submit(legacyBody("pair-transfer"), auth())
	id := requestIDOf(t, h.waitMessagesIn(1)[0])
	pair := h.messageAt(id, "C0PAIR")
	h.clickFrom("W0GRACE", "T0SISTERWS", "C0PAIR", pair.TS, "approve", id)
	h.told("W0GRACE", 1)
	h.clickFrom("W0GRACE", slackfake.TeamID, "C0PAIR", pair.TS, "approve", id)
	if got := h.told("W0GRACE", 2); !strings.Contains(got, "you already approved") {
		t.Fatalf("Grace, clicking again from another workspace, was told %q", got)
	}
	h.click("U0JANE", "C0PAIR", pair.TS, "approve", id)
	if got := h.await(held); !got.answer.Approved || !strings.Contains(got.answer.Reason, "slack:E0ORG/W0GRACE (pair)") {
		t.Fatalf("agent got %s", got.body)
	}
}

// TestClickCountsOnlyForItsMessage: a message speaks for the stage and the
// groups it was posted for. A stage 2 approver clicking the stage 1 message
// changes nothing.
func TestClickCountsOnlyForItsMessage(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()

	body, fields := chainBody("")
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	first := h.waitMessages(id, 1)[0]
	h.click("U0BOB", "C0TREASURY", first.TS, "approve", id)
	second := h.messageAt(id, "C0SECURITY")
	h.waitPosted(id, 2)
	// Sam (security, stage 2) clicks the stage 1 message in treasury-ops' channel.
	h.click("U0SAM", "C0TREASURY", first.TS, "approve", id)
	if got := h.told("U0SAM", 1); !strings.Contains(got, "this message asked stage 1 of 2 (treasury-ops)") ||
		!strings.Contains(got, "stage 2 (security)") {
		t.Fatalf("Sam, on the stage 1 message, was told %q", got)
	}
	if r := h.status(id); r.answer.Status != "pending" {
		t.Fatalf("a click on the stage 1 message decided stage 2: %s", r.body)
	}
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", id)
	if a := v1Of(t, h.await(held)); !a.Approved || a.Approver != "sam@company.com" {
		t.Fatalf("answer %+v", a)
	}
	if r := h.story(id).refusals(); !slices.Equal(r, []string{"message_of_another_stage"}) {
		t.Errorf("refusals audited: %v", r)
	}
}

// TestClickCountsOnlyForItsGroups: one stage, two groups in two channels:
// Carl (compliance) clicks the copy shown to treasury-ops.
func TestClickCountsOnlyForItsGroups(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	legacy := h.pendingID(legacyBody("approve-large-transfer"))
	treasury := h.messageAt(legacy, "C0TREASURY")
	compliance := h.messageAt(legacy, "C0COMPLIANCE")
	h.waitPosted(legacy, 2)
	h.click("U0CARL", "C0TREASURY", treasury.TS, "deny", legacy)
	if got := h.told("U0CARL", 1); !strings.Contains(got, "this message is for treasury-ops; you approve for compliance") {
		t.Fatalf("Carl, on treasury-ops' copy, was told %q", got)
	}
	if r := h.status(legacy); r.answer.Status != "pending" {
		t.Fatalf("a click on another group's copy decided: %s", r.body)
	}
	h.click("U0CARL", "C0COMPLIANCE", compliance.TS, "deny", legacy)
	if r := h.do(http.MethodGet, "/v1/approvals/"+legacy+"?wait=30", nil, auth()); r.answer.Status != "denied" || r.answer.Approver != "carl@company.com" {
		t.Fatalf("after Carl's click on his own copy: %s", r.body)
	}
	if r := h.story(legacy).refusals(); !slices.Equal(r, []string{"message_of_other_groups"}) {
		t.Errorf("refusals audited: %v", r)
	}
}

// callerConfig limits payments-agent to treasury-ops and the payments chain,
// and routes approve-large-transfer by caller: other-agent's to compliance,
// everyone else's to treasury-ops. lax-rule routes to compliance, which
// payments-agent may not ask.
var callerConfig = strings.Replace(configHead, "    token: ${PAYMENTS_AGENT_TOKEN}\n",
	"    token: ${PAYMENTS_AGENT_TOKEN}\n    may_request: [treasury-ops, payments]\n", 1) + configOperations + twoGroups + `routes:
  - match: {rule_name: approve-large-transfer, caller: other-agent}
    approvers: [compliance]
    timeout: 5m
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops]
    timeout: 5m
  - match: {rule_name: lax-rule}
    approvers: [compliance]
chains:
  payments:
    version: "7"
    stages:
      - approvers: [treasury-ops]
  high-risk-tools:
    version: "3"
    stages:
      - approvers: [compliance]
`

const otherToken = "other-agent-token-0123456789"

// TestRoutesByCallerAndMayRequest: routes can match the authenticated
// caller, and a caller limited by may_request is refused with 403, before
// anything is recorded, wherever else its request would go.
func TestRoutesByCallerAndMayRequest(t *testing.T) {
	t.Parallel()
	if !strings.Contains(callerConfig, "may_request") {
		t.Fatal("config edit did not apply")
	}
	h := newHarness(t, callerConfig)
	h.start()
	other := map[string]string{"Authorization": "Bearer " + otherToken, "Prefer": "respond-async"}

	// The same body goes where its caller's route says.
	mine := h.pendingID(legacyBody("approve-large-transfer"))
	theirs := h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"), other)
	if theirs.status != http.StatusAccepted {
		t.Fatalf("other-agent: %d %s", theirs.status, theirs.body)
	}
	h.messageAt(mine, "C0TREASURY")
	h.messageAt(theirs.answer.ApprovalRequestID, "C0COMPLIANCE")
	if n, m := h.slack.Posts("C0TREASURY"), h.slack.Posts("C0COMPLIANCE"); n != 1 || m != 1 {
		t.Fatalf("posts: treasury %d, compliance %d; want one each", n, m)
	}

	// Asking elsewhere: by its own approvers list, by a rule that routes to
	// a group it may not ask, or by a chain it may not ask.
	denied, _ := intaketest.V1Body(intaketest.V1{})
	for name, c := range map[string]struct {
		body []byte
		want string
	}{
		"approvers list": {legacyBody("some-rule", "treasury-ops", "compliance"), `may not request approval from "compliance"`},
		"laxer rule":     {legacyBody("lax-rule", "treasury-ops"), `may not request approval from "compliance"`},
		"chain":          {denied, `may not request approval chain "high-risk-tools"`},
	} {
		r := h.do(http.MethodPost, "/v1/approvals", c.body, auth())
		var e struct {
			Error, Code string
			Approved    bool
		}
		_ = json.Unmarshal(r.body, &e)
		if r.status != http.StatusForbidden || e.Code != "forbidden" || e.Approved ||
			!strings.Contains(e.Error, c.want) || !strings.Contains(e.Error, "treasury-ops, payments") {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// A chain it may ask.
	allowed, fields := intaketest.V1Body(intaketest.V1{ApprovalChainID: "payments", ApprovalChainVersion: "7"})
	if r := h.do(http.MethodPost, "/v1/approvals", allowed, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("payments chain: %d %s", r.status, r.body)
	}
	h.messageAt(fields["approval_request_id"].(string), "C0TREASURY")
	h.stop()

	// Nothing of the refused requests was written: three requests in the
	// audit log, three messages posted.
	if n := len(h.slack.Messages()); n != 3 {
		t.Errorf("%d messages posted, want 3", n)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"audit", "export", "--config", h.config}, h.getenv, &out, &errOut); err != nil {
		t.Fatalf("audit export: %v\n%s", err, errOut.String())
	}
	if n := strings.Count(out.String(), `"approval_requested"`); n != 3 {
		t.Errorf("%d approval_requested records, want 3:\n%s", n, out.String())
	}
}

// TestCheckValidatesCallerLimits: approvebot check names a may_request entry
// that is neither a group nor a chain, a route whose caller matches nobody,
// and a caller's route to where its may_request forbids.
func TestCheckValidatesCallerLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, callerConfig)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut); err != nil {
		t.Fatalf("check: %v", err)
	}
	if !strings.Contains(out.String(), "payments-agent (may request: treasury-ops, payments)") {
		t.Errorf("summary does not show the caller's limits:\n%s", out.String())
	}
	bad := strings.Replace(callerConfig, "may_request: [treasury-ops, payments]", "may_request: [treasury-ops, paymnets]", 1)
	bad = strings.Replace(bad, "caller: other-agent}", "caller: othr-agent}", 1)
	bad = strings.Replace(bad, "  - match: {rule_name: lax-rule}\n", "  - match: {rule_name: lax-rule, caller: payments-agent}\n", 1)
	if err := os.WriteFile(h.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut)
	for _, want := range []string{
		`callers[0].may_request: "paymnets" is neither an approver group (known: compliance, treasury-ops) nor a chain (known: high-risk-tools, payments)`,
		`routes[0].match.caller: "othr-agent" matches no caller (known: other-agent, payments-agent)`,
		`routes[2] sends caller "payments-agent"'s requests to "compliance", which its may_request does not list`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check: %v\nwant it to say: %s", err, want)
		}
	}
}

// upnConfig adds Teams groups listing Rick Stevens (Microsoft's sample
// member, whose email and UPN differ) by UPN, by email in another case, and
// by object id; guestConfig lists Gus, a guest, in a group that does not
// allow guests and one that does.
const (
	rickOID = "6a2c0000-0000-0000-0000-0000000001c4"
	gusOID  = "6a2c0000-0000-0000-0000-000000000905"
	gusUPN  = "gus_partner.example#EXT#@company.onmicrosoft.com"
)

var upnConfig = strings.Replace(teamsConfig, "routes:\n", `  by-upn:
    teams:
      channels: ["`+teamsApprovals+`"]
      users: [RStevens@Fabrikam.com]
  by-email:
    teams:
      channels: ["`+teamsApprovals+`"]
      users: [rick.stevens@FABRIKAM.com]
  by-oid:
    teams:
      channels: ["`+teamsApprovals+`"]
      users: [`+strings.ToUpper(rickOID)+`]
routes:
  - match: {rule_name: by-upn}
    approvers: [by-upn]
  - match: {rule_name: by-email}
    approvers: [by-email]
  - match: {rule_name: by-oid}
    approvers: [by-oid]
`, 1)

var guestConfig = strings.Replace(teamsConfig, "routes:\n", `  members-only:
    teams:
      channels: ["`+teamsApprovals+`"]
      users: [gus@partner.example, jane@company.com]
routes:
  - match: {rule_name: members-only}
    approvers: [members-only]
`, 1)

var guestsAllowedConfig = strings.Replace(teamsConfig, "routes:\n", `  guests-too:
    teams:
      channels: ["`+teamsApprovals+`"]
      users: [gus@partner.example]
      allow_guests: true
routes:
  - match: {rule_name: guests-too}
    approvers: [guests-too]
`, 1)

func newUPNHarness(t *testing.T, config string) *teamsHarness {
	t.Helper()
	th := newTeamsHarness(t)
	if err := os.WriteFile(th.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	th.teams.AddMember(teamsfake.User{AadObjectID: rickOID, Name: "Rick Stevens", Email: "Rick.Stevens@fabrikam.com", UPN: "rstevens@fabrikam.com"})
	th.teams.AddMember(teamsfake.User{AadObjectID: gusOID, Name: "Gus", Email: "gus@partner.example", UPN: gusUPN, Role: "guest"})
	return th
}

// TestTeamsApproverByUPNEmailOrObjectID: an approver is matched by object
// id, email or UPN (case aside), and the decision names the UPN.
func TestTeamsApproverByUPNEmailOrObjectID(t *testing.T) {
	t.Parallel()
	th := newUPNHarness(t, upnConfig)
	th.startInstalled()
	rick := teamsfake.From{AadObjectID: rickOID, Name: "Rick Stevens"}
	for i, rule := range []string{"by-upn", "by-email", "by-oid"} {
		held := th.submit(legacyBody(rule), auth())
		cards := th.teamsCards(teamsApprovals)
		th.teamsWait("card "+rule, func() bool { cards = th.teamsCards(teamsApprovals); return len(cards) > i })
		card := cards[i]
		th.waitPosted(teamsCardRequestID(t, card), 1)
		if ans := th.teamsClick(rick, card, "allow"); ans.Type != teamsCardType {
			t.Fatalf("%s: Rick was answered %v", rule, ans)
		}
		got := th.await(held)
		if !got.answer.Approved || got.answer.Approver != "rstevens@fabrikam.com" ||
			!strings.Contains(got.answer.Reason, "rstevens@fabrikam.com ("+rule+")") {
			t.Fatalf("%s: agent got %s, want approver rstevens@fabrikam.com (the UPN)", rule, got.body)
		}
	}
}

// TestTeamsGuestsRefused: a guest listed in a group may not approve for it
// unless the group allows guests.
func TestTeamsGuestsRefused(t *testing.T) {
	t.Parallel()
	th := newUPNHarness(t, guestConfig)
	th.startInstalled()
	id := th.pendingID(legacyBody("members-only"))
	card, _ := th.teamsCardIn(teamsApprovals, nil)
	if ans := th.teamsClick(teamsfake.From{AadObjectID: gusOID, Name: "Gus"}, card, "allow"); ans.Type != teamsMessageType ||
		!strings.Contains(ans.text(), "guest accounts may not approve for members-only") {
		t.Fatalf("Gus, a guest, was answered %v", ans)
	}
	if r := th.status(id); r.answer.Status != "pending" {
		t.Fatalf("a guest approved for a group that does not allow guests: %s", r.body)
	}
	if r := th.harness.story(id).refusals(); !slices.Equal(r, []string{"guest_not_allowed"}) {
		t.Errorf("refusals audited: %v", r)
	}
}

// TestTeamsGuestsAllowedByGroup: approvers.<group>.teams.allow_guests lets a
// listed guest decide; the decision names the guest's UPN.
func TestTeamsGuestsAllowedByGroup(t *testing.T) {
	t.Parallel()
	th := newUPNHarness(t, guestsAllowedConfig)
	th.startInstalled()
	held := th.submit(legacyBody("guests-too"), auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	if ans := th.teamsClick(teamsfake.From{AadObjectID: gusOID, Name: "Gus"}, card, "allow"); ans.Type != teamsCardType {
		t.Fatalf("Gus, in a group allowing guests, was answered %v", ans)
	}
	if got := th.await(held); !got.answer.Approved || got.answer.Approver != gusUPN {
		t.Fatalf("agent got %s", got.body)
	}
}
