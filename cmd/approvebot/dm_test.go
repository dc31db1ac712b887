package main

import (
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// dmConfig: treasury-ops is reached in its channel and in Jane's and Bob's
// direct messages; one listed address is nobody in the workspace.
var dmConfig = configHead + configOperations + `approvers:
  treasury-ops:
    slack:
      notify: [channels, dm]
      channels: [C0TREASURY]
      users: [U0JANE, bob@company.com, gone@company.com]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops]
    timeout: 5m
`

func TestSlackDirectMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, dmConfig)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(3)
	id := requestIDOf(t, msgs[0])
	h.waitPosted(id, 3)
	channels := map[string]bool{}
	for _, m := range h.messages(id) {
		channels[m.Channel] = true
	}
	for _, want := range []string{"C0TREASURY", slackfake.DMChannel("U0JANE"), slackfake.DMChannel("U0BOB")} {
		if !channels[want] {
			t.Fatalf("no copy in %s: %v", want, channels)
		}
	}
	// The address nobody has is a delivery failure the other copies name.
	h.waitFor("the failed DM named", func() bool {
		m, _ := h.slack.Message("C0TREASURY", messageIn(t, h.messages(id), "C0TREASURY").TS)
		return strings.Contains(string(m.Blocks), "no Slack user with email gone@company.com")
	})

	// Jane decides from her direct message; every copy closes.
	dm := messageIn(t, h.messages(id), slackfake.DMChannel("U0JANE"))
	h.click("U0JANE", dm.Channel, dm.TS, "approve", id)
	if got := h.await(held); !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitClosed(id, "Approved by Jane Doe")
	if n := len(h.messages(id)); n != 3 {
		t.Fatalf("%d copies, want 3", n)
	}
}

// Bob may not decide from Jane's direct message (a copy is bound to its
// groups and stage, and a DM reaches only its owner anyway): here a
// non-approver clicks in a DM and is refused.
func TestSlackDirectMessageClickByAnotherIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, dmConfig)
	h.start()
	h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(3)
	id := requestIDOf(t, msgs[0])
	h.waitPosted(id, 3)
	dm := messageIn(t, h.messages(id), slackfake.DMChannel("U0JANE"))
	h.click("U0MALLORY", dm.Channel, dm.TS, "approve", id)
	h.waitFor("Mallory told", func() bool { return len(h.ephemeralsFor("U0MALLORY")) == 1 })
	if r := h.status(id); r.answer.Status != "pending" {
		t.Fatalf("after Mallory's click: %s", r.body)
	}
	h.click("U0JANE", dm.Channel, dm.TS, "deny", id)
	h.waitClosed(id, "Denied by")
}
