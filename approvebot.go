// Package approvebot holds the domain types every part of approvebot speaks:
// an approval request, the chain of stages that must approve it, the votes
// cast on it, the chat messages that show it, and the outcome the waiting
// agent receives. The engine (bot/), the rules (policy/) and the store
// (store/) exchange these types; chat SDK types never reach this package.
package approvebot

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/approvebot/approvebot/internal/jsonlex"
)

// Status is where a request stands. Every status but pending is final.
type Status string

// The statuses an agent can receive.
const (
	StatusPending       Status = "pending"
	StatusApproved      Status = "approved"
	StatusDenied        Status = "denied"
	StatusTimedOut      Status = "timed_out"     // nobody decided before the deadline
	StatusExpired       Status = "expired"       // schema 1.0: expires_at had passed
	StatusUndeliverable Status = "undeliverable" // no approver could be shown the request
	StatusNoRoute       Status = "no_route"      // no configured approver group for it
	StatusCancelled     Status = "cancelled"     // the agent withdrew it (DELETE)
)

// Final reports whether the status can no longer change.
func (s Status) Final() bool { return s != StatusPending && s != "" }

// Approved reports whether the status lets the action run.
func (s Status) Approved() bool { return s == StatusApproved }

// Schema names the body an agent sent.
const (
	SchemaLegacy = "legacy" // WebhookApproval: the tutorial's body
	SchemaV1     = "1.0"    // VersionedWebhookApproval (action-bound)
)

// Fields are what the agent sent, kept as received. Legacy requests fill the
// first block; schema 1.0 requests the second. Strings are stored exactly as
// they arrived so digests can be recomputed byte for byte.
type Fields struct {
	Type        string   `json:"type"`
	RuleName    string   `json:"rule_name,omitempty"`
	PolicyName  string   `json:"policy_name,omitempty"`
	AgentID     string   `json:"agent_id"`
	Action      string   `json:"action,omitempty"`
	Approvers   []string `json:"approvers,omitempty"`
	RequestedAt string   `json:"requested_at,omitempty"`

	SchemaVersion        string  `json:"schema_version,omitempty"`
	InputDigest          string  `json:"input_digest,omitempty"`
	ApprovalRequestID    string  `json:"approval_request_id,omitempty"`
	PolicyDecisionID     string  `json:"policy_decision_id,omitempty"`
	ActionDigest         string  `json:"action_digest,omitempty"`
	SubjectID            *string `json:"subject_id,omitempty"`
	Operation            string  `json:"operation,omitempty"`
	TargetResource       *string `json:"target_resource,omitempty"`
	PolicyVersion        string  `json:"policy_version,omitempty"`
	ApprovalChainID      string  `json:"approval_chain_id,omitempty"`
	ApprovalChainVersion string  `json:"approval_chain_version,omitempty"`
	ExpiresAt            string  `json:"expires_at,omitempty"`
	// Optional fields of AGT's protocol ApprovalRequest, outside
	// input_digest; RequestedAt (above) is the third. They are recorded and
	// change nothing.
	FailClosedOnTimeout *bool  `json:"fail_closed_on_timeout,omitempty"`
	RequestStatus       string `json:"status,omitempty"`
}

// Quorum says how many approvals satisfy a stage.
type Quorum struct {
	Mode string `json:"mode"`        // QuorumAny, QuorumAll or QuorumCount
	N    int    `json:"n,omitempty"` // with QuorumCount: distinct approvers needed
}

// Quorum modes.
const (
	QuorumAny   = "any"   // one approval from any group of the stage
	QuorumAll   = "all"   // one approval from each group of the stage, each by a different person
	QuorumCount = "count" // N distinct approvers from the stage's groups
)

func (q Quorum) String() string {
	if q.Mode == QuorumCount {
		return fmt.Sprintf("%d", q.N)
	}
	if q.Mode == "" {
		return QuorumAny
	}
	return q.Mode
}

// Group is an approver group as configured: where its requests are shown and
// who in it may decide, per platform. A request keeps a copy of its groups,
// so a config change never alters a request already open.
type Group struct {
	Name string
	// Sides are the group's sides by platform name (as in
	// Destination.Platform); a platform without one neither shows the
	// group's requests nor lets anyone decide for it there.
	Sides map[string]Side
}

// Side is a group's side on one platform. What its names mean (user ids,
// emails, channel ids, identity provider groups) is the platform's to say.
type Side struct {
	Channels []string // where requests are posted
	Users    []string // people who may decide, as the platform names them
	// Groups are the platform's user groups (or the identity provider's
	// groups claim) whose members may decide.
	Groups []string
	// AllowGuests lets guest accounts listed in Users decide for the group,
	// on a platform that tells guests from members; without it only
	// members may.
	AllowGuests bool
	// DM sends each listed user the request in their direct messages with
	// the bot as well as (notify: [channels, dm]) or instead of the
	// channels (notify: [dm]).
	DM bool

	// legacyGroups records that the side was stored with its groups under
	// "usergroups", as releases before sides were neutral wrote them; it is
	// written back the same way, so a stored request re-encodes to the
	// bytes it was stored as (store.Verify checks that).
	legacyGroups bool
}

// Side returns g's side on platform.
func (g Group) Side(platform string) (Side, bool) {
	s, ok := g.Sides[platform]
	return s, ok
}

// groupName is the one key of a stored group that is not a platform.
const groupName = "name"

// sideJSON is a side as stored. The field order is the one every release
// has written, so that records re-encode to their stored bytes.
type sideJSON struct {
	Channels    []string `json:"channels,omitempty"`
	Users       []string `json:"users,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Usergroups  []string `json:"usergroups,omitempty"` // earlier releases' name of Groups
	AllowGuests bool     `json:"allow_guests,omitempty"`
	DM          bool     `json:"dm,omitempty"`
}

// MarshalJSON writes a group as {"name": ..., "<platform>": side, ...},
// platforms in name order: the shape requests have been stored in since the
// first release.
func (g Group) MarshalJSON() ([]byte, error) {
	b := jsonlex.AppendString(append(make([]byte, 0, 128), `{"name":`...), g.Name)
	for _, p := range slices.Sorted(maps.Keys(g.Sides)) {
		if p == groupName {
			return nil, fmt.Errorf("group %s: %q cannot name a platform", g.Name, p)
		}
		s := g.Sides[p]
		js := sideJSON{Channels: s.Channels, Users: s.Users, Groups: s.Groups, AllowGuests: s.AllowGuests, DM: s.DM}
		if s.legacyGroups {
			js.Groups, js.Usergroups = nil, s.Groups
		}
		b = jsonlex.AppendString(append(b, ','), p)
		side, err := json.Marshal(js)
		if err != nil {
			return nil, err
		}
		b = append(append(b, ':'), side...)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads a stored group: every key but "name" is a platform's
// side. Requests stored by earlier releases named a side's groups
// "usergroups"; they read as Groups.
func (g *Group) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*g = Group{}
	for k, v := range raw {
		if k == groupName {
			if err := json.Unmarshal(v, &g.Name); err != nil {
				return fmt.Errorf("group name: %w", err)
			}
			continue
		}
		var js sideJSON
		if err := json.Unmarshal(v, &js); err != nil {
			return fmt.Errorf("group side %s: %w", k, err)
		}
		s := Side{Channels: js.Channels, Users: js.Users, Groups: js.Groups, AllowGuests: js.AllowGuests, DM: js.DM}
		if len(js.Groups) == 0 && len(js.Usergroups) > 0 {
			s.Groups, s.legacyGroups = js.Usergroups, true
		}
		if g.Sides == nil {
			g.Sides = map[string]Side{}
		}
		g.Sides[k] = s
	}
	return nil
}

// DirectMessage prefixes a destination's channel that names a person, not
// a channel: "dm:U0123" or "dm:jane@company.com". The platform opens its
// direct conversation with them and posts there.
const DirectMessage = "dm:"

// Stage is one step of a chain: its groups and the quorum that satisfies it.
type Stage struct {
	Groups []Group `json:"groups"`
	Quorum Quorum  `json:"quorum"`
}

// GroupNames lists the stage's group names.
func (s Stage) GroupNames() []string {
	names := make([]string, len(s.Groups))
	for i, g := range s.Groups {
		names[i] = g.Name
	}
	return names
}

// Chain is the ordered list of stages a request must pass. A request's chain is
// fixed when it opens. Legacy requests get a one-stage chain built from the
// route that matched.
type Chain struct {
	ID                 string  `json:"id,omitempty"`
	Version            string  `json:"version,omitempty"`
	Stages             []Stage `json:"stages"`
	SeparationOfDuties bool    `json:"separation_of_duties,omitempty"`
	// Reminders are when, after the request opened, the current stage's
	// approvers are reminded in each message's thread; BeforeDeadline adds
	// one that long before the deadline.
	Reminders      []time.Duration `json:"reminders,omitempty"`
	BeforeDeadline time.Duration   `json:"before_deadline,omitempty"`
	// Escalate widens the stage still undecided at each After (from when
	// the request opened) to Groups, who may then decide it.
	Escalate []Escalation `json:"escalate,omitempty"`
	// Reason is what approvers are asked to write with their vote (zero:
	// deny optional, approve none). ConfirmApprove makes an approval count
	// only once the approver confirmed it in a second step.
	Reason         ReasonRule `json:"reason,omitzero"`
	ConfirmApprove bool       `json:"confirm_approve,omitempty"`
}

// Escalation is one escalation step of a chain, as configured.
type Escalation struct {
	After  time.Duration `json:"after"`
	Groups []Group       `json:"groups"`
}

// Escalated records an escalation that happened: the stage it widened, to
// which groups (of Chain.Escalate[Step]), and when.
type Escalated struct {
	Step   int       `json:"step"`
	Stage  int       `json:"stage"`
	Groups []string  `json:"groups"`
	At     time.Time `json:"at"`
}

// ReasonRule says, per decision, whether a reason is asked for: Deny is
// ReasonRequired or ReasonOptional ("" is optional), Approve is
// ReasonOptional or ReasonNone ("" is none).
type ReasonRule struct {
	Deny    string `json:"deny,omitempty"`
	Approve string `json:"approve,omitempty"`
}

// Reason settings.
const (
	ReasonRequired = "required"
	ReasonOptional = "optional"
	ReasonNone     = "none"
	// MaxReason bounds a reason or comment, in characters.
	MaxReason = 500
)

// MaxIDLength bounds, in bytes, every id that crosses approvebot's edge:
// the ids agents choose (approval_request_id and its kin, each 1 to
// MaxIDLength of [A-Za-z0-9_.:~-]) and the request ids that buttons, cards
// and inbox links carry back. One bound, so an id one edge takes no other
// edge refuses.
const MaxIDLength = 128

// For is the rule for decision (Allow or Deny), defaults applied.
func (r ReasonRule) For(decision string) string {
	if decision == Deny {
		if r.Deny == "" {
			return ReasonOptional
		}
		return r.Deny
	}
	if r.Approve == "" {
		return ReasonNone
	}
	return r.Approve
}

// Approver is a person who clicked, as the platform identified them. Once
// the platform has identified them (bot.Platform.Identify), Platform,
// Workspace and UserID name one account whatever the click said: Workspace
// comes from the platform's own directory, never from the click.
type Approver struct {
	Platform   string   `json:"platform"`             // as in Destination.Platform
	Workspace  string   `json:"workspace"`            // the organisation the platform's own directory names (a team, a tenant)
	UserID     string   `json:"user_id"`              // the account's id in that directory
	Email      string   `json:"email,omitempty"`      // the email the platform reports
	UPN        string   `json:"upn,omitempty"`        // the directory's user principal name, where it has one
	Role       string   `json:"role,omitempty"`       // RoleMember or RoleGuest, where the platform tells them apart
	Name       string   `json:"name,omitempty"`       // display name
	Usergroups []string `json:"usergroups,omitempty"` // platform user groups it belongs to, among those asked about
}

// Account roles a platform reports (where it tells guests from members).
// Only members may decide, and guests where a group allows them.
const (
	RoleMember = "user"
	RoleGuest  = "guest"
)

// Principal is the identity returned to the agent: the UPN where the
// platform's directory has one (it is what that directory calls the person
// by, even where their email differs), else the email, otherwise
// platform:workspace/user.
func (a Approver) Principal() string {
	if a.UPN != "" {
		return a.UPN
	}
	if a.Email != "" {
		return a.Email
	}
	return a.Platform + ":" + a.Workspace + "/" + a.UserID
}

// Display is how the approver is named on chat messages.
func (a Approver) Display() string {
	if a.Name != "" {
		return a.Name
	}
	return a.Principal()
}

// Decision values, as ADR-0030 names them.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Entry is one counted vote: ADR-0030's chain entry. EntryDigest covers the
// canonical JSON of every other ADR field, and PreviousEntryDigest links it to
// the entry before it on the same request.
type Entry struct {
	ApprovalRequestID   string `json:"approval_request_id"`
	ChainEntryID        string `json:"chain_entry_id"`
	StageIndex          int    `json:"stage_index"`
	ApproverKind        string `json:"approver_kind"`
	ApproverIdentity    string `json:"approver_identity"`
	IdentityAssurance   string `json:"identity_assurance"`
	Decision            string `json:"decision"`
	ReasonCode          string `json:"reason_code"`
	InputDigest         string `json:"input_digest"`
	PreviousEntryDigest string `json:"previous_entry_digest"`
	DecidedAt           string `json:"decided_at"`
	EntryDigest         string `json:"entry_digest"`

	// Not part of the digest: which group the vote counted for and who, in
	// full, cast it. Reason is the approver's own words, when they gave
	// some; reason_code then carries the same text, so the digest covers it.
	Group    string   `json:"group,omitempty"`
	Approver Approver `json:"approver"`
	Reason   string   `json:"reason,omitempty"`
}

// Resolution is how a request ended.
type Resolution struct {
	ApprovalResolutionID string    `json:"approval_resolution_id"`
	Outcome              string    `json:"outcome"` // allow | deny | expired
	Status               Status    `json:"status"`
	Approver             string    `json:"approver"` // principal, or system:<why>
	ApproverName         string    `json:"approver_name,omitempty"`
	Reason               string    `json:"reason"`
	FinalEntryDigest     string    `json:"final_entry_digest"`
	ResolvedAt           time.Time `json:"resolved_at"`
	Digest               string    `json:"resolution_digest,omitempty"`
}

// Delivery states of one destination.
const (
	DeliveryWaiting = "waiting" // its stage has not opened
	DeliveryQueued  = "queued"  // to be posted
	DeliveryPosted  = "posted"
	DeliveryFailed  = "failed"  // gave up: Error says why
	DeliverySkipped = "skipped" // the request ended before it was posted
)

// MessageRef finds a posted message again. Slack: Channel and ID (ts).
// Teams: Channel (channel id), Conversation (thread conversation id), ID
// (activity id) and ServiceURL.
type MessageRef struct {
	Channel      string `json:"channel"`
	ID           string `json:"id"`
	Conversation string `json:"conversation,omitempty"`
	ServiceURL   string `json:"service_url,omitempty"`
	// Partial is set by the platform when the message could not show every
	// bound fact of the request: it then carries no Approve button, and an
	// approval clicked on it does not count unless it came from the full
	// view (Ballot.FullView).
	Partial bool `json:"partial,omitempty"`
}

// Destination is one chat channel a request is shown in.
type Destination struct {
	Platform string     `json:"platform"`
	Channel  string     `json:"channel"`
	Stage    int        `json:"stage"`
	Groups   []string   `json:"groups"`
	State    string     `json:"state"`
	Ref      MessageRef `json:"ref"`
	Error    string     `json:"error,omitempty"`
	// Version of the request last shown there.
	Shown uint64 `json:"shown,omitempty"`
	// Replied counts the request's thread notes dealt with there (posted
	// as replies under the message, or not meant for it).
	Replied int `json:"replied,omitempty"`
}

// Note is one line of a request's history, posted as a reply in the thread
// of each of its messages: a stage opened, a vote, a reminder, the outcome.
type Note struct {
	Kind string    `json:"kind"` // NoteStage, NoteVote, NoteReminder, NoteOutcome
	Text string    `json:"text"`
	At   time.Time `json:"at"`
	// Stage limits the note to the messages of one stage (reminders); -1
	// sends it under every message.
	Stage int `json:"stage"`
}

// Kinds of Note.
const (
	NoteStage    = "stage"
	NoteVote     = "vote"
	NoteReminder = "reminder"
	NoteOutcome  = "outcome"
	NoteEscalate = "escalation"
)

// Request is an approval request and everything that happened to it.
type Request struct {
	ID             string          `json:"id"`
	Schema         string          `json:"schema"`
	Caller         string          `json:"caller"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Digest         string          `json:"digest"`                // what makes a retry the same request
	BodyDigest     string          `json:"body_digest,omitempty"` // sha256 of the body bytes as received
	Fields         Fields          `json:"fields"`
	Context        json.RawMessage `json:"context,omitempty"`        // shown to approvers
	ActionBinding  json.RawMessage `json:"action_binding,omitempty"` // schema 1.0, verified against action_digest
	Chain          Chain           `json:"chain"`
	CreatedAt      time.Time       `json:"created_at"`
	Deadline       time.Time       `json:"deadline"`
	Status         Status          `json:"status"`
	Stage          int             `json:"stage"`
	Entries        []Entry         `json:"entries,omitempty"`
	Resolution     *Resolution     `json:"resolution,omitempty"`
	Destinations   []Destination   `json:"destinations,omitempty"`
	Version        uint64          `json:"version"`
	// Thread is the request's history, replied under each message.
	Thread []Note `json:"thread,omitempty"`
	// Reminded counts the chain's reminder times already dealt with;
	// Nudge is when the next is due (zero: none).
	Reminded int       `json:"reminded,omitempty"`
	Nudge    time.Time `json:"nudge,omitzero"`
	// Escalations are the chain's escalation steps that have happened, in
	// order.
	Escalations []Escalated `json:"escalations,omitempty"`
	// Receipt places the resolution in the audit log; Assertion is the
	// signed decision, made once in the transaction that decided the
	// request and returned as is to every later poll or retry.
	Receipt   *Receipt `json:"receipt,omitempty"`
	Assertion string   `json:"assertion,omitempty"`
}

// Receipt is where a request's resolution stands in the audit log: the
// sequence number and digest of its approval_resolved record. An agent that
// keeps it can later prove that the log once reached that record.
type Receipt struct {
	AuditSeq  uint64 `json:"audit_seq"`
	AuditHead string `json:"audit_head"`
}

// PublicID is the id the agent knows the request by: a schema 1.0
// request's approval_request_id (unique per caller only), otherwise the id
// approvebot gave it. ID is the store's key, unique across callers.
func (r *Request) PublicID() string {
	if r.Schema == SchemaV1 && r.Fields.ApprovalRequestID != "" {
		return r.Fields.ApprovalRequestID
	}
	return r.ID
}

// Title is a one-line summary for humans.
func (r *Request) Title() string {
	if r.Schema == SchemaV1 {
		t := r.Fields.Operation
		if r.Fields.TargetResource != nil && *r.Fields.TargetResource != "" {
			t += " on " + *r.Fields.TargetResource
		}
		return t
	}
	return r.Fields.Action
}

// Ballot is a click, once the platform has verified it and said who clicked.
type Ballot struct {
	Platform string
	Ref      MessageRef // the message clicked
	Approver Approver
	Decision string // Allow or Deny
	// Reason is the approver's reason or comment, as typed: at most
	// MaxReason characters (the vote cleans it to one line).
	Reason    string
	Assurance string // how the platform authenticated the clicker
	// Confirmed is set by the platform when the approver confirmed an
	// approval in a second step (Chain.ConfirmApprove).
	Confirmed bool
	// FullView is set by the platform when the click came from its full
	// view of the request (a Slack modal, a Teams card paged in place),
	// which showed the clicker every bound fact.
	FullView bool
	// Home is set when the click came from the platform's home surface
	// (the Slack App Home tab), which is no posted message: it counts only
	// for HomeStage, the stage the surface showed, when that is the
	// request's current stage and the clicker is eligible for it. Ref is
	// then empty but for Partial: whether the surface could not show every
	// bound fact.
	Home      bool
	HomeStage int
}

// Event is one line of the audit log.
type Event struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	At        time.Time       `json:"at"`
	Actor     string          `json:"actor,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// Audit event types. The ADR-0030 names come first.
const (
	EventRequested = "approval_requested"
	EventEntry     = "approval_chain_entry"
	EventResolved  = "approval_resolved"
	EventExpired   = "approval_expired"
	EventCancelled = "approval_cancelled"
	EventPosted    = "message_posted"
	EventFailed    = "delivery_failed"
	EventRefused   = "click_refused"
	EventStage     = "stage_opened"
)
