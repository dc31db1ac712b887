package bot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// maxAnchorLine bounds one line of a checkpoint or receipt file.
const maxAnchorLine = 1 << 20

// ReadCheckpoints reads signed audit checkpoints, one a line: the lines of
// an audit.checkpoints.file, or approvebot's own "audit checkpoint" log
// lines (any JSON object with a "checkpoint" token). Every line must verify
// against keys and issuer; the first that does not is the error, naming its
// line. Blank lines are skipped.
func ReadCheckpoints(r io.Reader, name string, keys *signing.KeySet, issuer string) ([]store.Anchor, error) {
	var out []store.Anchor
	err := eachLine(r, name, func(line []byte, where string) error {
		var l struct {
			AuditSeq   *uint64 `json:"audit_seq"`
			AuditHead  *string `json:"audit_head"`
			At         *string `json:"at"`
			Checkpoint *string `json:"checkpoint"`
		}
		if line[0] != '{' || json.Unmarshal(line, &l) != nil {
			return fmt.Errorf("%s: not a JSON object (want a line of audit.checkpoints.file or an \"audit checkpoint\" log line)", where)
		}
		if l.Checkpoint == nil || *l.Checkpoint == "" {
			return fmt.Errorf("%s: no \"checkpoint\" token", where)
		}
		cp, err := keys.VerifyCheckpoint(*l.Checkpoint, issuer)
		if err != nil {
			return fmt.Errorf("%s: checkpoint refused: %v", where, err)
		}
		if (l.AuditSeq != nil && *l.AuditSeq != cp.AuditSeq) || (l.AuditHead != nil && *l.AuditHead != cp.AuditHead) ||
			(l.At != nil && !sameTime(*l.At, cp.At)) {
			return fmt.Errorf("%s: audit_seq, audit_head or at differ from what the checkpoint signs", where)
		}
		out = append(out, store.Anchor{Head: store.Head{Seq: cp.AuditSeq, Digest: cp.AuditHead}, At: cp.At, Source: where})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadReceipts reads decisions agents kept, one a line: either the answer
// body approvebot sent (JSON with "identity_assertion") or the bare
// identity_assertion token. Every token must verify against keys and issuer
// (expired ones count: a receipt is evidence) and carry audit_seq and
// audit_head; an unsigned answer is refused, as anyone could have written it.
func ReadReceipts(r io.Reader, name string, keys *signing.KeySet, issuer string) ([]store.Anchor, error) {
	var out []store.Anchor
	err := eachLine(r, name, func(line []byte, where string) error {
		token := string(line)
		var body struct {
			IdentityAssertion *string `json:"identity_assertion"`
			AuditSeq          *uint64 `json:"audit_seq"`
			AuditHead         *string `json:"audit_head"`
			ApprovalRequestID *string `json:"approval_request_id"`
		}
		if line[0] == '{' {
			if json.Unmarshal(line, &body) != nil {
				return fmt.Errorf("%s: not a JSON object", where)
			}
			if body.IdentityAssertion == nil || *body.IdentityAssertion == "" {
				return fmt.Errorf("%s: no identity_assertion: only signed decisions are receipts", where)
			}
			token = *body.IdentityAssertion
		}
		rc, err := keys.VerifyReceipt(token, issuer)
		if err != nil {
			return fmt.Errorf("%s: receipt refused: %v", where, err)
		}
		if (body.AuditSeq != nil && *body.AuditSeq != rc.AuditSeq) || (body.AuditHead != nil && *body.AuditHead != rc.AuditHead) ||
			(body.ApprovalRequestID != nil && *body.ApprovalRequestID != rc.ApprovalRequestID) {
			return fmt.Errorf("%s: audit_seq, audit_head or approval_request_id differ from what the identity_assertion signs", where)
		}
		out = append(out, store.Anchor{Head: store.Head{Seq: rc.AuditSeq, Digest: rc.AuditHead}, At: rc.IssuedAt,
			Source: fmt.Sprintf("%s (decision of %s)", where, rc.ApprovalRequestID)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func eachLine(r io.Reader, name string, fn func(line []byte, where string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxAnchorLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(line, fmt.Sprintf("%s line %d", name, n)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s line %d: longer than %d bytes", name, n+1, maxAnchorLine)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

func sameTime(s string, t time.Time) bool {
	u, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && u.Equal(t)
}
