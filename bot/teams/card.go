package teams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/display"
)

const (
	cardContentType = "application/vnd.microsoft.card.adaptive"
	cardSchema      = "http://adaptivecards.io/schemas/adaptive-card.json"
	// cardVersion is the newest Teams renders (platforms.md B4).
	cardVersion = "1.5"
	// maxCardBytes keeps the card under the oldest documented Teams limit,
	// 28 KB, with room for the activity around it.
	maxCardBytes = 26 << 10

	verbApprove = "approve"
	verbDeny    = "deny"
	// verbViewAll shows the full view, page by page, in place of the card
	// for the clicker only (the Universal Actions answer to an invoke).
	verbViewAll = "view_all"
)

// How agent text is kept inert on Teams.
//
// TextBlock and FactSet render a Markdown subset (emphasis, links, lists)
// and have no property to turn it off. TextRun, inside a RichTextBlock, is
// the one text element the Adaptive Card schema defines as plain: Markdown
// is not parsed there. So every agent-supplied string (bound facts, context,
// labels included) is a TextRun, and approvebot's own words are TextBlocks,
// bold or coloured, with an emoji: styles a TextRun from the agent never
// gets. Teams mentions need an <at> tag plus a mention entity, which cards
// from approvebot never carry. Invisible characters (bidi overrides,
// zero-width, controls) were already turned into visible escapes by package
// display. Approvebot's own lines that include names (outcome, progress) are
// TextBlocks and go through escape, which neutralizes Markdown.

// The bound facts' share of a card. It is fixed, whatever else the card
// says, so whether a request's card shows every bound fact depends on the
// bound facts alone and cannot change between the post and later updates.
const (
	boundCardBytes   = 14 << 10
	contextCardBytes = 8 << 10
	contextValueMax  = 300
	pageBytes        = 22 << 10
	pageChunk        = 4000 // runes of a fact per element on a full-view page
)

type card struct {
	Type    string         `json:"type"`
	Schema  string         `json:"$schema"`
	Version string         `json:"version"`
	Body    []any          `json:"body"`
	MSTeams map[string]any `json:"msteams,omitempty"`
}

type textBlock struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Wrap     bool   `json:"wrap"`
	Weight   string `json:"weight,omitempty"`
	Size     string `json:"size,omitempty"`
	Color    string `json:"color,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
	Spacing  string `json:"spacing,omitempty"`
}

type richTextBlock struct {
	Type    string    `json:"type"`
	Inlines []textRun `json:"inlines"`
	Spacing string    `json:"spacing,omitempty"`
}

type textRun struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
	FontType string `json:"fontType,omitempty"`
}

type actionSet struct {
	Type    string `json:"type"`
	Actions []any  `json:"actions"`
}

// inputText is the card's reason box: Action.Execute sends its value, as
// "reason", in the data of whichever button is pressed.
type inputText struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Label       string `json:"label"`
	Placeholder string `json:"placeholder,omitempty"`
	IsMultiline bool   `json:"isMultiline"`
	MaxLength   int    `json:"maxLength"`
}

// showCard is an Action.ShowCard: a button that unfolds a card of its own
// (the second step of a confirmed approval).
type showCard struct {
	Type  string  `json:"type"`
	Title string  `json:"title"`
	Style string  `json:"style,omitempty"`
	Card  subCard `json:"card"`
}

// subCard is the card an Action.ShowCard unfolds.
type subCard struct {
	Type    string `json:"type"`
	Body    []any  `json:"body"`
	Actions []any  `json:"actions"`
}

// reasonInputID names the reason box, and the data key its text arrives in.
const reasonInputID = "reason"

// reasonInput is the reason box for what msg's chain asks.
func reasonInput(msg approvebot.Message) inputText {
	label := "Reason for a denial (optional)"
	if msg.Reason.For(approvebot.Deny) == approvebot.ReasonRequired {
		label = "Reason for a denial (required to deny)"
	}
	if msg.Reason.For(approvebot.Allow) == approvebot.ReasonOptional {
		label += "; comment for an approval (optional)"
	}
	return inputText{Type: "Input.Text", ID: reasonInputID, Label: label,
		Placeholder: fmt.Sprintf("At most %d characters", approvebot.MaxReason), IsMultiline: true, MaxLength: approvebot.MaxReason}
}

// approveAction is Approve: a button, or, where the chain asks for a
// confirmation, a button that unfolds "Confirm approval", whose data
// carries the confirmation the engine requires.
func approveAction(msg approvebot.Message, data actionData) any {
	if !msg.ConfirmApprove {
		return button("Approve", verbApprove, "positive", data)
	}
	data.Confirm = true
	inner := subCard{Type: "AdaptiveCard",
		Body:    []any{textBlock{Type: "TextBlock", Text: "Approve this request? The agent will be told its action was approved. This cannot be undone.", Wrap: true}},
		Actions: []any{action{Type: "Action.Execute", Title: "Confirm approval", Verb: verbApprove, Style: "positive", Data: data}},
	}
	return showCard{Type: "Action.ShowCard", Title: "Approve…", Style: "positive", Card: inner}
}

// action is an Action.Execute, or the Action.Submit it falls back to.
type action struct {
	Type     string     `json:"type"`
	Title    string     `json:"title"`
	Verb     string     `json:"verb,omitempty"`
	Style    string     `json:"style,omitempty"`
	Data     actionData `json:"data"`
	Fallback any        `json:"fallback,omitempty"`
}

// actionData is always an object: msbotbuilder-go fails to decode an
// Action.Submit whose data is a bare string.
type actionData struct {
	RequestID string `json:"request_id"`
	Decision  string `json:"decision,omitempty"`
	// Page is the full-view page asked for (1-based), with Token proving
	// the page before it was shown to this clicker.
	Page  int    `json:"page,omitempty"`
	Token string `json:"token,omitempty"`
	// FullView, on the last page's Approve, proves every page was shown.
	FullView string `json:"full_view,omitempty"`
	// Confirm is on the Approve of "Confirm approval" only: the second
	// step a chain with confirm_approve asks for.
	Confirm bool `json:"confirm,omitempty"`
}

// Card is a rendered request card.
type Card struct {
	JSON []byte
	// Partial is true when the card could not show every bound fact: it
	// then has View all instead of Approve.
	Partial bool
}

// RenderCard renders msg as an Adaptive Card 1.5. Bound facts come first and
// whole, or the card says the action is too large and offers View all
// instead of Approve; context fills what is left and says when it is cut.
// The buttons are Action.Execute (Universal Actions: the clicker gets a fresh
// card in the invoke answer); Approve and Deny fall back to an Action.Submit
// with the same data for clients without Universal Actions, View all is
// dropped there.
func RenderCard(msg approvebot.Message) (Card, error) {
	c, err := renderCard(msg, contextCardBytes)
	if err != nil {
		// Long names or reasons in approvebot's own lines: give up the
		// context rather than the card (the bound facts' share is fixed).
		c, err = renderCard(msg, 0)
	}
	return c, err
}

func renderCard(msg approvebot.Message, contextBytes int) (Card, error) {
	c := newCard()
	c.Body = append(c.Body, title(msg.Title))
	shown, used := 0, 0
	if len(msg.Bound) > 0 {
		c.Body = append(c.Body, heading("🔒 "+msg.BoundHeading, "Accent"))
		for _, f := range msg.Bound {
			el := factRun(f.Label, f.Value)
			n := jsonLen(el)
			if used+n > boundCardBytes {
				break
			}
			c.Body = append(c.Body, el)
			used += n
			shown++
		}
	}
	partial := shown < len(msg.Bound)
	if partial {
		note := fmt.Sprintf("⚠ This action is too large to show here: %d of its %d bound values are shown above.", shown, len(msg.Bound))
		if msg.Actionable {
			note += " To approve, press View all: it shows every value, page by page, and Approve is on its last page."
		}
		c.Body = append(c.Body, textBlock{Type: "TextBlock", Text: note, Wrap: true, Weight: "Bolder", Color: "Warning"})
	}
	if len(msg.Context) > 0 {
		c.Body = append(c.Body, contextElements(msg, contextBytes, contextValueMax)...)
	}
	c.Body = append(c.Body, tail(msg)...)
	if msg.Actionable {
		var acts []any
		if partial {
			acts = append(acts, action{Type: "Action.Execute", Title: "View all", Verb: verbViewAll, Style: "positive",
				Data: actionData{RequestID: msg.RequestID, Page: 1}, Fallback: "drop"})
		} else {
			acts = append(acts, approveAction(msg, actionData{RequestID: msg.RequestID, Decision: approvebot.Allow}))
		}
		acts = append(acts, button("Deny", verbDeny, "destructive", actionData{RequestID: msg.RequestID, Decision: approvebot.Deny}))
		c.Body = append(c.Body, reasonInput(msg), actionSet{Type: "ActionSet", Actions: acts})
	}
	data, err := encode(c)
	if err != nil {
		return Card{}, err
	}
	if len(data) > maxCardBytes {
		return Card{}, fmt.Errorf("card for request %s is %d bytes, over %d", msg.RequestID, len(data), maxCardBytes)
	}
	return Card{JSON: data, Partial: partial}, nil
}

// fullPages splits msg's bound facts into the pages of its full view. It is
// pure: the same message always pages the same way.
func fullPages(msg approvebot.Message) [][]any {
	var pages [][]any
	var page []any
	size := 0
	for _, f := range msg.Bound {
		t := []rune(f.Value)
		for part := 0; part == 0 || len(t) > 0; part++ {
			n := min(len(t), pageChunk)
			var el richTextBlock
			if part == 0 {
				el = factRun(f.Label, string(t[:n]))
			} else {
				el = richTextBlock{Type: "RichTextBlock", Inlines: []textRun{
					{Type: "TextRun", Text: "↳ ", IsSubtle: true}, {Type: "TextRun", Text: noTemplate(string(t[:n])), FontType: "Monospace"}}}
			}
			t = t[n:]
			sz := jsonLen(el)
			if len(page) > 0 && size+sz > pageBytes {
				pages, page, size = append(pages, page), nil, 0
			}
			page = append(page, el)
			size += sz
		}
	}
	return append(pages, page)
}

// RenderFullPage renders page p (1-based) of msg's full view: every bound
// fact, split over pages of at most about 22 KB. Each page but the last
// has Next, whose data carries token(p+1); the last has Approve, carrying
// approveToken, and the request's context.
func renderFullPage(msg approvebot.Message, pages [][]any, p int, nextToken, approveToken string) ([]byte, error) {
	c := newCard()
	n := len(pages)
	c.Body = append(c.Body, title(msg.Title))
	h := "🔒 " + msg.BoundHeading
	if n > 1 {
		h += fmt.Sprintf(" (page %d of %d; Approve is on the last page)", p, n)
	}
	c.Body = append(c.Body, heading(h, "Accent"))
	c.Body = append(c.Body, pages[p-1]...)
	var acts []any
	if p < n {
		acts = append(acts, action{Type: "Action.Execute", Title: fmt.Sprintf("Next page (%d of %d)", p+1, n), Verb: verbViewAll, Style: "positive",
			Data: actionData{RequestID: msg.RequestID, Page: p + 1, Token: nextToken}})
	} else {
		if len(msg.Context) > 0 {
			c.Body = append(c.Body, contextElements(msg, 2<<10, 120)...)
		}
		c.Body = append(c.Body, tail(msg)...)
		if msg.Actionable {
			c.Body = append(c.Body, textBlock{Type: "TextBlock", Wrap: true, Weight: "Bolder", Color: "Good",
				Text: "✅ You have been shown every bound value. Approve approves exactly this action."})
			acts = append(acts, action{Type: "Action.Execute", Title: "Approve", Verb: verbApprove, Style: "positive",
				Data: actionData{RequestID: msg.RequestID, Decision: approvebot.Allow, FullView: approveToken}})
		}
	}
	if msg.Actionable {
		acts = append(acts, button("Deny", verbDeny, "destructive", actionData{RequestID: msg.RequestID, Decision: approvebot.Deny}))
		c.Body = append(c.Body, reasonInput(msg))
	}
	if len(acts) > 0 {
		c.Body = append(c.Body, actionSet{Type: "ActionSet", Actions: acts})
	}
	data, err := encode(c)
	if err == nil && len(data) > maxCardBytes {
		err = fmt.Errorf("full view page %d of request %s is %d bytes, over %d", p, msg.RequestID, len(data), maxCardBytes)
	}
	return data, err
}

func newCard() card {
	return card{Type: "AdaptiveCard", Schema: cardSchema, Version: cardVersion, MSTeams: map[string]any{"width": "Full"}}
}

func title(t string) textBlock {
	if t == "" {
		t = "Approval needed"
	}
	return textBlock{Type: "TextBlock", Text: escape(t, 200), Wrap: true, Weight: "Bolder", Size: "Medium"}
}

func heading(t, color string) textBlock {
	return textBlock{Type: "TextBlock", Text: escape(t, 400), Wrap: true, Weight: "Bolder", Color: color, Spacing: "Medium"}
}

// factRun is one fact: its label, subtle, then its value in monospace, all
// TextRuns (no Markdown).
func factRun(label, value string) richTextBlock {
	return richTextBlock{Type: "RichTextBlock", Inlines: []textRun{
		{Type: "TextRun", Text: noTemplate(label), IsSubtle: true},
		{Type: "TextRun", Text: "  "},
		{Type: "TextRun", Text: noTemplate(value), FontType: "Monospace"},
	}}
}

// noTemplate keeps "{{" from starting a DATE/TIME function, which Teams
// evaluates even in plain text. The inserted backslash is unambiguous: a
// backslash the agent sent shows doubled (display.Quote).
func noTemplate(s string) string { return strings.ReplaceAll(s, "{{", `{\{`) }

// contextElements is the context under its heading, cut to budget bytes
// with values of at most maxValue runes, saying when anything was left out.
func contextElements(msg approvebot.Message, budget, maxValue int) []any {
	var els []any
	shown, used, cut := 0, 0, false
	for _, f := range msg.Context {
		label, lc := display.Cut(f.Label, 100)
		value, vc := display.Cut(f.Value, maxValue)
		el := factRun(label, value)
		n := jsonLen(el)
		if used+n > budget {
			break
		}
		els = append(els, el)
		used += n
		shown++
		cut = cut || lc || vc
	}
	h := "💬 " + msg.ContextHeading
	if total := max(msg.ContextTotal, len(msg.Context)); shown < total {
		h += fmt.Sprintf(" (%d of %d entries shown)", shown, total)
	}
	if cut {
		h += " (long entries cut: …)"
	}
	return append([]any{heading(h, "Default")}, els...)
}

// linkSet holds the link to the request's page in approvebot's web inbox.
type linkSet struct {
	Type    string    `json:"type"`
	Actions []openURL `json:"actions"`
}

type openURL struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// tail is approvebot's own lines: its facts, progress, notice, outcome.
func tail(msg approvebot.Message) []any {
	var out []any
	for i, f := range msg.Fields {
		if i == 5 {
			break
		}
		out = append(out, textBlock{Type: "TextBlock", Text: escape(f.Label+": "+f.Value, 300), Wrap: true, IsSubtle: true, Spacing: "Small"})
	}
	if msg.Progress != "" {
		out = append(out, textBlock{Type: "TextBlock", Text: "⏳ " + escape(msg.Progress, 500), Wrap: true, IsSubtle: true})
	}
	if msg.Notice != "" {
		out = append(out, textBlock{Type: "TextBlock", Text: "⚠ " + escape(msg.Notice, 500), Wrap: true, Color: "Warning"})
	}
	if msg.Link != "" {
		out = append(out, linkSet{Type: "ActionSet", Actions: []openURL{{Type: "Action.OpenUrl", Title: "Open in approvebot", URL: msg.Link}}})
	}
	if msg.Outcome != "" {
		color, mark := "Attention", "⛔ "
		if msg.Status.Approved() {
			color, mark = "Good", "✅ "
		}
		out = append(out, textBlock{Type: "TextBlock", Text: mark + escape(msg.Outcome, 500), Wrap: true, Weight: "Bolder", Color: color})
	}
	if msg.Actionable && !msg.Deadline.IsZero() {
		out = append(out, textBlock{Type: "TextBlock", Wrap: true, IsSubtle: true,
			Text: "Decide before " + msg.Deadline.UTC().Format("2006-01-02 15:04 UTC")})
	}
	return out
}

func encode(c card) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonLen is what v adds to a card: its JSON as the card encodes it,
// indented at the depth of the card's body.
func jsonLen(v any) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ")
	if err := enc.Encode(v); err != nil {
		return maxCardBytes
	}
	return buf.Len() + 6
}

func button(title, verb, style string, data actionData) action {
	return action{
		Type: "Action.Execute", Title: title, Verb: verb, Style: style, Data: data,
		Fallback: &action{Type: "Action.Submit", Title: title, Style: style, Data: data},
	}
}

// escape makes text inert in a TextBlock, which renders a Markdown subset:
// characters that form markdown emphasis, code, links or HTML are
// backslash-escaped anywhere, and those that start a heading, quote or list
// only at the start of a line (so amounts and dates stay readable); "{{"
// cannot start a DATE/TIME function; invisible characters become visible
// escapes (display.Inline). Text longer than max runes is cut with an
// ellipsis. Agent text never comes here (it goes in TextRuns); this is for
// approvebot's lines that carry names and reasons.
func escape(s string, max int) string {
	s = display.Inline(s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	var b bytes.Buffer
	prev := rune(0)
	blank, digits := true, false
	runes := []rune(s)
	for i, r := range runes {
		listEnd := i+1 == len(runes) || runes[i+1] == ' '
		wasBlank, wasDigits := blank, digits
		switch {
		case r == '\\' || r == '`' || r == '*' || r == '_' || r == '~' || r == '[' || r == ']' || r == '<' || r == '>':
			b.WriteRune('\\')
			b.WriteRune(r)
		case wasBlank && (r == '#' || r == '+' || r == '-' || r == '='), wasDigits && listEnd && (r == '.' || r == ')'):
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '{' && prev == '{':
			b.WriteString("\\{")
		default:
			b.WriteRune(r)
		}
		isDigit := r >= '0' && r <= '9'
		blank = wasBlank && r == ' '
		digits = (wasBlank || wasDigits) && isDigit
		prev = r
	}
	return b.String()
}
