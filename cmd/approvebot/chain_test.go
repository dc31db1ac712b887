package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// chainConfig adds schema 1.0 chains to the legacy routes of baseConfig:
// high-risk-tools (AGT's default chain id in intaketest) asks treasury-ops,
// then security, with separation of duties; payments is one stage. Jane is
// in both stages' groups (security lists her by email), so separation of
// duties has someone to stop.
const chainConfig = configHead + configOperations + `approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE, U0BOB]
  compliance:
    slack:
      channels: [C0COMPLIANCE]
      usergroups: [S0COMPLIANCE]
  security:
    slack:
      channels: [C0SECURITY]
      users: [U0SAM, jane@company.com]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops, compliance]
    quorum: any
    timeout: 5m
chains:
  high-risk-tools:
    version: "3"
    separation_of_duties: true
    timeout: 5m
    stages:
      - approvers: [treasury-ops]
      - approvers: [security]
  payments:
    version: "7"
    stages:
      - approvers: [treasury-ops]
`

// newChainHarness is a harness on chainConfig with Sam, the security approver.
func newChainHarness(t *testing.T) *harness {
	h := newHarness(t, chainConfig)
	h.slack.AddUser("U0SAM", "Sam Security", "sam@company.com")
	return h
}

// chainBody is a schema 1.0 body for the two-stage chain.
func chainBody(subject string) ([]byte, map[string]any) {
	o := intaketest.V1{}
	if subject != "" {
		o.SubjectID = intaketest.Str(subject)
	}
	return intaketest.V1Body(o)
}

// messageAt waits for the request's message in channel, and for the store
// to record it, so that a click on it counts.
func (h *harness) messageAt(id, channel string) slackfake.Message {
	h.t.Helper()
	var got slackfake.Message
	h.waitFor("a message for "+id+" in "+channel, func() bool {
		for _, m := range h.messages(id) {
			if m.Channel == channel {
				got = m
				return true
			}
		}
		return false
	})
	h.waitPosted(id, 1, got.TS)
	return got
}

// told waits for the n-th ephemeral to user and returns its text.
func (h *harness) told(user string, n int) string {
	h.t.Helper()
	h.waitFor("ephemeral to "+user, func() bool { return len(h.ephemeralsFor(user)) >= n })
	return h.ephemeralsFor(user)[n-1].Text
}

func (h *harness) status(id string) response {
	h.t.Helper()
	return h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth())
}

// story is the request as the admin API shows it.
type story struct {
	Request struct {
		Status       string `json:"status"`
		Destinations []struct {
			Channel string `json:"channel"`
			Stage   int    `json:"stage"`
			State   string `json:"state"`
		} `json:"destinations"`
		Chain struct {
			Version string `json:"version"`
			Stages  []struct {
				Groups []struct {
					Name string `json:"name"`
				} `json:"groups"`
			} `json:"stages"`
		} `json:"chain"`
	} `json:"request"`
	Events []struct {
		Seq    uint64          `json:"seq"`
		Type   string          `json:"type"`
		Detail json.RawMessage `json:"detail"`
		Digest string          `json:"digest"`
	} `json:"events"`
}

// resolvedAt is where the story's approval_resolved record stands in the log.
func (s story) resolvedAt() (seq uint64, digest string) {
	for _, e := range s.Events {
		if e.Type == approvebot.EventResolved {
			return e.Seq, e.Digest
		}
	}
	return 0, ""
}

func (h *harness) story(id string) story {
	h.t.Helper()
	r := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	var s story
	if r.status != http.StatusOK || json.Unmarshal(r.body, &s) != nil {
		h.t.Fatalf("story of %s: %d %s", id, r.status, r.body)
	}
	return s
}

// count counts the story's audit records of type typ.
func (s story) count(typ string) int {
	n := 0
	for _, e := range s.Events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// refusals lists the audited reasons clicks on the request were refused.
func (s story) refusals() []string {
	var out []string
	for _, e := range s.Events {
		if e.Type == "click_refused" {
			var d struct {
				Why string `json:"why"`
			}
			_ = json.Unmarshal(e.Detail, &d)
			out = append(out, d.Why)
		}
	}
	return out
}

func TestChainStagesOpenInOrder(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	body, fields := chainBody("user-456")
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())

	first := h.waitMessages(id, 1)[0]
	if first.Channel != "C0TREASURY" || !first.Actionable || !strings.Contains(blockText(first), "Stage 1 of 2: waiting for treasury-ops") {
		t.Fatalf("stage 1 message in %s: %s", first.Channel, blockText(first))
	}
	if n := h.slack.Posts("C0SECURITY"); n != 0 {
		t.Fatalf("stage 2 was shown before stage 1 was satisfied (%d posts)", n)
	}
	// A stage 2 approver cannot jump the queue.
	h.click("U0SAM", "C0TREASURY", first.TS, "approve", id)
	if got := h.told("U0SAM", 1); !strings.Contains(got, "Not yet") || !strings.Contains(got, "stage 1 (treasury-ops)") {
		t.Fatalf("Sam was told %q", got)
	}

	h.click("U0JANE", "C0TREASURY", first.TS, "approve", id)
	if got := h.told("U0JANE", 1); !strings.Contains(got, "stage 1 of 2 is satisfied and security now decide") {
		t.Fatalf("Jane was told %q", got)
	}
	second := h.messageAt(id, "C0SECURITY")
	h.waitPosted(id, 2)
	if r := h.status(id); r.answer.Status != "pending" || r.answer.Approved {
		t.Fatalf("after stage 1 only: %s", r.body)
	}
	progress := "stage 1 of 2 approved by Jane Doe; waiting for security"
	h.waitFor("stage 1 message shows progress, without buttons", func() bool {
		m, _ := h.slack.Message("C0TREASURY", first.TS)
		return !m.Actionable && strings.Contains(blockText(m), progress)
	})
	second, _ = h.slack.Message("C0SECURITY", second.TS)
	if !second.Actionable || !strings.Contains(blockText(second), progress) {
		t.Fatalf("stage 2 message (actionable %v): %s", second.Actionable, blockText(second))
	}

	h.click("U0SAM", "C0SECURITY", second.TS, "approve", id)
	a := v1Of(t, h.await(held))
	if !a.Approved || a.Approver != "sam@company.com" || len(a.ChainEntries) != 2 ||
		a.ChainEntries[0].StageIndex != 0 || a.ChainEntries[0].ApproverIdentity != "jane@company.com" ||
		a.ChainEntries[1].StageIndex != 1 || a.ChainEntries[1].ApproverIdentity != "sam@company.com" ||
		!strings.Contains(a.Reason, "jane@company.com (treasury-ops), sam@company.com (security)") {
		t.Fatalf("answer %+v", a)
	}
	checkEntries(t, a, fields["input_digest"].(string))
	checkAssertion(t, h, a, want{sub: "sam@company.com", decision: "allow", status: "approved",
		assurance: "slack_signed_interaction", fields: fields})
	h.waitFor("both messages final", func() bool {
		for _, m := range h.messages(id) {
			if m.Actionable || !strings.Contains(blockText(m), "Approved by Jane Doe, Sam Security") {
				return false
			}
		}
		return true
	})
}

func TestChainDenyEndsAtOnce(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()

	// A deny at stage 1: stage 2 is never asked.
	body, fields := chainBody("")
	early := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	m := h.waitMessages(early, 1)[0]
	h.click("U0JANE", "C0TREASURY", m.TS, "deny", early)
	a := v1Of(t, h.await(held))
	if a.Approved || a.Status != "denied" || a.Approver != "jane@company.com" || len(a.ChainEntries) != 1 {
		t.Fatalf("deny at stage 1: %+v", a)
	}
	checkAssertion(t, h, a, want{sub: "jane@company.com", decision: "deny", status: "denied", assurance: "slack_signed_interaction", fields: fields})

	// A deny at stage 2, after stage 1 approved.
	body, fields = chainBody("")
	late := fields["approval_request_id"].(string)
	held = h.submit(body, auth())
	m = h.waitMessages(late, 1)[0]
	h.click("U0BOB", "C0TREASURY", m.TS, "approve", late)
	second := h.messageAt(late, "C0SECURITY")
	h.waitPosted(late, 2)
	h.click("U0SAM", "C0SECURITY", second.TS, "deny", late)
	a = v1Of(t, h.await(held))
	if a.Approved || a.Status != "denied" || a.Approver != "sam@company.com" || len(a.ChainEntries) != 2 ||
		a.ChainEntries[0].Decision != "allow" || a.ChainEntries[1].Decision != "deny" {
		t.Fatalf("deny at stage 2: %+v", a)
	}
	checkEntries(t, a, fields["input_digest"].(string))
	checkAssertion(t, h, a, want{sub: "sam@company.com", decision: "deny", status: "denied", assurance: "slack_signed_interaction", fields: fields})

	h.stop()
	if n := h.slack.Posts("C0SECURITY"); n != 1 {
		t.Fatalf("%d stage 2 posts, want 1 (for the request denied at stage 2 only)", n)
	}
	for _, m := range h.slack.Messages() {
		if m.Actionable {
			t.Errorf("message in %s still shows buttons after the denial", m.Channel)
		}
	}
}

func TestChainSeparationOfDuties(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()

	// The subject, matched by email, may not decide at any stage.
	body, fields := chainBody("Jane@Company.com")
	about := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	m := h.waitMessages(about, 1)[0]
	h.click("U0JANE", "C0TREASURY", m.TS, "approve", about)
	if got := h.told("U0JANE", 1); !strings.Contains(got, "separation of duties") || !strings.Contains(got, "about yourself") {
		t.Fatalf("the subject was told %q", got)
	}
	if r := h.status(about); r.answer.Status != "pending" {
		t.Fatalf("after the subject's click: %s", r.body)
	}
	h.click("U0BOB", "C0TREASURY", m.TS, "approve", about)
	second := h.messageAt(about, "C0SECURITY")
	h.waitPosted(about, 2)
	h.click("U0JANE", "C0SECURITY", second.TS, "approve", about)
	if got := h.told("U0JANE", 2); !strings.Contains(got, "about yourself") {
		t.Fatalf("the subject was told %q at stage 2", got)
	}
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", about)
	if a := v1Of(t, h.await(held)); !a.Approved || a.ChainEntries[0].ApproverIdentity != "bob@company.com" ||
		a.ChainEntries[1].ApproverIdentity != "sam@company.com" {
		t.Fatalf("answer %+v", a)
	}

	// Nobody approves two stages; the subject matched by chat user id.
	body, fields = chainBody("U0SAM")
	twice := fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	m = h.waitMessages(twice, 1)[0]
	h.click("U0JANE", "C0TREASURY", m.TS, "approve", twice)
	second = h.messageAt(twice, "C0SECURITY")
	h.waitPosted(twice, 2)
	h.click("U0JANE", "C0SECURITY", second.TS, "approve", twice)
	if got := h.told("U0JANE", 4); !strings.Contains(got, "you already approved stage 1") || !strings.Contains(got, "separation of duties") {
		t.Fatalf("Jane was told %q", got)
	}
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", twice)
	if got := h.told("U0SAM", 2); !strings.Contains(got, "about yourself") {
		t.Fatalf("Sam, the subject, was told %q", got)
	}
	if r := h.status(twice); r.answer.Status != "pending" || r.answer.Approved {
		t.Fatalf("after refused clicks: %s", r.body)
	}
	if got, want := strings.Join(h.story(about).refusals(), ","), "separation_of_duties_subject,separation_of_duties_subject"; got != want {
		t.Errorf("refusals audited for %s: %s, want %s", about, got, want)
	}
	if got, want := strings.Join(h.story(twice).refusals(), ","), "separation_of_duties_two_stages,separation_of_duties_subject"; got != want {
		t.Errorf("refusals audited for %s: %s, want %s", twice, got, want)
	}
}

// TestChainFixedForTheRequestsLife: a request keeps the chain it opened with
// across a restart with a changed config.
func TestChainFixedForTheRequestsLife(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	body, fields := chainBody("")
	id := fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	first := h.waitMessages(id, 1)[0]
	h.stop()

	changed := strings.Replace(chainConfig, `version: "3"`, `version: "4"`, 1)
	changed = strings.Replace(changed, "- approvers: [security]", "- approvers: [compliance]", 1)
	if changed == chainConfig || strings.Count(changed, "[compliance]") != 1 {
		t.Fatal("config edit did not apply")
	}
	if err := os.WriteFile(h.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()

	// New requests see the new config...
	stale, _ := chainBody("")
	if a := v1Of(t, h.do(http.MethodPost, "/v1/approvals", stale, auth())); a.Status != "no_route" ||
		!strings.Contains(a.Reason, `"3"`) || !strings.Contains(a.Reason, `"4"`) {
		t.Fatalf("a version 3 request after the change: %+v", a)
	}
	// ...the open one keeps its own: version 3, stage 2 is security.
	h.click("U0JANE", "C0TREASURY", first.TS, "approve", id)
	second := h.messageAt(id, "C0SECURITY")
	h.waitPosted(id, 2)
	if n := h.slack.Posts("C0COMPLIANCE"); n != 0 {
		t.Fatalf("the open request was shown to the new stage 2 (%d posts in C0COMPLIANCE)", n)
	}
	h.click("U0CARL", "C0SECURITY", second.TS, "approve", id)
	if got := h.told("U0CARL", 1); !strings.Contains(got, "not an approver for security") {
		t.Fatalf("Carl (compliance, stage 2 of the new config) was told %q", got)
	}
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", id)
	a := v1Of(t, h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth()))
	if !a.Approved || a.Approver != "sam@company.com" || len(a.ChainEntries) != 2 {
		t.Fatalf("answer %+v", a)
	}
	checkAssertion(t, h, a, want{sub: "sam@company.com", decision: "allow", status: "approved", assurance: "slack_signed_interaction", fields: fields})
	s := h.story(id)
	if s.Request.Chain.Version != "3" || len(s.Request.Chain.Stages) != 2 || s.Request.Chain.Stages[1].Groups[0].Name != "security" {
		t.Fatalf("stored chain %+v", s.Request.Chain)
	}
	for _, e := range s.Events {
		if e.Type == "approval_resolved" && !strings.Contains(string(e.Detail), `"approval_chain_version":"3"`) {
			t.Errorf("resolution recorded against another chain version: %s", e.Detail)
		}
	}
}
