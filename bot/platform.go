package bot

import (
	"context"

	"github.com/approvebot/approvebot"
)

// Platform is what the engine needs from a chat platform: show a request in a
// channel, change what a shown message says, and say who clicked. Adapters
// (bot/slack, bot/teams) implement it; their SDK types never cross it.
type Platform interface {
	// Name is the platform's name in approvebot.Destination.Platform and
	// in approver groups' sides.
	Name() string
	// Post shows msg as a new message in channel and returns where it is.
	// Errors are *approvebot.DeliveryError so the outbox knows whether to retry.
	Post(ctx context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error)
	// Update replaces what the message at ref shows.
	Update(ctx context.Context, ref approvebot.MessageRef, msg approvebot.Message) error
	// Identify completes who: it fills Email (and Name) when the platform
	// knows them, and sets Usergroups to those of usergroups the person
	// belongs to. ref is the message clicked, for platforms that look people
	// up by conversation.
	Identify(ctx context.Context, who approvebot.Approver, ref approvebot.MessageRef, usergroups []string) (approvebot.Approver, error)
}

// Destiner is an optional Platform method: the channels where a group's
// side on the platform shows a request of stage (0-based). Without it, they
// are the side's channels and, when the side asks for direct messages, each
// listed user's (approvebot.DirectMessage + user).
type Destiner interface {
	Destinations(side approvebot.Side, stage int) []string
}

// PostRecorder is an optional Platform method, called once the store has
// recorded a post (so a click on it can count): the web inbox tells its open
// pages then.
type PostRecorder interface {
	Recorded(ref approvebot.MessageRef)
}

// ClickResult is the engine's answer to a click, for the adapter to show the
// clicker (and only the clicker).
type ClickResult struct {
	// Counted is true when the vote was recorded.
	Counted bool
	// Decided is true when this vote ended the request.
	Decided bool
	// Message is what the clicker is told: why a click was refused, or what it did.
	Message string
	// View is the request's message as it now reads, for platforms that
	// answer the clicker with a refreshed card.
	View approvebot.Message
}

// Decider receives verified clicks. The engine implements it; adapters call it.
type Decider interface {
	Click(ctx context.Context, b approvebot.Ballot, requestID string) ClickResult
}

// Viewer gives the full view of a request: every bound fact, for a surface
// (a Slack modal, a Teams card paged in place) opened from a message that
// could not show them all. The engine implements it; adapters call it.
type Viewer interface {
	// FullView returns the request's view if ref is a message approvebot
	// posted for it on platform, and an error to show the clicker otherwise.
	FullView(ctx context.Context, platform string, ref approvebot.MessageRef, requestID string) (approvebot.Message, error)
}
