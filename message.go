package approvebot

import (
	"errors"
	"fmt"
	"time"
)

// Message is what a chat message shows about a request, independent of the
// platform. The engine builds it from the stored request (bot.View); each
// platform adapter lays it out (Block Kit, Adaptive Card) with a pure
// function. The rules about what is shown, and how agent text is made inert,
// live where it is built; renderers only add their markup's escaping and
// decide what fits.
//
// It keeps three kinds of text apart, each in its own list, so none can take
// another's label or place:
//   - Bound: facts covered by a digest the agent cannot change afterwards
//     (a 1.0 request's action binding and presented fields). Shown first,
//     under BoundHeading, and never cut: a renderer that cannot show them
//     all must offer no Approve button there, only the full view.
//   - Context: what the agent added for approvers, unverified. Shown after,
//     under ContextHeading; every label starts with "context", which no
//     bound label does. It may be cut, and the renderer says so.
//   - Fields, Title, Outcome, Progress, Notice: approvebot's own words
//     (group names and approver names included), rendered in a style agent
//     text never gets.
type Message struct {
	RequestID string
	// Title is approvebot's header: "Approval needed". No agent text.
	Title string
	// BoundHeading says what the bound facts are verified against.
	BoundHeading string
	// Bound are the digest-bound facts, labelled by their path
	// ("parameters.amount"), values exactly as received (display.Flatten).
	Bound []Field
	// ContextHeading says the context is the agent's and unverified.
	ContextHeading string
	// Context is the agent's context, flattened under "context".
	Context []Field
	// ContextTotal counts the context entries, including any the view left
	// out (Context holds at most MaxContext).
	ContextTotal int
	// Fields are approvebot's facts: approvers, deadline.
	Fields []Field
	Status Status
	// Outcome is the final line once decided: "Approved by Jane at 12:01 UTC".
	Outcome string
	// Progress tells a multi-stage or multi-vote request's state:
	// "stage 1 of 2 approved by Jane; waiting for security".
	Progress string
	// Notice warns about delivery: "not delivered to C0X: channel_not_found".
	Notice string
	// Actionable is true while buttons should be shown.
	Actionable bool
	// Reason is what approvers are asked to write with each decision, and
	// ConfirmApprove whether Approve needs a second step (Chain).
	Reason         ReasonRule
	ConfirmApprove bool
	Deadline       time.Time
	// Link is the request's page in approvebot's web inbox ("" when there
	// is none): chat messages offer it as "Open in approvebot".
	Link string
}

// MaxContext caps the context entries a Message carries.
const MaxContext = 500

// Field is one labelled value. Label and Value are already inert text
// (display.Inline / display.Quote): no control, bidi or zero-width
// characters, no line breaks.
type Field struct {
	Label string
	Value string
}

// DeliveryError is how a platform adapter says a post or update failed.
// Permanent errors are not retried; others are, after RetryAfter when the
// platform named a wait.
type DeliveryError struct {
	Permanent  bool
	RetryAfter time.Duration
	// Reason is short and operator-facing: "channel_not_found", "HTTP 503".
	Reason string
	Err    error
}

func (e *DeliveryError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Reason, e.Err)
	}
	return e.Reason
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a DeliveryError that must not be retried.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// RetryAfter returns the wait a platform asked for, or zero.
func RetryAfter(err error) time.Duration {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	return 0
}

// ErrIneligible marks an Identify error that is final: the account may not
// approve at all (deactivated, a bot, a member of another organisation), as
// opposed to a lookup that failed and may work on a second try.
var ErrIneligible = errors.New("this account may not approve")

// Error is an error meant for the caller: Code maps onto an HTTP status, and
// Message is safe to show (it never carries internal error text).
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	EInvalid      = "invalid"      // 400
	EUnauthorized = "unauthorized" // 401
	EForbidden    = "forbidden"    // 403
	ENotFound     = "not_found"    // 404
	EConflict     = "conflict"     // 409
	ETooLarge     = "too_large"    // 413
	EUnavailable  = "unavailable"  // 503
	EInternal     = "internal"     // 500
)

// Errorf makes an Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError makes an EInvalid Error naming the offending field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}
