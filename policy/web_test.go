package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/web"
)

const webY = "public_url: https://approvebot.example.com/\nweb:\n  issuer: https://login.example.com/\n  client_id: approvebot\n  client_secret: s3cret-s3cret\n"

func TestWebSection(t *testing.T) {
	cfg, err := Parse([]byte(callersY+webY+"  groups_claim: groups\napprovers:\n  ops:\n    web: {users: [Ann@Example.com, \"sub:00u1\"], groups: [ops-approvers]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := web.ConfigOf(cfg)
	if w == nil || w.Issuer != "https://login.example.com/" || w.ClientID != "approvebot" || w.ClientSecret != "s3cret-s3cret" ||
		w.RedirectURL != "https://approvebot.example.com/inbox/callback" || w.GroupsClaim != "groups" {
		t.Fatalf("web config %+v", w)
	}
	g, ok := cfg.Approvers["ops"].Side(web.Name)
	if !ok || len(g.Users) != 2 || g.Groups[0] != "ops-approvers" {
		t.Fatalf("web group %+v", g)
	}
}

func TestWebErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"no web section", callersY + slackY + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n", "approvers.ops.web: the file has no web section"},
		{"bad user", callersY + webY + "approvers:\n  ops:\n    web: {users: [U0ANN]}\n", `approvers.ops.web.users: "U0ANN" is neither an email nor sub:<subject>`},
		{"empty subject", callersY + webY + "approvers:\n  ops:\n    web: {users: [\"sub:\"]}\n", `give the subject after sub:`},
		{"empty side", callersY + webY + "approvers:\n  ops:\n    web: {users: []}\n", "approvers.ops.web is empty"},
		{"groups without claim", callersY + webY + "approvers:\n  ops:\n    web: {groups: [g]}\n", "needs web.groups_claim"},
		{"no public_url", callersY + strings.Replace(webY, "public_url: https://approvebot.example.com/\n", "", 1) + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n", "web needs public_url"},
		{"plain http public_url", callersY + strings.Replace(webY, "https://approvebot", "http://approvebot", 1) + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n", "public_url must be https://"},
		{"no issuer", callersY + strings.Replace(webY, "  issuer: https://login.example.com/\n", "", 1) + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n", "web.issuer is missing"},
		{"weak secret", callersY + strings.Replace(webY, "s3cret-s3cret", "", 1) + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n", "web.client_secret"},
		{"unknown key", callersY + webY + "  scopes: [openid]\napprovers:\n  ops:\n    web: {users: [a@b.c]}\n", `unknown key "scopes" in web`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("the error names no line: %v", err)
			}
		})
	}
}

// The demo reads web sides without a web section (its own sign-in stands
// in) and needs no chat platform; Parse refuses the same file.
func TestDemoParse(t *testing.T) {
	doc := callersY + "approvers:\n  ops:\n    web: {users: [a@b.c]}\n"
	if _, err := ParseDemo([]byte(doc), nil); err != nil {
		t.Fatalf("ParseDemo: %v", err)
	}
	if _, err := Parse([]byte(doc), nil); err == nil {
		t.Fatal("Parse accepted web sides without a web section")
	}
}

func TestWebEligible(t *testing.T) {
	cfg, err := Parse([]byte(callersY+webY+"  groups_claim: groups\napprovers:\n  ops:\n    web: {users: [ann@example.com, \"sub:00u1\"], groups: [ops-approvers]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Approvers["ops"]
	for _, tc := range []struct {
		name  string
		a     approverT
		allow bool
	}{
		{"verified email", approverT{Platform: web.Name, UserID: "x", Email: "ANN@example.com"}, true},
		{"subject", approverT{Platform: web.Name, UserID: "00u1"}, true},
		{"subject given as email", approverT{Platform: web.Name, UserID: "x", Email: "sub:00u1"}, false},
		{"group", approverT{Platform: web.Name, UserID: "y", Usergroups: []string{"ops-approvers"}}, true},
		{"nobody", approverT{Platform: web.Name, UserID: "z", Email: "eve@example.com"}, false},
		{"same email on slack", approverT{Platform: slack.Name, UserID: "U0ANN", Email: "ann@example.com"}, false},
	} {
		if got := platforms.Eligible(g, tc.a); got != tc.allow {
			t.Errorf("%s: Eligible = %v", tc.name, got)
		}
	}
}

type approverT = approvebot.Approver

// The README's starter config loads once its secret files exist.
func TestSlackStarterLoads(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../examples/slack-starter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "slack-starter.yaml"), data, 0o600))
	for name, v := range map[string]string{"agent-token": "0123456789abcdef0123456789abcdef", "slack-bot-token": "xoxb-1-2-x", "slack-signing-secret": "8f742231b10e8888abcd99yyyzzz85a5"} {
		must(os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v+"\n"), 0o600))
	}
	cfg, err := Load(filepath.Join(dir, "slack-starter.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if slack.ConfigOf(cfg) == nil || slack.ConfigOf(cfg).BotToken != "xoxb-1-2-x" || len(cfg.Callers) != 1 || cfg.Approvers["treasury-ops"].Sides[slack.Name].Channels == nil {
		t.Fatalf("starter config: %+v", cfg)
	}
}
