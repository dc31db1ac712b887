package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/store"
)

// commandsInUsage lists every command and subcommand the top-level usage
// names, so that a command added there is held to the help rule too.
func commandsInUsage(t *testing.T) [][]string {
	t.Helper()
	var cmds [][]string
	seen := map[string]bool{}
	for _, line := range strings.Split(usage, "\n") {
		rest, ok := strings.CutPrefix(line, "  approvebot ")
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "  ") // the description
		var words []string
		for _, w := range strings.Fields(rest) {
			if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.ToUpper(w) == w {
				break
			}
			words = append(words, w)
		}
		if k := strings.Join(words, " "); !seen[k] {
			seen[k] = true
			cmds = append(cmds, words)
			if len(words) == 2 && !seen[words[0]] { // the group itself: "audit -h"
				seen[words[0]] = true
				cmds = append(cmds, words[:1])
			}
		}
	}
	if len(cmds) < 8 {
		t.Fatalf("found only %v in the usage", cmds)
	}
	return cmds
}

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	nothing := func(string) (string, bool) { return "", false }
	for _, flagWord := range []string{"-h", "--help"} {
		for _, cmd := range append(commandsInUsage(t), nil) {
			args := append(append([]string(nil), cmd...), flagWord)
			var out, errOut bytes.Buffer
			// No config file exists: help must not need one.
			err := run(context.Background(), bot.SystemClock{}, args, nothing, &out, &errOut)
			if err != nil {
				t.Errorf("%v: %v (stderr %q)", args, err, errOut.String())
				continue
			}
			if errOut.Len() != 0 {
				t.Errorf("%v wrote to stderr: %q", args, errOut.String())
			}
			if !strings.Contains(out.String(), "Usage") {
				t.Errorf("%v printed no usage: %q", args, out.String())
			}
			if len(cmd) > 0 && !strings.Contains(out.String(), "approvebot "+strings.Join(cmd, " ")) {
				t.Errorf("%v: the usage does not name the command:\n%s", args, out.String())
			}
		}
	}
	// Flags of a subcommand are listed in its help.
	for args, want := range map[string][]string{
		"serve -h":         {"-config"},
		"backup -h":        {"-config", "-out"},
		"audit export -h":  {"-since", "-until", "-request"},
		"teams package -h": {"-app-id", "-privacy-url", "-terms-url"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), bot.SystemClock{}, strings.Fields(args), nil, &out, &out); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s does not list %s:\n%s", args, w, out.String())
			}
		}
	}
	// A mistake is still a usage error, with the usage on stderr.
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, []string{"serve", "--frobnicate"}, nothing, &out, &errOut)
	if exitCode(err) != 2 || !strings.Contains(errOut.String(), "Usage: approvebot serve") || out.Len() != 0 {
		t.Errorf("serve --frobnicate: %v, stdout %q, stderr %q", err, out.String(), errOut.String())
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), bot.SystemClock{}, args, nil, &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		// A test binary has build information with the Go version; the
		// module version and VCS revision of a real build are checked
		// against `go version -m` in the deploy tests.
		if !regexp.MustCompile(`^approvebot \S+ .*go1\.\d+\S* \w+/\w+\n$`).MatchString(out.String()) {
			t.Errorf("%v printed %q", args, out.String())
		}
	}
}

func TestCheckRefusesWeakSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"repeated character", "    token: other-agent-token-0123456789", "    token: aaaaaaaaaaaaaaaa",
			`callers[1].token (caller "other-agent"): weak token: 1 different characters, want at least 8`},
		{"short pattern", "    token: other-agent-token-0123456789", "    token: abcabcabcabcabcabc",
			`callers[1].token (caller "other-agent"): weak token: 3 different characters`},
		{"admin token", "  token: ${ADMIN_TOKEN}", "  token: 0101010101010101x",
			"admin.token: weak token: 3 different characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, strings.Replace(baseConfig, tc.from, tc.to, 1))
			_, err := h.run("check")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want %q", err, tc.want)
			}
		})
	}
	h := newHarness(t, baseConfig)
	h.env["SLACK_SIGNING_SECRET"] = "0123456789abcdef0123456789abcde" // 31: one short
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "slack.signing_secret: 31 characters, but Slack's signing secrets have 32") {
		t.Fatalf("check with a short signing secret: %v", err)
	}
	if strings.Contains(err.Error(), h.env["SLACK_SIGNING_SECRET"]) {
		t.Fatal("check printed the secret")
	}
	// In Socket Mode the signing secret may be left out.
	sm := newHarness(t, strings.Replace(strings.Replace(baseConfig, "  signing_secret: ${SLACK_SIGNING_SECRET}\n", "", 1),
		"  channel_interval: 0s\n", "  channel_interval: 0s\n  socket_mode: true\n  app_token: xapp-1-A0-0-abcdef\n", 1))
	if out, err := sm.run("check"); err != nil || !strings.Contains(out, "config OK") {
		t.Fatalf("check in Socket Mode without a signing secret: %v\n%s", err, out)
	}
	// The harness's own secrets pass.
	h.env["SLACK_SIGNING_SECRET"] = signingSecret
	out.Reset()
	if err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut); err != nil || !strings.Contains(out.String(), "config OK") {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
}

// serve starts with a weak secret (refusing would stop a running
// deployment on upgrade) but says so in its log.
func TestServeWarnsOfWeakSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, strings.Replace(baseConfig, "    token: other-agent-token-0123456789", "    token: aaaaaaaaaaaaaaaa", 1))
	h.start()
	h.waitLogged(`"msg":"weak secret: approvebot check refuses this config"`, 1)
	if !strings.Contains(h.logs.String(), "callers[1].token") {
		t.Fatalf("no warning in the log:\n%s", h.logs)
	}
	if strings.Contains(h.logs.String(), "aaaaaaaaaaaaaaaa") {
		t.Fatal("the log shows the token")
	}
}

func TestCheckWarnsOfAMissingStoreDirectory(t *testing.T) {
	t.Parallel()
	h := newHarness(t, strings.Replace(baseConfig, "path: ${DIR}/approvebot.db", "path: ${DIR}/data/approvebot.db", 1))
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut); err != nil {
		t.Fatalf("check: %v", err)
	}
	want := "warning: store.path: the directory " + filepath.Join(h.dir, "data") + " does not exist"
	if !strings.Contains(errOut.String(), want) || !strings.Contains(out.String(), "config OK") {
		t.Fatalf("check without the store directory: stdout %q stderr %q", out.String(), errOut.String())
	}
	// serve indeed fails there; once the directory exists, check is quiet.
	if err := run(context.Background(), bot.SystemClock{}, []string{"serve", "--config", h.config}, h.getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("serve without the store directory: %v", err)
	}
	if err := os.Mkdir(filepath.Join(h.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut); err != nil || errOut.Len() != 0 {
		t.Fatalf("check with the directory: %v %q", err, errOut.String())
	}
}

// TestBackupAndRestore takes a backup from the running server while
// requests arrive, restores it over a lost store, and starts again: the
// audit trail verifies, requests decided before the backup keep their
// decisions, and a request pending at the backup can still be decided.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	h := newAuditHarness(t)
	h.start()
	hist := h.makeHistory()
	pending := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(pending, 2)

	// Requests keep arriving while the backup streams.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := intaketest.V1Body(intaketest.V1{})
			h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async"))
		}()
	}
	if r := h.do(http.MethodGet, "/admin/backup", nil, map[string]string{"Authorization": "Bearer wrong-admin-token-0123456789"}); r.status != http.StatusUnauthorized {
		t.Fatalf("backup with a wrong admin token: %d", r.status)
	}
	online := filepath.Join(h.dir, "online.db")
	out, err := h.run("backup", "--out", online)
	wg.Wait()
	if err != nil || !strings.Contains(out, "from the running server") || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("backup while running: %v\n%s", err, out)
	}
	if fi, err := os.Stat(online); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi.Mode(), err)
	}
	if _, err := h.run("backup", "--out", filepath.Join(h.dir, "approvebot.db")); err == nil || !strings.Contains(err.Error(), "is the store file itself") {
		t.Fatalf("backup over the store: %v", err)
	}
	h.stop()

	offline := filepath.Join(h.dir, "offline.db")
	if out, err := h.run("backup", "--out", offline); err != nil || !strings.Contains(out, "from the store file") {
		t.Fatalf("backup while stopped: %v\n%s", err, out)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(h.dir, ".*partial*")); len(leftovers) > 0 {
		t.Fatalf("partial files left: %v", leftovers)
	}

	// The store is lost; the online backup is restored in its place.
	storePath := filepath.Join(h.dir, "approvebot.db")
	data, err := os.ReadFile(online)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(storePath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storePath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := h.cli("audit", "verify"); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("audit verify of the restored store: %v\n%s", err, out)
	}
	h.start()
	for id, want := range map[string]string{hist.chain: "approved", hist.legacy: "denied", hist.expired: "expired", pending: "pending"} {
		if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status != want {
			t.Errorf("restored %s: %s, want %s", id, r.body, want)
		}
	}
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", pending)
	if r := h.do(http.MethodGet, "/v1/approvals/"+pending+"?wait=30", nil, auth()); !r.answer.Approved {
		t.Fatalf("the pending request after the restore: %s", r.body)
	}
	if out, err := h.cli("audit", "verify"); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("audit verify after the restore and a decision: %v\n%s", err, out)
	}
	h.stop()

	// A damaged copy is refused and nothing is left at --out.
	bad := filepath.Join(h.dir, "bad.db")
	if err := os.WriteFile(storePath, []byte("not a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run("backup", "--out", bad); err == nil {
		t.Fatal("backup of a damaged store succeeded")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left %s: %v", bad, err)
	}
	if _, err := store.Open(offline, store.Options{ReadOnly: true}); err != nil {
		t.Fatalf("the offline backup does not open: %v", err)
	}
}

// run runs a one-word command with the harness's config, as the binary does.
func (h *harness) run(args ...string) (string, error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, append([]string{args[0], "--config", h.config}, args[1:]...), h.getenv, &out, &errOut)
	return out.String(), err
}

func TestTeamsPackageLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "app.zip")
	var stdout, stderr bytes.Buffer
	args := []string{"teams", "package", "--app-id", "11111111-2222-3333-4444-555555555555", "--out", out,
		"--privacy-url", "https://intranet.example.com/approvebot/privacy", "--terms-url", "https://intranet.example.com/approvebot/terms"}
	if err := run(context.Background(), bot.SystemClock{}, args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("teams package: %v\n%s", err, stderr.String())
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := zr.Open("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Developer struct {
			PrivacyURL string `json:"privacyUrl"`
			TermsURL   string `json:"termsOfUseUrl"`
		} `json:"developer"`
	}
	if err := json.NewDecoder(f).Decode(&m); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m.Developer.PrivacyURL != args[7] || m.Developer.TermsURL != args[9] {
		t.Fatalf("developer links %+v", m.Developer)
	}
	bad := filepath.Join(dir, "bad.zip")
	err = run(context.Background(), bot.SystemClock{}, []string{"teams", "package", "--app-id", "11111111-2222-3333-4444-555555555555", "--out", bad, "--terms-url", "http://intranet.example.com/terms"}, nil, &stdout, &stderr)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "terms-url") {
		t.Fatalf("an http terms URL: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a refused package left %s", bad)
	}
}
