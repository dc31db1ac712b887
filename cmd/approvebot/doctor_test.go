package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/signing"
)

// doctor runs `approvebot doctor` on the harness's config and returns what
// it printed and the error run returned.
func (h *harness) doctor(args ...string) (string, error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, append([]string{"doctor", "--config", h.config}, args...), h.getenv, &out, &errOut)
	return out.String(), err
}

// failures are the FAIL lines of doctor's output.
func failures(out string) []string {
	var fails []string
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "FAIL") {
			fails = append(fails, line)
		}
	}
	return fails
}

func TestDoctorPassesAGoodSetup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start() // creates the store and the signing key
	h.stop()
	out, err := h.doctor()
	if err != nil {
		t.Fatalf("doctor on a good setup: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ok    store " + filepath.Join(h.dir, "approvebot.db") + " is readable and consistent",
		"ok    signing key " + filepath.Join(h.dir, "signing.key") + " is readable and private",
		"ok    slack: bot token is valid (workspace Fake)",
		"ok    slack: the bot token has every scope approvebot needs",
		"ok    slack: the bot is a member of channel C0TREASURY",
		"ok    slack: approver bob@company.com (branch-manager) resolves to U0BOB",
		"ok    slack: user group S0COMPLIANCE (compliance) has 1 members",
		`ok    audit checkpoints go to the log`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^all \d+ checks passed$`).MatchString(out) {
		t.Errorf("doctor does not say all passed:\n%s", out)
	}
	if strings.Contains(out, botToken) || strings.Contains(out, signingSecret) {
		t.Fatal("doctor printed a secret")
	}
}

// TestDoctorNamesEachProblem breaks one thing at a time and checks that
// doctor fails on exactly that, says so, and says what to do.
func TestDoctorNamesEachProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(h *harness)
		fail  string // the one FAIL line's text
		fix   string
	}{
		{"bot token revoked", func(h *harness) { h.env["SLACK_BOT_TOKEN"] = "xoxb-revoked" },
			"slack: bot token: auth.test: invalid_auth", "Bot User OAuth Token"},
		{"scope missing", func(h *harness) {
			h.slack.SetScopes(slices.DeleteFunc(slices.Clone(slackfake.DefaultScopes), func(s string) bool { return s == "users:read.email" })...)
		}, "slack: the bot token lacks scopes users:read.email", "Bot Token Scopes"},
		{"bot not in channel", func(h *harness) { h.slack.AddChannel("C0COMPLIANCE", "compliance", false, false) },
			"slack: the bot is not a member of channel C0COMPLIANCE #compliance (compliance)", "/invite @approvebot"},
		{"channel gone", func(h *harness) { h.slack.RemoveChannel("C0BRANCH") },
			"slack: channel C0BRANCH (branch-manager) does not exist or the bot cannot see it", "channel id"},
		{"private channel without the bot", func(h *harness) { h.slack.AddChannel("C0TREASURY", "treasury", true, false) },
			"slack: channel C0TREASURY (treasury-ops) does not exist or the bot cannot see it", "/invite @approvebot"},
		{"email unknown", func(h *harness) { h.rewriteConfig("bob@company.com", "nobody@company.com") },
			"slack: approver nobody@company.com (branch-manager) is not a member of the workspace", "Copy member ID"},
		{"approver deactivated", func(h *harness) { h.slack.DeleteUser("U0JANE") },
			"slack: approver U0JANE (treasury-ops) is deactivated", "list someone else"},
		{"user group unknown", func(h *harness) { h.rewriteConfig("S0COMPLIANCE", "S0NOSUCH") },
			"slack: user group S0NOSUCH (compliance) does not exist", "starts with S"},
		{"user group empty", func(h *harness) { h.slack.AddUsergroup("S0COMPLIANCE") },
			"slack: user group S0COMPLIANCE (compliance) has no members", "add people"},
		{"store damaged", func(h *harness) {
			if err := os.WriteFile(filepath.Join(h.dir, "approvebot.db"), bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "store: open " + "${DIR}/approvebot.db: it is not an approvebot store", "backup"},
		{"store directory missing", func(h *harness) { h.rewriteConfig("${DIR}/approvebot.db", "${DIR}/missing/approvebot.db") },
			"store directory ${DIR}/missing: stat ${DIR}/missing: no such file or directory", "create ${DIR}/missing"},
		{"store writable by others", func(h *harness) {
			h.start()
			h.stop()
			if err := os.Chmod(filepath.Join(h.dir, "approvebot.db"), 0o666); err != nil {
				t.Fatal(err)
			}
		}, "store ${DIR}/approvebot.db has mode 0666: group or others may write it", "chmod 600"},
		{"signing key readable by others", func(h *harness) {
			path := filepath.Join(h.dir, "signing.key")
			if _, err := signing.LoadOrCreateKey(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "signing key ${DIR}/signing.key has mode 0644", "chmod 600"},
		{"checkpoint directory missing", func(h *harness) {
			h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\naudit:\n  checkpoints:\n    file: ${DIR}/missing/checkpoints.jsonl")
		}, "audit checkpoint directory ${DIR}/missing: stat ${DIR}/missing: no such file or directory", "on another volume than the store"},
		{"public URL down", func(h *harness) {
			h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\npublic_url: http://127.0.0.1:1")
		},
			"public URL http://127.0.0.1:1/healthz does not answer", "TLS proxy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, baseConfig)
			tc.setup(h)
			out, err := h.doctor()
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("doctor: want a failure with exit code 1, got %v\n%s", err, out)
			}
			want := strings.ReplaceAll(tc.fail, "${DIR}", h.dir)
			fails := failures(out)
			if len(fails) != 1 || !strings.Contains(fails[0], want) {
				t.Fatalf("want exactly one failure %q, got %q (%v)\n%s", want, fails, err, out)
			}
			fix := out[strings.Index(out, fails[0])+len(fails[0]):]
			fix, _, _ = strings.Cut(strings.TrimPrefix(fix, "\n"), "\n")
			if !strings.HasPrefix(fix, "      fix: ") || !strings.Contains(fix, strings.ReplaceAll(tc.fix, "${DIR}", h.dir)) {
				t.Errorf("the failure's fix line %q lacks %q", fix, tc.fix)
			}
			if !regexp.MustCompile(`(?m)^1 of \d+ checks failed$`).MatchString(out) {
				t.Errorf("doctor does not count the failure:\n%s", out)
			}
		})
	}
}

func TestDoctorPublicURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	// While the server runs, the store is checked by the server and doctor
	// says so instead of failing on the lock.
	out, err := h.doctor("--public-url", h.url)
	if err != nil {
		t.Fatalf("doctor against a running server: %v\n%s", err, out)
	}
	for _, want := range []string{"is held by a running approvebot", "warn  public URL " + h.url + " answers, but not over https"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

func TestDoctorTeams(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)

	// Nothing installed yet, and the token endpoint refuses the secret.
	th.teams.SetTokenFailure(401)
	out, err := th.doctor()
	if err == nil {
		t.Fatalf("doctor with Teams unreachable: no error\n%s", out)
	}
	fails := failures(out)
	if len(fails) != 5 || !strings.Contains(fails[0], "teams: bot token") {
		t.Fatalf("want the token failure then 4 unknown channels, got %q\n%s", fails, out)
	}
	for _, f := range fails[1:] {
		if !strings.Contains(f, "is unknown to approvebot: the app is not installed in its team") {
			t.Errorf("unexpected failure %q", f)
		}
	}

	// Installed in the Payments team, asked through the running server:
	// only the channel whose team never added the app fails.
	th.teams.SetTokenFailure(0)
	th.startInstalled()
	th.rewriteConfig("listen: 127.0.0.1:0", "listen: "+strings.TrimPrefix(th.url, "http://"))
	out, err = th.doctor()
	if err == nil {
		t.Fatalf("doctor with one channel never added: no error\n%s", out)
	}
	fails = failures(out)
	if len(fails) != 1 || !strings.Contains(fails[0], "teams: channel "+teamsNeverAdded+" (not-added) is unknown to approvebot") {
		t.Fatalf("want only the never-added channel to fail, got %q\n%s", fails, out)
	}
	for _, want := range []string{"ok    teams: the Bot Framework's signing keys load and a bot token was obtained", "ok    teams: the app is installed where channel " + teamsApprovals} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

// rewriteConfig replaces old with new in the harness's config file.
func (h *harness) rewriteConfig(old, new string) {
	h.t.Helper()
	data, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		h.t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(h.config, bytes.ReplaceAll(data, []byte(old), []byte(new)), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// What Slack says (a channel's name here) reaches the operator's terminal
// escaped, never as control sequences.
func TestDoctorEscapesWhatPlatformsSay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.slack.AddChannel("C0TREASURY", "treasury\x1b[2J\x07", false, true)
	out, err := h.doctor()
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "C0TREASURY #treasury") {
		t.Fatalf("doctor printed control characters or lost the channel:\n%q", out)
	}
}
