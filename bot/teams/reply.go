package teams

import (
	"context"
	"html"
	"net/http"
	"strings"

	"github.com/approvebot/approvebot"
)

// replyActivity is a text message in a channel thread, with the people it
// mentions.
type replyActivity struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Entities []mentionEntity `json:"entities,omitempty"`
}

type mentionEntity struct {
	Type      string          `json:"type"` // "mention"
	Text      string          `json:"text"` // "<at>name</at>", as in the activity's text
	Mentioned mentionedPerson `json:"mentioned"`
}

type mentionedPerson struct {
	ID   string `json:"id"` // AAD object id or UPN: Teams resolves either
	Name string `json:"name"`
}

// Reply posts a note of a request's history in the thread of the card at
// ref (an activity in the conversation "<channel>;messageid=<id>"), with a
// mention entity for each Teams user listed in mention's groups.
func (t *Teams) Reply(ctx context.Context, ref approvebot.MessageRef, note approvebot.Note, mention []approvebot.Group) error {
	if ref.Conversation == "" || ref.ServiceURL == "" {
		return &approvebot.DeliveryError{Permanent: true, Reason: "message reference lacks conversation or service URL"}
	}
	act := replyActivity{Type: "message", Text: html.EscapeString(strings.ToValidUTF8(note.Text, "\uFFFD"))}
	seen := map[string]bool{}
	for _, g := range mention {
		side, ok := g.Side(Name)
		if !ok {
			continue
		}
		for _, u := range side.Users {
			key := strings.ToLower(u)
			if u == "" || seen[key] {
				continue
			}
			seen[key] = true
			at := "<at>" + html.EscapeString(u) + "</at>"
			act.Text += " " + at
			act.Entities = append(act.Entities, mentionEntity{Type: "mention", Text: at, Mentioned: mentionedPerson{ID: u, Name: u}})
		}
	}
	conv := ref.Conversation
	if !strings.Contains(conv, ";messageid=") && ref.ID != "" {
		conv += ";messageid=" + ref.ID
	}
	path := "/v3/conversations/" + escapeID(conv) + "/activities"
	if err := t.call(ctx, http.MethodPost, ref.ServiceURL, path, act, nil); err != nil {
		return err
	}
	t.log.InfoContext(ctx, "replied in thread", "channel", ref.Channel, "activity", ref.ID, "kind", note.Kind)
	return nil
}
