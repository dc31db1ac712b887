package signing

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestCheckpointRoundTripAndRefusals(t *testing.T) {
	s := newSigner(t)
	keys, err := ParseKeySet(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 18, 0, 0, 123456789, time.UTC)
	tok, err := s.SignCheckpoint(Checkpoint{AuditSeq: 42, AuditHead: "sha256:ab", At: at})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := keys.VerifyCheckpoint(tok, s.Issuer())
	if err != nil || cp.AuditSeq != 42 || cp.AuditHead != "sha256:ab" || !cp.At.Equal(at) {
		t.Fatalf("round trip: %+v %v", cp, err)
	}

	decision := testClaims()
	decision.AuditSeq, decision.AuditHead = 7, "sha256:cd"
	dtok, err := s.Sign(decision)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := keys.VerifyReceipt(dtok, s.Issuer())
	if err != nil || rc.AuditSeq != 7 || rc.AuditHead != "sha256:cd" || rc.ApprovalRequestID != decision.ApprovalRequestID {
		t.Fatalf("receipt: %+v %v", rc, err)
	}
	// An expired decision is still a receipt.
	if _, err := Verify(s.JWKS(), dtok, s.Issuer(), decision.Expiry.Add(time.Hour)); err == nil {
		t.Fatal("an expired decision verified as a decision")
	}

	other := newSigner(t)
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	moved := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"audit_seq":42`, `"audit_seq":43`, 1))) + "." + parts[2]
	otherTok, _ := other.SignCheckpoint(Checkpoint{AuditSeq: 42, AuditHead: "sha256:ab", At: at})
	undecided := testClaims()
	undecided.AuditSeq, undecided.AuditHead = 0, ""
	old, _ := s.Sign(undecided)
	for name, tc := range map[string]struct {
		err    error
		substr string
	}{
		"a decision as a checkpoint":  {second(keys.VerifyCheckpoint(dtok, s.Issuer())), `token type "JWT"`},
		"a checkpoint as a decision":  {second(keys.VerifyReceipt(tok, s.Issuer())), `token type "approvebot-checkpoint+jwt"`},
		"another key":                 {second(keys.VerifyCheckpoint(otherTok, s.Issuer())), "no key"},
		"a changed payload":           {second(keys.VerifyCheckpoint(moved, s.Issuer())), "signature"},
		"another issuer":              {second(keys.VerifyCheckpoint(tok, "someone-else")), "issuer"},
		"a decision without receipt":  {second(keys.VerifyReceipt(old, s.Issuer())), "no audit_seq"},
		"not a token":                 {second(keys.VerifyCheckpoint("x.y", s.Issuer())), "parse token"},
		"a checkpoint without a time": {second(s.SignCheckpoint(Checkpoint{AuditSeq: 1})), "no time"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.substr) {
			t.Errorf("%s: %v, want an error with %q", name, tc.err, tc.substr)
		}
	}
}

func second[T any](_ T, err error) error { return err }
