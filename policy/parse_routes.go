package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy/confnode"
)

func (p *parser) chains(top *confnode.Object, cfg *Config) []groupRef {
	cfg.Chains = map[string]ChainConfig{}
	n := top.Val["chains"]
	if confnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.Add(n.Line, "chains must be a mapping of chain IDs to chains, not %s", confnode.Describe(n))
		return nil
	}
	var refs []groupRef
	for _, e := range p.Entries(n, "chains") {
		id := e.Key.Value
		at := "chains." + id
		o := p.Object(e.Val, at, "version", "stages", "separation_of_duties", "timeout", "reminders", "before_deadline", "escalate", "reason", "confirm_approve")
		if o == nil {
			continue
		}
		ch := ChainConfig{
			ID:                 id,
			Version:            p.Str(o, "version", confnode.Required),
			SeparationOfDuties: p.Bool(o, "separation_of_duties"),
			Timeout:            p.Duration(o, "timeout", 0, false),
			Reminders:          p.reminders(o, &refs),
			Reason:             p.reason(o),
			ConfirmApprove:     p.Bool(o, "confirm_approve"),
		}
		if vn, ok := o.Val["version"]; ok && vn.ShortTag() == "!!bool" {
			p.Add(vn.Line, `%s.version must be a version such as "3", not %s`, at, vn.Value)
		}
		sn := o.Val["stages"]
		switch {
		case confnode.IsNull(sn):
			p.Add(o.Line(), "%s.stages is missing: list at least one stage, e.g. - {approvers: [security], quorum: any}", at)
		case sn.Kind != yaml.SequenceNode || len(sn.Content) == 0:
			p.Add(sn.Line, "%s.stages must be a list of at least one {approvers, quorum}", at)
		default:
			for i, item := range sn.Content {
				so := p.Object(item, fmt.Sprintf("%s.stages[%d]", at, i), "approvers", "quorum")
				if so == nil {
					continue
				}
				st := StageConfig{Approvers: p.List(so, "approvers"), Quorum: p.quorum(so, "quorum")}
				if len(st.Approvers) == 0 {
					p.Add(so.Line(), "%s.approvers: list at least one approver group", so.Path)
				}
				ch.Stages = append(ch.Stages, st)
				refs = append(refs, refOf(so, st.Approvers, st.Quorum))
			}
		}
		cfg.Chains[id] = ch
	}
	return refs
}

func refOf(o *confnode.Object, groups []string, q approvebot.Quorum) groupRef {
	r := groupRef{at: confnode.Join(o.Path, "approvers"), line: o.Line(), q: q, qAt: confnode.Join(o.Path, "quorum"), qLn: o.Line(), list: groups}
	if n, ok := o.Val["approvers"]; ok {
		r.line = n.Line
	}
	if n, ok := o.Val["quorum"]; ok {
		r.qLn = n.Line
	}
	return r
}

var (
	legacyKeys = []string{"rule_name", "policy_name", "action"}
	v1Keys     = []string{"approval_chain_id", "operation", "target_resource"}
)

func (p *parser) routes(top *confnode.Object, cfg *Config) []groupRef {
	n := top.Val["routes"]
	if confnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.Add(n.Line, "routes must be a list, not %s", confnode.Describe(n))
		return nil
	}
	var refs []groupRef
	catchAll := 0 // line of the first route matching everything
	for i, item := range n.Content {
		at := fmt.Sprintf("routes[%d]", i)
		o := p.Object(item, at, "match", "approvers", "chain", "quorum", "timeout", "reminders", "before_deadline", "escalate", "reason", "confirm_approve")
		if o == nil {
			continue
		}
		r := Route{Line: item.Line}
		if o.Has("reason") {
			rule := p.reason(o)
			r.Reason = &rule
		}
		if o.Has("confirm_approve") {
			confirm := p.Bool(o, "confirm_approve")
			r.ConfirmApprove = &confirm
		}
		mo := p.Object(o.Val["match"], at+".match", "rule_name", "policy_name", "action", "agent_id", "approval_chain_id", "operation", "target_resource", "caller")
		pattern := func(key string) string {
			s := p.Str(mo, key, confnode.Required)
			if mo != nil && mo.Has(key) && s != "" {
				if _, err := path.Match(s, ""); err != nil {
					p.Add(mo.Val[key].Line, "%s.match.%s: %q is not a valid pattern (* ? [a-z] as in path.Match)", at, key, s)
				}
			}
			return s
		}
		r.Match = Match{
			RuleName:       readIf(mo, "rule_name", pattern),
			PolicyName:     readIf(mo, "policy_name", pattern),
			Action:         readIf(mo, "action", pattern),
			AgentID:        readIf(mo, "agent_id", pattern),
			ChainID:        readIf(mo, "approval_chain_id", pattern),
			Operation:      readIf(mo, "operation", pattern),
			TargetResource: readIf(mo, "target_resource", pattern),
			Caller:         readIf(mo, "caller", pattern),
		}
		var legacy, v1 []string
		for _, k := range legacyKeys {
			if mo.Has(k) {
				legacy = append(legacy, k)
			}
		}
		for _, k := range v1Keys {
			if mo.Has(k) {
				v1 = append(v1, k)
			}
		}
		if len(legacy) > 0 && len(v1) > 0 {
			p.Add(mo.Line(), "%s.match mixes legacy keys (%s) with schema 1.0 keys (%s): no request carries both, so it could never match", at, strings.Join(legacy, ", "), strings.Join(v1, ", "))
		}
		if catchAll > 0 {
			p.Add(item.Line, "%s can never match: the route at line %d above matches every request", at, catchAll)
		} else if mo != nil && len(mo.Val) == 0 {
			catchAll = item.Line
		}

		r.Chain = p.Str(o, "chain", confnode.Optional)
		r.Approvers = p.List(o, "approvers")
		r.Timeout = p.Duration(o, "timeout", 0, false)
		r.Reminders = p.reminders(o, &refs)
		switch {
		case o.Has("chain") && o.Has("approvers"):
			p.Add(o.Line(), "%s sets both approvers and chain: keep exactly one", at)
		case r.Chain != "":
			if o.Has("quorum") {
				p.Add(o.Val["quorum"].Line, "%s.quorum applies to approvers, not to a chain: set quorum on the chain's stages", at)
			}
			if _, ok := cfg.Chains[r.Chain]; !ok {
				p.Add(o.Val["chain"].Line, "%s.chain: chain %q is not defined under chains%s", at, r.Chain, known(cfg.Chains))
			}
		case len(r.Approvers) > 0:
			r.Quorum = p.quorum(o, "quorum")
			refs = append(refs, refOf(o, r.Approvers, r.Quorum))
		case !o.Has("chain") && !o.Has("approvers"):
			p.Add(o.Line(), "%s routes nowhere: set approvers (a list of groups) or chain", at)
		default:
			p.Add(o.Line(), "%s: approvers or chain is empty: name at least one group, or a chain", at)
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	return refs
}

// reason reads o's reason: {deny: required|optional, approve: optional|none}.
// An absent key, or an absent half, takes its default (deny optional,
// approve none).
func (p *parser) reason(o *confnode.Object) approvebot.ReasonRule {
	if o == nil || !o.Has("reason") {
		return approvebot.ReasonRule{}
	}
	at := confnode.Join(o.Path, "reason")
	ro := p.Object(o.Val["reason"], at, "deny", "approve")
	if ro == nil {
		return approvebot.ReasonRule{}
	}
	one := func(key string, allowed ...string) string {
		v := p.Str(ro, key, confnode.Optional)
		if v != "" && !slices.Contains(allowed, v) {
			p.Add(ro.Val[key].Line, "%s.%s must be %s, not %q", at, key, strings.Join(allowed, " or "), v)
			return ""
		}
		return v
	}
	return approvebot.ReasonRule{
		Deny:    one("deny", approvebot.ReasonRequired, approvebot.ReasonOptional),
		Approve: one("approve", approvebot.ReasonOptional, approvebot.ReasonNone),
	}
}

func readIf(o *confnode.Object, key string, read func(string) string) string {
	if !o.Has(key) {
		return ""
	}
	return read(key)
}

func known[V any](m map[string]V) string {
	if len(m) == 0 {
		return " (none are)"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

// reminders reads a route's or chain's reminders (a list of durations after
// the request opened, in rising order) and before_deadline.
func (p *parser) reminders(o *confnode.Object, refs *[]groupRef) Reminders {
	var r Reminders
	if o == nil {
		return r
	}
	at := confnode.Join(o.Path, "reminders")
	if n, ok := o.Val["reminders"]; ok && !confnode.IsNull(n) {
		if n.Kind != yaml.SequenceNode {
			p.Add(n.Line, `%s must be a list of durations, e.g. [10m, 1h], not %s`, at, confnode.Describe(n))
		} else {
			prev := ""
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", at, i)
				one := &confnode.Object{Val: map[string]*yaml.Node{key: item}}
				d := p.Duration(one, key, 0, false)
				if d <= 0 {
					continue
				}
				if len(r.After) > 0 && d <= r.After[len(r.After)-1] {
					p.Add(item.Line, "%s[%d]: %s must come after %s: list reminders in rising order", at, i, item.Value, prev)
					continue
				}
				r.After, prev = append(r.After, d), item.Value
			}
		}
	}
	r.BeforeDeadline = p.Duration(o, "before_deadline", 0, false)
	at = confnode.Join(o.Path, "escalate")
	if n, ok := o.Val["escalate"]; ok && !confnode.IsNull(n) {
		if n.Kind != yaml.SequenceNode {
			p.Add(n.Line, "%s must be a list of {after, approvers}, e.g. [{after: 15m, approvers: [leads]}], not %s", at, confnode.Describe(n))
			return r
		}
		for i, item := range n.Content {
			eo := p.Object(item, fmt.Sprintf("%s[%d]", at, i), "after", "approvers")
			if eo == nil {
				continue
			}
			if !eo.Has("after") {
				p.Add(eo.Line(), "%s.after is missing: say how long after the request opened to escalate, e.g. 15m", eo.Path)
			}
			esc := EscalationConfig{After: p.Duration(eo, "after", 0, false), Approvers: p.List(eo, "approvers")}
			if len(esc.Approvers) == 0 {
				p.Add(eo.Line(), "%s.approvers: list at least one approver group to escalate to", eo.Path)
				continue
			}
			if len(r.Escalate) > 0 && esc.After <= r.Escalate[len(r.Escalate)-1].After {
				p.Add(eo.Line(), "%s.after must come after the step before it: list escalations in rising order", eo.Path)
			}
			r.Escalate = append(r.Escalate, esc)
			*refs = append(*refs, refOf(eo, esc.Approvers, approvebot.Quorum{Mode: approvebot.QuorumAny}))
		}
	}
	return r
}

// quorum reads "any", "all" or a positive count.
func (p *parser) quorum(o *confnode.Object, key string) approvebot.Quorum {
	s := p.Str(o, key, confnode.Optional)
	switch s {
	case "", approvebot.QuorumAny:
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	case approvebot.QuorumAll:
		return approvebot.Quorum{Mode: approvebot.QuorumAll}
	}
	at, line := confnode.Join(o.Path, key), o.Val[key].Line
	if !confnode.WholeNumber(s) {
		p.Add(line, "%s must be any, all or a number of approvals such as 2, not %q", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.Add(line, "%s: %s is too large", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	if n < 1 {
		p.Add(line, "%s must be at least 1, not %s", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	return approvebot.Quorum{Mode: approvebot.QuorumCount, N: n}
}
