package slack

import (
	"context"
	"maps"
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
// mention: <@U…> for user ids and for emails Slack knows
// (users.lookupByEmail), <!subteam^S…> for user groups; an email Slack
// cannot resolve is named as it is.
func (s *Slack) Reply(ctx context.Context, ref approvebot.MessageRef, note approvebot.Note, mention []approvebot.Group) error {
	if ref.Channel == "" || ref.ID == "" {
		return &approvebot.DeliveryError{Permanent: true, Reason: "message reference lacks channel or ts"}
	}
	text := escapeFit(note.Text, 3000)
	if who := mentions(s.resolveEmails(ctx, mention)); who != "" {
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

// resolveEmails returns copies of groups whose Slack users listed by email
// are replaced by their user ids where Slack knows them.
func (s *Slack) resolveEmails(ctx context.Context, groups []approvebot.Group) []approvebot.Group {
	out := make([]approvebot.Group, len(groups))
	for i, g := range groups {
		out[i] = g
		side, ok := g.Side(Name)
		if !ok {
			continue
		}
		sg := side
		sg.Users = make([]string, len(side.Users))
		for j, u := range side.Users {
			sg.Users[j] = u
			if strings.Contains(u, "@") {
				if found, err := s.api().GetUserByEmailContext(ctx, u); err == nil && found != nil && slackID.MatchString(found.ID) {
					sg.Users[j] = found.ID
				}
			}
		}
		out[i].Sides = maps.Clone(g.Sides)
		out[i].Sides[Name] = sg
	}
	return out
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
		side, ok := g.Side(Name)
		if !ok {
			continue
		}
		for _, u := range side.Users {
			switch {
			case slackID.MatchString(u):
				add("<@" + u + ">")
			case strings.Contains(u, "@"):
				add(escapeFit(u, 254))
			}
		}
		for _, ug := range side.Groups {
			if slackID.MatchString(ug) {
				add("<!subteam^" + ug + ">")
			}
		}
	}
	return strings.Join(out, " ")
}
