package policy_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/policy"
)

const routeY = callersY + slackY + `approvers:
  treasury-ops:
    slack: {channels: [C0T], users: [U0JANE, U0JIM], usergroups: [S0T]}
  compliance:
    slack: {channels: [C0C], users: [U0MARK]}
  dba:
    slack: {channels: [C0D], users: [U0DAN]}
  security:
    slack: {channels: [C0S], users: [U0SAM, U0SUE]}
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops, compliance]
    quorum: all
    timeout: 5m
  - match: {policy_name: "financial-*", action: refund}
    approvers: [treasury-ops]
    quorum: 2
  - match: {rule_name: via-chain}
    chain: high-risk-tools
  - match: {operation: "db.*", target_resource: "prod-*"}
    chain: high-risk-tools
    timeout: 4m
  - match: {approval_chain_id: "legacy-*"}
    approvers: [compliance]
  - match: {agent_id: "ops-bot"}
    approvers: [security]
    timeout: 1m
  - match: {operation: "*", agent_id: legacy-bot}
    approvers: [security]
  - match: {action: "*", agent_id: v1-bot}
    approvers: [security]
chains:
  high-risk-tools:
    version: 3
    stages:
      - {approvers: [dba], quorum: 1}
      - {approvers: [security, compliance], quorum: all}
    separation_of_duties: true
    timeout: 10m
  quick:
    version: "7"
    stages: [{approvers: [dba]}]
`

func routeConfig(t *testing.T) *policy.Config {
	t.Helper()
	cfg, err := Parse([]byte(routeY), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func ptr(s string) *string { return &s }

// summary is what a test compares: the groups of each stage, its quorum,
// the chain's identity and the timeout.
type summary struct {
	ID, Version string
	SoD         bool
	Stages      []string
	Timeout     time.Duration
}

func summarize(r policy.Routed) summary {
	s := summary{ID: r.Chain.ID, Version: r.Chain.Version, SoD: r.Chain.SeparationOfDuties, Timeout: r.Timeout}
	for _, st := range r.Chain.Stages {
		s.Stages = append(s.Stages, strings.Join(st.GroupNames(), "+")+"/"+st.Quorum.String())
	}
	return s
}

func TestRoute(t *testing.T) {
	cfg := routeConfig(t)
	legacy := approvebot.SchemaLegacy
	v1 := approvebot.SchemaV1
	for _, tc := range []struct {
		name   string
		f      approvebot.Fields
		schema string
		want   summary
	}{
		{name: "legacy exact rule", schema: legacy,
			f:    approvebot.Fields{RuleName: "approve-large-transfer", Approvers: []string{"ignored"}},
			want: summary{Stages: []string{"treasury-ops+compliance/all"}, Timeout: 5 * time.Minute}},
		{name: "legacy glob", schema: legacy,
			f:    approvebot.Fields{PolicyName: "financial-approvals", Action: "refund"},
			want: summary{Stages: []string{"treasury-ops/2"}, Timeout: policy.DefaultTimeout}},
		{name: "legacy glob needs every key", schema: legacy,
			f:    approvebot.Fields{PolicyName: "financial-approvals", Action: "transfer", Approvers: []string{"compliance"}},
			want: summary{Stages: []string{"compliance/any"}, Timeout: policy.DefaultTimeout}},
		{name: "legacy fallback to its approvers, deduplicated", schema: legacy,
			f:    approvebot.Fields{RuleName: "other", Approvers: []string{"compliance", "treasury-ops", "compliance"}},
			want: summary{Stages: []string{"compliance+treasury-ops/any"}, Timeout: policy.DefaultTimeout}},
		{name: "legacy route to chain drops id and version", schema: legacy,
			f:    approvebot.Fields{RuleName: "via-chain"},
			want: summary{SoD: true, Stages: []string{"dba/1", "security+compliance/all"}, Timeout: 10 * time.Minute}},
		{name: "legacy ignores 1.0-only match keys", schema: legacy,
			f:    approvebot.Fields{AgentID: "legacy-bot", Approvers: []string{"dba"}},
			want: summary{Stages: []string{"dba/any"}, Timeout: policy.DefaultTimeout}},
		{name: "agent_id matches legacy", schema: legacy,
			f:    approvebot.Fields{RuleName: "x", AgentID: "ops-bot", Approvers: []string{"dba"}},
			want: summary{Stages: []string{"security/any"}, Timeout: time.Minute}},
		{name: "1.0 by chain id", schema: v1,
			f:    approvebot.Fields{ApprovalChainID: "high-risk-tools", ApprovalChainVersion: "3", Operation: "tool.invoke"},
			want: summary{ID: "high-risk-tools", Version: "3", SoD: true, Stages: []string{"dba/1", "security+compliance/all"}, Timeout: 10 * time.Minute}},
		{name: "1.0 route on operation and target", schema: v1,
			f:    approvebot.Fields{ApprovalChainID: "quick", ApprovalChainVersion: "7", Operation: "db.drop", TargetResource: ptr("prod-db")},
			want: summary{ID: "high-risk-tools", Version: "3", SoD: true, Stages: []string{"dba/1", "security+compliance/all"}, Timeout: 4 * time.Minute}},
		{name: "1.0 null target does not match a target pattern", schema: v1,
			f:    approvebot.Fields{ApprovalChainID: "quick", ApprovalChainVersion: "7", Operation: "db.drop"},
			want: summary{ID: "quick", Version: "7", Stages: []string{"dba/any"}, Timeout: policy.DefaultTimeout}},
		{name: "1.0 route to approvers", schema: v1,
			f:    approvebot.Fields{ApprovalChainID: "legacy-x", Operation: "tool.invoke"},
			want: summary{Stages: []string{"compliance/any"}, Timeout: policy.DefaultTimeout}},
		{name: "1.0 ignores legacy-only match keys", schema: v1,
			f:    approvebot.Fields{AgentID: "v1-bot", ApprovalChainID: "quick", ApprovalChainVersion: "7"},
			want: summary{ID: "quick", Version: "7", Stages: []string{"dba/any"}, Timeout: policy.DefaultTimeout}},
		{name: "1.0 ignores rule_name routes", schema: v1,
			f:    approvebot.Fields{RuleName: "approve-large-transfer", ApprovalChainID: "quick", ApprovalChainVersion: "7"},
			want: summary{ID: "quick", Version: "7", Stages: []string{"dba/any"}, Timeout: policy.DefaultTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cfg.Route("agent", tc.f, tc.schema)
			if err != nil {
				t.Fatalf("Route: %v", err)
			}
			if s := summarize(got); !reflect.DeepEqual(s, tc.want) {
				t.Errorf("got  %+v\nwant %+v", s, tc.want)
			}
		})
	}
}

func TestRouteNullTargetMatchesStar(t *testing.T) {
	cfg, err := Parse([]byte(routeY+"  x:\n    version: \"1\"\n    stages: [{approvers: [dba]}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Routes = []policy.Route{{Match: policy.Match{TargetResource: "*"}, Approvers: []string{"security"}}}
	got, err := cfg.Route("agent", approvebot.Fields{ApprovalChainID: "x", ApprovalChainVersion: "1"}, approvebot.SchemaV1)
	if err != nil || summarize(got).Stages[0] != "security/any" {
		t.Fatalf("got %+v, %v", summarize(got), err)
	}
}

func TestRouteRefuses(t *testing.T) {
	cfg := routeConfig(t)
	for _, tc := range []struct {
		name    string
		f       approvebot.Fields
		schema  string
		unknown []string
		reason  string
	}{
		{name: "unknown group among known", schema: approvebot.SchemaLegacy,
			f:       approvebot.Fields{Approvers: []string{"compliance", "risk", "audit"}},
			unknown: []string{"risk", "audit"}, reason: `approver group "risk", "audit" are not configured in approvebot`},
		{name: "one unknown group", schema: approvebot.SchemaLegacy,
			f:       approvebot.Fields{Approvers: []string{"risk"}},
			unknown: []string{"risk"}, reason: `approver group "risk" is not configured`},
		{name: "no groups", schema: approvebot.SchemaLegacy,
			reason: "the request names no approver groups and no route matches it"},
		{name: "empty group name", schema: approvebot.SchemaLegacy,
			f:       approvebot.Fields{Approvers: []string{""}},
			unknown: []string{""}, reason: `approver group "" is not configured`},
		{name: "unknown chain", schema: approvebot.SchemaV1,
			f:       approvebot.Fields{ApprovalChainID: "nope", ApprovalChainVersion: "1"},
			unknown: []string{"nope"}, reason: `approval chain "nope" is not configured in approvebot`},
		{name: "no chain", schema: approvebot.SchemaV1,
			reason: "the request names no approval_chain_id and no route matches it"},
		{name: "version mismatch", schema: approvebot.SchemaV1,
			f:      approvebot.Fields{ApprovalChainID: "high-risk-tools", ApprovalChainVersion: "2"},
			reason: `approval_chain_version "2" does not match the configured version "3" of chain "high-risk-tools"`},
		{name: "version mismatch through a route to the same chain", schema: approvebot.SchemaV1,
			f:      approvebot.Fields{ApprovalChainID: "high-risk-tools", ApprovalChainVersion: "2", Operation: "db.x", TargetResource: ptr("prod-1")},
			reason: `approval_chain_version "2" does not match the configured version "3" of chain "high-risk-tools"`},
		{name: "unknown schema", schema: "2.0", reason: `unknown request schema "2.0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cfg.Route("agent", tc.f, tc.schema)
			var nr *policy.NoRouteError
			if !errors.As(err, &nr) {
				t.Fatalf("err = %v (%T), routed %+v; want *NoRouteError", err, err, got)
			}
			if !reflect.DeepEqual(nr.Unknown, tc.unknown) || !strings.Contains(nr.Reason, tc.reason) || err.Error() != nr.Reason {
				t.Errorf("got %+v, want unknown %v and reason containing %q", nr, tc.unknown, tc.reason)
			}
		})
	}
}

// A config built in code may be inconsistent; routing still fails closed.
func TestRouteFailsClosedOnInconsistentConfig(t *testing.T) {
	cfg := routeConfig(t)
	ch := cfg.Chains["quick"]
	ch.Stages = append(ch.Stages, policy.StageConfig{Approvers: []string{"ghost"}})
	cfg.Chains["quick"] = ch
	_, err := cfg.Route("agent", approvebot.Fields{ApprovalChainID: "quick", ApprovalChainVersion: "7"}, approvebot.SchemaV1)
	var nr *policy.NoRouteError
	if !errors.As(err, &nr) || !reflect.DeepEqual(nr.Unknown, []string{"ghost"}) {
		t.Fatalf("err = %v", err)
	}
	ch.Stages = append(ch.Stages[:1], policy.StageConfig{})
	cfg.Chains["quick"] = ch
	if _, err := cfg.Route("agent", approvebot.Fields{ApprovalChainID: "quick", ApprovalChainVersion: "7"}, approvebot.SchemaV1); !errors.As(err, &nr) {
		t.Fatalf("a stage with no groups was routed: %v", err)
	}
}

func TestRouteReturnsACopy(t *testing.T) {
	cfg := routeConfig(t)
	before, err := Parse([]byte(routeY), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		f      approvebot.Fields
		schema string
	}{
		{approvebot.Fields{RuleName: "approve-large-transfer"}, approvebot.SchemaLegacy},
		{approvebot.Fields{Approvers: []string{"treasury-ops"}}, approvebot.SchemaLegacy},
		{approvebot.Fields{ApprovalChainID: "high-risk-tools", ApprovalChainVersion: "3"}, approvebot.SchemaV1},
	} {
		got, err := cfg.Route("agent", f.f, f.schema)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got.Chain.Stages {
			st := &got.Chain.Stages[i]
			for j := range st.Groups {
				g := &st.Groups[j]
				g.Name = "changed"
				for p, s := range g.Sides {
					for k := range s.Channels {
						s.Channels[k] = "CHANGED"
					}
					for k := range s.Users {
						s.Users[k] = "UCHANGED"
					}
					for k := range s.Groups {
						s.Groups[k] = "SCHANGED"
					}
					s.Users = append(s.Users, "U0EXTRA")
					g.Sides[p] = s
				}
			}
			st.Groups = append(st.Groups, approvebot.Group{Name: "extra"})
		}
	}
	if !reflect.DeepEqual(cfg, before) {
		t.Fatalf("changing a routed chain changed the config:\n%+v\nwant\n%+v", cfg.Approvers, before.Approvers)
	}
}

func TestRouteCopiesAllTeamsFields(t *testing.T) {
	cfg, err := Load("testdata/teams-only.yaml", env(map[string]string{"A_TOKEN": "a-token-of-16-chars", "TEAMS_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Route("a", approvebot.Fields{}, approvebot.SchemaLegacy)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Chain.Stages[0].Groups[0]
	if !reflect.DeepEqual(g, cfg.Approvers["sec"]) {
		t.Fatalf("group = %+v, want %+v", g, cfg.Approvers["sec"])
	}
	g.Sides[teams.Name].Users[0] = "changed@example.com"
	g.Sides[teams.Name].Channels[0] = "19:changed"
	if sec := cfg.Approvers["sec"].Sides[teams.Name]; sec.Users[0] != "bob@example.com" || sec.Channels[0] != "19:x@thread.tacv2" {
		t.Fatal("teams side shared with the config")
	}
}

// TestRouteByCaller: routes can match the caller, and a caller's
// may_request refuses (ForbiddenError) any destination it does not list.
func TestRouteByCaller(t *testing.T) {
	doc := `callers:
  - {name: payments-agent, token: 0123456789abcdef0123, may_request: [treasury-ops, quick]}
  - {name: ops-agent, token: abcdefabcdefabcdef00}
` + slackY + `approvers:
  treasury-ops:
    slack: {channels: [C0T], users: [U0JANE]}
  compliance:
    slack: {channels: [C0C], users: [U0MARK]}
routes:
  - match: {caller: ops-agent, rule_name: transfer}
    approvers: [compliance]
  - match: {rule_name: transfer}
    approvers: [treasury-ops]
  - match: {caller: "ops-*", operation: "db.*"}
    chain: strict
chains:
  quick:
    version: "1"
    stages: [{approvers: [treasury-ops]}]
  strict:
    version: "1"
    stages: [{approvers: [compliance]}]
`
	cfg, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy, v1 := approvebot.SchemaLegacy, approvebot.SchemaV1
	for _, tc := range []struct {
		caller string
		f      approvebot.Fields
		schema string
		want   string // the stages, or the refusal's text
	}{
		{"payments-agent", approvebot.Fields{RuleName: "transfer"}, legacy, "treasury-ops/any"},
		{"ops-agent", approvebot.Fields{RuleName: "transfer"}, legacy, "compliance/any"},
		{"ops-agent", approvebot.Fields{Operation: "db.drop", ApprovalChainID: "quick", ApprovalChainVersion: "1"}, v1, "compliance/any"},
		{"payments-agent", approvebot.Fields{Operation: "db.drop", ApprovalChainID: "quick", ApprovalChainVersion: "1"}, v1, "treasury-ops/any"},
		{"payments-agent", approvebot.Fields{RuleName: "other", Approvers: []string{"treasury-ops", "compliance"}}, legacy,
			`caller "payments-agent" may not request approval from "compliance" (its may_request allows: treasury-ops, quick)`},
		{"payments-agent", approvebot.Fields{ApprovalChainID: "strict", ApprovalChainVersion: "1"}, v1,
			`caller "payments-agent" may not request approval chain "strict"`},
		{"nobody", approvebot.Fields{RuleName: "transfer"}, legacy, `caller "nobody" is not configured`},
	} {
		got, err := cfg.Route(tc.caller, tc.f, tc.schema)
		var forbidden *policy.ForbiddenError
		switch {
		case errors.As(err, &forbidden):
			if !strings.Contains(forbidden.Reason, tc.want) {
				t.Errorf("%s %+v: refused %q, want %q", tc.caller, tc.f, forbidden.Reason, tc.want)
			}
		case err != nil:
			t.Errorf("%s %+v: %v", tc.caller, tc.f, err)
		default:
			if s := strings.Join(summarize(got).Stages, ","); s != tc.want {
				t.Errorf("%s %+v: routed to %s, want %s", tc.caller, tc.f, s, tc.want)
			}
		}
	}
}
