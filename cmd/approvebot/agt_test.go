package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
)

// Requests as AGT's newest code may send them, through the real binary:
// its own id shapes, a naive expires_at, the optional ApprovalRequest model
// fields, a lower-case bearer scheme; and the AGT chain `approvebot agt
// chain` prints for the chain that decides them.

// agtChainOut is `approvebot agt chain`'s output.
type agtChainOut struct {
	ChainID string `json:"chain_id"`
	Version string `json:"version"`
	Stages  []struct {
		StageIndex        int      `json:"stage_index"`
		AllowedIdentities []string `json:"allowed_identities"`
		AllowedRoles      []string `json:"allowed_roles"`
		Required          bool     `json:"required"`
	} `json:"stages"`
}

// agtChain runs `approvebot agt chain` and returns what it printed.
func (h *harness) agtChain(chain string) (agtChainOut, string, error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, bot.SystemClock{}, []string{"agt", "chain", "--config", h.config, "--chain", chain}, h.getenv, &out, &errOut)
	var c agtChainOut
	if err == nil {
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if derr := dec.Decode(&c); derr != nil {
			h.t.Fatalf("agt chain %s printed no chain JSON: %v\n%s", chain, derr, out.String())
		}
	}
	return c, errOut.String(), err
}

// agtAccepts mirrors what AGT's govern() does with a webhook answer
// (agentmesh/governance/govern.py, then approval_protocol/coordinator.py
// ApprovalCoordinator.submit_entry and ApprovalStage.authorizes): one vote
// at stage 0, counted only if the approver is one of its allowed_identities.
func agtAccepts(c agtChainOut, chainID, version, approver string) bool {
	return c.ChainID == chainID && c.Version == version && len(c.Stages) == 1 && c.Stages[0].StageIndex == 0 &&
		c.Stages[0].Required && slices.Contains(c.Stages[0].AllowedIdentities, approver)
}

func TestAGTShapedRequestHeldDecidedSigned(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	// AGT sends isoformat() of a naive datetime without an offset: the same
	// wall time is read as UTC.
	expires := time.Now().UTC().Add(10 * time.Minute).Truncate(time.Second)
	body, fields := intaketest.V1Body(intaketest.V1{
		ApprovalRequestID: "ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", PolicyDecisionID: "pd_01HZX3K9Q8W2V7N5M4B6C1D0EF",
		ExpiresAt: expires, NaiveExpiry: true,
		Extra: intaketest.Object{
			{Key: "requested_at", Value: time.Now().UTC().Format("2006-01-02T15:04:05.000000")},
			{Key: "fail_closed_on_timeout", Value: false},
			{Key: "status", Value: "pending"},
		},
	})
	id := fields["approval_request_id"].(string)
	if strings.Contains(fields["expires_at"].(string), "+") {
		t.Fatalf("expires_at %v is not naive", fields["expires_at"])
	}
	held := h.submit(body, map[string]string{"Authorization": "bearer " + callerToken, "Content-Type": "application/json"})

	first := h.waitMessages(id, 1)[0]
	if text := blockText(first); !strings.Contains(text, id) {
		t.Errorf("the message does not show the agent's id %s:\n%s", id, text)
	}
	h.click("U0JANE", "C0TREASURY", first.TS, "approve", id)
	second := h.messageAt(id, "C0SECURITY")
	h.waitPosted(id, 2)
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", id)

	a := v1Of(t, h.await(held))
	checkAssertion(t, h, a, want{sub: "sam@company.com", decision: "allow", status: "approved", assurance: "slack_signed_interaction", fields: fields})
	checkEntries(t, a, fields["input_digest"].(string))
	if len(a.ChainEntries) != 2 || a.ChainEntries[0].ApprovalRequestID != id {
		t.Errorf("chain entries %+v, want two naming %s", a.ChainEntries, id)
	}

	// The AGT chain approvebot prints for high-risk-tools accepts this
	// answer's approver: the final stage's.
	c, warnings, err := h.agtChain("high-risk-tools")
	if err != nil {
		t.Fatalf("agt chain: %v", err)
	}
	if !agtAccepts(c, fields["approval_chain_id"].(string), fields["approval_chain_version"].(string), a.Approver) {
		t.Errorf("AGT's chain %+v does not accept approver %s", c, a.Approver)
	}
	if !strings.Contains(warnings, "2 stages") {
		t.Errorf("no note about the stages AGT does not see: %q", warnings)
	}

	// The audit says the time was naive and what the caller asked.
	s := h.story(id)
	var asked struct {
		Naive    []string `json:"naive_times"`
		FailOpen *bool    `json:"fail_closed_on_timeout"`
		Fields   struct {
			ExpiresAt string `json:"expires_at"`
			Status    string `json:"status"`
		} `json:"fields"`
	}
	for _, e := range s.Events {
		if e.Type == "approval_requested" {
			_ = json.Unmarshal(e.Detail, &asked)
		}
	}
	if !slices.Equal(asked.Naive, []string{"expires_at", "requested_at"}) || asked.FailOpen == nil || *asked.FailOpen ||
		asked.Fields.ExpiresAt != fields["expires_at"] || asked.Fields.Status != "pending" {
		t.Errorf("approval_requested records %+v", asked)
	}
	// The operator may name the request by the agent's id.
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	r := h.do(http.MethodGet, "/admin/audit?request="+url.QueryEscape(id), nil, admin)
	if recs := records(t, string(r.body)); r.status != http.StatusOK || len(recs) < 5 || recs[0].RequestID != h.storeID(id) {
		t.Errorf("audit export of %s: %d %s", id, r.status, r.body)
	}
	r = h.do(http.MethodGet, "/admin/audit/verify", nil, admin)
	if r.status != http.StatusOK || bytes.Contains(r.body, []byte(`"break"`)) {
		t.Errorf("audit verify: %d %s", r.status, r.body)
	}
}

// Two callers may give their requests the same id, as AGT's own tests do
// ("pd_1"): each gets a request of its own, sees only its own, and a
// decision on one is not the other's.
func TestAGTIdsAreEachCallersOwn(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	other := map[string]string{"Authorization": "Bearer other-agent-token-0123456789"}
	expires := time.Now().Add(10 * time.Minute)
	mine, mf := v1(intaketest.V1{ApprovalRequestID: "ar_1", PolicyDecisionID: "pd_1", ExpiresAt: expires})
	theirs, tf := v1(intaketest.V1{ApprovalRequestID: "ar_1", PolicyDecisionID: "pd_1", ExpiresAt: expires, Operation: "tool.delete"})
	// Prefer: wait far beyond any integer of seconds must not wrap around
	// into a short deadline.
	heldMine := h.submit(mine, auth("Prefer", "wait=18446744074"))
	heldTheirs := h.submit(theirs, other)
	h.waitFor("two messages", func() bool { return len(h.slack.Messages()) == 2 })
	msgs := h.slack.Messages()
	var mineMsg, theirsMsg = msgs[0], msgs[1]
	if strings.Contains(blockText(mineMsg), "tool.delete") {
		mineMsg, theirsMsg = theirsMsg, mineMsg
	}
	for _, m := range msgs {
		if !strings.Contains(blockText(m), "ar_1") {
			t.Errorf("message does not show ar_1:\n%s", blockText(m))
		}
	}

	// Each caller's GET finds its own.
	r := h.do(http.MethodGet, "/v1/approvals/ar_1", nil, auth())
	if r.status != http.StatusOK || r.answer.Status != "pending" || r.answer.ApprovalRequestID != "ar_1" {
		t.Fatalf("GET ar_1: %d %s", r.status, r.body)
	}

	// Buttons carry approvebot's own id of each request.
	value := func(m string) string { return reOwnID.FindString(m) }
	mineID, theirsID := value(string(mineMsg.Blocks)), value(string(theirsMsg.Blocks))
	if mineID == theirsID || !reApprovebotID(mineID) || !reApprovebotID(theirsID) {
		t.Fatalf("button values %q and %q", mineID, theirsID)
	}
	// A click counts only on a message the store has recorded as posted.
	h.waitPosted(mineID, 1)
	h.waitPosted(theirsID, 1)
	h.click("U0JANE", "C0TREASURY", mineMsg.TS, "deny", mineID)
	h.click("U0JANE", "C0TREASURY", theirsMsg.TS, "approve", theirsID)

	a := v1Of(t, h.await(heldMine))
	checkAssertion(t, h, a, want{sub: "jane@company.com", decision: "deny", status: "denied", assurance: "slack_signed_interaction", fields: mf})
	b := v1Of(t, h.await(heldTheirs))
	if !b.Approved || b.ApprovalRequestID != "ar_1" || b.ActionDigest != tf["action_digest"] {
		t.Errorf("other caller's answer: %+v", b)
	}
	claims, err := signing.Verify(h.jwks(), b.IdentityAssertion, testIssuer, time.Now())
	if err != nil || claims["aud"] != "other-agent" || claims["input_digest"] != tf["input_digest"] {
		t.Errorf("other caller's assertion: %v %v", claims, err)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/ar_1", nil, other); !r.answer.Approved {
		t.Errorf("other caller's GET: %s", r.body)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/ar_1", nil, auth()); r.answer.Approved || r.answer.Status != "denied" {
		t.Errorf("GET: %s", r.body)
	}

	// The wait that was far too long was clamped to the chain's timeout.
	var st struct {
		Request struct {
			CreatedAt time.Time `json:"created_at"`
			Deadline  time.Time `json:"deadline"`
		} `json:"request"`
	}
	r = h.do(http.MethodGet, "/admin/requests/"+mineID, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	if err := json.Unmarshal(r.body, &st); err != nil || st.Request.Deadline.Sub(st.Request.CreatedAt) != policy.DefaultTimeout {
		t.Errorf("deadline %v after creation, want the payments chain's default timeout: %s", st.Request.Deadline.Sub(st.Request.CreatedAt), r.body)
	}
	// An operator naming ar_1 is told it is ambiguous.
	for _, path := range []string{"/admin/requests/ar_1", "/admin/audit?request=ar_1"} {
		r = h.do(http.MethodGet, path, nil, map[string]string{"Authorization": "Bearer " + adminToken})
		if r.status != http.StatusConflict || !strings.Contains(r.answer.Error, mineID) || !strings.Contains(r.answer.Error, theirsID) {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

var reOwnID = regexp.MustCompile(`ar_[0-9a-f]{32}`)

func reApprovebotID(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "ar_") {
		return false
	}
	_, err := hex.DecodeString(s[3:])
	return err == nil && strings.ToLower(s) == s
}

// Ids are put in URLs path-escaped, and every id of the safe set round-trips.
func TestAGTIdsInURLs(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	for _, id := range []string{"urn:agt:ar~1.2-3_x", strings.Repeat("A", 128)} {
		body, _ := v1(intaketest.V1{ApprovalRequestID: id})
		r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async"))
		if r.status != http.StatusAccepted || r.answer.ApprovalRequestID != id {
			t.Fatalf("%s: %d %s", id, r.status, r.body)
		}
		loc := r.header.Get("Location")
		if loc != "/v1/approvals/"+url.PathEscape(id) {
			t.Errorf("Location %q", loc)
		}
		if g := h.do(http.MethodGet, loc, nil, auth()); g.status != http.StatusOK || g.answer.ApprovalRequestID != id {
			t.Errorf("GET %s: %d %s", loc, g.status, g.body)
		}
	}
	// RFC 7235: the auth scheme is case-insensitive.
	for _, a := range []string{"bearer ", "BEARER ", "Bearer  ", "bEaReR "} {
		if r := h.do(http.MethodGet, "/v1/approvals/urn:agt:ar~1.2-3_x", nil, map[string]string{"Authorization": a + callerToken}); r.status != http.StatusOK {
			t.Errorf("Authorization %q: %d %s", a+"<token>", r.status, r.body)
		}
	}
	for _, a := range []string{"Basic " + callerToken, "Bearer", "Bearer " + callerToken + "x", callerToken, "Bearer" + callerToken} {
		if r := h.do(http.MethodGet, "/v1/approvals/urn:agt:ar~1.2-3_x", nil, map[string]string{"Authorization": a}); r.status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d %s", a, r.status, r.body)
		}
	}
	body, _ := v1(intaketest.V1{ApprovalRequestID: "ar/1"})
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth()); r.status != http.StatusBadRequest || r.answer.Field != "approval_request_id" ||
		!strings.Contains(r.answer.Error, "1 to 128 characters") {
		t.Errorf("ar/1: %d %s", r.status, r.body)
	}
}

// A legacy answer carries an assertion too: same key, claims about the
// body approvebot received.
func TestLegacyAnswerSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	body := legacyBody("approve-large-transfer", "treasury-ops")
	held := h.submit(body, auth())
	h.waitFor("both messages", func() bool { return len(h.slack.Messages()) == 2 })
	var m = h.slack.Messages()[0]
	for _, x := range h.slack.Messages() {
		if x.Channel == "C0TREASURY" {
			m = x
		}
	}
	id := reOwnID.FindString(string(m.Blocks))
	h.waitPosted(id, 2)
	h.click("U0JANE", "C0TREASURY", m.TS, "approve", id)
	r := h.await(held)
	if !r.answer.Approved || r.answer.Approver != "jane@company.com" || r.answer.IdentityAssertion == "" {
		t.Fatalf("answer: %s", r.body)
	}
	claims, err := signing.Verify(h.jwks(), r.answer.IdentityAssertion, testIssuer, time.Now())
	if err != nil {
		t.Fatalf("assertion: %v", err)
	}
	sum := sha256.Sum256(body)
	for k, v := range map[string]string{
		"sub": "jane@company.com", "aud": "payments-agent", "approval_request_id": id, "decision": "allow",
		"status": "approved", "body_digest": "sha256:" + hex.EncodeToString(sum[:]), "identity_assurance": "slack_signed_interaction",
	} {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %s", k, claims[k], v)
		}
	}
	for _, k := range []string{"action_digest", "input_digest"} {
		if _, ok := claims[k]; ok {
			t.Errorf("legacy assertion carries %s", k)
		}
	}
	if r.answer.ApprovalRequestID != id {
		t.Errorf("answer names %s, buttons %s", r.answer.ApprovalRequestID, id)
	}
}

// Prefer: wait=0 is clamped to the least wait (1 s): the request times out,
// as a timeout, not at once and not never.
func TestPreferWaitZeroClamped(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	body, fields := v1(intaketest.V1{})
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth("Prefer", "wait=0"))
	h.waitMessages(id, 1)
	h.clock.Advance(time.Second - time.Millisecond)
	if got := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); got.answer.Status != "pending" {
		t.Fatalf("before the least wait the request is %s, want pending", got.body)
	}
	h.clock.Advance(time.Millisecond)
	r := h.await(held)
	a := v1Of(t, r)
	if a.Approved || a.Status != "timed_out" || a.Approver != "system:timeout" || !strings.Contains(a.Reason, "timed out after 1 s") {
		t.Errorf("wait=0: %+v", a)
	}
}

func TestAGTChainCommand(t *testing.T) {
	t.Parallel()
	cfg := chainConfig + `  ops-review:
    version: "2026.1"
    stages:
      - approvers: [security]
      - approvers: [treasury-ops, teams-ops]
  groups-only:
    version: "1"
    stages:
      - approvers: [compliance]
`
	cfg = strings.Replace(cfg, "approvers:\n  treasury-ops:", `approvers:
  teams-ops:
    slack:
      channels: [C0OPS]
      users: [U0NOMAIL, Kim@Company.com]
    teams:
      channels: ["19:ops@thread.tacv2"]
      users: [lee@company.com, 8f1c2a9e-0000-4000-8000-000000000001]
  treasury-ops:`, 1)
	cfg = strings.Replace(cfg, "channel_interval: 0s\n", "channel_interval: 0s\nteams:\n  app_id: 00000000-0000-4000-8000-00000000a001\n  app_password: secret-secret\n  tenant_id: 00000000-0000-4000-8000-0000000000e1\n", 1)
	h := newChainHarness(t)
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.slack.AddUser("U0NOMAIL", "No Mail", "")

	c, warnings, err := h.agtChain("payments")
	if err != nil || c.ChainID != "payments" || c.Version != "7" || len(c.Stages) != 1 ||
		!slices.Equal(c.Stages[0].AllowedIdentities, []string{"bob@company.com", "jane@company.com"}) ||
		c.Stages[0].AllowedRoles == nil || len(c.Stages[0].AllowedRoles) != 0 || !c.Stages[0].Required || warnings != "" {
		t.Errorf("payments: %+v %q %v", c, warnings, err)
	}

	c, warnings, err = h.agtChain("ops-review")
	want := []string{"Kim@Company.com", "bob@company.com", "jane@company.com", "kim@company.com", "lee@company.com",
		"slack:T0FAKETEAM/U0NOMAIL", "teams:00000000-0000-4000-8000-0000000000e1/8f1c2a9e-0000-4000-8000-000000000001"}
	if err != nil || c.Version != "2026.1" || len(c.Stages) != 1 || !slices.Equal(c.Stages[0].AllowedIdentities, want) {
		t.Errorf("ops-review: %+v %v\nwant identities %v", c, err, want)
	}
	for _, w := range []string{"2 stages", "U0NOMAIL has no email", "8f1c2a9e-0000-4000-8000-000000000001 is listed by object id"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("ops-review warnings lack %q:\n%s", w, warnings)
		}
	}

	if _, warnings, err = h.agtChain("groups-only"); err == nil || !strings.Contains(err.Error(), "would deny every request") ||
		!strings.Contains(warnings, "Slack user group S0COMPLIANCE") {
		t.Errorf("groups-only: %v\n%s", err, warnings)
	}
	if _, _, err = h.agtChain("nope"); err == nil || !strings.Contains(err.Error(), "high-risk-tools, ops-review, payments") {
		t.Errorf("unknown chain: %v", err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"agt", "chain", "--config", h.config}, h.getenv, &out, &errOut); err == nil || exitCode(err) != 2 {
		t.Errorf("without --chain: %v", err)
	}
}
