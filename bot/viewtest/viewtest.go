// Package viewtest holds the hostile requests every renderer's golden tests
// show, so Slack, Teams and whatever comes later are judged on the same
// inputs: context that shadows bound labels, floods of context, bindings too
// large for one message, 10 KB values, every character that could format,
// mention, link, reorder or hide text, and fake outcome lines.
package viewtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/approvebot/approvebot"
)

// Special is every kind of hostile text: mentions, links and link labels,
// formatting, emoji shortcodes, a newline that forges a labelled line,
// right-to-left override, zero-width characters, controls, and a fake
// outcome line.
const Special = "<!channel> <!here> <@U0ADMIN> @everyone <https://evil.example|click> [here](https://evil.example) " +
	"*bold* _it_ ~strike~ `code` ```block``` > quote :white_check_mark: Approved by Jane Doe\n*Amount*\n$1.00 " +
	"\u202Eevil\u202C \u200Bzero\u200D\u2060width\uFEFF \x1b[31mred\x1b[0m \x07bell\x00nul\r\ttab \u2028ls " +
	"&amp; & < > {{DATE(2017-02-14T06:08:39Z, SHORT)}} # heading\n- list\n1. item"

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func chain() approvebot.Chain {
	return approvebot.Chain{ID: "payments", Version: "7", Stages: []approvebot.Stage{{
		Groups: []approvebot.Group{{Name: "treasury-ops"}}, Quorum: approvebot.Quorum{Mode: approvebot.QuorumAny},
	}}}
}

// V1 is a pending schema 1.0 request with binding parameters params (a JSON
// object text) and context ctx (a JSON object text, or "").
func V1(id, params, ctx string) *approvebot.Request {
	target := "prod-db"
	subject := "user-456"
	binding := `{"schema_version": "1.0", "operation": "tool.invoke", "agent_id": "agent-123", "subject_id": "user-456", ` +
		`"target": {"tool_name": "transfer_funds", "tool_schema_version": "1", "resource": "prod-db"}, "parameters": ` + params + `}`
	if !json.Valid([]byte(binding)) {
		panic("viewtest: invalid parameters " + params)
	}
	r := &approvebot.Request{
		ID: id, Schema: approvebot.SchemaV1, Caller: "payments-agent",
		Fields: approvebot.Fields{
			Type: "approval_request", SchemaVersion: "1.0", ApprovalRequestID: id,
			PolicyDecisionID: "pd_0123456789abcdef0123456789abcdef",
			ActionDigest:     "sha256:" + strings.Repeat("ab", 32), InputDigest: "sha256:" + strings.Repeat("cd", 32),
			AgentID: "agent-123", SubjectID: &subject, Operation: "tool.invoke", TargetResource: &target,
			PolicyVersion: "2026.06.11", ApprovalChainID: "payments", ApprovalChainVersion: "7",
			ExpiresAt: "2026-12-01T12:10:00+00:00",
		},
		ActionBinding: json.RawMessage(binding),
		Chain:         chain(),
		CreatedAt:     now,
		Deadline:      now.Add(5 * time.Minute),
		Status:        approvebot.StatusPending,
		Destinations:  []approvebot.Destination{{Platform: "slack", Channel: "C0TREASURY", Groups: []string{"treasury-ops"}, State: approvebot.DeliveryPosted}},
		Version:       2,
	}
	if ctx != "" {
		if !json.Valid([]byte(ctx)) {
			panic("viewtest: invalid context " + ctx)
		}
		r.Context = json.RawMessage(ctx)
	}
	return r
}

// Attack is the request that once showed approvers "parameters.amount 10"
// while binding 1000000 to ACC-ATTACKER: context shadows the bound label and
// filler pushes the bound values out of a capped list.
func Attack(filler int) *approvebot.Request {
	var b strings.Builder
	b.WriteString(`{"parameters": {"amount": 10, "destination": "ACC-SAFE"}`)
	for i := range filler {
		fmt.Fprintf(&b, `, "a%02d": "ok"`, i)
	}
	b.WriteString("}")
	return V1("ar_attack", `{"amount": 1000000, "destination": "ACC-ATTACKER"}`, b.String())
}

// Cases are the hostile requests, by golden file name.
func Cases() map[string]*approvebot.Request {
	cases := map[string]*approvebot.Request{}
	cases["pending"] = V1("ar_pending", `{"amount": 1e6, "fee": 1000000.00, "destination": "ACC-789", "urgent": true, "memo": null, "tags": [], "meta": {}}`,
		`{"note": "quarterly payroll", "ticket": {"id": "FIN-1", "url": "https://tickets.example/FIN-1"}}`)
	cases["attack"] = Attack(9)
	cases["attack_40"] = Attack(40)

	cases["shadowing"] = V1("ar_shadow", `{"amount": 1000000, "a.b": 1, "a": {"b": 2}, "amount ": 3, "amount\u200b": 4}`,
		`{"parameters.amount": 10, "operation": "tool.noop", "approval_request_id": "ar_other", "action_digest": "sha256:00", `+
			`"parameters": {"amount": 10}, "Verified against the action digest": "amount 10", "context": {"parameters": {"amount": 10}}}`)

	var ctx strings.Builder
	ctx.WriteString("{")
	for i := range 200 {
		if i > 0 {
			ctx.WriteString(", ")
		}
		fmt.Fprintf(&ctx, `"k%03d": "value %d"`, i, i)
	}
	ctx.WriteString("}")
	cases["context_200"] = V1("ar_ctx200", `{"amount": 5000}`, ctx.String())

	var params strings.Builder
	params.WriteString("{")
	for i := range 60 {
		if i > 0 {
			params.WriteString(", ")
		}
		fmt.Fprintf(&params, `"p%02d": "bound value number %d for the payment run, which needs every one of its sixty parameters shown"`, i, i)
	}
	params.WriteString("}")
	cases["bound_60"] = V1("ar_bound60", params.String(), `{"note": "sixty parameters"}`)

	big, _ := json.Marshal(strings.Repeat("0123456789", 1024))
	cases["value_10k"] = V1("ar_10k", `{"amount": 5, "blob": `+string(big)+`}`, `{"blob": `+string(big)+`}`)

	sp, _ := json.Marshal(Special)
	special := V1("ar_special", `{"memo": `+string(sp)+`, `+string(sp)+`: 1}`, `{"note": `+string(sp)+`, `+string(sp)+`: "key"}`)
	special.Fields.AgentID = "agent\n*Amount*\n$1.00 " + Special
	cases["special"] = special

	approved := V1("ar_approved", `{"amount": 5000, "destination": "ACC-789"}`, `{"note": "Approved by the CEO :white_check_mark:"}`)
	jane := approvebot.Approver{Platform: "slack", Workspace: "T1", UserID: "U0JANE", Name: "Jane *Doe* <!channel>", Email: "jane@company.com"}
	approved.Status = approvebot.StatusApproved
	approved.Entries = []approvebot.Entry{{Decision: approvebot.Allow, Approver: jane}}
	approved.Resolution = &approvebot.Resolution{Status: approvebot.StatusApproved, Outcome: approvebot.Allow,
		Approver: jane.Principal(), ApproverName: jane.Name, ResolvedAt: now.Add(time.Minute)}
	cases["approved"] = approved

	legacy := &approvebot.Request{
		ID: "ar_0123456789abcdef", Schema: approvebot.SchemaLegacy, Caller: "payments-agent",
		Fields: approvebot.Fields{Type: "approval_request", RuleName: "approve-large-transfer", PolicyName: "financial-approvals",
			AgentID: "payments-agent\u202E", Action: "transfer " + Special, RequestedAt: "2026-12-01T11:59:00+00:00"},
		Context:  json.RawMessage(`{"amount": 12500.00, "to": "DE89 3704 0044 0532 0130 00"}`),
		Chain:    chain(),
		Deadline: now.Add(5 * time.Minute), CreatedAt: now, Status: approvebot.StatusPending,
		Destinations: []approvebot.Destination{{Platform: "slack", Channel: "C0TREASURY", State: approvebot.DeliveryFailed, Error: "channel_not_found <!here>"}},
	}
	cases["legacy"] = legacy
	return cases
}
