package slackfake

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Slack's Block Kit limits for messages (docs.slack.dev, block reference).
const (
	maxBlocks       = 50
	maxBlockID      = 255
	maxHeaderText   = 150
	maxSectionText  = 3000
	maxFields       = 10
	maxFieldText    = 2000
	maxContextElems = 10
	maxActionElems  = 25
	maxButtonText   = 75
	maxActionID     = 255
	maxButtonValue  = 2000
	maxConfirmTitle = 100
	maxConfirmText  = 300
	maxConfirmBtn   = 30
	// Slack refuses messages whose blocks carry much text overall
	// (msg_blocks_too_long) below the documented per-field limits.
	maxTotalText = 12000
)

type textObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type confirmObj struct {
	Title   *textObj `json:"title"`
	Text    *textObj `json:"text"`
	Confirm *textObj `json:"confirm"`
	Deny    *textObj `json:"deny"`
	Style   string   `json:"style"`
}

type element struct {
	Type     string          `json:"type"`
	Text     json.RawMessage `json:"text"`
	ActionID string          `json:"action_id"`
	Value    string          `json:"value"`
	Style    string          `json:"style"`
	Confirm  *confirmObj     `json:"confirm"`
}

type block struct {
	Type     string          `json:"type"`
	BlockID  *string         `json:"block_id"`
	Text     *textObj        `json:"text"`
	Fields   []textObj       `json:"fields"`
	Elements json.RawMessage `json:"elements"`
	Label    *textObj        `json:"label"`
	Element  *inputElement   `json:"element"`
}

// inputElement is an input block's element; approvebot uses
// plain_text_input only.
type inputElement struct {
	Type      string `json:"type"`
	ActionID  string `json:"action_id"`
	MaxLength int    `json:"max_length"`
}

// Input limits (docs.slack.dev, input block and plain_text_input).
const (
	maxInputLabel  = 2000
	maxInputLength = 3000
)

// checkBlocks validates a message's blocks parameter, unless SetBlockChecks
// turned that off, and reports whether it carries an actions block. An empty
// parameter is no blocks. The error is Slack's code.
func (f *Fake) checkBlocks(raw string) (json.RawMessage, bool, string) {
	if f.noBlockChecks.Load() {
		return takeBlocks(raw)
	}
	return checkBlocks(raw)
}

// actionsBlock is how compact JSON, as slack-go sends it, names a block of
// type actions. Inside a JSON string every quote is escaped, so the bytes can
// only be the structure itself.
var actionsBlock = []byte(`"type":"actions"`)

// takeBlocks records a blocks parameter as sent, without decoding it.
func takeBlocks(raw string) (json.RawMessage, bool, string) {
	if raw == "" {
		return nil, false, ""
	}
	blocks := json.RawMessage(raw)
	return blocks, bytes.Contains(blocks, actionsBlock), ""
}

// checkBlocks validates a blocks parameter and reports whether it carries an
// actions block. An empty parameter is no blocks. The error is Slack's code.
func checkBlocks(raw string) (json.RawMessage, bool, string) {
	if raw == "" {
		return nil, false, ""
	}
	var blocks []block
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return nil, false, "invalid_blocks_format"
	}
	if len(blocks) > maxBlocks {
		return nil, false, "invalid_blocks"
	}
	ids := map[string]bool{}
	total := 0
	actionable := false
	for _, b := range blocks {
		if b.BlockID != nil {
			id := *b.BlockID
			if id == "" || utf8.RuneCountInString(id) > maxBlockID || ids[id] {
				return nil, false, "invalid_blocks"
			}
			ids[id] = true
		}
		n, ok := checkBlock(b)
		if !ok {
			return nil, false, "invalid_blocks"
		}
		total += n
		actionable = actionable || b.Type == "actions"
	}
	if total > maxTotalText {
		return nil, false, "msg_blocks_too_long"
	}
	return json.RawMessage(raw), actionable, ""
}

// checkBlock checks one block and returns how much text it carries.
func checkBlock(b block) (int, bool) {
	switch b.Type {
	case "header":
		if b.Text == nil || b.Text.Type != "plain_text" {
			return 0, false
		}
		return textLen(b.Text, maxHeaderText)
	case "section":
		if b.Text == nil && len(b.Fields) == 0 || len(b.Fields) > maxFields {
			return 0, false
		}
		total := 0
		if b.Text != nil {
			n, ok := textLen(b.Text, maxSectionText)
			if !ok {
				return 0, false
			}
			total += n
		}
		for i := range b.Fields {
			n, ok := textLen(&b.Fields[i], maxFieldText)
			if !ok {
				return 0, false
			}
			total += n
		}
		return total, true
	case "context":
		var elems []textObj
		if json.Unmarshal(b.Elements, &elems) != nil || len(elems) == 0 || len(elems) > maxContextElems {
			return 0, false
		}
		total := 0
		for i := range elems {
			n, ok := textLen(&elems[i], maxSectionText)
			if !ok {
				return 0, false
			}
			total += n
		}
		return total, true
	case "actions":
		var elems []element
		if json.Unmarshal(b.Elements, &elems) != nil || len(elems) == 0 || len(elems) > maxActionElems {
			return 0, false
		}
		return checkButtons(elems)
	case "divider":
		return 0, true
	case "input":
		if b.Label == nil || b.Label.Type != "plain_text" || b.Element == nil || b.Element.Type != "plain_text_input" ||
			b.Element.ActionID == "" || b.Element.MaxLength < 0 || b.Element.MaxLength > maxInputLength {
			return 0, false
		}
		return textLen(b.Label, maxInputLabel)
	default:
		return 0, false
	}
}

func checkButtons(elems []element) (int, bool) {
	total := 0
	actionIDs := map[string]bool{}
	primary := 0
	for _, e := range elems {
		if e.Type != "button" {
			return 0, false
		}
		var t textObj
		if json.Unmarshal(e.Text, &t) != nil || t.Type != "plain_text" {
			return 0, false
		}
		n, ok := textLen(&t, maxButtonText)
		if !ok || e.ActionID == "" || utf8.RuneCountInString(e.ActionID) > maxActionID || actionIDs[e.ActionID] ||
			utf8.RuneCountInString(e.Value) > maxButtonValue {
			return 0, false
		}
		actionIDs[e.ActionID] = true
		switch e.Style {
		case "":
		case "primary":
			primary++
		case "danger":
		default:
			return 0, false
		}
		total += n
		if e.Confirm != nil {
			c := e.Confirm
			for _, part := range []struct {
				t   *textObj
				max int
			}{{c.Title, maxConfirmTitle}, {c.Text, maxConfirmText}, {c.Confirm, maxConfirmBtn}, {c.Deny, maxConfirmBtn}} {
				n, ok := textLen(part.t, part.max)
				if !ok {
					return 0, false
				}
				total += n
			}
		}
	}
	return total, primary <= 1
}

func textLen(t *textObj, max int) (int, bool) {
	if t == nil || (t.Type != "plain_text" && t.Type != "mrkdwn") {
		return 0, false
	}
	n := utf8.RuneCountInString(t.Text)
	return n, n > 0 && n <= max
}
