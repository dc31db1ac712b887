package policy_test

import (
	"strconv"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	cfg, err := Load("../examples/approvebot.yaml", env(exampleEnv))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Summary()
	if again := cfg.Summary(); again != got {
		t.Fatalf("summary not stable:\n%s\n---\n%s", got, again)
	}
	for _, secret := range []string{"PAYMENTS_AGENT_TOKEN", "DB_AGENT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TEAMS_APP_PASSWORD", "APPROVEBOT_ADMIN_TOKEN"} {
		if strings.Contains(got, exampleEnv[secret]) {
			t.Errorf("summary shows %s", secret)
		}
	}
	doc := mustRead(t, "../examples/approvebot.yaml")
	for _, want := range []string{
		"callers:   payments-agent (may request: treasury-ops, compliance), db-agent (may request: high-risk-tools)\n",
		"slack (API https://slack.com/api/, 1s between posts to a channel)",
		"teams (app 0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b, tenant aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
		"admin:     enabled (token set)",
		"  treasury-ops\n    slack: channels C0TREASURY; users U0JANE, jane@company.com; usergroups S0TREASURY\n    teams: channels 19:3f2a9c0d5b7e4f61a8c2@thread.tacv2; users 6c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f, jane@company.com\n",
		"  security\n    teams: channels 19:8d7c6b5a4f3e2d1c0b9a@thread.tacv2; users sam@company.com, lee@company.com, auditor@partner.example; guests allowed\n",
		"  line " + itoa(lineOf(t, doc, "{rule_name: approve-large-transfer, caller: payments-agent}")) + ": rule_name=approve-large-transfer caller=payments-agent -> treasury-ops, compliance, quorum all (one per group), timeout 5m0s\n",
		"  line " + itoa(lineOf(t, doc, "financial-*")) + ": policy_name=financial-* action=refund -> treasury-ops, quorum 2 distinct approvers, timeout 4m50s (default)\n",
		"  line " + itoa(lineOf(t, doc, `operation: "db.*"`)) + ": operation=db.* target_resource=prod-* -> chain high-risk-tools, timeout 4m0s\n",
		"  high-risk-tools version \"3\", separation of duties, timeout 10m0s\n    stage 1: dba-oncall, quorum 1 distinct approvers\n    stage 2: security, quorum any\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	// Groups are listed by name, whatever the file's order.
	if strings.Index(got, "  compliance\n") > strings.Index(got, "  treasury-ops\n") {
		t.Errorf("groups not sorted:\n%s", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSummaryTimeoutsAndAdmin(t *testing.T) {
	got := routeConfig(t).Summary()
	for _, want := range []string{
		": rule_name=via-chain -> chain high-risk-tools, timeout 10m0s (the chain's)\n",
		": agent_id=ops-bot -> security, quorum any, timeout 1m0s\n",
		"  quick version \"7\", timeout 4m50s (default)\n    stage 1: dba, quorum any\n",
		"admin:     disabled (no admin.token)",
		"callers:   agent\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "0123456789abcdef0123") || strings.Contains(got, "shh") {
		t.Errorf("summary shows a secret:\n%s", got)
	}
}
