package bot

import (
	"net/url"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/signing"
)

// assertionLifetime is how long a signed decision stays valid for the agent
// that receives it. It is signed afresh on every answer, so a retry after the
// decision gets a fresh one.
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
	} else {
		a.Approver = "system:pending"
		a.Reason = "no decision yet; the request is still pending (poll " + approvalPath(r) + " or retry to reattach)"
	}
	if r.Schema != approvebot.SchemaV1 {
		a.IdentityAssertion = s.sign(r, caller)
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
	a.IdentityAssertion = s.sign(r, caller)
	return a
}

// sign asserts a decided request's outcome, or returns "" for a pending one.
func (s *Server) sign(r *approvebot.Request, caller string) string {
	if r.Resolution == nil || s.cfg.Signer == nil {
		return ""
	}
	tok, err := s.cfg.Signer.Sign(claimsFor(r, caller, s.engine.clock.Now()))
	if err != nil {
		// Without an assertion the agent turns an approval into a
		// denial: that is the safe failure, so log and go on.
		s.log.Error("sign decision", "request_id", r.ID, "err", err)
		return ""
	}
	return tok
}

// approvalPath is where the caller polls r: its id path-escaped, as agents
// choose schema 1.0 ids.
func approvalPath(r *approvebot.Request) string {
	return "/v1/approvals/" + url.PathEscape(r.PublicID())
}

func claimsFor(r *approvebot.Request, caller string, now time.Time) signing.Claims {
	res := r.Resolution
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
		Audience:          caller,
		IssuedAt:          now,
		Expiry:            now.Add(assertionLifetime),
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
