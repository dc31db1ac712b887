package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

// teamsDMConfig: payments-dm is reached in its channel and in the personal
// conversations of Jane (the app installed for her) and Carl (not
// installed); Sam is listed by email, which cannot start a conversation.
var teamsDMConfig = strings.Replace(teamsConfig, "approvers:\n", `approvers:
  payments-dm:
    teams:
      notify: [channels, dm]
      channels: ["`+teamsApprovals+`"]
      users: [`+teamsJane.AadObjectID+`, `+teamsCarl.AadObjectID+`, sam@company.com]
`, 1) + `  - match: {rule_name: dm-transfer}
    approvers: [payments-dm]
    timeout: 5m
`

// personalCard returns the card sent into user's personal conversation.
func (th *teamsHarness) personalCard(user string) (teamsfake.Sent, bool) {
	for _, p := range th.teams.Posted() {
		if p.User == user {
			return p, true
		}
	}
	return teamsfake.Sent{}, false
}

func TestTeamsPersonalConversations(t *testing.T) {
	t.Parallel()
	th := newTeamsHarnessWith(t, teamsDMConfig)
	th.teams.InstallPersonal(teamsJane.AadObjectID)
	th.startInstalled()
	held := th.submit(legacyBody("dm-transfer"), auth())
	card, id := th.teamsCardIn(teamsApprovals, held)
	th.waitPosted(id, 2)
	dm, ok := th.personalCard(teamsJane.AadObjectID)
	if !ok || dm.ConversationID != th.teams.PersonalConversation(teamsJane.AadObjectID) || dm.ChannelID != "" {
		t.Fatalf("no card in Jane's personal conversation: %+v", th.teams.Posted())
	}
	if teamsCardRequestID(t, dm) != id || !hasButtons(dm.Card) {
		t.Fatalf("Jane's card: %s", dm.Card)
	}
	// Carl has not installed the app: his destination fails saying so, and
	// the other copies name it; Sam's email cannot start a conversation.
	th.teamsWaitCard("failed personal destinations named", card, func(c json.RawMessage) bool {
		return bytes.Contains(c, []byte("not installed for Teams user "+teamsCarl.AadObjectID)) && bytes.Contains(c, []byte("sam@company.com"))
	})
	states := map[string]string{}
	for _, d := range th.story(id).Request.Destinations {
		states[d.Channel] = d.State + " " + d.Error
	}
	if s := states["dm:"+teamsCarl.AadObjectID]; !strings.HasPrefix(s, "failed ") || !strings.Contains(s, "not installed") {
		t.Fatalf("Carl's destination: %q (%v)", s, states)
	}
	if s := states["dm:sam@company.com"]; !strings.HasPrefix(s, "failed ") || !strings.Contains(s, "object id") {
		t.Fatalf("Sam's destination: %q (%v)", s, states)
	}
	if s := states["dm:"+teamsJane.AadObjectID]; s != "posted " {
		t.Fatalf("Jane's destination: %q (%v)", s, states)
	}

	// Mallory cannot decide from Jane's conversation; Jane can.
	if a := th.teamsClick(teamsMallory, dm, "allow"); !strings.Contains(a.text(), "Nothing changed") {
		t.Fatalf("Mallory's click answered %s", a)
	}
	if a := th.teamsClick(teamsJane, dm, "allow"); a.Type != teamsCardType {
		t.Fatalf("Jane's click answered %s", a)
	}
	if got := th.await(held); !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	// Every copy closes: the channel's and Jane's personal one.
	for _, c := range []teamsfake.Sent{card, dm} {
		th.teamsWaitCard("copy closed", c, func(b json.RawMessage) bool {
			return !hasButtons(b) && bytes.Contains(b, []byte("Approved by Jane Doe"))
		})
	}
}
