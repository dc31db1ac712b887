package slack

import (
	"github.com/approvebot/approvebot/internal/jsonlex"
	goslack "github.com/slack-go/slack"
)

// appendBlocks appends the JSON that slack-go v0.35.0 sends as a message's
// blocks form value (json.Marshal of the blocks, [] when there are none),
// written without reflection: marshalling Block Kit by reflection was a
// large share of what posting a message cost. It knows exactly the blocks,
// elements and objects Render makes, in the shapes Render makes them; given
// anything else (another block type, an accessory, an image in a context, a
// nil entry) it says so, and the caller hands the blocks to slack-go
// instead. Byte for byte it writes what encoding/json writes: field order
// and omitempty as slack-go's struct tags say, the element lists that
// slack-go's MarshalJSON methods marshal, strings escaped as encoding/json
// escapes them (jsonlex.AppendString). TestBlocksJSONMatchesSlackGo and
// FuzzBlocksJSON hold it to json.Marshal; TestBlocksJSONKnowsEveryField
// fails when a new slack-go adds a field to one of these types.
func appendBlocks(b []byte, blocks []goslack.Block) ([]byte, bool) {
	b = append(b, '[')
	for i, blk := range blocks {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		switch v := blk.(type) {
		case *goslack.HeaderBlock:
			b, ok = appendHeader(b, v)
		case *goslack.SectionBlock:
			b, ok = appendSection(b, v)
		case *goslack.ContextBlock:
			b, ok = appendContext(b, v)
		case *goslack.ActionBlock:
			b, ok = appendActions(b, v)
		case *goslack.DividerBlock:
			b, ok = appendDivider(b, v)
		}
		if !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// blockHead opens a block whose struct has no field between type and
// block_id (context, actions, divider), the id omitted when empty.
func blockHead(b []byte, typ goslack.MessageBlockType, id string) []byte {
	b = append(b, `{"type":`...)
	b = jsonlex.AppendString(b, string(typ))
	if id != "" {
		b = append(b, `,"block_id":`...)
		b = jsonlex.AppendString(b, id)
	}
	return b
}

func appendHeader(b []byte, h *goslack.HeaderBlock) ([]byte, bool) {
	if h == nil {
		return b, false
	}
	b = append(b, `{"type":`...)
	b = jsonlex.AppendString(b, string(h.Type))
	if h.Text != nil {
		b = append(b, `,"text":`...)
		b = appendText(b, h.Text)
	}
	if h.BlockID != "" {
		b = append(b, `,"block_id":`...)
		b = jsonlex.AppendString(b, h.BlockID)
	}
	if h.Level != 0 {
		return b, false // Render sets no level
	}
	return append(b, '}'), true
}

func appendSection(b []byte, s *goslack.SectionBlock) ([]byte, bool) {
	if s == nil || s.Accessory != nil || s.Expand {
		return b, false
	}
	b = append(b, `{"type":`...)
	b = jsonlex.AppendString(b, string(s.Type))
	if s.Text != nil {
		b = append(b, `,"text":`...)
		b = appendText(b, s.Text)
	}
	if s.BlockID != "" {
		b = append(b, `,"block_id":`...)
		b = jsonlex.AppendString(b, s.BlockID)
	}
	if len(s.Fields) > 0 {
		b = append(b, `,"fields":[`...)
		for i, f := range s.Fields {
			if f == nil {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendText(b, f)
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendContext writes a context block's elements as ContextElements'
// MarshalJSON does: the list, or null when there is none.
func appendContext(b []byte, c *goslack.ContextBlock) ([]byte, bool) {
	if c == nil {
		return b, false
	}
	b = blockHead(b, c.Type, c.BlockID)
	b = append(b, `,"elements":`...)
	if c.ContextElements.Elements == nil {
		return append(b, "null}"...), true
	}
	b = append(b, '[')
	for i, e := range c.ContextElements.Elements {
		t, ok := e.(*goslack.TextBlockObject)
		if !ok || t == nil {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendText(b, t)
	}
	return append(b, "]}"...), true
}

// appendActions writes an actions block's elements as BlockElements'
// MarshalJSON does: the list, or null when there is none.
func appendActions(b []byte, a *goslack.ActionBlock) ([]byte, bool) {
	if a == nil {
		return b, false
	}
	b = blockHead(b, a.Type, a.BlockID)
	b = append(b, `,"elements":`...)
	if a.Elements == nil || a.Elements.ElementSet == nil {
		return append(b, "null}"...), true
	}
	b = append(b, '[')
	for i, e := range a.Elements.ElementSet {
		btn, ok := e.(*goslack.ButtonBlockElement)
		if !ok || btn == nil {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendButton(b, btn); !ok {
			return b, false
		}
	}
	return append(b, "]}"...), true
}

func appendDivider(b []byte, d *goslack.DividerBlock) ([]byte, bool) {
	if d == nil {
		return b, false
	}
	return append(blockHead(b, d.Type, d.BlockID), '}'), true
}

func appendButton(b []byte, e *goslack.ButtonBlockElement) ([]byte, bool) {
	// Render's buttons carry no link, label for screen readers, agent
	// prompt or audience.
	if e.URL != "" || e.AccessibilityLabel != "" || e.AgentPrompt != "" || e.AgentPromptDisplay != "" || len(e.VisibleToUserIDs) > 0 {
		return b, false
	}
	b = append(b, '{')
	if e.Type != "" {
		b = append(b, `"type":`...)
		b = jsonlex.AppendString(b, string(e.Type))
		b = append(b, ',')
	}
	b = append(b, `"text":`...)
	b = appendTextOrNull(b, e.Text)
	if e.ActionID != "" {
		b = append(b, `,"action_id":`...)
		b = jsonlex.AppendString(b, e.ActionID)
	}
	if e.Value != "" {
		b = append(b, `,"value":`...)
		b = jsonlex.AppendString(b, e.Value)
	}
	if c := e.Confirm; c != nil {
		b = append(b, `,"confirm":{"title":`...)
		b = appendTextOrNull(b, c.Title)
		b = append(b, `,"text":`...)
		b = appendTextOrNull(b, c.Text)
		b = append(b, `,"confirm":`...)
		b = appendTextOrNull(b, c.Confirm)
		if c.Deny != nil {
			b = append(b, `,"deny":`...)
			b = appendText(b, c.Deny)
		}
		if c.Style != "" {
			b = append(b, `,"style":`...)
			b = jsonlex.AppendString(b, string(c.Style))
		}
		b = append(b, '}')
	}
	if e.Style != "" {
		b = append(b, `,"style":`...)
		b = jsonlex.AppendString(b, string(e.Style))
	}
	return append(b, '}'), true
}

func appendTextOrNull(b []byte, t *goslack.TextBlockObject) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendText(b, t)
}

// appendText writes a text object; t is not nil.
func appendText(b []byte, t *goslack.TextBlockObject) []byte {
	b = append(b, `{"type":`...)
	b = jsonlex.AppendString(b, t.Type)
	b = append(b, `,"text":`...)
	b = jsonlex.AppendString(b, t.Text)
	if t.Emoji != nil {
		if *t.Emoji {
			b = append(b, `,"emoji":true`...)
		} else {
			b = append(b, `,"emoji":false`...)
		}
	}
	if t.Verbatim {
		b = append(b, `,"verbatim":true`...)
	}
	return append(b, '}')
}
