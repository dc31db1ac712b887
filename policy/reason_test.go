package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/policy"
)

const reasonY = callersY + slackY + `approvers:
  ops:
    slack: {channels: [C0OPS], users: [U0ANN, U0BOB]}
routes:
  - match: {rule_name: plain}
    approvers: [ops]
  - match: {rule_name: careful}
    approvers: [ops]
    reason: {deny: required, approve: optional}
    confirm_approve: true
  - match: {rule_name: via-chain}
    chain: strict
  - match: {rule_name: via-chain-relaxed}
    chain: strict
    reason: {deny: optional}
    confirm_approve: false
chains:
  strict:
    version: "1"
    stages: [{approvers: [ops]}]
    reason: {deny: required}
    confirm_approve: true
`

// The rules reach the request's chain at routing; a route's replace its
// chain's.
func TestReasonRulesRouted(t *testing.T) {
	cfg, err := Parse([]byte(reasonY), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rule    string
		want    approvebot.ReasonRule
		confirm bool
	}{
		{"plain", approvebot.ReasonRule{}, false},
		{"careful", approvebot.ReasonRule{Deny: approvebot.ReasonRequired, Approve: approvebot.ReasonOptional}, true},
		{"via-chain", approvebot.ReasonRule{Deny: approvebot.ReasonRequired}, true},
		{"via-chain-relaxed", approvebot.ReasonRule{Deny: approvebot.ReasonOptional}, false},
	} {
		r, err := cfg.Route("agent", approvebot.Fields{RuleName: tc.rule}, approvebot.SchemaLegacy)
		if err != nil {
			t.Fatal(err)
		}
		if r.Chain.Reason != tc.want || r.Chain.ConfirmApprove != tc.confirm {
			t.Errorf("%s: reason %+v confirm %v, want %+v %v", tc.rule, r.Chain.Reason, r.Chain.ConfirmApprove, tc.want, tc.confirm)
		}
	}
	if d := (approvebot.ReasonRule{}); d.For(approvebot.Deny) != approvebot.ReasonOptional || d.For(approvebot.Allow) != approvebot.ReasonNone {
		t.Errorf("defaults: deny %s, approve %s", d.For(approvebot.Deny), d.For(approvebot.Allow))
	}
}

func reasonRequest(rule approvebot.ReasonRule, confirm bool) *approvebot.Request {
	ops := approvebot.Group{Name: "ops", Sides: map[string]approvebot.Side{slack.Name: {Channels: []string{"C0OPS"}, Users: []string{"U0ANN"}}}}
	return &approvebot.Request{
		ID: "ar_1", Status: approvebot.StatusPending, Deadline: time.Unix(2e9, 0),
		Chain: approvebot.Chain{Stages: []approvebot.Stage{{Groups: []approvebot.Group{ops}}}, Reason: rule, ConfirmApprove: confirm},
		Destinations: []approvebot.Destination{{Platform: slack.Name, Channel: "C0OPS", Groups: []string{"ops"},
			State: approvebot.DeliveryPosted, Ref: approvebot.MessageRef{Channel: "C0OPS", ID: "1.1"}}},
	}
}

func reasonBallot(decision, reason string, confirmed bool) approvebot.Ballot {
	return approvebot.Ballot{Platform: slack.Name, Ref: approvebot.MessageRef{Channel: "C0OPS", ID: "1.1"},
		Approver: approvebot.Approver{Platform: slack.Name, Workspace: "T1", UserID: "U0ANN", Name: "Ann", Email: "ann@company.com"},
		Decision: decision, Reason: reason, Confirmed: confirmed, Assurance: "test"}
}

// The engine enforces what the chain asks, whatever the platform did.
func TestVoteReasonAndConfirm(t *testing.T) {
	now := time.Unix(1e9, 0)
	required := approvebot.ReasonRule{Deny: approvebot.ReasonRequired}
	for _, tc := range []struct {
		name     string
		rule     approvebot.ReasonRule
		confirm  bool
		ballot   approvebot.Ballot
		refusal  string // "" when counted
		reason   string // the agent's reason when counted
		codeWant string // reason_code when counted
	}{
		{"required and missing", required, false, reasonBallot(approvebot.Deny, " \n\u202e ", false), policy.RefuseNoReason, "", ""},
		{"required and given", required, false, reasonBallot(approvebot.Deny, "wrong\nIBAN\u202e", false), "", "Denied by ann@company.com: wrong IBAN", "wrong IBAN"},
		{"optional and missing", approvebot.ReasonRule{}, false, reasonBallot(approvebot.Deny, "", false), "", "Denied by ann@company.com", "denied"},
		{"too long", approvebot.ReasonRule{}, false, reasonBallot(approvebot.Deny, strings.Repeat("é", approvebot.MaxReason+1), false), policy.RefuseLongReason, "", ""},
		{"approve comment dropped when none", approvebot.ReasonRule{}, false, reasonBallot(approvebot.Allow, "sure", false), "", "Approved by ann@company.com (ops)", "approved"},
		{"approve comment kept when optional", approvebot.ReasonRule{Approve: approvebot.ReasonOptional}, false, reasonBallot(approvebot.Allow, "sure", false), "", "Approved by ann@company.com (ops): sure", "sure"},
		{"unconfirmed approval", approvebot.ReasonRule{}, true, reasonBallot(approvebot.Allow, "", false), policy.RefuseUnconfirmed, "", ""},
		{"confirmed approval", approvebot.ReasonRule{}, true, reasonBallot(approvebot.Allow, "", true), "", "Approved by ann@company.com (ops)", "approved"},
		{"denial needs no confirmation", approvebot.ReasonRule{}, true, reasonBallot(approvebot.Deny, "", false), "", "Denied by ann@company.com", "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reasonRequest(tc.rule, tc.confirm)
			out := policy.Vote(platforms, r, tc.ballot, now)
			if tc.refusal != "" {
				if out.Counted || out.RefusalCode != tc.refusal || len(r.Entries) != 0 || r.Status != approvebot.StatusPending {
					t.Fatalf("outcome %+v, want refused %s with nothing changed", out, tc.refusal)
				}
				return
			}
			if !out.Counted || !out.Decided || r.Resolution.Reason != tc.reason || r.Entries[0].ReasonCode != tc.codeWant {
				t.Fatalf("outcome %+v, resolution %+v, entry %+v; want reason %q code %q", out, r.Resolution, r.Entries[0], tc.reason, tc.codeWant)
			}
			if policy.EntryDigest(r.Entries[0]) != r.Entries[0].EntryDigest {
				t.Fatal("entry digest does not cover the entry")
			}
		})
	}
	// The outcome line quotes the reason, inert.
	r := reasonRequest(required, false)
	policy.Vote(platforms, r, reasonBallot(approvebot.Deny, `not on the allow-list" Approved by Bob`, false), now)
	if got := policy.Outcome(r); !strings.HasSuffix(got, `: "not on the allow-list\" Approved by Bob"`) || !strings.HasPrefix(got, "Denied by Ann at ") {
		t.Errorf("outcome %q", got)
	}
	if got := policy.OutcomeWithoutReasons(r); strings.Contains(got, "allow-list") || !strings.HasPrefix(got, "Denied by Ann at ") {
		t.Errorf("outcome without reasons %q", got)
	}
}
