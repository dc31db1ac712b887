package slack

import (
	"context"
	"regexp"
	"strings"

	goslack "github.com/slack-go/slack"

	"github.com/approvebot/approvebot"
)

// slackID is the shape of a Slack user or user group id: only those are
// written into a mention.
var slackID = regexp.MustCompile(`^[A-Z0-9]{2,32}$`)

// Reply posts a note of a request's history in the thread of the message at
// ref (chat.postMessage with thread_ts), calling on the Slack approvers of
// mention: <@U…> for user ids, <!subteam^S…> for user groups, and emails
// named as they are.
func (s *Slack) Reply(ctx context.Context, ref approvebot.MessageRef, note approvebot.Note, mention []approvebot.Group) error {
	if ref.Channel == "" || ref.ID == "" {
		return &approvebot.DeliveryError{Permanent: true, Reason: "message reference lacks channel or ts"}
	}
	text := escapeFit(note.Text, 3000)
	if who := mentions(mention); who != "" {
		text += " " + who
	}
	_, _, err := s.api().PostMessageContext(ctx, ref.Channel, goslack.MsgOptionText(text, false), goslack.MsgOptionTS(ref.ID))
	if err != nil {
		de := deliveryError(err)
		s.log.WarnContext(ctx, "slack thread reply failed", "channel", ref.Channel, "ts", ref.ID, "reason", de.Reason)
		return de
	}
	return nil
}

func mentions(groups []approvebot.Group) string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, g := range groups {
		if g.Slack == nil {
			continue
		}
		for _, u := range g.Slack.Users {
			switch {
			case slackID.MatchString(u):
				add("<@" + u + ">")
			case strings.Contains(u, "@"):
				add(escapeFit(u, 254))
			}
		}
		for _, ug := range g.Slack.Usergroups {
			if slackID.MatchString(ug) {
				add("<!subteam^" + ug + ">")
			}
		}
	}
	return strings.Join(out, " ")
}
