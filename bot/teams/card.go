package teams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
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

type factSet struct {
	Type  string `json:"type"`
	Facts []fact `json:"facts"`
}

type fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type actionSet struct {
	Type    string   `json:"type"`
	Actions []action `json:"actions"`
}

// action is an Action.Execute, or the Action.Submit it falls back to.
type action struct {
	Type     string     `json:"type"`
	Title    string     `json:"title"`
	Verb     string     `json:"verb,omitempty"`
	Style    string     `json:"style,omitempty"`
	Data     actionData `json:"data"`
	Fallback *action    `json:"fallback,omitempty"`
}

// actionData is always an object: msbotbuilder-go fails to decode an
// Action.Submit whose data is a bare string.
type actionData struct {
	RequestID string `json:"request_id"`
	Decision  string `json:"decision"`
}

// RenderCard renders msg as an Adaptive Card 1.5. Everything the agent sent
// is escaped (TextBlocks and facts render markdown) and truncated so the card
// stays under 28 KB. The buttons are Action.Execute (Universal Actions: the
// clicker gets a fresh card in the invoke answer); each falls back to an
// Action.Submit with the same data for clients without Universal Actions.
func RenderCard(msg approvebot.Message) ([]byte, error) {
	// Shrink agent values step by step until the card fits.
	for _, limit := range []struct{ value, fields int }{{1000, 100}, {300, 100}, {120, 40}, {60, 20}, {40, 8}} {
		data, err := renderCard(msg, limit.value, limit.fields)
		if err != nil {
			return nil, err
		}
		if len(data) <= maxCardBytes {
			return data, nil
		}
	}
	return nil, fmt.Errorf("card for request %s stays larger than %d bytes", msg.RequestID, maxCardBytes)
}

func renderCard(msg approvebot.Message, maxValue, maxFields int) ([]byte, error) {
	c := card{
		Type:    "AdaptiveCard",
		Schema:  cardSchema,
		Version: cardVersion,
		MSTeams: map[string]any{"width": "Full"},
	}
	c.Body = append(c.Body, textBlock{Type: "TextBlock", Text: inline(msg.Title, 200), Wrap: true, Weight: "Bolder", Size: "Medium"})
	if facts := renderFacts(msg.Fields, maxValue, maxFields); len(facts) > 0 {
		c.Body = append(c.Body, factSet{Type: "FactSet", Facts: facts})
	}
	if facts := renderFacts(msg.Context, maxValue, maxFields); len(facts) > 0 {
		c.Body = append(c.Body,
			textBlock{Type: "TextBlock", Text: "Context from the agent", Wrap: true, Weight: "Bolder", Spacing: "Medium"},
			factSet{Type: "FactSet", Facts: facts})
	}
	if msg.Progress != "" {
		c.Body = append(c.Body, textBlock{Type: "TextBlock", Text: escape(msg.Progress, 1000), Wrap: true, IsSubtle: true})
	}
	if msg.Notice != "" {
		c.Body = append(c.Body, textBlock{Type: "TextBlock", Text: "⚠ " + escape(msg.Notice, 1000), Wrap: true, Color: "Warning"})
	}
	if msg.Outcome != "" {
		color := "Attention"
		if msg.Status.Approved() {
			color = "Good"
		}
		c.Body = append(c.Body, textBlock{Type: "TextBlock", Text: escape(msg.Outcome, 1000), Wrap: true, Weight: "Bolder", Color: color})
	}
	if msg.Actionable {
		if !msg.Deadline.IsZero() {
			c.Body = append(c.Body, textBlock{Type: "TextBlock", Wrap: true, IsSubtle: true,
				Text: "Decide before " + msg.Deadline.UTC().Format("2006-01-02 15:04 UTC")})
		}
		c.Body = append(c.Body, actionSet{Type: "ActionSet", Actions: []action{
			button("Approve", verbApprove, "positive", msg.RequestID, approvebot.Allow),
			button("Deny", verbDeny, "destructive", msg.RequestID, approvebot.Deny),
		}})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func button(title, verb, style, requestID, decision string) action {
	data := actionData{RequestID: requestID, Decision: decision}
	return action{
		Type: "Action.Execute", Title: title, Verb: verb, Style: style, Data: data,
		Fallback: &action{Type: "Action.Submit", Title: title, Style: style, Data: data},
	}
}

func renderFacts(fields []approvebot.Field, maxValue, maxFields int) []fact {
	var facts []fact
	for i, f := range fields {
		if i == maxFields {
			facts = append(facts, fact{Title: "…", Value: fmt.Sprintf("%d more not shown", len(fields)-maxFields)})
			break
		}
		v := escape(f.Value, maxValue)
		if v == "" {
			v = "—"
		}
		facts = append(facts, fact{Title: inline(f.Label, 80), Value: v})
	}
	return facts
}

// inline is escape for one-line texts: line breaks become spaces.
func inline(s string, max int) string {
	return escape(strings.Join(strings.Fields(s), " "), max)
}

// escape makes agent text inert in an Adaptive Card: characters that form
// markdown emphasis, code, links or HTML are backslash-escaped anywhere, and
// those that start a heading, quote or list only at the start of a line
// (so amounts and dates stay readable); "{{" cannot start a DATE/TIME
// function; control characters other than newline are dropped. Text longer
// than max runes is cut with an ellipsis.
func escape(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	var b strings.Builder
	prev := rune(0)
	blank, digits := true, false // the line so far: only spaces; spaces then digits
	runes := []rune(s)
	for i, r := range runes {
		listEnd := i+1 == len(runes) || runes[i+1] == ' ' || runes[i+1] == '\n'

		wasBlank, wasDigits := blank, digits
		switch {
		case r == '\n':
			b.WriteRune(r)
			blank, digits = true, false
			prev = r
			continue
		case r == '\r' || r == '\t':
			b.WriteRune(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029':
			continue
		case strings.ContainsRune("\\`*_~[]<>", r):
			b.WriteRune('\\')
			b.WriteRune(r)
		case wasBlank && strings.ContainsRune("#+-=", r), wasDigits && listEnd && (r == '.' || r == ')'):
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '{' && prev == '{':
			b.WriteString("\u200b{")
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
