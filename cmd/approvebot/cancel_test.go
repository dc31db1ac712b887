package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/intake/intaketest"
)

// The agent that opened a request may withdraw it: held callers are
// answered, every copy says so, late clicks are told, and the audit log
// records it.
func TestAgentWithdrawsARequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])

	// Another caller cannot withdraw it, nor learn that it exists.
	other := map[string]string{"Authorization": "Bearer other-agent-token-0123456789"}
	if r := h.do(http.MethodDelete, "/v1/approvals/"+id, nil, other); r.status != http.StatusNotFound {
		t.Fatalf("DELETE by another caller: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodDelete, "/v1/approvals/"+id, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("DELETE without a token: %d", r.status)
	}

	r := h.do(http.MethodDelete, "/v1/approvals/"+id, nil, auth())
	if r.status != http.StatusOK || r.answer.Approved || r.answer.Status != "cancelled" || r.answer.Approver != "system:cancelled" ||
		!strings.Contains(r.answer.Reason, "withdrawn by the agent") {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	got := h.await(held)
	if got.answer.Approved || got.answer.Status != "cancelled" || got.answer.IdentityAssertion == "" {
		t.Fatalf("held caller got %s", got.body)
	}
	h.waitClosed(id, "Withdrawn by the agent")

	// Idempotent: the same answer again.
	if again := h.do(http.MethodDelete, "/v1/approvals/"+id, nil, auth()); again.status != http.StatusOK || again.answer.Status != "cancelled" ||
		again.answer.DecidedAt != r.answer.DecidedAt {
		t.Fatalf("second DELETE: %d %s", again.status, again.body)
	}
	// A late click changes nothing and says why.
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	h.waitFor("Jane told", func() bool { return len(h.ephemeralsFor("U0JANE")) == 1 })
	if eph := h.ephemeralsFor("U0JANE")[0]; !strings.Contains(eph.Text, "withdrawn by the agent") {
		t.Fatalf("a late clicker was told %q", eph.Text)
	}
	if s := h.story(id); s.count("approval_cancelled") != 1 || s.count("approval_resolved") != 1 || s.count("approval_chain_entry") != 0 {
		t.Fatalf("audit story: %d cancelled, %d resolved, %d entries", s.count("approval_cancelled"), s.count("approval_resolved"), s.count("approval_chain_entry"))
	}
}

// A decided request cannot be withdrawn: 409 with the decision.
func TestWithdrawingADecidedRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	h.await(held)
	r := h.do(http.MethodDelete, "/v1/approvals/"+id, nil, auth())
	if r.status != http.StatusConflict || !r.answer.Approved || r.answer.Status != "approved" {
		t.Fatalf("DELETE after approval: %d %s", r.status, r.body)
	}
}

// A schema 1.0 request is withdrawn by the id the agent gave it, and the
// answer is a signed denial with status cancelled.
func TestWithdrawingAV1Request(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body, fields := intaketest.V1Body(intaketest.V1{})
	agentID := fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	r := h.do(http.MethodDelete, "/v1/approvals/"+agentID, nil, auth())
	if r.status != http.StatusOK || r.answer.Status != "cancelled" || r.answer.Decision != "deny" || r.answer.ApprovalRequestID != agentID ||
		r.answer.IdentityAssertion == "" {
		t.Fatalf("DELETE of a 1.0 request: %d %s", r.status, r.body)
	}
}
