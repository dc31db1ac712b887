package policy

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy/confnode"
)

// groupRef is a list of groups a route or stage names, with its quorum,
// checked once every group is known.
type groupRef struct {
	at   string // key path, for messages
	line int
	q    approvebot.Quorum
	qAt  string
	qLn  int
	list []string
}

func (p *parser) approvers(top *confnode.Object, cfg *Config) {
	cfg.Approvers = map[string]approvebot.Group{}
	n := top.Val["approvers"]
	if confnode.IsNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		p.Add(top.Line(), "approvers is missing: define at least one approver group, e.g. treasury-ops: {slack: {channels: [C0123], users: [U0123]}}")
		return
	}
	if n.Kind != yaml.MappingNode {
		p.Add(n.Line, "approvers must be a mapping of group names to groups, not %s", confnode.Describe(n))
		return
	}
	f := p.file(top, cfg)
	for _, e := range p.Entries(n, "approvers") {
		name := e.Key.Value
		at := "approvers." + name
		if strings.TrimSpace(name) != name || name == "" {
			p.Add(e.Key.Line, "%q: group names may not be empty or start or end with spaces", name)
			continue
		}
		o := p.Object(e.Val, at, p.platforms.Names()...)
		if o == nil {
			continue
		}
		g := approvebot.Group{Name: name, Sides: map[string]approvebot.Side{}}
		sided := false
		for _, pl := range p.platforms {
			if !o.Has(pl.Name()) {
				continue
			}
			sided = true
			if side, ok := pl.ParseSide(p.Reader, o.Val[pl.Name()], at+"."+pl.Name(), cfg.Section(pl.Name()), f); ok {
				g.Sides[pl.Name()] = side
			}
		}
		if !sided {
			p.Add(e.Key.Line, "%s names nobody who may approve: give it a %s side with channels and users", at, orList(p.platforms.Names()))
		}
		cfg.Approvers[name] = g
	}
}

// checkGroups checks that a stage's groups exist and that its quorum can be
// met. When every group lists only named users, a quorum larger than the
// number of distinct names could never be reached and every request would
// time out; with usergroups the membership is not known here.
func (p *parser) checkGroups(cfg *Config, r groupRef) {
	var unknown []string
	for _, name := range r.list {
		if _, ok := cfg.Approvers[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		p.Add(r.line, "%s: group %s not defined under approvers%s", r.at, quoteAll(unknown), known(cfg.Approvers))
		return
	}
	people := map[string]bool{}
	for _, name := range r.list {
		g := cfg.Approvers[name]
		for _, pl := range p.platforms {
			side, ok := g.Side(pl.Name())
			if !ok {
				continue
			}
			deciders, open := pl.Deciders(side)
			if open {
				return
			}
			for _, u := range deciders {
				people[strings.ToLower(u)] = true
			}
		}
	}
	switch {
	case r.q.Mode == approvebot.QuorumCount && r.q.N > len(people):
		p.Add(r.qLn, "%s: %d approvals needed but %s list only %d distinct people and no usergroups: the quorum could never be met", r.qAt, r.q.N, strings.Join(r.list, ", "), len(people))
	case r.q.Mode == approvebot.QuorumAll && len(r.list) > len(people):
		p.Add(r.qLn, "%s: all needs a different person for each of %d groups but %s list only %d distinct people: the quorum could never be met", r.qAt, len(r.list), strings.Join(r.list, ", "), len(people))
	}
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
