package slack

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	goslack "github.com/slack-go/slack"
)

// The review buttons' identity. A click is accepted only from this block and
// these action ids; the button value carries the request id.
const (
	ReviewBlockID   = "approvebot_review"
	ApproveActionID = "approve"
	DenyActionID    = "deny"
)

// Render limits, from Slack's Block Kit reference, with room to spare where
// Slack refuses messages below its documented limits (msg_blocks_too_long
// near 13,200 characters overall).
const (
	headerMax       = 150
	fieldMax        = 2000
	fieldsPerBlock  = 10
	maxFactSections = 2
	// fieldBudget is shared by all fields, so many long values cannot push
	// the message past what Slack accepts.
	fieldBudget = 8000
	labelMax    = 100
	lineMax     = 1000 // progress, notice
	outcomeMax  = 2000
	fallbackMax = 500
)

const ellipsis = "…"

// Render turns msg into Block Kit blocks and the plain fallback text Slack
// shows in notifications. It is pure. Every value that may come from an
// agent or a person is escaped, so it cannot mention (<!channel>) or hide a
// link (<https://...|text>).
func Render(msg approvebot.Message) ([]goslack.Block, string) {
	title := headerText(msg)
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(goslack.NewTextBlockObject(goslack.PlainTextType, plainFit(title, headerMax), false, false)),
	}

	nFields := min(len(msg.Fields), fieldsPerBlock*maxFactSections) + min(len(msg.Context), fieldsPerBlock)
	perField := fieldMax
	if nFields > 0 {
		perField = min(fieldMax, fieldBudget/nFields)
	}

	facts := msg.Fields
	if len(facts) > fieldsPerBlock*maxFactSections {
		facts = facts[:fieldsPerBlock*maxFactSections]
	}
	for len(facts) > 0 {
		n := min(len(facts), fieldsPerBlock)
		blocks = append(blocks, goslack.NewSectionBlock(nil, fieldObjects(facts[:n], perField), nil))
		facts = facts[n:]
	}

	if len(msg.Context) > 0 {
		head := "*Context from the agent*"
		shown := msg.Context
		if len(shown) > fieldsPerBlock {
			head += fmt.Sprintf(" (first %d of %d shown)", fieldsPerBlock, len(shown))
			shown = shown[:fieldsPerBlock]
		}
		blocks = append(blocks, goslack.NewSectionBlock(mrkdwn(head), fieldObjects(shown, perField), nil))
	}

	if msg.Progress != "" {
		blocks = append(blocks, goslack.NewContextBlock("", mrkdwn(escapeFit(msg.Progress, lineMax))))
	}
	if msg.Notice != "" {
		blocks = append(blocks, goslack.NewContextBlock("", mrkdwn(":warning: "+escapeFit(msg.Notice, lineMax))))
	}

	if msg.Actionable {
		blocks = append(blocks, reviewButtons(msg.RequestID))
		return blocks, escapeFit(title, fallbackMax)
	}

	outcome := msg.Outcome
	if outcome == "" {
		outcome = statusText(msg.Status)
	}
	blocks = append(blocks, goslack.NewSectionBlock(mrkdwn(outcomeEmoji(msg.Status)+" "+escapeFit(outcome, outcomeMax)), nil, nil))
	return blocks, escapeFit(outcome, fallbackMax)
}

func headerText(msg approvebot.Message) string {
	// The engine writes the whole header ("Approval needed: ...", or the
	// outcome's once closed); a bare title still reads as a request.
	t := strings.TrimSpace(msg.Title)
	if t == "" {
		return "Approval needed: request " + msg.RequestID
	}
	if strings.HasPrefix(t, "Approval ") {
		return t
	}
	return "Approval needed: " + t
}

func reviewButtons(requestID string) *goslack.ActionBlock {
	approve := goslack.NewButtonBlockElement(ApproveActionID, requestID,
		goslack.NewTextBlockObject(goslack.PlainTextType, "Approve", false, false)).WithStyle(goslack.StylePrimary)
	confirm := goslack.NewConfirmationBlockObject(
		goslack.NewTextBlockObject(goslack.PlainTextType, "Deny this request?", false, false),
		goslack.NewTextBlockObject(goslack.PlainTextType, "The agent will be told its action was denied. This cannot be undone.", false, false),
		goslack.NewTextBlockObject(goslack.PlainTextType, "Deny", false, false),
		goslack.NewTextBlockObject(goslack.PlainTextType, "Cancel", false, false),
	).WithStyle(goslack.StyleDanger)
	deny := goslack.NewButtonBlockElement(DenyActionID, requestID,
		goslack.NewTextBlockObject(goslack.PlainTextType, "Deny", false, false)).WithStyle(goslack.StyleDanger).WithConfirm(confirm)
	return goslack.NewActionBlock(ReviewBlockID, approve, deny)
}

func fieldObjects(fields []approvebot.Field, max int) []*goslack.TextBlockObject {
	out := make([]*goslack.TextBlockObject, 0, len(fields))
	for _, f := range fields {
		var b strings.Builder
		if label := strings.TrimSpace(f.Label); label != "" {
			b.WriteString("*")
			b.WriteString(escapeFit(label, min(labelMax, max/2)))
			b.WriteString("*\n")
		}
		rest := max - utf8.RuneCountInString(b.String())
		value := f.Value
		if strings.TrimSpace(value) == "" {
			value = "-"
		}
		b.WriteString(escapeFit(value, rest))
		out = append(out, mrkdwn(b.String()))
	}
	return out
}

func mrkdwn(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.MarkdownType, s, false, false)
}

func outcomeEmoji(s approvebot.Status) string {
	switch s {
	case approvebot.StatusApproved:
		return ":white_check_mark:"
	case approvebot.StatusDenied:
		return ":no_entry:"
	case approvebot.StatusTimedOut, approvebot.StatusExpired:
		return ":hourglass:"
	default:
		return ":warning:"
	}
}

func statusText(s approvebot.Status) string {
	switch s {
	case approvebot.StatusApproved:
		return "Approved"
	case approvebot.StatusDenied:
		return "Denied"
	case approvebot.StatusTimedOut:
		return "Timed out: nobody decided in time"
	case approvebot.StatusExpired:
		return "Expired"
	case approvebot.StatusPending:
		return "Waiting for another approver"
	default:
		return "No longer open for decision"
	}
}

// escapeFit escapes Slack's control characters (&, <, >) and cuts the
// result to at most max characters, ending in an ellipsis when cut. It never
// splits an escape sequence.
func escapeFit(s string, max int) string {
	return fit(s, max, true)
}

// plainFit cuts plain_text, which Slack does not parse, to max characters.
func plainFit(s string, max int) string {
	return fit(s, max, false)
}

func fit(s string, max int, escape bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if max <= 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	for i, r := range s {
		piece := string(r)
		if escape {
			switch r {
			case '&':
				piece = "&amp;"
			case '<':
				piece = "&lt;"
			case '>':
				piece = "&gt;"
			}
		}
		w := utf8.RuneCountInString(piece)
		// Leave room for the ellipsis unless this is the last rune.
		last := i+utf8.RuneLen(r) == len(s)
		if n+w > max || (!last && n+w == max) {
			if n+1 > max {
				return b.String()
			}
			b.WriteString(ellipsis)
			return b.String()
		}
		b.WriteString(piece)
		n += w
	}
	return b.String()
}
