package policy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/policy"
)

func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, "../examples/approvebot.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(routeY))
	f.Add([]byte(baseY + "  leads:\n    slack: {channels: [C0L], users: [U0L]}\nroutes:\n  - approvers: [ops]\n    reminders: [10m, 1h]\n    before_deadline: 5m\n    escalate: [{after: 15m, approvers: [leads]}]\n"))
	f.Add([]byte(reasonY))
	f.Add([]byte(baseY + "admin:\n  token: ${ADMIN}\n"))
	f.Add([]byte(callersY + webY + "  groups_claim: groups\napprovers:\n  ops:\n    web: {users: [a@b.c, \"sub:x\"], groups: [g]}\n"))
	f.Add([]byte("callers:\n  - {name: a, token: 0123456789abcdef0123, may_request: [ops, c1]}\n  - {name: b, token: abcdefabcdefabcdef00}\n" + slackY + teamsY + groupsY +
		"  sec:\n    teams: {channels: [\"19:a\"], users: [a@b.c], allow_guests: true}\nroutes:\n  - match: {caller: b, rule_name: r}\n    approvers: [sec]\n  - match: {caller: \"a*\"}\n    chain: c1\nchains:\n  c1:\n    version: \"1\"\n    stages: [{approvers: [ops]}]\n"))
	f.Add([]byte(baseY + "audit:\n  checkpoint_interval: 1m\n  checkpoints: {file: cp.jsonl, log: false}\n"))
	fuzzEnv := map[string]string{"A_TOKEN": "a-token-of-16-chars", "TEAMS_PASSWORD": "pw", "ADMIN": "", "EMPTY": ""}
	for k, v := range exampleEnv {
		fuzzEnv[k] = v
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env(fuzzEnv))
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkInvariants(t, cfg)
		_ = cfg.Summary()
		for _, f := range []approvebot.Fields{
			{RuleName: "r", Approvers: []string{"ops"}},
			{ApprovalChainID: "c1", ApprovalChainVersion: "1", TargetResource: nil},
		} {
			for _, schema := range []string{approvebot.SchemaLegacy, approvebot.SchemaV1} {
				for _, c := range cfg.Callers {
					r, err := cfg.Route(c.Name, f, schema)
					if err == nil && len(r.Chain.Stages) == 0 {
						t.Fatalf("routed to a chain without stages: %+v", r)
					}
					if err == nil && c.MayRequest != nil && r.Chain.ID == "" {
						for _, st := range r.Chain.Stages {
							for _, g := range st.Groups {
								if !slices.Contains(c.MayRequest, g.Name) {
									t.Fatalf("caller %s routed to %s, outside its may_request %v", c.Name, g.Name, c.MayRequest)
								}
							}
						}
					}
				}
			}
		}
	})
}

// checkInvariants is what every accepted configuration must satisfy.
func checkInvariants(t *testing.T, cfg *policy.Config) {
	t.Helper()
	if f := cfg.Audit.CheckpointFile; f != "" && (filepath.Clean(f) == filepath.Clean(cfg.Store.Path) || filepath.Clean(f) == filepath.Clean(cfg.Signing.KeyFile)) {
		t.Fatalf("audit.checkpoints.file %q is the store or the signing key", f)
	}
	if cfg.Audit.CheckpointInterval < 0 {
		t.Fatalf("negative checkpoint interval %s", cfg.Audit.CheckpointInterval)
	}
	if len(cfg.Callers) == 0 || len(cfg.Approvers) == 0 || (slack.ConfigOf(cfg) == nil && teams.ConfigOf(cfg) == nil && web.ConfigOf(cfg) == nil) {
		t.Fatalf("accepted without callers, approvers or platform: %+v", cfg)
	}
	for _, c := range cfg.Callers {
		if c.Name == "" || (len(c.Token) < policy.MinSecretLength && c.Token != "") || c.TokenSHA256 == ([32]byte{}) {
			t.Fatalf("accepted caller %q with a weak token", c.Name)
		}
	}
	if cfg.Admin.Token != "" && len(cfg.Admin.Token) < policy.MinSecretLength {
		t.Fatal("accepted a weak admin token")
	}
	if cfg.Delivery.Timeout <= 0 || cfg.Listen == "" || cfg.Store.Path == "" || cfg.Signing.KeyFile == "" || cfg.Signing.Issuer == "" {
		t.Fatalf("defaults missing: %+v", cfg)
	}
	if slack.ConfigOf(cfg) != nil && (slack.ConfigOf(cfg).BotToken == "" || (slack.ConfigOf(cfg).SigningSecret == "" && slack.ConfigOf(cfg).AppToken == "") || !strings.HasSuffix(slack.ConfigOf(cfg).APIURL, "/")) {
		t.Fatalf("slack accepted incomplete: %+v", slack.ConfigOf(cfg))
	}
	if teams.ConfigOf(cfg) != nil && (teams.ConfigOf(cfg).AppID == "" || teams.ConfigOf(cfg).AppPassword == "" || teams.ConfigOf(cfg).TenantID == "" || teams.ConfigOf(cfg).TokenURL == "" || teams.ConfigOf(cfg).OpenIDMetadataURL == "") {
		t.Fatalf("teams accepted incomplete: %+v", teams.ConfigOf(cfg))
	}
	for name, g := range cfg.Approvers {
		if g.Name != name {
			t.Fatalf("group %q named %q", name, g.Name)
		}
		approvers := 0
		if s, ok := g.Side(slack.Name); ok {
			if slack.ConfigOf(cfg) == nil || len(s.Channels) == 0 {
				t.Fatalf("group %q: slack side unusable", name)
			}
			approvers += len(s.Users) + len(s.Groups)
		}
		if s, ok := g.Side(teams.Name); ok {
			if teams.ConfigOf(cfg) == nil || len(s.Channels) == 0 {
				t.Fatalf("group %q: teams side unusable", name)
			}
			approvers += len(s.Users)
		}
		if s, ok := g.Side(web.Name); ok {
			if web.ConfigOf(cfg) == nil || web.ConfigOf(cfg).RedirectURL == "" || web.ConfigOf(cfg).ClientSecret == "" {
				t.Fatalf("group %q: web side unusable", name)
			}
			approvers += len(s.Users) + len(s.Groups)
		}
		if approvers == 0 {
			t.Fatalf("group %q names nobody", name)
		}
	}
	checkStage := func(where string, groups []string, q approvebot.Quorum) {
		if len(groups) == 0 {
			t.Fatalf("%s: no groups", where)
		}
		for _, g := range groups {
			if _, ok := cfg.Approvers[g]; !ok {
				t.Fatalf("%s: unknown group %q", where, g)
			}
		}
		switch q.Mode {
		case approvebot.QuorumAny, approvebot.QuorumAll:
		case approvebot.QuorumCount:
			if q.N < 1 {
				t.Fatalf("%s: quorum %d", where, q.N)
			}
		default:
			t.Fatalf("%s: quorum mode %q", where, q.Mode)
		}
	}
	for _, r := range cfg.Routes {
		if r.Line < 1 || r.Timeout < 0 || r.Timeout > policy.MaxTimeout {
			t.Fatalf("route %+v", r)
		}
		if r.Chain != "" {
			if _, ok := cfg.Chains[r.Chain]; !ok || len(r.Approvers) > 0 {
				t.Fatalf("route at line %d: chain %q", r.Line, r.Chain)
			}
			continue
		}
		checkStage("route", r.Approvers, r.Quorum)
	}
	for id, ch := range cfg.Chains {
		if ch.ID != id || ch.Version == "" || len(ch.Stages) == 0 {
			t.Fatalf("chain %q: %+v", id, ch)
		}
		for _, st := range ch.Stages {
			checkStage("chain "+id, st.Approvers, st.Quorum)
		}
	}
}
