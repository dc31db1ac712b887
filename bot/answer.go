package bot

import (
	"net/url"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/signing"
)

// assertionLifetime is how long a signed decision stays valid. It is signed
// once, when the request is decided (iat is the decision time), stored with
// the request and returned as is to every later poll or retry, so a poll
// later than this gets an expired assertion and the agent denies. An approval
// is leave to act now: five minutes covers a held agent's answer, a poll
// interval or a reconnect after approvebot restarts, and keeps a human's
// "yes" from being acted on long after the circumstances it judged.
const assertionLifetime = 5 * time.Minute

// Answer is what the agent receives. AGT's legacy client reads approved,
// approver and reason; the schema 1.0 client checks the echoed id and
// action_digest, then verifies identity_assertion.
type Answer struct {
	Approved          bool              `json:"approved"`
	Approver          string            `json:"approver"`
	Reason            string            `json:"reason"`
	ApprovalRequestID string            `json:"approval_request_id"`
	Status            approvebot.Status `json:"status"`
	DecidedAt         string            `json:"decided_at,omitempty"`
	// AuditSeq and AuditHead are the decision's receipt: the sequence
	// number and digest of its approval_resolved audit record.
	AuditSeq  uint64 `json:"audit_seq,omitempty"`
	AuditHead string `json:"audit_head,omitempty"`

	SchemaVersion     string                 `json:"schema_version,omitempty"`
	ActionDigest      string                 `json:"action_digest,omitempty"`
	InputDigest       string                 `json:"input_digest,omitempty"`
	Decision          string                 `json:"decision,omitempty"`
	ChainEntries      []map[string]any       `json:"chain_entries,omitempty"`
	Resolution        *approvebot.Resolution `json:"resolution,omitempty"`
	IdentityAssertion string                 `json:"identity_assertion,omitempty"`
}

// answer builds the agent's answer for r. A pending request is not approved;
// its reason says it is still waiting.
func (s *Server) answer(r *approvebot.Request, caller string) Answer {
	a := Answer{ApprovalRequestID: r.PublicID(), Status: r.Status}
	if res := r.Resolution; res != nil {
		a.Approved = r.Status.Approved()
		a.Approver = res.Approver
		a.Reason = res.Reason
		a.DecidedAt = res.ResolvedAt.UTC().Format(time.RFC3339Nano)
		if r.Receipt != nil {
			a.AuditSeq, a.AuditHead = r.Receipt.AuditSeq, r.Receipt.AuditHead
		}
	} else {
		a.Approver = "system:pending"
		a.Reason = "no decision yet; the request is still pending (poll " + approvalPath(r) + " or retry to reattach)"
	}
	// The assertion made when the request was decided, for either schema.
	// Without one (decided by an approvebot that signed on every answer, or
	// signing failed) the agent turns an approval into a denial: the safe
	// failure.
	a.IdentityAssertion = r.Assertion
	if r.Schema != approvebot.SchemaV1 {
		return a
	}
	a.SchemaVersion = approvebot.SchemaV1
	a.ActionDigest = r.Fields.ActionDigest
	a.InputDigest = r.Fields.InputDigest
	a.Decision = approvebot.Deny
	if a.Approved {
		a.Decision = approvebot.Allow
	}
	for _, e := range r.Entries {
		a.ChainEntries = append(a.ChainEntries, entryRecord(e))
	}
	a.Resolution = r.Resolution
	return a
}

// seal signs r's decision, in the transaction that decides it (the store
// calls it there, once r.Receipt is set): the assertion is made once, at the
// decision, and stored with the request.
func (e *Engine) seal(r *approvebot.Request) {
	if e.signer == nil || r.Resolution == nil {
		return
	}
	tok, err := e.signer.Sign(claimsFor(r))
	if err != nil {
		// The store calls seal inside its transaction, with no context:
		// the line names the request.
		e.log.Error("sign decision", "request_id", r.ID, "err", err)
		return
	}
	r.Assertion = tok
}

// approvalPath is where the caller polls r: its id path-escaped, as agents
// choose schema 1.0 ids.
func approvalPath(r *approvebot.Request) string {
	return "/v1/approvals/" + url.PathEscape(r.PublicID())
}

// claimsFor is what r's signed decision asserts, for every schema: its
// audience is the caller that asked, its time the decision's.
func claimsFor(r *approvebot.Request) signing.Claims {
	res := r.Resolution
	at := res.ResolvedAt
	c := signing.Claims{
		Subject:           res.Approver,
		ApprovalRequestID: r.PublicID(),
		ActionDigest:      r.Fields.ActionDigest,
		InputDigest:       r.Fields.InputDigest,
		Decision:          approvebot.Deny,
		Status:            string(r.Status),
		IdentityAssurance: "system",
		ApproverKind:      "system",
		FinalEntryDigest:  res.FinalEntryDigest,
		Audience:          r.Caller,
		IssuedAt:          at,
		Expiry:            at.Add(assertionLifetime),
	}
	if r.Receipt != nil {
		c.AuditSeq, c.AuditHead = r.Receipt.AuditSeq, r.Receipt.AuditHead
	}
	if r.Schema != approvebot.SchemaV1 {
		// A legacy body carries no digests of its own: the assertion names
		// the body's bytes as approvebot received them.
		c.ActionDigest, c.InputDigest, c.BodyDigest = "", "", r.BodyDigest
	}
	if r.Status.Approved() {
		c.Decision = approvebot.Allow
	}
	if n := len(r.Entries); n > 0 && (r.Status == approvebot.StatusApproved || r.Status == approvebot.StatusDenied) {
		last := r.Entries[n-1]
		c.IdentityAssurance = last.IdentityAssurance
		c.ApproverKind = last.ApproverKind
	}
	return c
}
