package signing

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/signing/signingtest"
)

// The agent side of a decision is Python: integrations/agt's approvebot_agt. These
// tests sign with this package and verify with that script, so the two
// cannot drift apart unnoticed.

func runVerifier(t *testing.T, py string, jwks []byte, token, requestID, actionDigest string) (stdout, stderr string, code int) {
	t.Helper()
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{
		"approval_request_id": requestID,
		"action_digest":       actionDigest,
		"approved":            true,
		"decision":            "allow",
		"approver":            "jane@company.com",
		"reason":              "within limit",
		"identity_assertion":  token,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := signingtest.Verifier(ctx, py, "--jwks", jwksFile, "--issuer", "approvebot", "--audience", "payments-agent",
		"--request-id", requestID, "--action-digest", actionDigest)
	cmd.Stdin = bytes.NewReader(body)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run verifier: %v", err)
	}
	return out.String(), errOut.String(), 0
}

func TestPythonVerifierAgrees(t *testing.T) {
	py := signingtest.Python(t)
	s := newSigner(t)
	now := time.Now()
	c := testClaims()
	c.IssuedAt, c.Expiry = now, now.Add(10*time.Minute)
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := runVerifier(t, py, s.JWKS(), tok, c.ApprovalRequestID, c.ActionDigest)
	if code != 0 || strings.TrimSpace(stdout) != c.Subject {
		t.Fatalf("valid token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)

	expired := testClaims()
	expired.IssuedAt, expired.Expiry = now.Add(-20*time.Minute), now.Add(-10*time.Minute)
	expiredTok, err := s.Sign(expired)
	if err != nil {
		t.Fatal(err)
	}
	deny := c
	deny.Decision = "deny"
	denyTok, _ := s.Sign(deny)
	otherTok, _ := newSigner(t).Sign(c)

	tests := []struct {
		name, token, requestID, actionDigest, why string
	}{
		{"tampered signature", tampered, c.ApprovalRequestID, c.ActionDigest, "bad signature"},
		{"expired", expiredTok, c.ApprovalRequestID, c.ActionDigest, "expired"},
		{"other request", tok, "ar_" + strings.Repeat("0", 32), c.ActionDigest, "approval_request_id"},
		{"other action", tok, c.ApprovalRequestID, "sha256:" + strings.Repeat("0", 64), "action_digest"},
		{"denied", denyTok, c.ApprovalRequestID, c.ActionDigest, "decision"},
		{"other key", otherTok, c.ApprovalRequestID, c.ActionDigest, "no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runVerifier(t, py, s.JWKS(), tt.token, tt.requestID, tt.actionDigest)
			if code != 1 || stdout != "" {
				t.Fatalf("exit %d, stdout %q, want exit 1 and nothing on stdout", code, stdout)
			}
			if !strings.Contains(stderr, tt.why) {
				t.Errorf("stderr %q does not say %q", stderr, tt.why)
			}
			// Go's own Verify must agree on the token-level refusals.
			if tt.requestID == c.ApprovalRequestID && tt.actionDigest == c.ActionDigest && tt.token != denyTok {
				if _, err := Verify(s.JWKS(), tt.token, "approvebot", now); err == nil {
					t.Error("Go Verify accepted what Python refused")
				}
			}
		})
	}
}
