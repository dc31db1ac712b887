package bot

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/policy"
)

// Headings of the two kinds of fact. They are approvebot's words; renderers
// set them apart from anything an agent can write.
const (
	HeadingBoundAction = "Verified against the action digest: this is the action you approve"
	HeadingBoundInput  = "Verified against the input digest (the agent sent no action binding, so its parameters cannot be shown)"
	HeadingLegacy      = "As the agent sent it (legacy request: no digest binds an action)"
	HeadingContext     = "From the agent, not verified: context only, not part of what you approve"
)

// View is what destination dest of r shows now (dest -1: the request as a
// whole, for a clicker's private refresh or the full view). Buttons show only
// while the request is pending and the destination belongs to the stage
// that decides.
//
// Every agent-supplied string passes through package display here, once, so
// renderers receive inert one-line text: bound facts and context in separate
// lists with labels that cannot collide (context labels all start with
// "context", bound ones never do), values exactly as received.
func View(r *approvebot.Request, dest int) approvebot.Message {
	m := approvebot.Message{
		RequestID:      r.ID,
		Title:          "Approval needed",
		Status:         r.Status,
		Deadline:       r.Deadline,
		Progress:       display.Inline(policy.Progress(r)),
		ContextHeading: HeadingContext,
		Reason:         r.Chain.Reason,
		ConfirmApprove: r.Chain.ConfirmApprove,
	}
	if r.Status.Final() {
		m.Title = "Approval request closed"
		m.Outcome = display.Inline(policy.Outcome(r))
	} else {
		m.Actionable = dest < 0 || (dest < len(r.Destinations) && r.Destinations[dest].Stage == r.Stage)
	}
	m.BoundHeading, m.Bound = boundFacts(r)
	if len(r.Context) > 0 {
		entries, total := display.Flatten("context", r.Context, approvebot.MaxContext)
		for _, e := range entries {
			m.Context = append(m.Context, approvebot.Field{Label: e.Path, Value: e.Value})
		}
		m.ContextTotal = total
	}
	f := func(label, value string) {
		if value != "" {
			m.Fields = append(m.Fields, approvebot.Field{Label: label, Value: display.Inline(value)})
		}
	}
	f("Approvers", approversLine(r))
	f("Deadline", r.Deadline.UTC().Format("2006-01-02 15:04:05 UTC"))
	f("Request", r.PublicID())
	m.Notice = display.Inline(notice(r))
	return m
}

// boundFacts lists what a digest binds, action first: a 1.0 request's
// action binding (operation, target, every parameter under its path), then
// the presented fields input_digest covers. A legacy request has no digest
// over its action; its fields are shown in the same place, headed so.
func boundFacts(r *approvebot.Request) (string, []approvebot.Field) {
	var out []approvebot.Field
	add := func(label, value string) { out = append(out, approvebot.Field{Label: label, Value: value}) }
	str := func(label, v string) { add(label, display.Quote(v)) }
	nullable := func(label string, v *string) {
		if v == nil {
			add(label, "null")
			return
		}
		str(label, *v)
	}
	f := r.Fields
	if r.Schema != approvebot.SchemaV1 {
		str("action", f.Action)
		str("agent_id", f.AgentID)
		str("rule_name", f.RuleName)
		str("policy_name", f.PolicyName)
		str("requested_at", f.RequestedAt)
		return HeadingLegacy, out
	}
	heading := HeadingBoundInput
	if len(r.ActionBinding) > 0 {
		heading = HeadingBoundAction
		var b struct {
			Operation  json.RawMessage `json:"operation"`
			Target     json.RawMessage `json:"target"`
			Parameters json.RawMessage `json:"parameters"`
		}
		if err := json.Unmarshal(r.ActionBinding, &b); err != nil {
			// Intake verified the binding; a stored one that no longer
			// reads is shown whole rather than dropped.
			for _, e := range flatten("action_binding", r.ActionBinding) {
				add(e.Path, e.Value)
			}
		} else {
			for _, part := range []struct {
				path string
				raw  json.RawMessage
			}{{"operation", b.Operation}, {"target", b.Target}, {"parameters", b.Parameters}} {
				if len(part.raw) == 0 {
					continue
				}
				for _, e := range flatten(part.path, part.raw) {
					add(e.Path, e.Value)
				}
			}
		}
	} else {
		str("operation", f.Operation)
		nullable("target_resource", f.TargetResource)
	}
	str("agent_id", f.AgentID)
	nullable("subject_id", f.SubjectID)
	if len(r.ActionBinding) > 0 {
		nullable("target_resource", f.TargetResource)
	}
	str("approval_request_id", f.ApprovalRequestID)
	str("policy_decision_id", f.PolicyDecisionID)
	str("policy_version", f.PolicyVersion)
	str("approval_chain_id", f.ApprovalChainID)
	str("approval_chain_version", f.ApprovalChainVersion)
	str("expires_at", f.ExpiresAt)
	str("action_digest", f.ActionDigest)
	return heading, out
}

// flatten is display.Flatten without a cap: bound facts are never cut.
func flatten(prefix string, raw json.RawMessage) []display.Entry {
	e, _ := display.Flatten(prefix, raw, 0)
	return e
}

func approversLine(r *approvebot.Request) string {
	var stages []string
	for i, s := range r.Chain.Stages {
		line := strings.Join(s.GroupNames(), ", ")
		if q := s.Quorum.String(); q != approvebot.QuorumAny || len(r.Chain.Stages) > 1 {
			line += " (quorum " + q + ")"
		}
		if to := policy.EscalatedTo(r, i); len(to.Groups) > 0 {
			line += ", escalated to " + strings.Join(to.GroupNames(), ", ")
		}
		if len(r.Chain.Stages) > 1 {
			line = fmt.Sprintf("%d. %s", i+1, line)
		}
		stages = append(stages, line)
	}
	return strings.Join(stages, " then ")
}

// notice tells approvers when some of them were not reached.
func notice(r *approvebot.Request) string {
	var failed []string
	for _, d := range r.Destinations {
		if d.State == approvebot.DeliveryFailed {
			failed = append(failed, d.Platform+" "+d.Channel+" ("+d.Error+")")
		}
	}
	if len(failed) == 0 {
		return ""
	}
	return "Not delivered to " + strings.Join(failed, ", ")
}
