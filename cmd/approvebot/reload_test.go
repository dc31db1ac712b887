package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/approvebot/approvebot/bot"
)

// reloadCLI runs `approvebot reload` against the running harness, through a
// config that names its port (the harness listens on :0).
func (h *harness) reloadCLI() (string, error) {
	h.t.Helper()
	data, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	running := filepath.Join(h.dir, "running.yaml")
	addr := strings.TrimPrefix(strings.TrimPrefix(h.url, "http://"), "https://")
	data = bytes.Replace(data, []byte("listen: 127.0.0.1:0"), []byte("listen: "+addr), 1)
	if err := os.WriteFile(running, data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), bot.SystemClock{}, []string{"reload", "--config", running}, h.getenv, &out, &errOut)
	return out.String(), err
}

func TestReloadAppliesANewConfigWhole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()

	// Opened before the reload: keeps treasury-ops and compliance.
	before := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitMessages(before, 2)

	// The new file sends the rule to branch-manager only, and adds a caller
	// whose token comes from a file.
	if err := os.WriteFile(filepath.Join(h.dir, "new-agent.token"), []byte("new-agent-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.rewriteConfig("    approvers: [treasury-ops, compliance]", "    approvers: [branch-manager]")
	h.rewriteConfig("  - name: other-agent\n", "  - name: new-agent\n    token_file: new-agent.token\n  - name: other-agent\n")
	out, err := h.reloadCLI()
	if err != nil || !strings.Contains(out, "reloaded: 3 callers, 3 groups, 1 routes, 0 chains") {
		t.Fatalf("reload: %v\n%s\nlogs:\n%s", err, out, h.logs)
	}

	after := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(after, 1)
	if len(msgs) != 1 || msgs[0].Channel != "C0BRANCH" {
		t.Fatalf("after the reload the request went to %v, want C0BRANCH only", msgs)
	}
	r := h.do(http.MethodPost, "/v1/approvals", legacyBody("unrouted", "branch-manager"), map[string]string{
		"Authorization": "Bearer new-agent-token-0123456789", "Prefer": "respond-async"})
	if r.status != http.StatusAccepted {
		t.Fatalf("the caller added by the reload: HTTP %d %s", r.status, r.body)
	}
	// The request opened before keeps its groups: Carl (compliance) may
	// still decide it.
	compliance := messageIn(t, h.messages(before), "C0COMPLIANCE")
	h.click("U0CARL", "C0COMPLIANCE", compliance.TS, "approve", before)
	h.waitClosed(before, "Approved by Carl")
}

func TestReloadKeepsTheRunningConfigOnAnyProblem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	good, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"invalid", "      channels: [C0TREASURY]", "      chanels: [C0TREASURY]", `unknown key "chanels"`},
		{"restart-only", "  path: ${DIR}/approvebot.db", "  path: ${DIR}/other.db", "store changed: restart approvebot to apply that"},
		{"unreadable secret file", "    token: other-agent-token-0123456789", "    token_file: missing.token", "callers[1].token_file: cannot read the secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(h.config, good, 0o600); err != nil {
				t.Fatal(err)
			}
			h.rewriteConfig(tc.old, tc.new)
			out, err := h.reloadCLI()
			if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload: %v (%s), want an error with %q", err, out, tc.want)
			}
			// Still routed by the running config.
			id := h.pendingID(legacyBody("approve-large-transfer"))
			if msgs := h.waitMessages(id, 2); len(msgs) != 2 {
				t.Fatalf("after a refused reload the request went to %d channels, want 2", len(msgs))
			}
		})
	}
}

// SIGHUP to the real binary reloads; a bad file on SIGHUP is logged and
// changes nothing.
func TestSIGHUPReloads(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	h := newHarness(t, baseConfig)
	c := h.spawn(bin)

	h.rewriteConfig("    approvers: [treasury-ops, compliance]", "    approvers: [branch-manager]")
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload to be logged", func() bool { return strings.Contains(c.logs.String(), `"msg":"configuration reloaded"`) })
	id := h.pendingID(legacyBody("approve-large-transfer"))
	if msgs := h.waitMessages(id, 1); len(msgs) != 1 || msgs[0].Channel != "C0BRANCH" {
		t.Fatalf("after SIGHUP the request went to %v, want C0BRANCH", msgs)
	}

	h.rewriteConfig("    approvers: [branch-manager]", "    approvers: [no-such-group]")
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal to be logged", func() bool {
		return strings.Contains(c.logs.String(), `"msg":"configuration not reloaded; the running one is kept"`)
	})
	id = h.pendingID(legacyBody("approve-large-transfer"))
	if msgs := h.waitMessages(id, 1); len(msgs) != 1 || msgs[0].Channel != "C0BRANCH" {
		t.Fatalf("after a refused SIGHUP the request went to %v, want C0BRANCH", msgs)
	}
	c.terminate()
}

// Secrets rotated in their files take effect at the reload: the Slack
// signing secret and bot token, a caller removed; the rest keeps working.
func TestReloadRotatesSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(h.dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("slack-signing.secret", signingSecret)
	write("slack-bot.token", botToken)
	h.rewriteConfig("  bot_token: ${SLACK_BOT_TOKEN}\n  signing_secret: ${SLACK_SIGNING_SECRET}\n",
		"  bot_token_file: slack-bot.token\n  signing_secret_file: slack-signing.secret\n")
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	treasury := messageIn(t, msgs, "C0TREASURY")

	const newSecret, newToken = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "xoxb-rotated-token"
	write("slack-signing.secret", newSecret)
	write("slack-bot.token", newToken)
	h.slack.SetBotToken(newToken)
	h.rewriteConfig("  - name: other-agent\n    token: other-agent-token-0123456789\n", "")
	if out, err := h.reloadCLI(); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}

	if r := h.clickAt("U0JANE", "C0TREASURY", treasury.TS, "approve", id, h.now(), signingSecret); r.status != http.StatusUnauthorized {
		t.Fatalf("a click signed with the old secret answered %d", r.status)
	}
	if r := h.clickAt("U0JANE", "C0TREASURY", treasury.TS, "approve", id, h.now(), newSecret); r.status != http.StatusOK {
		t.Fatalf("a click signed with the new secret answered %d", r.status)
	}
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
	// The rotated bot token posts and updates (the fake refuses the old one).
	h.waitClosed(id, "Approved by Jane Doe")
	next := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitMessages(next, 2)
	if r := h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"), map[string]string{
		"Authorization": "Bearer other-agent-token-0123456789", "Prefer": "respond-async"}); r.status != http.StatusUnauthorized {
		t.Fatalf("a caller removed by the reload: HTTP %d", r.status)
	}
}

// The Teams app password rotated in its file is the one the next bot token
// is fetched with.
func TestReloadRotatesTheTeamsAppPassword(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	if err := os.WriteFile(filepath.Join(th.dir, "teams.secret"), []byte(th.teams.AppPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	th.rewriteConfig("  app_password: ${TEAMS_APP_PASSWORD}", "  app_password_file: teams.secret")
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	first, _ := th.teamsCardIn(teamsApprovals, held)
	th.teamsClick(teamsJane, first, "allow")
	th.await(held)

	const rotated = "rotated-teams-client-secret"
	if err := os.WriteFile(filepath.Join(th.dir, "teams.secret"), []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	th.teams.SetAppPassword(rotated)
	th.teams.RevokeTokens()
	if out, err := th.reloadCLI(); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	next := th.submit(legacyBody("teams-transfer"), auth())
	th.teamsWait("the second card", func() bool { return len(th.teamsCards(teamsApprovals)) == 2 })
	card := th.teamsCards(teamsApprovals)[1]
	th.waitPosted(teamsCardRequestID(t, card), 1)
	th.teamsClick(teamsJane, card, "allow")
	if got := th.await(next); !got.answer.Approved {
		t.Fatalf("after the rotation the agent got %s", got.body)
	}
}

func TestReloadRefusesAnAuditChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	h.rewriteConfig("admin:\n", "audit:\n  checkpoint_interval: 1m\nadmin:\n")
	_, err := h.reloadCLI()
	if err == nil || !strings.Contains(err.Error(), "audit changed: restart approvebot") {
		t.Fatalf("reload of an audit change: %v", err)
	}
}
