package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/display"
	goslack "github.com/slack-go/slack"
)

// The review buttons' identity. A click is accepted only from this block and
// these action ids; the button value carries the request id.
const (
	ReviewBlockID   = "approvebot_review"
	ApproveActionID = "approve"
	DenyActionID    = "deny"
	// The other review buttons, by what the request's chain asks
	// (approvebot.ReasonRule, confirm_approve). Deny always opens the reason
	// modal: DenyActionID with an optional reason, DenyReasonActionID with a
	// required one. ApproveCommentActionID opens the modal with an optional
	// comment; ApproveConfirmActionID carries Slack's confirm dialog, so a
	// click on it has been confirmed.
	DenyReasonActionID     = "deny_reason"
	ApproveCommentActionID = "approve_comment"
	ApproveConfirmActionID = "approve_confirmed"
	// ReasonCallbackID names the reason modal; ReasonBlockID and
	// ReasonInputID its text input.
	ReasonCallbackID = "approvebot_reason"
	ReasonBlockID    = "approvebot_reason_input"
	ReasonInputID    = "reason"
	// ViewAllActionID opens the full view (a modal) of a request whose
	// message could not show every bound fact.
	ViewAllActionID = "view_all"
	// PagesBlockID and NextPageActionID page the full view.
	PagesBlockID     = "approvebot_pages"
	NextPageActionID = "next_page"
	// FullViewCallbackID names the full-view modal; its submit is Approve.
	FullViewCallbackID = "approvebot_full_view"
)

// How agent text is kept inert on Slack.
//
// Slack's mrkdwn has no escape character: "&", "<" and ">" can be written as
// entities, but "*", "_", "~", "`", ">" at a line start, ":shortcode:" and
// bare URLs are interpreted wherever they appear, and tricks such as
// inserting zero-width joiners leave invisible characters in the value the
// approver reads (and copy-pastes) without reliably stopping Slack's parser.
// So no agent-supplied string is ever put in mrkdwn: every one goes into a
// plain_text object with emoji false, which Slack shows as is (no
// formatting, no mentions, no links, no emoji shortcodes; "&", "<", ">"
// need no escaping there). Section fields, section text and context
// elements all accept plain_text. What is left for mrkdwn is approvebot's
// own fixed words (headings, the outcome's status word), bold and with an
// emoji, which agent text can never be: that is how approvebot's voice stays
// distinct. Invisible characters (bidi overrides, zero-width, controls) were
// already turned into visible escapes by package display when the view was
// built.
//
// Render limits, from Slack's Block Kit reference, with room to spare where
// Slack refuses messages below its documented limits (msg_blocks_too_long
// near 13,200 characters overall).
const (
	maxMessageBlocks = 50
	messageBudget    = 11000 // characters of text across all blocks
	fieldMax         = 2000
	fieldsPerBlock   = 10
	sectionTextMax   = 3000
	headerMax        = 150
	lineMax          = 1000 // progress, notice, outcome, approvebot's facts
	fallbackMax      = 500

	// The bound facts' share of a message. It is fixed, whatever else the
	// message says, so whether a request's message shows every bound fact
	// is decided by the bound facts alone and cannot change between the
	// post and later updates (which add progress or outcome lines).
	boundSections = 20
	boundBudget   = 5500

	// Context gets what is left, within these caps.
	contextSections = 3
	contextValueMax = 500
)

const ellipsis = "…"

// Rendered is a request's message as Block Kit.
type Rendered struct {
	Blocks []goslack.Block
	// Text is the notification fallback: approvebot's words only.
	Text string
	// Partial is true when the message could not show every bound fact: it
	// then has a View all button instead of Approve.
	Partial bool
}

// Render lays msg out as a Slack message. It is pure.
func Render(msg approvebot.Message) Rendered {
	var out Rendered
	chars := 0
	add := func(b goslack.Block, n int) {
		out.Blocks = append(out.Blocks, b)
		chars += n
	}
	title := cut(msg.Title, headerMax)
	if title == "" {
		title = "Approval needed"
	}
	add(goslack.NewHeaderBlock(plain(title)), len(title))

	// Bound facts first, whole or not at all.
	shownBound := 0
	if len(msg.Bound) > 0 {
		add(goslack.NewSectionBlock(mrkdwn(":lock: *"+msg.BoundHeading+"*"), nil, nil), len(msg.BoundHeading)+10)
		used, sections := 0, 0
		var fields []*goslack.TextBlockObject
		for _, f := range msg.Bound {
			t := f.Label + "\n" + f.Value
			n := utf8.RuneCountInString(t)
			if len(fields) == fieldsPerBlock {
				add(goslack.NewSectionBlock(nil, fields, nil), 0)
				fields, sections = nil, sections+1
			}
			if n > fieldMax || used+n > boundBudget || sections >= boundSections {
				break
			}
			fields = append(fields, plain(t))
			used += n
			shownBound++
		}
		if len(fields) > 0 {
			add(goslack.NewSectionBlock(nil, fields, nil), 0)
		}
		chars += used
	}
	out.Partial = shownBound < len(msg.Bound)
	if out.Partial {
		note := fmt.Sprintf(":warning: *This action is too large to show here.* %d of its %d bound values are shown above. ", shownBound, len(msg.Bound))
		if msg.Actionable {
			note += "To approve, press *View all*: it shows every value, and Approve is there."
		} else {
			note += "`approvebot audit show` prints the request in full."
		}
		add(goslack.NewSectionBlock(mrkdwn(note), nil, nil), len(note))
	}

	// What approvebot says after the context; reserved now so context
	// cannot crowd it out.
	var tail []goslack.Block
	tailChars := 0
	addTail := func(b goslack.Block, n int) {
		tail = append(tail, b)
		tailChars += n
	}
	if len(msg.Fields) > 0 {
		var elems []goslack.MixedElement
		for i, f := range msg.Fields {
			if i == 5 {
				break
			}
			t := cut(f.Label+": "+f.Value, lineMax/2)
			elems = append(elems, plain(t))
			tailChars += utf8.RuneCountInString(t)
		}
		addTail(goslack.NewContextBlock("", elems...), 0)
	}
	if msg.Progress != "" {
		t := cut(msg.Progress, lineMax)
		addTail(goslack.NewContextBlock("", mrkdwn(":hourglass_flowing_sand:"), plain(t)), utf8.RuneCountInString(t)+25)
	}
	if msg.Notice != "" {
		t := cut(msg.Notice, lineMax)
		addTail(goslack.NewContextBlock("", mrkdwn(":warning: *Delivery*"), plain(t)), utf8.RuneCountInString(t)+25)
	}
	if msg.Link != "" {
		t := "<" + escapeFit(strings.ReplaceAll(msg.Link, "|", "%7C"), lineMax) + "|Open in approvebot>"
		addTail(goslack.NewContextBlock("", mrkdwn(t)), utf8.RuneCountInString(t))
	}
	if msg.Actionable {
		addTail(reviewButtons(msg, out.Partial), 250)
		out.Text = fit("Approval needed (request "+msg.RequestID+")", fallbackMax)
	} else {
		outcome := msg.Outcome
		if outcome == "" {
			outcome = statusText(msg.Status)
		}
		word := statusWord(msg.Status)
		t := cut(outcome, lineMax)
		addTail(goslack.NewSectionBlock(mrkdwn(outcomeEmoji(msg.Status)+" *"+word+"*"), []*goslack.TextBlockObject{plain(t)}, nil),
			utf8.RuneCountInString(t)+len(word)+25)
		out.Text = fit("Approval request "+msg.RequestID+": "+word, fallbackMax)
	}

	// Context: what fits in the rest, cut and said so.
	if len(msg.Context) > 0 {
		room := messageBudget - chars - tailChars - 300
		blocksLeft := maxMessageBlocks - len(out.Blocks) - len(tail) - 3
		shown, cutValues := 0, false
		var sections [][]*goslack.TextBlockObject
		var fields []*goslack.TextBlockObject
		for _, f := range msg.Context {
			if len(fields) == fieldsPerBlock {
				sections, fields = append(sections, fields), nil
			}
			if len(sections) >= min(contextSections, blocksLeft) {
				break
			}
			label, lc := display.Cut(f.Label, 100)
			value, vc := display.Cut(f.Value, contextValueMax)
			t := label + "\n" + value
			n := utf8.RuneCountInString(t)
			if n > room {
				break
			}
			cutValues = cutValues || lc || vc
			fields = append(fields, plain(t))
			room -= n
			shown++
		}
		if len(fields) > 0 {
			sections = append(sections, fields)
		}
		head := ":speech_balloon: *" + msg.ContextHeading + "*"
		total := max(msg.ContextTotal, len(msg.Context))
		if shown < total {
			head += fmt.Sprintf(" (%d of %d entries shown)", shown, total)
		}
		if cutValues {
			head += " (long entries cut: …)"
		}
		add(goslack.NewDividerBlock(), 0)
		add(goslack.NewSectionBlock(mrkdwn(head), nil, nil), len(head))
		for _, s := range sections {
			add(goslack.NewSectionBlock(nil, s, nil), 0)
		}
	}
	out.Blocks = append(out.Blocks, tail...)
	return out
}

func reviewButtons(msg approvebot.Message, partial bool) *goslack.ActionBlock {
	requestID := msg.RequestID
	var elems []goslack.BlockElement
	switch {
	case partial:
		elems = append(elems, goslack.NewButtonBlockElement(ViewAllActionID, requestID, plain("View all")).WithStyle(goslack.StylePrimary))
	case msg.Reason.For(approvebot.Allow) == approvebot.ReasonOptional:
		// The comment modal's Approve is the second step.
		elems = append(elems, goslack.NewButtonBlockElement(ApproveCommentActionID, requestID, plain("Approve")).WithStyle(goslack.StylePrimary))
	case msg.ConfirmApprove:
		confirm := goslack.NewConfirmationBlockObject(
			plain("Approve this request?"),
			plain("The agent will be told its action was approved. This cannot be undone."),
			plain("Approve"),
			plain("Cancel"),
		)
		elems = append(elems, goslack.NewButtonBlockElement(ApproveConfirmActionID, requestID, plain("Approve")).WithStyle(goslack.StylePrimary).WithConfirm(confirm))
	default:
		elems = append(elems, goslack.NewButtonBlockElement(ApproveActionID, requestID, plain("Approve")).WithStyle(goslack.StylePrimary))
	}
	// Deny opens the reason modal, whose Deny is the second step.
	deny := DenyActionID
	if msg.Reason.For(approvebot.Deny) == approvebot.ReasonRequired {
		deny = DenyReasonActionID
	}
	elems = append(elems, goslack.NewButtonBlockElement(deny, requestID, plain("Deny")).WithStyle(goslack.StyleDanger))
	return goslack.NewActionBlock(ReviewBlockID, elems...)
}

// reasonModal asks for the reason of a denial, or the comment of an
// approval: its submit button casts the vote.
func reasonModal(decision, rule, metadata string) goslack.ModalViewRequest {
	verb, label, intro := "Deny", "Reason", "Say why you deny this request. The agent and everyone who sees the request will read it."
	if decision == approvebot.Allow {
		verb, label, intro = "Approve", "Comment", "You may add a comment to your approval. The agent and everyone who sees the request will read it."
	}
	if rule == approvebot.ReasonRequired {
		intro += " A reason is required."
	}
	input := goslack.NewPlainTextInputBlockElement(plain(fmt.Sprintf("At most %d characters", approvebot.MaxReason)), ReasonInputID).
		WithMaxLength(approvebot.MaxReason).WithMultiline(true)
	return goslack.ModalViewRequest{
		Type:            goslack.VTModal,
		Title:           plain(verb + " request"),
		Close:           plain("Cancel"),
		Submit:          plain(verb),
		CallbackID:      ReasonCallbackID,
		PrivateMetadata: metadata,
		Blocks: goslack.Blocks{BlockSet: []goslack.Block{
			goslack.NewSectionBlock(plain(intro), nil, nil),
			goslack.NewInputBlock(ReasonBlockID, plain(label), nil, input).WithOptional(rule != approvebot.ReasonRequired),
		}},
	}
}

// The full view: a modal, paged when one modal cannot hold every bound
// fact (100 blocks, 250 kB). Approve is its submit button, on the last page
// only; pages are reached one after the other, so whoever submits has been
// shown every page.
const (
	modalBlocks    = 95
	modalBytes     = 200 << 10
	modalChunk     = 2900 // runes of a fact per section
	modalTitle     = "Approval request"
	modalContext   = 20
	modalCtxValues = 1000
)

// fullViewPages splits msg into the pages of its full view. It is pure: the
// same message always pages the same way.
func fullViewPages(msg approvebot.Message) [][]goslack.Block {
	var sections []goslack.Block
	for _, f := range msg.Bound {
		t := []rune(f.Label + "\n" + f.Value)
		for part := 0; len(t) > 0; part++ {
			n := min(len(t), modalChunk)
			text := string(t[:n])
			if part > 0 {
				text = "↳ " + text
			}
			sections = append(sections, goslack.NewSectionBlock(plain(text), nil, nil))
			t = t[n:]
		}
	}
	var pages [][]goslack.Block
	var page []goslack.Block
	size := 0
	for _, b := range sections {
		n := blockBytes(b)
		if len(page) > 0 && (len(page)+1 > modalBlocks-8 || size+n > modalBytes-8<<10) {
			pages, page, size = append(pages, page), nil, 0
		}
		page = append(page, b)
		size += n
	}
	pages = append(pages, page)

	// The last page ends with approvebot's facts and what fits of the
	// context.
	last := pages[len(pages)-1]
	size = 0
	for _, b := range last {
		size += blockBytes(b)
	}
	if len(msg.Fields) > 0 {
		var elems []goslack.MixedElement
		for i, f := range msg.Fields {
			if i == 5 {
				break
			}
			elems = append(elems, plain(cut(f.Label+": "+f.Value, lineMax/2)))
		}
		b := goslack.NewContextBlock("", elems...)
		last = append(last, b)
		size += blockBytes(b)
	}
	if len(msg.Context) > 0 && len(last)+3 < modalBlocks-4 {
		var fields []*goslack.TextBlockObject
		shown := 0
		for _, f := range msg.Context {
			if shown == modalContext {
				break
			}
			label, _ := display.Cut(f.Label, 100)
			value, _ := display.Cut(f.Value, modalCtxValues)
			t := plain(label + "\n" + value)
			if size+len(t.Text)+64 > modalBytes-16<<10 {
				break
			}
			fields = append(fields, t)
			size += len(t.Text) + 64
			shown++
		}
		head := ":speech_balloon: *" + msg.ContextHeading + "*"
		if total := max(msg.ContextTotal, len(msg.Context)); shown < total {
			head += fmt.Sprintf(" (%d of %d entries shown; long entries cut: …)", shown, total)
		}
		last = append(last, goslack.NewDividerBlock(), goslack.NewSectionBlock(mrkdwn(head), nil, nil))
		for len(fields) > 0 {
			n := min(len(fields), fieldsPerBlock)
			last = append(last, goslack.NewSectionBlock(nil, fields[:n], nil))
			fields = fields[n:]
		}
	}
	pages[len(pages)-1] = last
	return pages
}

// fullViewModal is page p (0-based) of msg's full view.
func fullViewModal(msg approvebot.Message, pages [][]goslack.Block, p int, metadata string) goslack.ModalViewRequest {
	n := len(pages)
	head := fmt.Sprintf(":lock: *%s*", msg.BoundHeading)
	if n > 1 {
		head += fmt.Sprintf("\nPage %d of %d. Approve is on the last page.", p+1, n)
	}
	blocks := []goslack.Block{goslack.NewSectionBlock(mrkdwn(head), nil, nil)}
	blocks = append(blocks, pages[p]...)
	v := goslack.ModalViewRequest{
		Type:            goslack.VTModal,
		Title:           plain(modalTitle),
		Close:           plain("Close"),
		CallbackID:      FullViewCallbackID,
		PrivateMetadata: metadata,
	}
	switch {
	case p+1 < n:
		blocks = append(blocks, goslack.NewActionBlock(PagesBlockID,
			goslack.NewButtonBlockElement(NextPageActionID, fmt.Sprint(p+2), plain(fmt.Sprintf("Next page (%d of %d)", p+2, n))).WithStyle(goslack.StylePrimary)))
	case msg.Actionable:
		v.Submit = plain("Approve")
		blocks = append(blocks, goslack.NewContextBlock("", mrkdwn(":white_check_mark: You have been shown every bound value. *Approve* below approves exactly this action; to deny, use *Deny* on the message.")))
	default:
		blocks = append(blocks, goslack.NewContextBlock("", mrkdwn(":no_entry_sign: *This request is no longer open for decision.*")))
	}
	v.Blocks = goslack.Blocks{BlockSet: blocks}
	return v
}

func blockBytes(b goslack.Block) int {
	data, err := json.Marshal(b)
	if err != nil {
		return modalBytes
	}
	return len(data) + 1
}

func plain(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.PlainTextType, s, false, false)
}

// mrkdwn is for approvebot's own fixed words only; never agent text.
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

func statusWord(s approvebot.Status) string {
	switch s {
	case approvebot.StatusApproved:
		return "Approved"
	case approvebot.StatusDenied:
		return "Denied"
	case approvebot.StatusTimedOut:
		return "Timed out"
	case approvebot.StatusExpired:
		return "Expired"
	case approvebot.StatusCancelled:
		return "Withdrawn"
	case approvebot.StatusPending:
		return "Pending"
	default:
		return "Closed"
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
	case approvebot.StatusCancelled:
		return "Withdrawn by the agent"
	case approvebot.StatusPending:
		return "Waiting for another approver"
	default:
		return "No longer open for decision"
	}
}

// cut shortens plain text to max characters, ending in an ellipsis when cut.
func cut(s string, max int) string {
	out, _ := display.Cut(strings.TrimSpace(s), max)
	return out
}

// escapeFit makes text for mrkdwn-parsed fields that cannot be plain_text
// (the notification fallback, ephemeral replies): control and invisible
// characters become visible escapes, Slack's control characters (&, <, >)
// become entities, and the result is cut to at most max characters, ending
// in an ellipsis when cut. It never splits an entity. Those fields are also
// sent with markdown parsing off.
func escapeFit(s string, max int) string {
	return fit(display.Inline(s), max)
}

func fit(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if max <= 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	for i, r := range s {
		piece := string(r)
		switch r {
		case '&':
			piece = "&amp;"
		case '<':
			piece = "&lt;"
		case '>':
			piece = "&gt;"
		}
		w := utf8.RuneCountInString(piece)
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
