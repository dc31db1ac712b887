package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/signing/signingtest"
	jose "github.com/go-jose/go-jose/v4"
)

// The schema 1.0 contract, end to end: bodies built byte for byte as AGT's
// VersionedWebhookApproval posts them, answers checked as its
// parse_webhook_response and a response_verifier would check them.

const testIssuer = "approvebot-test" // signing.issuer in the test configs

// adrEntryKeys are the fields ADR-0030 gives a chain entry.
var adrEntryKeys = []string{
	"approval_request_id", "chain_entry_id", "stage_index", "approver_kind", "approver_identity",
	"identity_assurance", "decision", "reason_code", "input_digest", "previous_entry_digest",
	"decided_at", "entry_digest",
}

// v1Answer is a schema 1.0 answer with every key the agent may read.
type v1Answer struct {
	SchemaVersion     string                 `json:"schema_version"`
	ApprovalRequestID string                 `json:"approval_request_id"`
	ActionDigest      string                 `json:"action_digest"`
	InputDigest       string                 `json:"input_digest"`
	Approved          bool                   `json:"approved"`
	Decision          string                 `json:"decision"`
	Approver          string                 `json:"approver"`
	Reason            string                 `json:"reason"`
	Status            string                 `json:"status"`
	ChainEntries      []approvebot.Entry     `json:"chain_entries"`
	Resolution        *approvebot.Resolution `json:"resolution"`
	IdentityAssertion string                 `json:"identity_assertion"`
	AuditSeq          uint64                 `json:"audit_seq"`
	AuditHead         string                 `json:"audit_head"`

	raw map[string]json.RawMessage
}

// v1Of reads a schema 1.0 answer, failing unless it is a 200 carrying every
// key AGT's client and verifier read, and chain entries with exactly
// ADR-0030's fields.
func v1Of(t *testing.T, r response) v1Answer {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("answer: HTTP %d %s", r.status, r.body)
	}
	var a v1Answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	if err := json.Unmarshal(r.body, &a.raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "approval_request_id", "action_digest", "input_digest",
		"approved", "decision", "approver", "reason", "status"} {
		if _, ok := a.raw[k]; !ok {
			t.Errorf("answer has no %q: %s", k, r.body)
		}
	}
	if string(a.raw["approved"]) != "true" && string(a.raw["approved"]) != "false" {
		t.Errorf("approved is %s, want a boolean", a.raw["approved"])
	}
	var entries []map[string]any
	if raw, ok := a.raw["chain_entries"]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			t.Fatalf("chain_entries: %v", err)
		}
	}
	for i, e := range entries {
		var keys []string
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Clone(adrEntryKeys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Errorf("chain entry %d has keys %v, want ADR-0030's %v", i, keys, want)
		}
	}
	return a
}

// checkEntries recomputes each chain entry's digest and link.
func checkEntries(t *testing.T, a v1Answer, inputDigest string) {
	t.Helper()
	prev := ""
	for i, e := range a.ChainEntries {
		if e.ApprovalRequestID != a.ApprovalRequestID || e.InputDigest != inputDigest || e.PreviousEntryDigest != prev ||
			e.ApproverKind != "human" || e.ChainEntryID == "" || e.DecidedAt == "" {
			t.Errorf("chain entry %d: %+v", i, e)
		}
		if got := policy.EntryDigest(e); got != e.EntryDigest {
			t.Errorf("chain entry %d: entry_digest %s, its fields hash to %s", i, e.EntryDigest, got)
		}
		prev = e.EntryDigest
	}
	if a.Resolution != nil && a.Resolution.FinalEntryDigest != prev {
		t.Errorf("resolution final_entry_digest %q, last entry %q", a.Resolution.FinalEntryDigest, prev)
	}
}

func (h *harness) jwks() []byte {
	h.t.Helper()
	r := h.do(http.MethodGet, "/.well-known/jwks.json", nil, nil)
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), "json") {
		h.t.Fatalf("JWKS: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	return r.body
}

// want is what an answer's identity_assertion must assert.
type want struct {
	sub, decision, status, assurance string
	fields                           map[string]any // the request body as sent
}

// checkAssertion verifies the answer's identity_assertion against the JWKS the
// server publishes, as an agent does, and checks every claim.
func checkAssertion(t *testing.T, h *harness, a v1Answer, w want) map[string]any {
	t.Helper()
	if a.IdentityAssertion == "" {
		t.Fatalf("answer carries no identity_assertion")
	}
	claims, err := signing.Verify(h.jwks(), a.IdentityAssertion, testIssuer, time.Now())
	if err != nil {
		t.Fatalf("identity_assertion does not verify with the server's JWKS: %v", err)
	}
	final := ""
	if n := len(a.ChainEntries); n > 0 {
		final = a.ChainEntries[n-1].EntryDigest
	}
	str := map[string]string{
		"iss":                 testIssuer,
		"sub":                 w.sub,
		"aud":                 "payments-agent",
		"approval_request_id": w.fields["approval_request_id"].(string),
		"action_digest":       w.fields["action_digest"].(string),
		"input_digest":        w.fields["input_digest"].(string),
		"decision":            w.decision,
		"status":              w.status,
		"identity_assurance":  w.assurance,
	}
	for k, v := range str {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %q", k, claims[k], v)
		}
	}
	if got, _ := claims["final_entry_digest"].(string); got != final {
		t.Errorf("claim final_entry_digest = %q, want the last chain entry's %q", got, final)
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	now := float64(time.Now().Unix())
	if iat == 0 || iat > now+5 || exp <= now || exp != iat+300 {
		t.Errorf("iat %v exp %v around now %v: want a 5-minute assertion", iat, exp, now)
	}
	// Signed once, when decided: iat is the decision's time.
	if a.Resolution == nil || int64(iat) != a.Resolution.ResolvedAt.Unix() {
		t.Errorf("iat %v, the decision was at %v", iat, a.Resolution)
	}
	// The receipt: where the decision stands in the audit log.
	if seq, _ := claims["audit_seq"].(float64); a.AuditSeq == 0 || uint64(seq) != a.AuditSeq ||
		claims["audit_head"] != a.AuditHead || !strings.HasPrefix(a.AuditHead, "sha256:") {
		t.Errorf("receipt: claims audit_seq %v audit_head %v, body %d %q", claims["audit_seq"], claims["audit_head"], a.AuditSeq, a.AuditHead)
	}
	// The body and the token say the same thing.
	if a.ApprovalRequestID != str["approval_request_id"] || a.ActionDigest != str["action_digest"] ||
		a.InputDigest != str["input_digest"] || a.Decision != w.decision || a.Approver != w.sub ||
		a.Status != w.status || a.Approved != (w.decision == approvebot.Allow) {
		t.Errorf("answer body disagrees with the request or assertion: %+v", a)
	}
	return claims
}

// v1 builds a body for the one-stage "payments" chain of chainConfig.
func v1(o intaketest.V1) ([]byte, map[string]any) {
	if o.ApprovalChainID == "" {
		o.ApprovalChainID, o.ApprovalChainVersion = "payments", "7"
	}
	return intaketest.V1Body(o)
}

// blockText is every text a Slack message shows, decoded.
func blockText(m slackfake.Message) string {
	var v any
	_ = json.Unmarshal(m.Blocks, &v)
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if s, ok := sub.(string); ok && k == "text" {
					b.WriteString(s + "\n")
				} else {
					walk(sub)
				}
			}
		case []any:
			for _, sub := range v {
				walk(sub)
			}
		}
	}
	walk(v)
	return b.String()
}

func TestV1ApprovalIsEchoedBoundAndSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	expires := time.Now().Truncate(time.Second).Add(10*time.Minute + 123456*time.Microsecond)
	body, fields := v1(intaketest.V1{
		SubjectID:      intaketest.Str("user-456"),
		TargetResource: intaketest.Str("prod-db"),
		ExpiresAt:      expires,
		IncludeBinding: true,
		Parameters:     intaketest.Object{{Key: "amount", Value: 5000}, {Key: "destination", Value: "ACC-789"}},
		Context: intaketest.Object{
			{Key: "note", Value: "<b>urgent</b> & <!channel>"},
			{Key: "memo", Value: strings.Repeat("long memo ", 500)},
		},
	})
	// AGT's own formatting: Python's separators and isoformat's offset.
	for _, s := range []string{`"schema_version": "1.0"`, `.123456+00:00"`, `"subject_id": "user-456"`} {
		if !bytes.Contains(body, []byte(s)) {
			t.Fatalf("body lacks %s: %s", s, body)
		}
	}
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())

	msg := h.waitMessages(id, 1)[0]
	if msg.Channel != "C0TREASURY" || !msg.Actionable {
		t.Fatalf("message in %s, actionable %v", msg.Channel, msg.Actionable)
	}
	text := blockText(msg)
	for _, s := range []string{"parameters.amount\n5000", "parameters.destination\n\"ACC-789\"", "target.resource\n\"prod-db\"",
		"subject_id\n\"user-456\"", "context.note\n\"<b>urgent</b> & <!channel>\"", "approval_chain_id\n\"payments\"",
		"approval_chain_version\n\"7\""} {
		if !strings.Contains(text, s) {
			t.Errorf("message does not show %q:\n%s", s, text)
		}
	}
	// The agent's markup is shown as it is, in plain_text only, where Slack
	// interprets nothing.
	if bytes.Contains(msg.Blocks, []byte(`"type":"mrkdwn","text":"context`)) || !bytes.Contains(msg.Blocks, []byte(`{"type":"plain_text","text":"context.note\n\"\u003cb\u003eurgent`)) &&
		!bytes.Contains(msg.Blocks, []byte(`{"type":"plain_text","text":"context.note\n\"<b>urgent`)) {
		t.Errorf("the agent's note is not plain text:\n%s", msg.Blocks)
	}
	// The 5000-character memo is cut to fit (the fake refuses what Slack would).
	if !strings.Contains(text, "long memo long memo") || !strings.Contains(text, "…") || strings.Contains(text, strings.Repeat("long memo ", 500)) {
		t.Errorf("long context value not truncated:\n%s", text)
	}
	if fi, err := os.Stat(filepath.Join(h.dir, "signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key created with %v, %v; want mode 0600", fi.Mode(), err)
	}

	h.click("U0JANE", "C0TREASURY", msg.TS, "approve", id)
	a := v1Of(t, h.await(held))
	if a.SchemaVersion != "1.0" || !strings.Contains(a.Reason, "Approved by jane@company.com") || len(a.ChainEntries) != 1 {
		t.Fatalf("answer %+v", a)
	}
	e := a.ChainEntries[0]
	if e.StageIndex != 0 || e.Decision != approvebot.Allow || e.ApproverIdentity != "jane@company.com" ||
		e.IdentityAssurance != "slack_signed_interaction" || e.ReasonCode == "" {
		t.Errorf("chain entry %+v", e)
	}
	checkEntries(t, a, fields["input_digest"].(string))
	checkAssertion(t, h, a, want{sub: "jane@company.com", decision: "allow", status: "approved",
		assurance: "slack_signed_interaction", fields: fields})

	// Polling afterwards gives the same decision, freshly signed.
	again := v1Of(t, h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()))
	checkAssertion(t, h, again, want{sub: "jane@company.com", decision: "allow", status: "approved",
		assurance: "slack_signed_interaction", fields: fields})
}

func TestV1NullFieldsAndDenial(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body, fields := v1(intaketest.V1{})
	for _, s := range []string{`"subject_id": null`, `"target_resource": null`} {
		if !bytes.Contains(body, []byte(s)) {
			t.Fatalf("body lacks %s: %s", s, body)
		}
	}
	id := fields["approval_request_id"].(string)
	held := h.submit(body, auth())
	msg := h.waitMessages(id, 1)[0]
	h.click("U0BOB", "C0TREASURY", msg.TS, "deny", id)
	a := v1Of(t, h.await(held))
	if a.Approved || a.Status != "denied" || a.Decision != "deny" || !strings.Contains(a.Reason, "Denied by bob@company.com") {
		t.Fatalf("answer %+v", a)
	}
	checkEntries(t, a, fields["input_digest"].(string))
	checkAssertion(t, h, a, want{sub: "bob@company.com", decision: "deny", status: "denied",
		assurance: "slack_signed_interaction", fields: fields})
}

// TestV1Refusals sends every malformed or mismatched body: each is refused
// with a 400 naming the field, nothing is stored and nobody is asked.
func TestV1Refusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	good, fields := v1(intaketest.V1{IncludeBinding: true})
	id := fields["approval_request_id"].(string)
	swap := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("body lacks %s", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	cases := []struct {
		name, field, want string
		body              []byte
	}{
		{"presented field changed after hashing", "input_digest", "does not match the request",
			swap(`"operation": "tool.invoke"`, `"operation": "tool.delete"`)},
		{"expires_at moved after hashing", "input_digest", "does not match the request",
			swap(`"expires_at": "`+fields["expires_at"].(string), `"expires_at": "2099-01-01T00:00:00+00:00`)},
		{"input digest of other fields", "input_digest", "does not match the request",
			swap(fields["input_digest"].(string), "sha256:"+strings.Repeat("0", 64))},
		{"action binding mismatch", "action_binding", "does not match action_digest",
			swap(`"amount": 5000`, `"amount": 50000`)},
		{"binding for another tool", "action_binding", "does not match action_digest",
			swap(`"tool_name": "transfer_funds"`, `"tool_name": "drop_table"`)},
		{"bad request id", "approval_request_id", "1 to 128 characters", swap(`"approval_request_id": "`+id, `"approval_request_id": "ar/`)},
		{"missing field", "policy_version", "required", swap(`"policy_version": "2026.06.11", `, ``)},
		{"unknown field", "approvers", "unknown field", swap(`"type": "approval_request", `, `"type": "approval_request", "approvers": ["x"], `)},
		{"unknown schema", "schema_version", "unsupported", swap(`"schema_version": "1.0"`, `"schema_version": "2.0"`)},
		{"unknown type", "type", "approval_request", swap(`"type": "approval_request"`, `"type": "approval_response"`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(http.MethodPost, "/v1/approvals", c.body, auth())
			if r.status != http.StatusBadRequest || r.answer.Approved || r.answer.Field != c.field ||
				!strings.Contains(r.answer.Error, c.field) || !strings.Contains(r.answer.Error, c.want) {
				t.Fatalf("HTTP %d %s; want 400 naming %s (%s)", r.status, r.body, c.field, c.want)
			}
		})
	}
	if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.status != http.StatusNotFound {
		t.Errorf("a refused request was stored: %d %s", r.status, r.body)
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("%d chat messages for refused requests", n)
	}
	// The untouched body is accepted: the refusals were about the changes.
	if r := h.do(http.MethodPost, "/v1/approvals", good, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		t.Fatalf("good body: %d %s", r.status, r.body)
	}
}

// TestV1DeniedWithoutAsking covers the requests answered at once, without a
// chat message: expired on arrival, a chain version that is not the
// configured one, an unknown chain.
func TestV1DeniedWithoutAsking(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	cases := []struct {
		name, status, approver string
		opts                   intaketest.V1
		reason                 []string
	}{
		{"expired", "expired", "system:expired",
			intaketest.V1{ExpiresAt: time.Now().Add(-time.Second)}, []string{"expires_at", "had passed"}},
		{"chain version mismatch", "no_route", "system:no-route",
			intaketest.V1{ApprovalChainID: "payments", ApprovalChainVersion: "6"}, []string{`"6"`, `"7"`, "payments"}},
		{"two-stage chain version mismatch", "no_route", "system:no-route",
			intaketest.V1{ApprovalChainID: "high-risk-tools", ApprovalChainVersion: "2"}, []string{`"2"`, `"3"`}},
		{"unknown chain", "no_route", "system:no-route",
			intaketest.V1{ApprovalChainID: "nope", ApprovalChainVersion: "1"}, []string{`"nope"`, "not configured"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, fields := v1(c.opts)
			// Held, without Prefer: the answer must come at once all the same.
			a := v1Of(t, h.do(http.MethodPost, "/v1/approvals", body, auth()))
			if a.Approved || a.Decision != "deny" || a.Status != c.status || a.Approver != c.approver || len(a.ChainEntries) != 0 {
				t.Fatalf("answer %+v", a)
			}
			for _, s := range c.reason {
				if !strings.Contains(a.Reason, s) {
					t.Errorf("reason %q does not name %s", a.Reason, s)
				}
			}
			checkAssertion(t, h, a, want{sub: c.approver, decision: "deny", status: c.status, assurance: "system", fields: fields})
			// A retry gets the same answer.
			if b := v1Of(t, h.do(http.MethodPost, "/v1/approvals", body, auth())); b.Status != c.status || b.Reason != a.Reason {
				t.Errorf("retry answered %+v", b)
			}
		})
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("%d chat messages for requests nobody should be asked about", n)
	}
}

// TestV1WaitEndsAtExpiresAt: the held answer comes at expires_at when that is
// sooner than the route's timeout, and at Prefer: wait when that is sooner.
func TestV1WaitEndsAtExpiresAt(t *testing.T) {
	h := newHarness(t, chainConfig)
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	soon, soonFields := v1(intaketest.V1{ExpiresAt: h.now().Add(2 * time.Second)})
	waited, waitedFields := v1(intaketest.V1{})
	heldSoon := h.submit(soon, auth())
	heldWait := h.submit(waited, auth("Prefer", "wait=1"))
	h.waitMessages(soonFields["approval_request_id"].(string), 1)
	h.waitMessages(waitedFields["approval_request_id"].(string), 1)

	h.clock.Advance(time.Second)
	b := v1Of(t, h.await(heldWait))
	if b.Approved || b.Status != "timed_out" || !strings.Contains(b.Reason, "timed out after 1 s") {
		t.Fatalf("answer at Prefer: wait: %+v", b)
	}
	checkAssertion(t, h, b, want{sub: "system:timeout", decision: "deny", status: "timed_out", assurance: "system", fields: waitedFields})
	if got := h.do(http.MethodGet, "/v1/approvals/"+soonFields["approval_request_id"].(string), nil, auth()); got.answer.Status != "pending" {
		t.Fatalf("a second before expires_at the request is %s, want pending", got.body)
	}
	h.clock.Advance(time.Second)
	a := v1Of(t, h.await(heldSoon))
	if a.Approved || a.Status != "timed_out" || a.Approver != "system:timeout" ||
		!strings.Contains(a.Reason, "expires_at "+soonFields["expires_at"].(string)) {
		t.Fatalf("answer at expires_at: %+v", a)
	}
	checkAssertion(t, h, a, want{sub: "system:timeout", decision: "deny", status: "timed_out", assurance: "system", fields: soonFields})
}

// TestV1RetriesAttachAndReuseConflicts: a retry of the same request attaches
// to it (no second chat message) and gets its decision; the same id for a
// different request, or from another caller, is refused.
func TestV1RetriesAttachAndReuseConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	opts := intaketest.V1{ApprovalRequestID: intaketest.RandomID("ar"), PolicyDecisionID: intaketest.RandomID("pd"),
		ExpiresAt: time.Now().Add(10 * time.Minute)}
	body, fields := v1(opts)
	id := fields["approval_request_id"].(string)
	first := h.submit(body, auth())
	msg := h.waitMessages(id, 1)[0]
	sid := h.storeID(id) // before another caller uses the same id

	// A retry while pending attaches: same id, still pending, no new post.
	r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async"))
	if r.status != http.StatusAccepted || r.answer.ApprovalRequestID != id || r.answer.Status != "pending" || r.answer.Approved {
		t.Fatalf("async retry: %d %s", r.status, r.body)
	}
	second := h.submit(body, auth())

	other := opts
	other.Operation = "tool.delete"
	conflicting, _ := v1(other)
	conflict := func(when string) {
		t.Helper()
		r := h.do(http.MethodPost, "/v1/approvals", conflicting, auth())
		if r.status != http.StatusConflict || r.answer.Approved || !strings.Contains(r.answer.Error, id) ||
			!strings.Contains(r.answer.Error, "input digest differs") {
			t.Fatalf("%s: same id, other digest: %d %s", when, r.status, r.body)
		}
	}
	// Ids are the caller's own: another agent replaying the body opens a
	// request of its own, and cannot read this one's decision.
	otherAuth := map[string]string{"Authorization": "Bearer other-agent-token-0123456789", "Prefer": "respond-async"}
	otherRequest := func(when string) {
		t.Helper()
		r := h.do(http.MethodPost, "/v1/approvals", body, otherAuth)
		if r.status != http.StatusAccepted || r.answer.Approved || r.answer.Status != "pending" || r.answer.IdentityAssertion != "" ||
			r.answer.ApprovalRequestID != id || r.header.Get("Location") != "/v1/approvals/"+id {
			t.Fatalf("%s: same request from another caller: %d %s", when, r.status, r.body)
		}
	}
	conflict("pending")
	otherRequest("pending")
	if r := h.status(id); r.answer.Status != "pending" {
		t.Fatalf("conflicting submissions changed the request: %s", r.body)
	}

	h.click("U0JANE", "C0TREASURY", msg.TS, "approve", sid)
	w := want{sub: "jane@company.com", decision: "allow", status: "approved", assurance: "slack_signed_interaction", fields: fields}
	a1 := v1Of(t, h.await(first))
	a2 := v1Of(t, h.await(second))
	checkAssertion(t, h, a1, w)
	checkAssertion(t, h, a2, w)
	if a1.ChainEntries[0].EntryDigest != a2.ChainEntries[0].EntryDigest {
		t.Errorf("the original and the retry got different decisions")
	}

	// A retry or a poll after the decision gets it at once, as signed when
	// it was made: the same token, never signed again.
	a3 := v1Of(t, h.do(http.MethodPost, "/v1/approvals", body, auth()))
	checkAssertion(t, h, a3, w)
	polled := v1Of(t, h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()))
	if a3.IdentityAssertion != a1.IdentityAssertion || a2.IdentityAssertion != a1.IdentityAssertion ||
		polled.IdentityAssertion != a1.IdentityAssertion || a3.ChainEntries[0].EntryDigest != a1.ChainEntries[0].EntryDigest {
		t.Errorf("retry after decision: %+v", a3)
	}
	if seq, digest := h.story(sid).resolvedAt(); a3.AuditSeq != seq || a3.AuditHead != digest {
		t.Errorf("receipt %d %s is not the request's approval_resolved record %d %s", a3.AuditSeq, a3.AuditHead, seq, digest)
	}
	conflict("decided")
	otherRequest("decided")
	delete(otherAuth, "Prefer")
	if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, otherAuth); r.status != http.StatusOK || r.answer.Status != "pending" || r.answer.Approved {
		t.Errorf("the other caller's request took the decision: %d %s", r.status, r.body)
	}
	// Each refused submission is audited, with the caller that sent it.
	var actors []string
	for _, e := range h.story(sid).Events {
		if e.Type == "approval_conflict_refused" {
			var d struct {
				SameCaller bool `json:"same_caller"`
			}
			_ = json.Unmarshal(e.Detail, &d)
			actors = append(actors, fmt.Sprint(d.SameCaller))
		}
	}
	if got := strings.Join(actors, ","); got != "true,true" {
		t.Errorf("conflicts audited (same caller?): %s, want true,true", got)
	}

	h.stop() // no post or update may still be in flight
	if n := h.slack.Posts("C0TREASURY"); n != 2 || len(h.slack.Messages()) != 2 {
		t.Fatalf("%d posts, %d messages for one request and its retries and the other caller's, want 2", n, len(h.slack.Messages()))
	}
}

// TestLegacyIdempotencyKey: for the legacy body, Idempotency-Key makes a
// retry attach as approval_request_id does for schema 1.0.
func TestLegacyIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body := legacyBody("approve-large-transfer")
	key := "transfer-4711-attempt"
	first := h.submit(body, auth("Idempotency-Key", key))
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])

	r := h.do(http.MethodPost, "/v1/approvals", body, auth("Idempotency-Key", key, "Prefer", "respond-async"))
	if r.status != http.StatusAccepted || r.answer.ApprovalRequestID != id {
		t.Fatalf("retry with the same key: %d %s (first request %s)", r.status, r.body, id)
	}
	second := h.submit(body, auth("Idempotency-Key", key))

	different := legacyBody("approve-large-transfer", "compliance")
	if r := h.do(http.MethodPost, "/v1/approvals", different, auth("Idempotency-Key", key)); r.status != http.StatusConflict ||
		r.answer.Approved || r.answer.Field != "Idempotency-Key" || !strings.Contains(r.answer.Error, key) {
		t.Fatalf("same key, other body: %d %s", r.status, r.body)
	}
	if n := h.story(id).count("approval_conflict_refused"); n != 1 {
		t.Errorf("%d conflicting submissions in the audit log of %s, want 1", n, id)
	}
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	for i, held := range []<-chan response{first, second} {
		if a := h.await(held); !a.answer.Approved || a.answer.ApprovalRequestID != id || a.answer.Approver != "jane@company.com" {
			t.Errorf("answer %d: %s", i, a.body)
		}
	}
	if a := h.do(http.MethodPost, "/v1/approvals", body, auth("Idempotency-Key", key)); !a.answer.Approved || a.answer.ApprovalRequestID != id {
		t.Errorf("retry after the decision: %s", a.body)
	}
	// Without the key the same body is a new request.
	if a := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); a.answer.ApprovalRequestID == id || a.status != http.StatusAccepted {
		t.Errorf("keyless resend: %d %s", a.status, a.body)
	}
	h.stop()
	if n := h.slack.Posts("C0TREASURY") + h.slack.Posts("C0COMPLIANCE"); n != 4 {
		t.Fatalf("%d posts, want 2 for the keyed request and its retries plus 2 for the keyless one", n)
	}
}

// TestPythonVerifierAgainstTheServer runs the verifier AGT users paste in on
// real answers of the running server: it must accept a real approval and
// reject it forged, expired, bound to another request, or a denial.
func TestPythonVerifierAgainstTheServer(t *testing.T) {
	t.Parallel()
	py := signingtest.Python(t)
	h := newHarness(t, chainConfig)
	h.start()

	decide := func(action string) ([]byte, map[string]any) {
		body, fields := v1(intaketest.V1{})
		id := fields["approval_request_id"].(string)
		held := h.submit(body, auth())
		m := h.waitMessages(id, 1)[0]
		h.click("U0JANE", "C0TREASURY", m.TS, action, id)
		r := h.await(held)
		v1Of(t, r)
		return r.body, fields
	}
	approved, fields := decide("approve")
	denied, deniedFields := decide("deny")
	jwks := h.jwks()

	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	id, digest := fields["approval_request_id"].(string), fields["action_digest"].(string)
	verify := func(t *testing.T, body []byte, requestID, actionDigest string) (string, string, int) {
		t.Helper()
		bodyFile := filepath.Join(t.TempDir(), "body.json")
		if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(bodyFile)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := signingtest.Verifier(ctx, py, "--jwks", jwksFile, "--issuer", testIssuer,
			"--audience", "payments-agent", "--request-id", requestID, "--action-digest", actionDigest)
		cmd.Stdin = in
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run verifier: %v", err)
		}
		return strings.TrimSpace(out.String()), errOut.String(), code
	}
	withAssertion := func(token string) []byte {
		var m map[string]any
		if err := json.Unmarshal(approved, &m); err != nil {
			t.Fatal(err)
		}
		m["identity_assertion"] = token
		b, _ := json.Marshal(m)
		return b
	}
	var real struct {
		IdentityAssertion string `json:"identity_assertion"`
	}
	_ = json.Unmarshal(approved, &real)
	parts := strings.Split(real.IdentityAssertion, ".")
	if len(parts) != 3 {
		t.Fatalf("identity_assertion is not a compact JWS: %q", real.IdentityAssertion)
	}

	if out, errOut, code := verify(t, approved, id, digest); code != 0 || out != "jane@company.com" {
		t.Fatalf("real approval: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Re-signed with the server's own key (read from its key file), the
	// same claims pass when fresh and fail when expired.
	key, err := signing.LoadOrCreateKey(filepath.Join(h.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer := signing.NewSigner(key, testIssuer)
	claims := signing.Claims{Subject: "jane@company.com", ApprovalRequestID: id, ActionDigest: digest,
		InputDigest: fields["input_digest"].(string), Decision: "allow", Status: "approved",
		IdentityAssurance: "slack_signed_interaction", ApproverKind: "human", Audience: "payments-agent"}
	sign := func(iat, exp time.Time) string {
		c := claims
		c.IssuedAt, c.Expiry = iat, exp
		tok, err := signer.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	if out, errOut, code := verify(t, withAssertion(sign(now, now.Add(time.Minute))), id, digest); code != 0 || out != "jane@company.com" {
		t.Fatalf("fresh token from the server's key: exit %d %q %q", code, out, errOut)
	}

	// A token with the server's kid signed by another key.
	_, otherKey, _ := ed25519.GenerateKey(nil)
	impostor, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: otherKey, KeyID: signer.KeyID()}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	obj, err := impostor.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := obj.CompactSerialize()

	// One signature byte flipped (in the middle: the last base64url
	// character also carries padding bits).
	sig := []byte(parts[2])
	sig[len(sig)/2] = map[bool]byte{true: 'B', false: 'A'}[sig[len(sig)/2] == 'A']

	otherID := intaketest.RandomID("ar")
	rejects := []struct {
		name, reason string
		body         []byte
		id, digest   string
	}{
		{"signature byte flipped", "bad signature", withAssertion(parts[0] + "." + parts[1] + "." + string(sig)), id, digest},
		{"signed by another key under the server's kid", "bad signature", withAssertion(forged), id, digest},
		{"expired", "expired", withAssertion(sign(now.Add(-10*time.Minute), now.Add(-5*time.Minute))), id, digest},
		{"another request id", "approval_request_id does not match", approved, otherID, digest},
		{"another action digest", "action_digest does not match", approved, id, "sha256:" + strings.Repeat("ab", 32)},
		{"body echoes another request", "approval_request_id does not match",
			bytes.Replace(approved, []byte(`"approval_request_id":"`+id), []byte(`"approval_request_id":"`+otherID), 1), id, digest},
		{"a real denial", "not allow", denied, deniedFields["approval_request_id"].(string), deniedFields["action_digest"].(string)},
	}
	for _, c := range rejects {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := verify(t, c.body, c.id, c.digest)
			if code != 1 || out != "" || !strings.Contains(errOut, c.reason) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want a rejection naming %q", code, out, errOut, c.reason)
			}
		})
	}
}
