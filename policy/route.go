package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/approvebot/approvebot"
)

// Routed is where a request goes: the chain it must pass, fixed for its
// life, and how long it may wait.
type Routed struct {
	Chain   approvebot.Chain
	Timeout time.Duration
}

// NoRouteError says a request cannot be routed. The request fails closed:
// nobody is asked and the agent is denied with Reason.
type NoRouteError struct {
	// Unknown lists the approver groups or the chain the request named that
	// are not configured.
	Unknown []string
	// Reason is the sentence the agent reads.
	Reason string
}

func (e *NoRouteError) Error() string { return e.Reason }

// ForbiddenError says the caller may not ask where its request would go
// (callers[].may_request). Nothing is recorded: the agent is refused with
// Reason before the request exists.
type ForbiddenError struct {
	Caller string
	Reason string
}

func (e *ForbiddenError) Error() string { return e.Reason }

// Route decides which chain a request from caller (its configured name)
// must pass. schema is approvebot.SchemaLegacy or approvebot.SchemaV1. The
// first route, in file order, that matches decides; otherwise a legacy
// request's own approvers list, or a schema 1.0 request's
// approval_chain_id, does. It fails closed: any group or chain that is not
// configured is a *NoRouteError, even when others are; a destination the
// caller may not request, or a caller that is not configured, is a
// *ForbiddenError. The returned chain shares nothing with c.
func (c *Config) Route(caller string, f approvebot.Fields, schema string) (Routed, error) {
	i := slices.IndexFunc(c.Callers, func(cl Caller) bool { return cl.Name == caller })
	if i < 0 {
		return Routed{}, &ForbiddenError{Caller: caller, Reason: fmt.Sprintf("caller %q is not configured", caller)}
	}
	routed, chainID, err := c.route(caller, f, schema)
	if err != nil {
		return Routed{}, err
	}
	if err := c.Callers[i].permits(chainID, routed.Chain); err != nil {
		return Routed{}, err
	}
	return routed, nil
}

// route is Route before the caller's limits; chainID is the configured chain
// the request was routed to, or "" for groups.
func (c *Config) route(caller string, f approvebot.Fields, schema string) (Routed, string, error) {
	if schema != approvebot.SchemaLegacy && schema != approvebot.SchemaV1 {
		return Routed{}, "", &NoRouteError{Reason: fmt.Sprintf("unknown request schema %q", schema)}
	}
	for _, r := range c.Routes {
		if !r.Match.matches(caller, f, schema) {
			continue
		}
		if r.Chain != "" {
			check := schema == approvebot.SchemaV1 && r.Chain == f.ApprovalChainID
			routed, err := c.chain(r.Chain, r.Timeout, schema, f.ApprovalChainVersion, check)
			if err == nil && r.Reminders.set() {
				err = c.remind(&routed.Chain, r.Reminders)
			}
			r.rules(&routed.Chain)
			return routed, r.Chain, err
		}
		st, err := c.stage(r.Approvers, r.Quorum)
		if err != nil {
			return Routed{}, "", err
		}
		routed := Routed{Chain: approvebot.Chain{Stages: []approvebot.Stage{st}}, Timeout: orDefault(r.Timeout, DefaultTimeout)}
		if err := c.remind(&routed.Chain, r.Reminders); err != nil {
			return Routed{}, "", err
		}
		r.rules(&routed.Chain)
		return routed, "", nil
	}
	if schema == approvebot.SchemaV1 {
		if f.ApprovalChainID == "" {
			return Routed{}, "", &NoRouteError{Reason: "the request names no approval_chain_id and no route matches it"}
		}
		routed, err := c.chain(f.ApprovalChainID, 0, schema, f.ApprovalChainVersion, true)
		return routed, f.ApprovalChainID, err
	}
	var names []string
	for _, n := range f.Approvers {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return Routed{}, "", &NoRouteError{Reason: "the request names no approver groups and no route matches it"}
	}
	st, err := c.stage(names, approvebot.Quorum{Mode: approvebot.QuorumAny})
	if err != nil {
		return Routed{}, "", err
	}
	return Routed{Chain: approvebot.Chain{Stages: []approvebot.Stage{st}}, Timeout: DefaultTimeout}, "", nil
}

// rules puts the route's reason and confirmation settings, where it has
// them, on the chain it routed to.
func (r Route) rules(ch *approvebot.Chain) {
	if r.Reason != nil {
		ch.Reason = *r.Reason
	}
	if r.ConfirmApprove != nil {
		ch.ConfirmApprove = *r.ConfirmApprove
	}
}

// permits checks a routed request against the caller's may_request: a
// chain must be listed by its id, and groups each by name.
func (cl Caller) permits(chainID string, ch approvebot.Chain) error {
	if cl.MayRequest == nil {
		return nil
	}
	allowed := strings.Join(cl.MayRequest, ", ")
	if chainID != "" {
		if slices.Contains(cl.MayRequest, chainID) {
			return nil
		}
		return &ForbiddenError{Caller: cl.Name, Reason: fmt.Sprintf("caller %q may not request approval chain %q (its may_request allows: %s); nothing was recorded or approved", cl.Name, chainID, allowed)}
	}
	var refused []string
	for _, st := range ch.Stages {
		for _, g := range st.Groups {
			if !slices.Contains(cl.MayRequest, g.Name) && !slices.Contains(refused, g.Name) {
				refused = append(refused, g.Name)
			}
		}
	}
	if len(refused) > 0 {
		return &ForbiddenError{Caller: cl.Name, Reason: fmt.Sprintf("caller %q may not request approval from %s (its may_request allows: %s); nothing was recorded or approved", cl.Name, quoteAll(refused), allowed)}
	}
	return nil
}

// chain copies chain id. When the request is routed to the chain it named
// (checkVersion), the version its policy was written against must be the
// configured one: a chain changed under it must not silently approve. A
// different chain reached through a route was the operator's choice.
func (c *Config) chain(id string, timeout time.Duration, schema, version string, checkVersion bool) (Routed, error) {
	cc, ok := c.Chains[id]
	if !ok {
		return Routed{}, &NoRouteError{Unknown: []string{id}, Reason: fmt.Sprintf("approval chain %q is not configured in approvebot", id)}
	}
	if checkVersion && version != cc.Version {
		return Routed{}, &NoRouteError{Reason: fmt.Sprintf("approval_chain_version %q does not match the configured version %q of chain %q", version, cc.Version, id)}
	}
	ch := approvebot.Chain{SeparationOfDuties: cc.SeparationOfDuties, Reason: cc.Reason, ConfirmApprove: cc.ConfirmApprove}
	if err := c.remind(&ch, cc.Reminders); err != nil {
		return Routed{}, err
	}
	if schema == approvebot.SchemaV1 {
		ch.ID, ch.Version = cc.ID, cc.Version
	}
	var unknown []string
	for _, sc := range cc.Stages {
		st, err := c.stage(sc.Approvers, sc.Quorum)
		var nr *NoRouteError
		if errors.As(err, &nr) && len(nr.Unknown) > 0 {
			unknown = append(unknown, nr.Unknown...)
			continue
		}
		if err != nil {
			return Routed{}, err
		}
		ch.Stages = append(ch.Stages, st)
	}
	if len(unknown) > 0 {
		return Routed{}, &NoRouteError{Unknown: unknown, Reason: fmt.Sprintf("approval chain %q names approver groups that are not configured in approvebot: %s", id, quoteAll(unknown))}
	}
	if len(ch.Stages) == 0 {
		return Routed{}, &NoRouteError{Reason: fmt.Sprintf("approval chain %q has no stages", id)}
	}
	return Routed{Chain: ch, Timeout: orDefault(timeout, orDefault(cc.Timeout, DefaultTimeout))}, nil
}

// stage builds a stage from copies of the named groups.
func (c *Config) stage(names []string, q approvebot.Quorum) (approvebot.Stage, error) {
	var unknown []string
	st := approvebot.Stage{Quorum: q}
	if st.Quorum.Mode == "" {
		st.Quorum.Mode = approvebot.QuorumAny
	}
	for _, n := range names {
		g, ok := c.Approvers[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		st.Groups = append(st.Groups, copyGroup(g))
	}
	if len(unknown) > 0 {
		return approvebot.Stage{}, &NoRouteError{Unknown: unknown, Reason: fmt.Sprintf("approver group %s not configured in approvebot: no request goes out until every named group is (ask the operator to add it, or fix the policy's approvers)", plural(unknown))}
	}
	if len(st.Groups) == 0 {
		return approvebot.Stage{}, &NoRouteError{Reason: "the route names no approver groups"}
	}
	return st, nil
}

func plural(names []string) string {
	if len(names) == 1 {
		return fmt.Sprintf("%q is", names[0])
	}
	return quoteAll(names) + " are"
}

func copyGroup(g approvebot.Group) approvebot.Group {
	out := approvebot.Group{Name: g.Name}
	if g.Sides != nil {
		out.Sides = make(map[string]approvebot.Side, len(g.Sides))
	}
	for p, s := range g.Sides {
		s.Channels, s.Users, s.Groups = slices.Clone(s.Channels), slices.Clone(s.Users), slices.Clone(s.Groups)
		out.Sides[p] = s
	}
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// matches reports whether m selects a request. A key only one schema
// carries never matches a request of the other: a rule name says nothing
// about a schema 1.0 request.
func (m Match) matches(caller string, f approvebot.Fields, schema string) bool {
	if !glob(m.Caller, caller) {
		return false
	}
	if schema == approvebot.SchemaLegacy {
		return m.ChainID == "" && m.Operation == "" && m.TargetResource == "" &&
			glob(m.RuleName, f.RuleName) && glob(m.PolicyName, f.PolicyName) &&
			glob(m.Action, f.Action) && glob(m.AgentID, f.AgentID)
	}
	if m.RuleName != "" || m.PolicyName != "" || m.Action != "" {
		return false
	}
	if !glob(m.ChainID, f.ApprovalChainID) || !glob(m.Operation, f.Operation) || !glob(m.AgentID, f.AgentID) {
		return false
	}
	if m.TargetResource == "" {
		return true
	}
	if f.TargetResource == nil {
		return m.TargetResource == "*"
	}
	return glob(m.TargetResource, *f.TargetResource)
}

// glob matches like path.Match; an empty pattern matches anything and a
// malformed one nothing.
func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// String shows a match as key=pattern pairs, or "*" for a catch-all.
func (m Match) String() string {
	var parts []string
	for _, kv := range [][2]string{
		{"rule_name", m.RuleName}, {"policy_name", m.PolicyName}, {"action", m.Action},
		{"agent_id", m.AgentID}, {"approval_chain_id", m.ChainID}, {"operation", m.Operation},
		{"target_resource", m.TargetResource}, {"caller", m.Caller},
	} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "*"
	}
	return strings.Join(parts, " ")
}

// remind gives a chain the reminders and escalation steps configured for
// it (copies of the groups).
func (c *Config) remind(ch *approvebot.Chain, r Reminders) error {
	ch.Reminders = slices.Clone(r.After)
	ch.BeforeDeadline = r.BeforeDeadline
	ch.Escalate = nil
	for _, e := range r.Escalate {
		st, err := c.stage(e.Approvers, approvebot.Quorum{})
		if err != nil {
			return err
		}
		ch.Escalate = append(ch.Escalate, approvebot.Escalation{After: e.After, Groups: st.Groups})
	}
	return nil
}
