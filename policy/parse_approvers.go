package policy

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy/confnode"
	"go.yaml.in/yaml/v3"
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

// notify reads a platform side's notify list (at names the side): whether
// it reaches the listed users directly, and whether it posts to channels
// (the default).
func (p *parser) notify(o *confnode.Object, at string) (dm, channels bool) {
	if !o.Has("notify") {
		return false, true
	}
	list, nodes := p.ListNodes(o, "notify")
	for i, n := range list {
		switch n {
		case "channels":
			channels = true
		case "dm":
			dm = true
		default:
			p.Add(nodes[i].Line, "%s.notify: %q is not a way to reach approvers (want channels, dm)", at, n)
		}
	}
	if len(list) == 0 {
		p.Add(o.LineOf("notify"), "%s.notify is empty: list channels, dm or both", at)
	}
	return dm, channels
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
	for _, e := range p.Entries(n, "approvers") {
		name := e.Key.Value
		at := "approvers." + name
		if strings.TrimSpace(name) != name || name == "" {
			p.Add(e.Key.Line, "%q: group names may not be empty or start or end with spaces", name)
			continue
		}
		o := p.Object(e.Val, at, "slack", "teams", "web")
		if o == nil {
			continue
		}
		g := approvebot.Group{Name: name, Sides: map[string]approvebot.Side{}}
		if so := p.Object(o.Val["slack"], at+".slack", "channels", "users", "usergroups", "notify"); o.Has("slack") && so != nil {
			sg := approvebot.Side{}
			var chans, users, ugs []*yaml.Node
			var notifyChannels bool
			sg.DM, notifyChannels = p.notify(so, at+".slack")
			sg.Channels, chans = p.ListNodes(so, "channels")
			sg.Users, users = p.ListNodes(so, "users")
			sg.Groups, ugs = p.ListNodes(so, "usergroups")
			for i, c := range sg.Channels {
				if strings.Contains(c, "#") || strings.ContainsFunc(c, unicode.IsSpace) {
					p.Add(chans[i].Line, "%s.slack.channels: %q is a channel name; give its ID instead (C0123ABC: channel details, at the bottom)", at, c)
				}
			}
			for i, u := range sg.Users {
				if !slackUser.MatchString(u) && !confnode.IsEmail(u) {
					p.Add(users[i].Line, "%s.slack.users: %q is neither a Slack user ID (U0123ABC) nor an email", at, u)
				}
			}
			for i, ug := range sg.Groups {
				if !slackGroup.MatchString(ug) {
					p.Add(ugs[i].Line, "%s.slack.usergroups: %q is not a user group ID (they start with S, e.g. S0123ABC)", at, ug)
				}
			}
			if cfg.Slack == nil {
				p.Add(so.Line(), "%s.slack: the file has no slack section: add one (bot_token, signing_secret) or remove this side", at)
			}
			switch {
			case sg.DM && len(sg.Users) == 0:
				p.Add(so.LineOf("notify"), "%s.slack.notify: dm needs users to message (user groups cannot be messaged)", at)
			case !notifyChannels && len(sg.Channels) > 0:
				p.Add(so.LineOf("channels"), "%s.slack: channels are listed but notify has no channels: add channels to notify or remove them", at)
			case notifyChannels:
				p.checkSide(so.Line(), at+".slack", "Slack", len(sg.Channels), len(sg.Users)+len(sg.Groups), "users or usergroups")
			}
			g.Sides["slack"] = sg
		}
		if to := p.Object(o.Val["teams"], at+".teams", "channels", "users", "allow_guests", "notify"); o.Has("teams") && to != nil {
			tg := approvebot.Side{AllowGuests: p.Bool(to, "allow_guests")}
			var chans, users []*yaml.Node
			var notifyChannels bool
			tg.DM, notifyChannels = p.notify(to, at+".teams")
			tg.Channels, chans = p.ListNodes(to, "channels")
			tg.Users, users = p.ListNodes(to, "users")
			for i, c := range tg.Channels {
				if !strings.HasPrefix(c, "19:") {
					p.Add(chans[i].Line, "%s.teams.channels: %q is not a Teams channel ID (19:...@thread.tacv2: \"Get link to channel\")", at, c)
				}
			}
			for i, u := range tg.Users {
				if !guid.MatchString(u) && !confnode.IsEmail(u) {
					p.Add(users[i].Line, "%s.teams.users: %q is neither an Entra object ID (a GUID) nor an email or UPN", at, u)
				}
			}
			if cfg.Teams == nil {
				p.Add(to.Line(), "%s.teams: the file has no teams section: add one (app_id, app_password, tenant_id) or remove this side", at)
			}
			switch {
			case tg.DM && len(tg.Users) == 0:
				p.Add(to.LineOf("notify"), "%s.teams.notify: dm needs users to message", at)
			case !notifyChannels && len(tg.Channels) > 0:
				p.Add(to.LineOf("channels"), "%s.teams: channels are listed but notify has no channels: add channels to notify or remove them", at)
			case notifyChannels:
				p.checkSide(to.Line(), at+".teams", "Teams", len(tg.Channels), len(tg.Users), "users")
			}
			g.Sides["teams"] = tg
		}
		if wo := p.Object(o.Val["web"], at+".web", "users", "groups"); o.Has("web") && wo != nil {
			wg := approvebot.Side{}
			var users []*yaml.Node
			wg.Users, users = p.ListNodes(wo, "users")
			wg.Groups = p.List(wo, "groups")
			for i, u := range wg.Users {
				if sub, ok := strings.CutPrefix(u, "sub:"); ok {
					if sub == "" || strings.ContainsFunc(sub, unicode.IsSpace) {
						p.Add(users[i].Line, "%s.web.users: %q: give the subject after sub:, without spaces", at, u)
					}
				} else if !confnode.IsEmail(u) {
					p.Add(users[i].Line, "%s.web.users: %q is neither an email nor sub:<subject>", at, u)
				}
			}
			if len(wg.Groups) > 0 && cfg.Web != nil && cfg.Web.GroupsClaim == "" {
				p.Add(wo.LineOf("groups"), "%s.web.groups needs web.groups_claim: name the ID token claim that lists a person's groups", at)
			}
			if len(wg.Users)+len(wg.Groups) == 0 {
				p.Add(wo.Line(), "%s.web is empty: list users (emails or sub:<subject>) or groups", at)
			}
			if cfg.Web == nil && !p.demo {
				p.Add(wo.Line(), "%s.web: the file has no web section: add one (issuer, client_id, client_secret) or remove this side", at)
			}
			g.Sides["web"] = wg
		}
		if !o.Has("slack") && !o.Has("teams") && !o.Has("web") {
			p.Add(e.Key.Line, "%s names nobody who may approve: give it a slack, teams or web side with channels and users", at)
		}
		cfg.Approvers[name] = g
	}
}

// checkSide insists that a platform side both shows requests somewhere and
// names someone who may decide them there.
func (p *parser) checkSide(line int, at, platform string, channels, deciders int, who string) {
	switch {
	case channels == 0 && deciders == 0:
		p.Add(line, "%s is empty: list channels and %s", at, who)
	case deciders == 0:
		p.Add(line, "%s: channels set but no %s: nobody could approve from %s", at, who, platform)
	case channels == 0:
		p.Add(line, "%s: %s set but no channels: the request would never be shown on %s", at, who, platform)
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
		if s, ok := g.Side("slack"); ok {
			if len(s.Groups) > 0 {
				return
			}
			for _, u := range s.Users {
				people[strings.ToLower(u)] = true
			}
		}
		if s, ok := g.Side("teams"); ok {
			for _, u := range s.Users {
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
