package signing

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CheckpointType is the JWS "typ" of an audit checkpoint. Decisions carry
// "JWT": a checkpoint can never pass for a decision, nor a decision for a
// checkpoint.
const CheckpointType = "approvebot-checkpoint+jwt"

// Checkpoint is the audit log's head at a moment, signed with the decision
// key so that a copy kept outside the store file proves how far the log had
// reached and what its last record was.
type Checkpoint struct {
	AuditSeq  uint64    // the last record's sequence number
	AuditHead string    // the last record's digest
	At        time.Time // when the head was read
}

type wireCheckpoint struct {
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	At        string `json:"at"` // RFC 3339 with nanoseconds: iat is whole seconds
	AuditSeq  uint64 `json:"audit_seq"`
	AuditHead string `json:"audit_head"`
}

// SignCheckpoint returns c as a compact JWS of type CheckpointType.
func (s *Signer) SignCheckpoint(c Checkpoint) (string, error) {
	if c.At.IsZero() {
		return "", errors.New("sign checkpoint: no time")
	}
	payload, err := json.Marshal(wireCheckpoint{
		Issuer: s.issuer, IssuedAt: c.At.Unix(), At: c.At.UTC().Format(time.RFC3339Nano),
		AuditSeq: c.AuditSeq, AuditHead: c.AuditHead,
	})
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	obj, err := s.checkpoint.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return obj.CompactSerialize()
}

// VerifyCheckpoint checks a checkpoint's type, signature and issuer and
// returns what it says. Checkpoints do not expire: they are evidence.
func (ks *KeySet) VerifyCheckpoint(token, issuer string) (Checkpoint, error) {
	payload, err := ks.payload(token, CheckpointType)
	if err != nil {
		return Checkpoint{}, err
	}
	var w wireCheckpoint
	if err := json.Unmarshal(payload, &w); err != nil {
		return Checkpoint{}, fmt.Errorf("claims: %w", err)
	}
	if w.Issuer != issuer {
		return Checkpoint{}, fmt.Errorf("issuer %q, want %q", w.Issuer, issuer)
	}
	at, err := time.Parse(time.RFC3339Nano, w.At)
	if err != nil {
		return Checkpoint{}, errors.New("claim at is not an RFC 3339 time")
	}
	if w.AuditSeq > 0 && w.AuditHead == "" {
		return Checkpoint{}, errors.New("claim audit_head is empty")
	}
	return Checkpoint{AuditSeq: w.AuditSeq, AuditHead: w.AuditHead, At: at}, nil
}

// Receipt is what a signed decision says about its place in the audit log.
type Receipt struct {
	ApprovalRequestID string
	AuditSeq          uint64
	AuditHead         string
	IssuedAt          time.Time
}

// VerifyReceipt checks a decision token's type, signature and issuer, but
// not its expiry: an agent that kept an old decision still holds proof of
// where the log stood when it was decided.
func (ks *KeySet) VerifyReceipt(token, issuer string) (Receipt, error) {
	payload, err := ks.payload(token, "JWT")
	if err != nil {
		return Receipt{}, err
	}
	var w struct {
		Issuer            string `json:"iss"`
		IssuedAt          int64  `json:"iat"`
		ApprovalRequestID string `json:"approval_request_id"`
		AuditSeq          uint64 `json:"audit_seq"`
		AuditHead         string `json:"audit_head"`
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return Receipt{}, fmt.Errorf("claims: %w", err)
	}
	if w.Issuer != issuer {
		return Receipt{}, fmt.Errorf("issuer %q, want %q", w.Issuer, issuer)
	}
	if w.AuditSeq == 0 || w.AuditHead == "" {
		return Receipt{}, errors.New("the decision carries no audit_seq and audit_head (signed before receipts existed?)")
	}
	return Receipt{ApprovalRequestID: w.ApprovalRequestID, AuditSeq: w.AuditSeq, AuditHead: w.AuditHead, IssuedAt: time.Unix(w.IssuedAt, 0)}, nil
}
