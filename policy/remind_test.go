package policy_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/policy"
)

const leadsY = "  leads:\n    slack: {channels: [C0LEADS], users: [U0LEE]}\n"

// Reminders and escalation steps reach the routed chain: a route's own
// override the chain's, and escalation groups are copied whole.
func TestRemindersRouted(t *testing.T) {
	doc := baseY + leadsY + `chains:
  c:
    version: "1"
    stages: [{approvers: [ops]}]
    reminders: [10m, 1h]
    before_deadline: 5m
    escalate: [{after: 15m, approvers: [leads]}]
routes:
  - match: {rule_name: own}
    approvers: [ops]
    reminders: [30m]
  - match: {rule_name: chained}
    chain: c
  - match: {rule_name: override}
    chain: c
    reminders: [2m]
`
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	route := func(rule string) approvebot.Chain {
		r, err := cfg.Route("agent", approvebot.Fields{RuleName: rule}, approvebot.SchemaLegacy)
		if err != nil {
			t.Fatalf("route %s: %v", rule, err)
		}
		return r.Chain
	}
	if c := route("own"); !reflect.DeepEqual(c.Reminders, []time.Duration{30 * time.Minute}) || c.BeforeDeadline != 0 || c.Escalate != nil {
		t.Errorf("own route: %+v", c)
	}
	c := route("chained")
	if !reflect.DeepEqual(c.Reminders, []time.Duration{10 * time.Minute, time.Hour}) || c.BeforeDeadline != 5*time.Minute ||
		len(c.Escalate) != 1 || c.Escalate[0].After != 15*time.Minute || c.Escalate[0].Groups[0].Name != "leads" || c.Escalate[0].Groups[0].Sides[slack.Name].Users[0] != "U0LEE" {
		t.Errorf("chained: %+v", c)
	}
	if c := route("override"); !reflect.DeepEqual(c.Reminders, []time.Duration{2 * time.Minute}) || c.Escalate != nil {
		t.Errorf("a route's reminders replace the chain's: %+v", c)
	}
	if ugs := policy.Usergroups(c, slack.Name); len(ugs) != 0 {
		t.Errorf("usergroups %v", ugs)
	}
}

func TestRemindersParseErrors(t *testing.T) {
	route := func(extra string) string {
		return baseY + leadsY + "routes:\n  - approvers: [ops]\n" + extra
	}
	for _, tc := range []struct{ name, doc, marker, want string }{
		{"no unit", route("    reminders: [10]\n"), "reminders", "routes[0].reminders[0]: 10 has no unit"},
		{"not a list", route("    reminders: 10m\n"), "reminders", "routes[0].reminders must be a list of durations"},
		{"not rising", route("    reminders: [1h, 10m]\n"), "reminders", "routes[0].reminders[1]: 10m must come after 1h: list reminders in rising order"},
		{"zero", route("    reminders: [0s]\n"), "reminders", "routes[0].reminders[0] must be more than 0"},
		{"bad before_deadline", route("    before_deadline: soon\n"), "before_deadline", `routes[0].before_deadline: "soon" is not a duration`},
		{"escalate unknown group", route("    escalate: [{after: 15m, approvers: [bosses]}]\n"), "escalate", `routes[0].escalate[0].approvers: group "bosses" not defined under approvers`},
		{"escalate without after", route("    escalate: [{approvers: [leads]}]\n"), "escalate", "routes[0].escalate[0].after is missing"},
		{"escalate without approvers", route("    escalate: [{after: 15m}]\n"), "escalate", "routes[0].escalate[0].approvers: list at least one approver group"},
		{"escalate unknown key", route("    escalate: [{after: 15m, approvers: [leads], to: x}]\n"), "escalate", `unknown key "to" in routes[0].escalate[0]`},
		{"escalate not a list", route("    escalate: {after: 15m}\n"), "escalate", "routes[0].escalate must be a list of {after, approvers}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), env(nil))
			want := fmt.Sprintf("line %d: %s", lineOf(t, tc.doc, tc.marker), tc.want)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}
