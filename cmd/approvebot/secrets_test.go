package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// Caller tokens given as SHA-256 or in files work like plain ones, and the
// Slack secrets can come from files too.
func TestCallerTokensHashedAndFromFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	sum := sha256.Sum256([]byte(callerToken))
	h.rewriteConfig("    token: ${PAYMENTS_AGENT_TOKEN}", "    token_sha256: "+hex.EncodeToString(sum[:]))
	h.rewriteConfig("    token: other-agent-token-0123456789", "    token_file: other-agent.token")
	h.rewriteConfig("  bot_token: ${SLACK_BOT_TOKEN}", "  bot_token_file: "+filepath.Join(h.dir, "slack-bot.token"))
	for name, secret := range map[string]string{"other-agent.token": "other-agent-token-0123456789\n", "slack-bot.token": botToken + "\n"} {
		if err := os.WriteFile(filepath.Join(h.dir, name), []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.start()

	for _, token := range []string{callerToken, "other-agent-token-0123456789"} {
		r := h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"), map[string]string{
			"Authorization": "Bearer " + token, "Prefer": "respond-async"})
		if r.status != http.StatusAccepted {
			t.Fatalf("token %q…: HTTP %d %s", token[:6], r.status, r.body)
		}
	}
	// The bot token read from its file posts the messages.
	h.waitMessagesIn(4)
	if r := h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"), map[string]string{
		"Authorization": "Bearer " + hex.EncodeToString(sum[:]), "Prefer": "respond-async"}); r.status != http.StatusUnauthorized {
		t.Fatalf("the hash itself as a token: HTTP %d", r.status)
	}
}
