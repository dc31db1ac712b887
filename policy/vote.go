package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/canon"
	"github.com/approvebot/approvebot/display"
)

// SameAddress compares two emails or UPNs, ignoring case; an empty one
// matches nothing.
func SameAddress(a, b string) bool { return a != "" && b != "" && strings.EqualFold(a, b) }

// addresses are the emails and UPNs a platform reported for a.
func addresses(a approvebot.Approver) []string {
	var out []string
	for _, s := range []string{a.Email, a.UPN} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Usergroups lists every platform user group named anywhere in the chain for
// the platform, so an adapter can resolve a clicker's memberships at once.
func Usergroups(c approvebot.Chain, platform string) []string {
	seen := map[string]bool{}
	var out []string
	stages := slices.Clone(c.Stages)
	for _, e := range c.Escalate {
		stages = append(stages, approvebot.Stage{Groups: e.Groups})
	}
	for _, s := range stages {
		for _, g := range s.Groups {
			s, _ := g.Side(platform)
			for _, ug := range s.Groups {
				if !seen[ug] {
					seen[ug] = true
					out = append(out, ug)
				}
			}
		}
	}
	return out
}

// VoteOutcome is what a ballot did to a request.
type VoteOutcome struct {
	Counted     bool
	Decided     bool
	StageOpened bool   // the ballot satisfied a stage and the next one opened
	Message     string // for the clicker: what happened, or why nothing did
	Entry       *approvebot.Entry
	RefusalCode string // machine-readable reason a ballot was refused
}

// Refusal codes, recorded in the audit log.
const (
	RefuseDecided      = "already_decided"
	RefuseExpired      = "expired"
	RefuseUnknownMsg   = "unknown_message"
	RefuseNotApprover  = "not_an_approver"
	RefuseNotYet       = "stage_not_open"
	RefuseSubject      = "separation_of_duties_subject"
	RefuseTwoStages    = "separation_of_duties_two_stages"
	RefuseAlreadyVoted = "already_voted"
	RefuseBadDecision  = "bad_decision"
	RefuseOtherStage   = "message_of_another_stage"
	RefuseOtherGroup   = "message_of_other_groups"
	RefuseGuest        = "guest_not_allowed"
	RefuseNoReason     = "reason_required"
	RefuseLongReason   = "reason_too_long"
	RefuseUnconfirmed  = "approval_not_confirmed"
)

// Vote applies a verified ballot to r in place. It is a pure function of
// (request, ballot, now): the store calls it inside the transaction that
// writes its result, so concurrent clicks are decided one at a time and the
// first decisive one wins.
//
// ps are the platforms, whose rules say who may decide for a group's side.
func Vote(ps Platforms, r *approvebot.Request, b approvebot.Ballot, now time.Time) VoteOutcome {
	refuse := func(code, msg string) VoteOutcome {
		return VoteOutcome{RefusalCode: code, Message: msg}
	}
	if b.Decision != approvebot.Allow && b.Decision != approvebot.Deny {
		return refuse(RefuseBadDecision, "Unknown decision.")
	}
	if r.Status.Final() {
		return refuse(RefuseDecided, "Nothing changed: "+Describe(r)+".")
	}
	if !now.Before(r.Deadline) {
		return refuse(RefuseExpired, "Nothing changed: this request expired at "+r.Deadline.UTC().Format(time.RFC1123)+".")
	}
	stage := r.Chain.Stages[r.Stage]
	groups := eligibleGroups(ps, stage, b.Approver)
	if len(groups) == 0 {
		// A stage escalated to more groups: their members decide it too.
		groups = eligibleGroups(ps, EscalatedTo(r, r.Stage), b.Approver)
	}
	if len(groups) == 0 {
		for i := r.Stage + 1; i < len(r.Chain.Stages); i++ {
			if len(eligibleGroups(ps, r.Chain.Stages[i], b.Approver)) > 0 {
				return refuse(RefuseNotYet, fmt.Sprintf("Not yet: you approve at stage %d of %d; stage %d (%s) has not been satisfied.",
					i+1, len(r.Chain.Stages), r.Stage+1, strings.Join(stage.GroupNames(), ", ")))
			}
		}
		if b.Approver.Role == approvebot.RoleGuest && guestBarred(ps, stage, b.Approver) {
			return refuse(RefuseGuest, fmt.Sprintf("Nothing changed: guest accounts may not approve for %s.", strings.Join(stage.GroupNames(), ", ")))
		}
		return refuse(RefuseNotApprover, fmt.Sprintf("Nothing changed: you are not an approver for %s.", strings.Join(stage.GroupNames(), ", ")))
	}
	// The click must come from a message approvebot posted for this request
	// and has recorded. A click can beat the recording by a moment; it is
	// refused (fail closed) and the clicker asked to try again.
	d := clickedMessage(r, b)
	if b.Home {
		// The home surface lists a request for the stage it was current
		// at; it speaks for every group of that stage.
		d = &approvebot.Destination{Platform: b.Platform, Stage: b.HomeStage, Groups: r.Chain.Stages[min(max(b.HomeStage, 0), len(r.Chain.Stages)-1)].GroupNames()}
	}
	if d == nil {
		return refuse(RefuseUnknownMsg, "Nothing changed: approvebot does not know this message for the request (yet). Try again in a moment.")
	}
	// A message speaks for the stage and the groups it was posted for: a
	// click on another group's copy, or on an earlier stage's, counts for
	// nobody.
	if d.Stage != r.Stage {
		return refuse(RefuseOtherStage, fmt.Sprintf("Nothing changed: this message asked stage %d of %d (%s), which is over; decide from the message of stage %d (%s).",
			d.Stage+1, len(r.Chain.Stages), strings.Join(d.Groups, ", "), r.Stage+1, strings.Join(stage.GroupNames(), ", ")))
	}
	mine := slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return !slices.Contains(d.Groups, g) })
	if len(mine) == 0 {
		return refuse(RefuseOtherGroup, fmt.Sprintf("Nothing changed: this message is for %s; you approve for %s: decide from that group's message.",
			strings.Join(d.Groups, ", "), strings.Join(groups, ", ")))
	}
	groups = mine
	if r.Chain.SeparationOfDuties {
		if isSubject(r, b.Approver) {
			return refuse(RefuseSubject, "Nothing changed: separation of duties forbids you to decide a request about yourself.")
		}
		for _, e := range r.Entries {
			if e.StageIndex != r.Stage && samePerson(e.Approver, b.Approver) {
				return refuse(RefuseTwoStages, fmt.Sprintf("Nothing changed: you already approved stage %d; separation of duties needs someone else for this stage.", e.StageIndex+1))
			}
		}
	}
	for _, e := range r.Entries {
		if e.StageIndex == r.Stage && samePerson(e.Approver, b.Approver) {
			return refuse(RefuseAlreadyVoted, "Nothing changed: you already approved; "+waitingFor(r)+".")
		}
	}
	// What the request's chain asks of a vote: a reason, a confirmation.
	// The platforms ask for them; they are enforced here, whatever asked.
	rule := r.Chain.Reason.For(b.Decision)
	b.Reason = CleanReason(b.Reason)
	if rule == approvebot.ReasonNone {
		b.Reason = ""
	}
	word := map[string]string{approvebot.Allow: "approve", approvebot.Deny: "deny"}[b.Decision]
	switch n := utf8.RuneCountInString(b.Reason); {
	case n > approvebot.MaxReason:
		return refuse(RefuseLongReason, fmt.Sprintf("Nothing changed: your reason is %d characters long; at most %d.", n, approvebot.MaxReason))
	case n == 0 && rule == approvebot.ReasonRequired:
		return refuse(RefuseNoReason, "Nothing changed: a reason is required to "+word+" this request.")
	}
	if b.Decision == approvebot.Allow && r.Chain.ConfirmApprove && !b.Confirmed {
		return refuse(RefuseUnconfirmed, "Nothing changed: approving this request needs a confirmation. Press Approve, then confirm.")
	}

	group := groups[0]
	if stage.Quorum.Mode == approvebot.QuorumAll {
		// Count the vote for a group that still needs one, so that one
		// person in two groups cannot satisfy both.
		for _, g := range groups {
			if !groupApproved(r, g) {
				group = g
				break
			}
		}
	}
	entry := newEntry(r, b, group, now)
	r.Entries = append(r.Entries, entry)
	out := VoteOutcome{Counted: true, Entry: &r.Entries[len(r.Entries)-1]}

	if b.Decision == approvebot.Deny {
		resolve(r, approvebot.StatusDenied, approvebot.Deny, b.Approver.Principal(), b.Approver.Display(),
			denyReason(b)+shownWhere(ps, r, b), now)
		out.Decided = true
		out.Message = "You denied this request."
		return out
	}
	if !stageSatisfied(r, r.Stage) {
		out.Message = "Your approval is recorded; " + waitingFor(r) + "."
		return out
	}
	if r.Stage+1 < len(r.Chain.Stages) {
		r.Stage++
		for i := range r.Destinations {
			if r.Destinations[i].Stage == r.Stage && r.Destinations[i].State == approvebot.DeliveryWaiting {
				r.Destinations[i].State = approvebot.DeliveryQueued
			}
		}
		out.StageOpened = true
		out.Message = fmt.Sprintf("Your approval is recorded; stage %d of %d is satisfied and %s now decide.",
			r.Stage, len(r.Chain.Stages), strings.Join(r.Chain.Stages[r.Stage].GroupNames(), ", "))
		return out
	}
	resolve(r, approvebot.StatusApproved, approvebot.Allow, b.Approver.Principal(), b.Approver.Display(),
		approveReason(r)+shownWhere(ps, r, b), now)
	out.Decided = true
	out.Message = "You approved this request."
	return out
}

// Expire ends a pending request without a human decision: a timeout, an
// undeliverable request, or one that could not be routed. approver is the
// "system:..." identity the agent receives. A request that has already
// ended is left as it is.
func Expire(r *approvebot.Request, status approvebot.Status, reason string, now time.Time) {
	if r.Status.Final() {
		return
	}
	outcome := approvebot.Deny
	approver := "system:" + string(status)
	switch status {
	case approvebot.StatusTimedOut:
		outcome, approver = "expired", "system:timeout"
	case approvebot.StatusExpired:
		outcome, approver = "expired", "system:expired"
	case approvebot.StatusNoRoute:
		approver = "system:no-route"
	case approvebot.StatusCancelled:
		approver = "system:cancelled"
	}
	resolve(r, status, outcome, approver, "", reason, now)
}

// Describe says in one phrase how a request ended or where it stands, for a
// clicker who arrives after the fact.
func Describe(r *approvebot.Request) string {
	res := r.Resolution
	if res == nil {
		return "it is still pending; " + waitingFor(r)
	}
	switch r.Status {
	case approvebot.StatusApproved, approvebot.StatusDenied:
		o := Outcome(r)
		return "already " + strings.ToLower(o[:1]) + o[1:]
	case approvebot.StatusTimedOut, approvebot.StatusExpired:
		return "it expired at " + stamp(res.ResolvedAt) + " without a decision"
	case approvebot.StatusCancelled:
		return "it was withdrawn by the agent at " + stamp(res.ResolvedAt)
	default:
		return "it was closed at " + stamp(res.ResolvedAt) + ": " + res.Reason
	}
}

// Outcome is the line a closed request's chat messages show: who decided and
// when, or why it ended without a decision, with the approvers' reasons
// quoted.
func Outcome(r *approvebot.Request) string { return outcome(r, true) }

// OutcomeWithoutReasons is Outcome without the approvers' reasons, for
// surfaces that render markup (a Slack thread reply's mrkdwn), where their
// words could not be shown inert.
func OutcomeWithoutReasons(r *approvebot.Request) string { return outcome(r, false) }

func outcome(r *approvebot.Request, reasons bool) string {
	res := r.Resolution
	if res == nil {
		return ""
	}
	at := stamp(res.ResolvedAt)
	switch r.Status {
	case approvebot.StatusApproved:
		var names, comments []string
		for _, e := range r.Entries {
			if e.Decision == approvebot.Allow {
				names = append(names, e.Approver.Display())
				if e.Reason != "" && reasons {
					comments = append(comments, e.Approver.Display()+": "+display.Quote(e.Reason))
				}
			}
		}
		s := "Approved by " + strings.Join(names, ", ") + " at " + at
		if len(comments) > 0 {
			s += " (" + strings.Join(comments, "; ") + ")"
		}
		return s
	case approvebot.StatusDenied:
		who := res.ApproverName
		if who == "" {
			who = res.Approver
		}
		s := "Denied by " + who + " at " + at
		if n := len(r.Entries); reasons && n > 0 && r.Entries[n-1].Decision == approvebot.Deny && r.Entries[n-1].Reason != "" {
			s += ": " + display.Quote(r.Entries[n-1].Reason)
		}
		return s
	case approvebot.StatusTimedOut, approvebot.StatusExpired:
		return "Expired at " + at + ": " + res.Reason
	case approvebot.StatusCancelled:
		return "Withdrawn by the agent at " + at
	default:
		return "Closed at " + at + ": " + res.Reason
	}
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// clickedMessage finds the posted destination a ballot's message is, or nil.
func clickedMessage(r *approvebot.Request, b approvebot.Ballot) *approvebot.Destination {
	for i, d := range r.Destinations {
		if d.Platform != b.Platform || d.State != approvebot.DeliveryPosted || d.Ref.ID != b.Ref.ID {
			continue
		}
		if d.Ref.Channel == b.Ref.Channel || (d.Ref.Conversation != "" && d.Ref.Conversation == b.Ref.Conversation) {
			return &r.Destinations[i]
		}
	}
	return nil
}

// guestBarred reports whether a guest is listed in one of the stage's groups
// that does not allow guests: they would decide there as a member.
func guestBarred(ps Platforms, s approvebot.Stage, a approvebot.Approver) bool {
	a.Role = approvebot.RoleMember
	for _, g := range s.Groups {
		if side, ok := g.Side(a.Platform); ok && !side.AllowGuests && ps.Eligible(g, a) {
			return true
		}
	}
	return false
}

func eligibleGroups(ps Platforms, s approvebot.Stage, a approvebot.Approver) []string {
	var out []string
	for _, g := range s.Groups {
		if ps.Eligible(g, a) {
			out = append(out, g.Name)
		}
	}
	return out
}

// samePerson matches one person across clicks: the same platform account
// (user id within the organisation the platform's directory names), or an
// email or UPN that either platform reported for both. Erring towards "the
// same" only ever refuses a vote.
func samePerson(a, b approvebot.Approver) bool {
	if a.Platform == b.Platform && a.Workspace == b.Workspace && a.UserID == b.UserID {
		return true
	}
	for _, x := range addresses(a) {
		for _, y := range addresses(b) {
			if SameAddress(x, y) {
				return true
			}
		}
	}
	return false
}

func isSubject(r *approvebot.Request, a approvebot.Approver) bool {
	if r.Fields.SubjectID == nil || *r.Fields.SubjectID == "" {
		return false
	}
	s := *r.Fields.SubjectID
	return SameAddress(s, a.Email) || SameAddress(s, a.UPN) || s == a.UserID || s == a.Principal()
}

func groupApproved(r *approvebot.Request, group string) bool {
	for _, e := range r.Entries {
		if e.StageIndex == r.Stage && e.Group == group && e.Decision == approvebot.Allow {
			return true
		}
	}
	return false
}

func stageSatisfied(r *approvebot.Request, stage int) bool {
	s := r.Chain.Stages[stage]
	for _, g := range EscalatedTo(r, stage).Groups {
		// One approval from a group the stage was escalated to decides it.
		if groupApproved(r, g.Name) {
			return true
		}
	}
	var allows []approvebot.Entry
	for _, e := range r.Entries {
		if e.StageIndex == stage && e.Decision == approvebot.Allow {
			allows = append(allows, e)
		}
	}
	switch s.Quorum.Mode {
	case approvebot.QuorumAll:
		for _, g := range s.Groups {
			if !groupApproved(r, g.Name) {
				return false
			}
		}
		return true
	case approvebot.QuorumCount:
		return len(allows) >= s.Quorum.N
	default:
		return len(allows) >= 1
	}
}

// waitingFor says what the current stage still needs.
func waitingFor(r *approvebot.Request) string {
	s := r.Chain.Stages[r.Stage]
	switch s.Quorum.Mode {
	case approvebot.QuorumAll:
		var missing []string
		for _, g := range s.Groups {
			if !groupApproved(r, g.Name) {
				missing = append(missing, g.Name)
			}
		}
		return "waiting for " + strings.Join(missing, ", ")
	case approvebot.QuorumCount:
		n := 0
		for _, e := range r.Entries {
			if e.StageIndex == r.Stage && e.Decision == approvebot.Allow {
				n++
			}
		}
		return fmt.Sprintf("waiting for %d more approval(s) from %s", s.Quorum.N-n, strings.Join(s.GroupNames(), ", "))
	default:
		return "waiting for " + strings.Join(s.GroupNames(), " or ")
	}
}

// Progress is the line chat messages show while a request is pending.
func Progress(r *approvebot.Request) string {
	if r.Status.Final() {
		return ""
	}
	var done []string
	for _, e := range r.Entries {
		if e.Decision == approvebot.Allow {
			if len(r.Chain.Stages) > 1 {
				done = append(done, fmt.Sprintf("stage %d of %d approved by %s", e.StageIndex+1, len(r.Chain.Stages), e.Approver.Display()))
			} else {
				done = append(done, "approved by "+e.Approver.Display())
			}
		}
	}
	if len(done) == 0 {
		if len(r.Chain.Stages) > 1 {
			return fmt.Sprintf("Stage %d of %d: %s", r.Stage+1, len(r.Chain.Stages), waitingFor(r))
		}
		return ""
	}
	return strings.Join(done, "; ") + "; " + waitingFor(r)
}

// shownWhere says, for a decision made in an inbox (the web inbox), that it
// was made there, and which chat channels of the stage could not show the
// request.
func shownWhere(ps Platforms, r *approvebot.Request, b approvebot.Ballot) string {
	inbox, ok := ps.Get(b.Platform).(Inbox)
	if !ok {
		return ""
	}
	var failed []string
	for _, d := range r.Destinations {
		if d.Stage == r.Stage && d.Platform != b.Platform && d.State == approvebot.DeliveryFailed {
			failed = append(failed, d.Platform+" "+d.Channel)
		}
	}
	if len(failed) == 0 {
		return " (in " + inbox.InboxName() + ")"
	}
	return " (in " + inbox.InboxName() + "; not delivered to " + strings.Join(failed, ", ") + ")"
}

func approveReason(r *approvebot.Request) string {
	var who []string
	sep := ", "
	for _, e := range r.Entries {
		if e.Decision == approvebot.Allow {
			s := e.Approver.Principal() + " (" + e.Group + ")"
			if e.Reason != "" {
				s += ": " + e.Reason
				sep = "; "
			}
			who = append(who, s)
		}
	}
	return "Approved by " + strings.Join(who, sep)
}

func denyReason(b approvebot.Ballot) string {
	s := "Denied by " + b.Approver.Principal()
	if b.Reason != "" {
		s += ": " + b.Reason
	}
	return s
}

// CleanReason keeps an approver's reason to one paragraph of printable
// text: control and bidirectional formatting characters become spaces, and
// surrounding space goes. Renderers still show it through package display.
func CleanReason(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s))
}

// newEntry builds ADR-0030's chain entry for a ballot. Its id and digest are
// derived from the request, so replaying a transaction yields the same entry.
func newEntry(r *approvebot.Request, b approvebot.Ballot, group string, now time.Time) approvebot.Entry {
	prev := ""
	if n := len(r.Entries); n > 0 {
		prev = r.Entries[n-1].EntryDigest
	}
	// reason_code is the approver's reason when they gave one, so that the
	// entry's digest covers their words.
	reason := "approved"
	if b.Decision == approvebot.Deny {
		reason = "denied"
	}
	if b.Reason != "" {
		reason = b.Reason
	}
	e := approvebot.Entry{
		ApprovalRequestID:   r.PublicID(),
		ChainEntryID:        derivedID("ce_", r.ID, len(r.Entries)),
		StageIndex:          r.Stage,
		ApproverKind:        "human",
		ApproverIdentity:    b.Approver.Principal(),
		IdentityAssurance:   b.Assurance,
		Decision:            b.Decision,
		ReasonCode:          reason,
		InputDigest:         r.Digest,
		PreviousEntryDigest: prev,
		DecidedAt:           now.UTC().Format(time.RFC3339Nano),
		Group:               group,
		Approver:            b.Approver,
		Reason:              b.Reason,
	}
	e.EntryDigest = EntryDigest(e)
	return e
}

// EntryDigest is sha256 over the canonical JSON of every ADR field of e but
// entry_digest itself.
func EntryDigest(e approvebot.Entry) string {
	e.EntryDigest = ""
	d, err := canon.DigestOf(entryFields(e))
	if err != nil {
		// The fields are strings and ints: canonicalisation cannot fail.
		panic(fmt.Sprintf("entry digest: %v", err))
	}
	return d
}

func entryFields(e approvebot.Entry) map[string]any {
	return map[string]any{
		"approval_request_id":   e.ApprovalRequestID,
		"chain_entry_id":        e.ChainEntryID,
		"stage_index":           e.StageIndex,
		"approver_kind":         e.ApproverKind,
		"approver_identity":     e.ApproverIdentity,
		"identity_assurance":    e.IdentityAssurance,
		"decision":              e.Decision,
		"reason_code":           e.ReasonCode,
		"input_digest":          e.InputDigest,
		"previous_entry_digest": e.PreviousEntryDigest,
		"decided_at":            e.DecidedAt,
	}
}

func resolve(r *approvebot.Request, status approvebot.Status, outcome, approver, name, reason string, now time.Time) {
	final := ""
	if n := len(r.Entries); n > 0 {
		final = r.Entries[n-1].EntryDigest
	}
	res := &approvebot.Resolution{
		ApprovalResolutionID: derivedID("res_", r.ID, len(r.Entries)),
		Outcome:              outcome,
		Status:               status,
		Approver:             approver,
		ApproverName:         name,
		Reason:               reason,
		FinalEntryDigest:     final,
		ResolvedAt:           now.UTC(),
	}
	r.Status = status
	r.Resolution = res
	d, err := ResolutionDigest(r)
	if err != nil {
		panic(fmt.Sprintf("resolution digest: %v", err))
	}
	res.Digest = d
}

// ResolutionDigest recomputes a resolution's digest, for audit verification.
func ResolutionDigest(r *approvebot.Request) (string, error) {
	res := r.Resolution
	return canon.DigestOf(map[string]any{
		"approval_resolution_id": res.ApprovalResolutionID,
		"approval_request_id":    r.PublicID(),
		"outcome":                res.Outcome,
		"action_digest":          r.Fields.ActionDigest,
		"policy_version":         r.Fields.PolicyVersion,
		"approval_chain_version": r.Chain.Version,
		"final_entry_digest":     res.FinalEntryDigest,
		"resolved_at":            res.ResolvedAt.Format(time.RFC3339Nano),
	})
}

func derivedID(prefix, id string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, n)))
	return prefix + hex.EncodeToString(sum[:16])
}

// EscalatedTo is the stage of r the given stage was escalated to: the
// groups of the chain's escalation steps that happened while it was
// current, with no quorum of their own (one approval of theirs decides the
// stage). Only groups the chain was configured with appear here.
func EscalatedTo(r *approvebot.Request, stage int) approvebot.Stage {
	var out approvebot.Stage
	for _, x := range r.Escalations {
		if x.Stage != stage || x.Step < 0 || x.Step >= len(r.Chain.Escalate) {
			continue
		}
		out.Groups = append(out.Groups, r.Chain.Escalate[x.Step].Groups...)
	}
	return out
}
