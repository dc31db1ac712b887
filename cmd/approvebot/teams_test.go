package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

// The Teams end-to-end tests run the real program against teamsfake, a
// loopback Bot Framework (signing keys, token endpoint, Bot Connector), and
// slackfake, and send it activities signed as the Bot Framework signs them.

const (
	teamsTeamID     = "19:payments-general@thread.tacv2"
	teamsTeamName   = "Payments"
	teamsApprovals  = "19:approvals@thread.tacv2"
	teamsTreasury   = "19:treasury@thread.tacv2"
	teamsCrowd      = "19:crowd@thread.tacv2"
	teamsNeverAdded = "19:never-added@thread.tacv2"
	teamsCrowdSize  = 20
)

// Teams people. Jane has the same email on Slack and Teams; Sam's Teams
// account has no email, so the config lists him by Entra object id.
var (
	teamsJane    = teamsfake.From{AadObjectID: "6a2c0000-0000-0000-0000-00000000beef", Name: "Jane Doe"}
	teamsCarl    = teamsfake.From{AadObjectID: "6a2c0000-0000-0000-0000-00000000ca71", Name: "Carl"}
	teamsSam     = teamsfake.From{AadObjectID: "6a2c0000-0000-0000-0000-0000000005a3", Name: "Sam"}
	teamsMallory = teamsfake.From{AadObjectID: "6a2c0000-0000-0000-0000-0000000bad00", Name: "Mallory"}
)

func teamsCrowdMember(i int) teamsfake.From {
	return teamsfake.From{AadObjectID: fmt.Sprintf("00000000-0000-0000-0000-%012d", 100+i), Name: fmt.Sprintf("Teams Approver %02d", i)}
}

func teamsCrowdEmail(i int) string { return fmt.Sprintf("crowd-teams-%02d@company.com", i) }

func slackCrowdMember(i int) string { return fmt.Sprintf("U0CROWD%02d", i) }

// teamsConfig has groups on Teams only (payments-teams), on Slack and Teams
// (treasury-both, crowd), and one whose channel the bot was never added to.
var teamsConfig = func() string {
	var crowd []string
	for i := range teamsCrowdSize {
		crowd = append(crowd, teamsCrowdEmail(i))
	}
	return configHead + `teams:
  app_id: ${TEAMS_APP_ID}
  app_password: ${TEAMS_APP_PASSWORD}
  tenant_id: ${TEAMS_TENANT_ID}
  openid_metadata_url: ${TEAMS_OPENID_METADATA_URL}
  token_url: ${TEAMS_TOKEN_URL}
` + configOperations + `approvers:
  payments-teams:
    teams:
      channels: ["` + teamsApprovals + `"]
      users: [jane@company.com, carl@company.com, ` + teamsSam.AadObjectID + `]
  treasury-both:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
    teams:
      channels: ["` + teamsTreasury + `"]
      users: [jane@company.com]
  crowd:
    slack:
      channels: [C0CROWD]
      usergroups: [S0CROWD]
    teams:
      channels: ["` + teamsCrowd + `"]
      users: [` + strings.Join(crowd, ", ") + `]
  not-added:
    teams:
      channels: ["` + teamsNeverAdded + `"]
      users: [jane@company.com]
routes:
  - match: {rule_name: teams-transfer}
    approvers: [payments-teams]
    timeout: 5m
  - match: {rule_name: both-transfer}
    approvers: [treasury-both]
    timeout: 5m
  - match: {rule_name: crowd-transfer}
    approvers: [crowd]
    timeout: 5m
  - match: {rule_name: not-added-transfer}
    approvers: [not-added]
    timeout: 5m
  - match: {rule_name: partly-added-transfer}
    approvers: [payments-teams, not-added]
    timeout: 5m
  - match: {rule_name: teams-careful}
    approvers: [payments-teams]
    reason: {deny: required, approve: optional}
    confirm_approve: true
    timeout: 5m
`
}()

// teamsHarness is the harness with Teams: a teamsfake whose team Payments
// has the channels the config names (except the one never added).
type teamsHarness struct {
	*harness
	teams *teamsfake.Fake
}

func newTeamsHarness(t *testing.T) *teamsHarness {
	t.Helper()
	return newTeamsHarnessWith(t, teamsConfig)
}

// newTeamsHarnessWith is newTeamsHarness with another configuration, whose
// teams section is teamsConfig's.
func newTeamsHarnessWith(t *testing.T, config string) *teamsHarness {
	t.Helper()
	h := newHarness(t, config)
	f := teamsfake.New(t)
	for k, v := range map[string]string{
		"TEAMS_APP_ID":              f.AppID,
		"TEAMS_APP_PASSWORD":        f.AppPassword,
		"TEAMS_TENANT_ID":           f.TenantID,
		"TEAMS_OPENID_METADATA_URL": f.MetadataURL(),
		"TEAMS_TOKEN_URL":           f.TokenURL(),
	} {
		h.env[k] = v
	}
	f.AddChannel(teamsTeamID, teamsApprovals, "approvals")
	f.AddChannel(teamsTeamID, teamsTreasury, "treasury")
	f.AddChannel(teamsTeamID, teamsCrowd, "crowd")
	f.AddUser(teamsJane.AadObjectID, teamsJane.Name, "jane@company.com")
	f.AddUser(teamsCarl.AadObjectID, teamsCarl.Name, "carl@company.com")
	f.AddUser(teamsSam.AadObjectID, teamsSam.Name, "")
	f.AddUser(teamsMallory.AadObjectID, teamsMallory.Name, "mallory@company.com")
	for i := range teamsCrowdSize {
		m := teamsCrowdMember(i)
		f.AddUser(m.AadObjectID, m.Name, teamsCrowdEmail(i))
	}
	var slackCrowd []string
	for i := range teamsCrowdSize {
		id := slackCrowdMember(i)
		h.slack.AddUser(id, fmt.Sprintf("Slack Approver %02d", i), strings.ToLower(id)+"@company.com")
		slackCrowd = append(slackCrowd, id)
	}
	h.slack.AddUsergroup("S0CROWD", slackCrowd...)
	return &teamsHarness{harness: h, teams: f}
}

// startInstalled starts approvebot and adds the app to the Payments team,
// as Teams announces it.
func (th *teamsHarness) startInstalled() {
	th.t.Helper()
	th.start()
	th.install()
}

func (th *teamsHarness) install() {
	th.t.Helper()
	if code, body := th.sendActivity(th.teams.BotAddedToTeam(teamsTeamID, teamsTeamName, teamsfake.From{AadObjectID: teamsCarl.AadObjectID, Name: "Carl"})); code != http.StatusOK {
		th.t.Fatalf("app added to team: HTTP %d %s\nlogs:\n%s", code, body, th.logs)
	}
}

// sendActivity signs an activity as the Bot Framework does and posts it to
// the messaging endpoint.
func (th *teamsHarness) sendActivity(a teamsfake.Activity, opts ...teamsfake.SignOption) (int, []byte) {
	th.t.Helper()
	body, header, err := th.teams.SignActivity(a, opts...)
	if err != nil {
		th.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, th.url+"/teams/messages", bytes.NewReader(body))
	if err != nil {
		th.t.Fatal(err)
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		th.t.Fatalf("send activity: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// teamsAnswer is the body of an invoke answer, what Teams shows the clicker.
type teamsAnswer struct {
	StatusCode int             `json:"statusCode"`
	Type       string          `json:"type"`
	Value      json.RawMessage `json:"value"`
}

const (
	teamsCardType    = "application/vnd.microsoft.card.adaptive"
	teamsMessageType = "application/vnd.microsoft.activity.message"
)

func (a teamsAnswer) String() string {
	return fmt.Sprintf("%d %s %s", a.StatusCode, a.Type, a.Value)
}

// text is the private message of a refused click, or "".
func (a teamsAnswer) text() string {
	var s string
	if a.Type == teamsMessageType {
		_ = json.Unmarshal(a.Value, &s)
	}
	return s
}

// teamsClick presses Approve or Deny on a card, as an Action.Execute invoke.
func (th *teamsHarness) teamsClick(who teamsfake.From, card teamsfake.Sent, decision string) teamsAnswer {
	th.t.Helper()
	verb := map[string]string{"allow": "approve", "deny": "deny"}[decision]
	thread := teamsfake.Thread{ChannelID: card.ChannelID, Conversation: card.ConversationID, ActivityID: card.ActivityID}
	code, body := th.sendActivity(th.teams.ExecuteClick(who, thread, verb, teamsCardRequestID(th.t, card), decision))
	if code != http.StatusOK {
		th.t.Fatalf("click answered HTTP %d %s", code, body)
	}
	var a teamsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		th.t.Fatalf("invoke answer %s: %v", body, err)
	}
	return a
}

func (th *teamsHarness) teamsWait(what string, cond func() bool) {
	th.t.Helper()
	waitOn(th.t, th.teams, what, th.logs, cond)
}

// teamsCards returns the cards posted in channel.
func (th *teamsHarness) teamsCards(channel string) []teamsfake.Sent {
	var out []teamsfake.Sent
	for _, p := range th.teams.Posted() {
		if p.ChannelID == channel {
			out = append(out, p)
		}
	}
	return out
}

// teamsCardIn waits for the first card in channel and for approvebot to have
// recorded it, and returns it with its request id. held is the agent's
// pending answer, or nil: an answer before any card is a failure at once.
func (th *teamsHarness) teamsCardIn(channel string, held <-chan response) (teamsfake.Sent, string) {
	th.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(th.teamsCards(channel)) == 0 {
		select {
		case r := <-held:
			th.t.Fatalf("the agent was answered before a card reached %s: %d %s\nlogs:\n%s", channel, r.status, r.body, th.logs)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			th.t.Fatalf("no card in %s\nlogs:\n%s", channel, th.logs)
		}
	}
	card := th.teamsCards(channel)[0]
	id := teamsCardRequestID(th.t, card)
	th.waitPosted(id, 1)
	return card, id
}

// teamsUpdates returns the updates of the card, oldest first.
func (th *teamsHarness) teamsUpdates(card teamsfake.Sent) []teamsfake.Sent {
	var out []teamsfake.Sent
	for _, u := range th.teams.Updated() {
		if u.ConversationID == card.ConversationID && u.ActivityID == card.ActivityID {
			out = append(out, u)
		}
	}
	return out
}

// teamsWaitCard waits until the latest version of the card satisfies cond.
func (th *teamsHarness) teamsWaitCard(what string, card teamsfake.Sent, cond func(json.RawMessage) bool) json.RawMessage {
	th.t.Helper()
	var latest json.RawMessage
	th.teamsWait(what, func() bool {
		ups := th.teamsUpdates(card)
		if len(ups) == 0 {
			return false
		}
		latest = ups[len(ups)-1].Card
		return cond(latest)
	})
	return latest
}

func hasButtons(card []byte) bool { return bytes.Contains(card, []byte("Action.Execute")) }

var teamsRequestIDPattern = regexp.MustCompile(`"request_id":"(ar_[0-9a-f]+)"`)

// teamsCardRequestID reads the request id from the card's Approve button.
func teamsCardRequestID(t *testing.T, card teamsfake.Sent) string {
	t.Helper()
	m := teamsRequestIDPattern.FindSubmatch(card.Card)
	if m == nil {
		t.Fatalf("no request id in card %s", card.Card)
	}
	return string(m[1])
}

// story is what the admin API says about a request.
type teamsStory struct {
	Request struct {
		Status       string `json:"status"`
		Destinations []struct {
			Platform string `json:"platform"`
			Channel  string `json:"channel"`
			State    string `json:"state"`
			Error    string `json:"error"`
		} `json:"destinations"`
	} `json:"request"`
}

func (th *teamsHarness) story(id string) teamsStory {
	th.t.Helper()
	r := th.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	var s teamsStory
	if err := json.Unmarshal(r.body, &s); err != nil {
		th.t.Fatalf("admin story %d %s: %v", r.status, r.body, err)
	}
	return s
}

func TestTeamsCardPostedAndApproved(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	card, id := th.teamsCardIn(teamsApprovals, held)

	// The card went to the channel's own thread, in our tenant, with buttons.
	if card.TenantID != th.teams.TenantID || !strings.Contains(card.ConversationID, teamsApprovals+";messageid=") {
		t.Fatalf("card posted as %+v", card)
	}
	for _, want := range []string{"Approval needed", `"text":"action"`, `"text":"\"transfer\""`, "payments-agent", "payments-teams", id} {
		if !bytes.Contains(card.Card, []byte(want)) {
			t.Errorf("card does not show %q: %s", want, card.Card)
		}
	}
	if !hasButtons(card.Card) {
		t.Fatalf("card has no buttons: %s", card.Card)
	}

	ans := th.teamsClick(teamsJane, card, "allow")
	if ans.StatusCode != http.StatusOK || ans.Type != teamsCardType || !bytes.Contains(ans.Value, []byte("Approved by Jane Doe")) || hasButtons(ans.Value) {
		t.Fatalf("Jane was answered %v", ans)
	}
	got := th.await(held)
	if got.status != http.StatusOK || !got.answer.Approved || got.answer.Status != "approved" ||
		got.answer.Approver != "jane@company.com" || got.answer.ApprovalRequestID != id {
		t.Fatalf("agent got %d %s", got.status, got.body)
	}
	// Everyone in the channel sees the outcome, who and when, and no buttons.
	final := th.teamsWaitCard("card shows the outcome", card, func(c json.RawMessage) bool { return !hasButtons(c) })
	if !bytes.Contains(final, []byte("Approved by Jane Doe at ")) {
		t.Fatalf("updated card: %s", final)
	}
	th.stop()
	if n := len(th.teamsUpdates(card)); n != 1 {
		t.Fatalf("card updated %d times, want 1", n)
	}
}

func TestTeamsApproverWithoutEmail(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	if ans := th.teamsClick(teamsSam, card, "allow"); ans.Type != teamsCardType {
		t.Fatalf("Sam was answered %v", ans)
	}
	got := th.await(held)
	want := "teams:" + th.teams.TenantID + "/" + teamsSam.AadObjectID
	if !got.answer.Approved || got.answer.Approver != want {
		t.Fatalf("agent got %s, want approver %s", got.body, want)
	}
}

func TestTeamsDeny(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	card, _ := th.teamsCardIn(teamsApprovals, held)
	ans := th.teamsClick(teamsCarl, card, "deny")
	if ans.Type != teamsCardType || !bytes.Contains(ans.Value, []byte("Denied by Carl")) {
		t.Fatalf("Carl was answered %v", ans)
	}
	got := th.await(held)
	if got.answer.Approved || got.answer.Status != "denied" || got.answer.Approver != "carl@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	final := th.teamsWaitCard("card says denied", card, func(c json.RawMessage) bool { return !hasButtons(c) })
	if !bytes.Contains(final, []byte("Denied by Carl at ")) {
		t.Fatalf("updated card: %s", final)
	}
}

func TestTeamsUnauthorisedAndLateClicks(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	card, id := th.teamsCardIn(teamsApprovals, held)

	// Mallory is not an approver: only she is told, in her invoke answer.
	ans := th.teamsClick(teamsMallory, card, "allow")
	if ans.StatusCode != http.StatusOK || ans.Type != teamsMessageType || !strings.Contains(ans.text(), "not an approver for payments-teams") {
		t.Fatalf("Mallory was answered %v", ans)
	}
	if st := th.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); st.answer.Status != "pending" || st.answer.Approved {
		t.Fatalf("after an unauthorised click: %s", st.body)
	}

	if ans := th.teamsClick(teamsJane, card, "allow"); ans.Type != teamsCardType {
		t.Fatalf("Jane was answered %v", ans)
	}
	if got := th.await(held); !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	th.teamsWaitCard("card shows the outcome", card, func(c json.RawMessage) bool { return !hasButtons(c) })

	// Carl clicks after the decision: he is told, nothing changes.
	late := th.teamsClick(teamsCarl, card, "deny")
	if late.Type != teamsMessageType || !strings.Contains(late.text(), "already approved by Jane Doe") {
		t.Fatalf("late clicker was answered %v", late)
	}
	if st := th.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); !st.answer.Approved || st.answer.Approver != "jane@company.com" {
		t.Fatalf("after a late click: %s", st.body)
	}
	th.stop()
	// The shared card changed once, for Jane's decision; refusals are private.
	if ups := th.teamsUpdates(card); len(ups) != 1 || !bytes.Contains(ups[0].Card, []byte("Approved by Jane Doe")) {
		t.Fatalf("card updates: %d", len(ups))
	}
}

func TestTeamsForgedClicksRefused(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	id := th.pendingID(legacyBody("teams-transfer"))
	card, _ := th.teamsCardIn(teamsApprovals, nil)
	thread := teamsfake.Thread{ChannelID: card.ChannelID, Conversation: card.ConversationID, ActivityID: card.ActivityID}
	click := th.teams.ExecuteClick(teamsJane, thread, "approve", id, "allow")
	for name, c := range map[string]struct {
		opts   []teamsfake.SignOption
		status int
	}{
		"unsigned":       {[]teamsfake.SignOption{teamsfake.Unsigned()}, http.StatusUnauthorized},
		"expired token":  {[]teamsfake.SignOption{teamsfake.Expired()}, http.StatusUnauthorized},
		"other audience": {[]teamsfake.SignOption{teamsfake.WithAudience("99999999-2222-3333-4444-555555555555")}, http.StatusUnauthorized},
		"unknown key":    {[]teamsfake.SignOption{teamsfake.UnknownKey()}, http.StatusUnauthorized},
		"other tenant":   {[]teamsfake.SignOption{teamsfake.WithTenant("bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee")}, http.StatusForbidden},
	} {
		if code, body := th.sendActivity(click, c.opts...); code != c.status {
			t.Errorf("%s: HTTP %d %s, want %d", name, code, body, c.status)
		}
	}
	if st := th.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); st.answer.Status != "pending" {
		t.Fatalf("forged clicks changed the request: %s", st.body)
	}
	if n := th.teams.MemberLookups(); n != 0 {
		t.Fatalf("forged clicks caused %d member lookups", n)
	}
}

func TestTeamsTimeoutUpdatesCard(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.clock = bot.NewManualClock(time.Now())
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth("Prefer", "wait=1"))
	card, _ := th.teamsCardIn(teamsApprovals, held)
	th.clock.Advance(time.Second)
	got := th.await(held)
	if got.answer.Approved || got.answer.Status != "timed_out" || got.answer.Approver != "system:timeout" {
		t.Fatalf("agent got %s", got.body)
	}
	final := th.teamsWaitCard("card says expired", card, func(c json.RawMessage) bool { return !hasButtons(c) })
	if !bytes.Contains(final, []byte("Expired at ")) {
		t.Fatalf("updated card: %s", final)
	}
	late := th.teamsClick(teamsJane, card, "allow")
	if late.Type != teamsMessageType || !strings.Contains(late.text(), "expired") {
		t.Fatalf("click after expiry answered %v", late)
	}
}

func TestTeamsClickResolvesSlackCopyToo(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("both-transfer"), auth())
	card, id := th.teamsCardIn(teamsTreasury, held)
	slackMsgs := th.waitMessages(id, 1)
	th.waitPosted(id, 2)
	if len(slackMsgs) != 1 || slackMsgs[0].Channel != "C0TREASURY" || !slackMsgs[0].Actionable {
		t.Fatalf("Slack copies %+v", slackMsgs)
	}

	if ans := th.teamsClick(teamsJane, card, "allow"); ans.Type != teamsCardType {
		t.Fatalf("Jane was answered %v", ans)
	}
	got := th.await(held)
	if !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	th.waitFor("Slack copy shows the Teams decision", func() bool {
		m := th.messages(id)
		return len(m) == 1 && !m[0].Actionable && strings.Contains(string(m[0].Blocks), "Approved by Jane Doe")
	})
	th.teamsWaitCard("Teams copy shows the decision", card, func(c json.RawMessage) bool {
		return !hasButtons(c) && bytes.Contains(c, []byte("Approved by Jane Doe"))
	})
}

func TestTeamsAndSlackConcurrentClicksDecideOnce(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("crowd-transfer"), auth())
	card, id := th.teamsCardIn(teamsCrowd, held)
	slackMsg := th.waitMessages(id, 1)[0]
	th.waitPosted(id, 2)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var teamsAnswers []teamsAnswer
	for i := range teamsCrowdSize {
		decision, action := "allow", "approve"
		if i%2 == 1 {
			decision, action = "deny", "deny"
		}
		wg.Go(func() {
			a := th.teamsClick(teamsCrowdMember(i), card, decision)
			mu.Lock()
			teamsAnswers = append(teamsAnswers, a)
			mu.Unlock()
		})
		wg.Go(func() {
			if r := th.click(slackCrowdMember(i), "C0CROWD", slackMsg.TS, action, id); r.status != http.StatusOK {
				t.Errorf("Slack click answered %d", r.status)
			}
		})
	}
	wg.Wait()
	got := th.await(held)
	if got.answer.Status != "approved" && got.answer.Status != "denied" {
		t.Fatalf("agent got %s", got.body)
	}
	th.waitFor("every Slack clicker told", func() bool { return len(th.slack.Ephemerals()) >= teamsCrowdSize })

	decided := 0
	for _, a := range teamsAnswers {
		switch {
		case a.Type == teamsCardType:
			decided++
		case !strings.Contains(a.text(), "Nothing changed: already"):
			t.Errorf("a refused Teams clicker was told %q", a.text())
		}
	}
	for _, e := range th.slack.Ephemerals() {
		switch {
		case strings.HasPrefix(e.Text, "You approved") || strings.HasPrefix(e.Text, "You denied"):
			decided++
		case !strings.Contains(e.Text, "Nothing changed: already"):
			t.Errorf("a refused Slack clicker was told %q", e.Text)
		}
	}
	if decided != 1 {
		t.Fatalf("%d clicks decided the request, want exactly 1", decided)
	}

	th.waitFor("Slack copy final", func() bool { m := th.messages(id); return len(m) == 1 && !m[0].Actionable })
	th.teamsWaitCard("Teams copy final", card, func(c json.RawMessage) bool { return !hasButtons(c) })
	th.stop() // flush: no update may still be in flight
	if m := th.messages(id); m[0].Updates != 1 {
		t.Errorf("Slack message updated %d times, want 1", m[0].Updates)
	}
	if n := len(th.teamsUpdates(card)); n != 1 {
		t.Errorf("Teams card updated %d times, want 1", n)
	}
}

func TestTeamsChannelNeverAddedIsUndeliverable(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	got := th.await(th.submit(legacyBody("not-added-transfer"), auth()))
	if got.answer.Approved || got.answer.Status != "undeliverable" ||
		!strings.Contains(got.answer.Reason, teamsNeverAdded) || !strings.Contains(got.answer.Reason, "never added") {
		t.Fatalf("agent got %s", got.body)
	}
	if n := th.teams.Requests(teamsfake.KindCreate); n != 0 {
		t.Fatalf("%d posts reached Teams for a channel the bot is not in", n)
	}
}

func TestTeamsOneChannelNeverAdded(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("partly-added-transfer"), auth())
	card, id := th.teamsCardIn(teamsApprovals, held)
	// The reachable card warns its readers that the other channel was missed.
	th.teamsWaitCard("notice on the reachable card", card, func(c json.RawMessage) bool {
		return bytes.Contains(c, []byte("Not delivered to teams "+teamsNeverAdded)) && bytes.Contains(c, []byte("install the app"))
	})
	var failed bool
	for _, d := range th.story(id).Request.Destinations {
		if d.Channel == teamsNeverAdded {
			failed = d.State == "failed" && strings.Contains(d.Error, "never added to the team")
		}
	}
	if !failed {
		t.Fatalf("destination %s not recorded as failed: %+v", teamsNeverAdded, th.story(id))
	}
	th.teamsClick(teamsJane, card, "allow")
	if got := th.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
}

func TestTeamsRateLimitedThenPosted(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.clock = bot.NewManualClock(time.Now())
	th.startInstalled()
	th.teams.FailNext(1, http.StatusTooManyRequests, time.Second)
	idle := th.clock.Timers()
	id := th.pendingID(legacyBody("teams-transfer"))
	// The request's deadline is armed, then the rate-limited post's retry.
	th.waitTimers(idle + 2)
	// Retry-After: 1 is honoured: nothing is tried again before a second.
	th.clock.Advance(time.Second - time.Millisecond)
	if n := th.clock.Timers(); n != idle+2 {
		t.Fatalf("%d timers pending before Retry-After has passed, want %d: the retry ran early", n, idle+2)
	}
	if n := th.teams.Requests(teamsfake.KindCreate); n != 1 {
		t.Fatalf("%d create requests before Retry-After has passed, want 1", n)
	}
	th.clock.Advance(time.Second) // past Retry-After and the retry's jitter
	card, _ := th.teamsCardIn(teamsApprovals, nil)
	if n := th.teams.Requests(teamsfake.KindCreate); n != 2 {
		t.Fatalf("%d create requests, want 2 (one rate-limited, one posted)", n)
	}
	th.teamsClick(teamsJane, card, "allow")
	if got := th.finalStatus(callerToken, id); !got.Approved {
		t.Fatalf("agent got %+v", got)
	}
}

func TestTeamsBotNotInConversationIsPermanent(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	th.teams.FailNext(1, http.StatusForbidden, 0)
	got := th.await(th.submit(legacyBody("teams-transfer"), auth()))
	if got.answer.Approved || got.answer.Status != "undeliverable" || !strings.Contains(got.answer.Reason, "BotNotInConversationRoster") {
		t.Fatalf("agent got %s", got.body)
	}
	if n := th.teams.Requests(teamsfake.KindCreate); n != 1 {
		t.Fatalf("%d create requests, want 1: a 403 is not retried", n)
	}
}

func TestTeamsChannelsCommand(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()

	check := func(how, out string) {
		t.Helper()
		for _, want := range []string{
			teamsTeamName, "General", teamsTeamID, "approvals", teamsApprovals,
			"treasury", teamsTreasury, "crowd", teamsCrowd, th.teams.TenantID,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", how, want, out)
			}
		}
		if strings.Contains(out, teamsNeverAdded) {
			t.Errorf("%s: lists a channel the bot was never added to:\n%s", how, out)
		}
		// Each channel's name and id share a line, so an operator can copy the id.
		for name, id := range map[string]string{"approvals": teamsApprovals, "General": teamsTeamID} {
			if !regexp.MustCompile(`(?m)^.*\b` + name + `\b.*` + regexp.QuoteMeta(id) + `.*$`).MatchString(out) {
				t.Errorf("%s: no line with %s and %s:\n%s", how, name, id, out)
			}
		}
	}

	// While the server holds the store, the command asks it over the admin
	// API, at the address the config names.
	addr := strings.TrimPrefix(th.url, "http://")
	cfgText, err := os.ReadFile(th.config)
	if err != nil {
		t.Fatal(err)
	}
	running := filepath.Join(th.dir, "running.yaml")
	if err := os.WriteFile(running, bytes.Replace(cfgText, []byte("listen: 127.0.0.1:0"), []byte("listen: "+addr), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"teams", "channels", "--config", running}, th.getenv, &out, &errOut); err != nil {
		t.Fatalf("teams channels (server running): %v\n%s", err, errOut.String())
	}
	check("server running", out.String())

	// Stopped: it reads the store file.
	th.stop()
	out.Reset()
	errOut.Reset()
	if err := run(context.Background(), bot.SystemClock{}, []string{"teams", "channels", "--config", th.config}, th.getenv, &out, &errOut); err != nil {
		t.Fatalf("teams channels (server stopped): %v\n%s", err, errOut.String())
	}
	check("server stopped", out.String())
}

func TestTeamsChannelsCommandBeforeInstall(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.start()
	th.stop()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"teams", "channels", "--config", th.config}, th.getenv, &out, &errOut); err != nil {
		t.Fatalf("teams channels: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "no Teams channels known yet") {
		t.Fatalf("output: %s", out.String())
	}
}

func TestTeamsPackageCommand(t *testing.T) {
	t.Parallel()
	const appID = "0d3f5c1e-8a2b-4c6d-9e0f-1a2b3c4d5e6f"
	dir := t.TempDir()
	zipPath := filepath.Join(dir, "approvebot-teams.zip")
	var out, errOut bytes.Buffer
	noEnv := func(string) (string, bool) { return "", false }
	if err := run(context.Background(), bot.SystemClock{}, []string{"teams", "package", "--app-id", appID, "--out", zipPath}, noEnv, &out, &errOut); err != nil {
		t.Fatalf("teams package: %v\n%s", err, errOut.String())
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]bool{}
	var manifest struct {
		ID   string `json:"id"`
		Bots []struct {
			BotID string `json:"botId"`
		} `json:"bots"`
		Icons struct{ Color, Outline string } `json:"icons"`
	}
	for _, f := range zr.File {
		files[f.Name] = true
		if f.Name != "manifest.json" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(rc).Decode(&manifest)
		rc.Close()
		if err != nil {
			t.Fatalf("manifest.json: %v", err)
		}
	}
	if manifest.ID != appID || len(manifest.Bots) != 1 || manifest.Bots[0].BotID != appID {
		t.Fatalf("manifest %+v, want id and botId %s", manifest, appID)
	}
	if !files["manifest.json"] || !files[manifest.Icons.Color] || !files[manifest.Icons.Outline] {
		t.Fatalf("package holds %v", files)
	}
	if !strings.Contains(out.String(), zipPath) {
		t.Errorf("output does not name the file: %s", out.String())
	}

	bad := filepath.Join(dir, "bad.zip")
	err = run(context.Background(), bot.SystemClock{}, []string{"teams", "package", "--app-id", "my-bot", "--out", bad}, noEnv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "not a GUID") {
		t.Fatalf("bad app id: %v", err)
	}
	if _, statErr := os.Stat(bad); !os.IsNotExist(statErr) {
		t.Fatalf("a failed package left %s behind", bad)
	}
}
