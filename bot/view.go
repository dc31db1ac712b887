package bot

import (
	"fmt"
	"strings"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake"
	"github.com/approvebot/approvebot/policy"
)

// View is what destination dest of r shows now (dest -1: the request as a
// whole, for a clicker's private refresh). Buttons show only while the
// request is pending and the destination belongs to the stage that decides.
func View(r *approvebot.Request, dest int) approvebot.Message {
	m := approvebot.Message{
		RequestID: r.ID,
		Title:     "Approval needed: " + r.Title(),
		Status:    r.Status,
		Deadline:  r.Deadline,
		Progress:  policy.Progress(r),
		Context:   intake.ContextFields(r.Context, r.ActionBinding),
	}
	if r.Status.Final() {
		m.Title = "Approval request: " + r.Title()
		m.Outcome = policy.Outcome(r)
	} else {
		m.Actionable = dest < 0 || (dest < len(r.Destinations) && r.Destinations[dest].Stage == r.Stage)
	}
	f := func(label, value string) {
		if value != "" {
			m.Fields = append(m.Fields, approvebot.Field{Label: label, Value: value})
		}
	}
	f("Agent", r.Fields.AgentID)
	if r.Schema == approvebot.SchemaV1 {
		f("Operation", r.Fields.Operation)
		if r.Fields.TargetResource != nil {
			f("Target", *r.Fields.TargetResource)
		}
		if r.Fields.SubjectID != nil {
			f("Subject", *r.Fields.SubjectID)
		}
		f("Policy version", r.Fields.PolicyVersion)
		f("Chain", r.Chain.ID+" v"+r.Chain.Version)
	} else {
		f("Action", r.Fields.Action)
		f("Rule", r.Fields.RuleName)
		f("Policy", r.Fields.PolicyName)
		f("Requested at", r.Fields.RequestedAt)
	}
	f("Approvers", approversLine(r))
	f("Deadline", r.Deadline.UTC().Format("2006-01-02 15:04:05 UTC"))
	f("Request", r.PublicID())
	m.Notice = notice(r)
	return m
}

func approversLine(r *approvebot.Request) string {
	var stages []string
	for i, s := range r.Chain.Stages {
		line := strings.Join(s.GroupNames(), ", ")
		if q := s.Quorum.String(); q != approvebot.QuorumAny || len(r.Chain.Stages) > 1 {
			line += " (quorum " + q + ")"
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
