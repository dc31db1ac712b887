package policy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/slack"
)

// Secrets may come from files beside the configuration (a Kubernetes
// secret mounted as files), and caller tokens as their SHA-256 only.
func TestSecretsFromFilesAndHashes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bot-token", "xoxb-from-file\n")
	write("signing-secret", "secret-from-file\r\n")
	write("agent-token", "agent-token-from-file-0123")
	sum := sha256.Sum256([]byte("hashed-agent-token-0123456789"))
	write("approvebot.yaml", `callers:
  - {name: file-agent, token_file: agent-token}
  - {name: hashed-agent, token_sha256: `+hex.EncodeToString(sum[:])+`}
slack:
  bot_token_file: bot-token
  signing_secret_file: `+filepath.Join(dir, "signing-secret")+`
`+groupsY)
	cfg, err := Load(filepath.Join(dir, "approvebot.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if slack.ConfigOf(cfg).BotToken != "xoxb-from-file" || slack.ConfigOf(cfg).SigningSecret != "secret-from-file" {
		t.Errorf("slack secrets %q %q", slack.ConfigOf(cfg).BotToken, slack.ConfigOf(cfg).SigningSecret)
	}
	if c := cfg.Callers[0]; c.Token != "agent-token-from-file-0123" || c.TokenSHA256 != sha256.Sum256([]byte(c.Token)) {
		t.Errorf("caller from file %+v", c)
	}
	if c := cfg.Callers[1]; c.Token != "" || c.TokenSHA256 != sum {
		t.Errorf("hashed caller %+v", c)
	}
}

func TestSecretFileMistakes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("agent-token-0123456789"))
	for _, tc := range []struct{ name, doc, want string }{
		{"missing file", callersY + "slack:\n  bot_token_file: nope\n  signing_secret: s\n" + groupsY,
			`line 4: slack.bot_token_file: cannot read the secret: open ` + filepath.Join(dir, "nope")},
		{"empty file", callersY + "slack:\n  bot_token_file: empty\n  signing_secret: s\n" + groupsY,
			`line 4: slack.bot_token_file: empty is empty`},
		{"both ways", callersY + "slack:\n  bot_token: xoxb-1\n  bot_token_file: x\n  signing_secret: s\n" + groupsY,
			`line 4: slack.bot_token and slack.bot_token_file are both set`},
		{"bad hash", "callers:\n  - {name: a, token_sha256: ABC}\n" + slackY + groupsY,
			`line 2: callers[0].token_sha256 must be 64 lowercase hex digits`},
		{"hash and token", "callers:\n  - {name: a, token: 0123456789abcdef0123, token_sha256: " + hex.EncodeToString(sum[:]) + "}\n" + slackY + groupsY,
			`callers[0]: give token, token_file or token_sha256, not several`},
		{"same token hashed twice", "callers:\n  - {name: a, token: agent-token-0123456789}\n  - {name: b, token_sha256: " + hex.EncodeToString(sum[:]) + "}\n" + slackY + groupsY,
			`callers[1].token is the same as caller "a"'s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "approvebot.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
	// Parse, which reads no files, refuses the key rather than reading.
	_, err := Parse([]byte(callersY+"slack:\n  bot_token_file: /etc/passwd\n  signing_secret: s\n"+groupsY), nil)
	if err == nil || !strings.Contains(err.Error(), "secret files are read only when the configuration is loaded from a file") {
		t.Fatalf("Parse with a secret file: %v", err)
	}
}
