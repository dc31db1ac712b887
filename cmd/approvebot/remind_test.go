package main

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/teams/teamsfake"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

func remindConfig(reminders string) string {
	return configHead + configOperations + `approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE, bob@company.com, gone@company.com]
  compliance:
    slack:
      channels: [C0COMPLIANCE]
      usergroups: [S0COMPLIANCE]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops, compliance]
    quorum: any
    timeout: 3h
` + reminders
}

// waitReplies waits until the thread of m holds n replies, and returns them.
func (h *harness) waitReplies(m slackfake.Message, n int) []slackfake.Reply {
	h.t.Helper()
	var got []slackfake.Reply
	h.waitFor("replies under "+m.Channel+" "+m.TS, func() bool {
		got = h.slack.Replies(m.Channel, m.TS)
		return len(got) >= n
	})
	return got
}

// Reminders come at 10 m and 1 h, in each message's thread, naming the
// group's approvers there (user ids and user groups as mentions, emails as
// they are); the vote and the outcome follow in the threads, and no
// reminder comes once the request is decided.
func TestRemindersAndHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t, remindConfig("    reminders: [10m, 1h, 2h]\n"))
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	treasury, compliance := h.messageAt(id, "C0TREASURY"), h.messageAt(id, "C0COMPLIANCE")
	h.waitPosted(id, 2)

	h.clock.Advance(9 * time.Minute)
	if n := h.story(id).count(bot.EventReminder); n != 0 {
		t.Fatalf("%d reminders before 10 m", n)
	}
	h.clock.Advance(time.Minute)
	tr := h.waitReplies(treasury, 1)
	co := h.waitReplies(compliance, 1)
	if !strings.Contains(tr[0].Text, "Reminder") || !strings.Contains(tr[0].Text, "<@U0JANE>") || !strings.Contains(tr[0].Text, "<@U0BOB>") ||
		!strings.Contains(tr[0].Text, " gone@company.com") {
		t.Fatalf("treasury reminder %q: want the reminder naming <@U0JANE> bob@company.com as <@U0BOB>, and gone@company.com (unknown to Slack) as it is", tr[0].Text)
	}
	if strings.Contains(tr[0].Text, "subteam") {
		t.Fatalf("treasury reminder %q names compliance's user group", tr[0].Text)
	}
	if !strings.Contains(co[0].Text, "<!subteam^S0COMPLIANCE>") || strings.Contains(co[0].Text, "U0JANE") {
		t.Fatalf("compliance reminder %q: want <!subteam^S0COMPLIANCE> only", co[0].Text)
	}

	h.clock.Advance(50 * time.Minute)
	h.waitReplies(treasury, 2)
	h.waitReplies(compliance, 2)
	if n := h.slack.Posts("C0TREASURY"); n != 1 {
		t.Fatalf("%d messages in C0TREASURY, want the one: reminders are replies", n)
	}

	if r := h.click("U0JANE", treasury.Channel, treasury.TS, "approve", id); r.status != http.StatusOK {
		t.Fatalf("click: %d %s", r.status, r.body)
	}
	h.waitClosed(id, "Approved")
	for _, m := range []slackfake.Message{treasury, compliance} {
		got := h.waitReplies(m, 4)
		if !strings.Contains(got[2].Text, "Jane Doe approved") {
			t.Fatalf("vote reply under %s: %q", m.Channel, got[2].Text)
		}
		if !strings.Contains(got[3].Text, "Approved") {
			t.Fatalf("outcome reply under %s: %q", m.Channel, got[3].Text)
		}
	}

	h.clock.Advance(90 * time.Minute) // past the 2 h reminder
	if n := h.story(id).count(bot.EventReminder); n != 2 {
		t.Fatalf("%d reminders audited, want 2: none after the decision", n)
	}
	if n := len(h.slack.Replies(treasury.Channel, treasury.TS)); n != 4 {
		t.Fatalf("%d replies under the treasury message after the decision, want 4", n)
	}
}

// A restart after reminders came due sends the latest owed one once (not
// the whole backlog), and a second restart does not send it again.
func TestReminderAfterRestartSentOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, remindConfig("    reminders: [10m, 1h]\n    before_deadline: 5m\n"))
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	treasury := h.messageAt(id, "C0TREASURY")
	h.waitPosted(id, 2)
	h.stop()

	h.clock.Advance(70 * time.Minute) // both 10 m and 1 h are owed
	h.start()
	if first := h.waitReplies(treasury, 1); !strings.Contains(first[0].Text, "Reminder") {
		t.Fatalf("first reply after the restart: %q", first[0].Text)
	}
	h.stop()
	h.start()
	// A vote's reply goes through the same message's queue after anything
	// the restart still owed it.
	if r := h.click("U0JANE", treasury.Channel, treasury.TS, "deny", id); r.status != http.StatusOK {
		t.Fatalf("click: %d %s", r.status, r.body)
	}
	got := h.waitReplies(treasury, 3)
	reminders := 0
	for _, r := range got {
		if strings.Contains(r.Text, "Reminder") {
			reminders++
		}
	}
	if reminders != 1 || len(got) != 3 {
		t.Fatalf("replies after two restarts: %q; want one reminder, then the vote and the outcome", texts(got))
	}
	if n := h.story(id).count(bot.EventReminder); n != 1 {
		t.Fatalf("%d reminders audited, want 1", n)
	}
}

// before_deadline reminds that long before the deadline.
func TestReminderBeforeDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, remindConfig("    before_deadline: 5m\n"))
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	treasury := h.messageAt(id, "C0TREASURY")
	h.waitPosted(id, 2)
	h.clock.Advance(3*time.Hour - 6*time.Minute)
	if n := h.story(id).count(bot.EventReminder); n != 0 {
		t.Fatalf("%d reminders 6 m before the deadline", n)
	}
	h.clock.Advance(time.Minute)
	h.waitReplies(treasury, 1)
}

func texts(rs []slackfake.Reply) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Text
	}
	return out
}

const escalateConfig = configHead + configOperations + `approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
  treasury-leads:
    slack:
      channels: [C0LEADS]
      users: [U0LEAD]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops]
    timeout: 1h
    escalate: [{after: 15m, approvers: [treasury-leads]}]
`

// A request still undecided at 15 m is escalated: the leads' channel gets
// it, every message says so (thread and top), and a lead's approval decides
// it. Before the escalation the leads have no message to decide from, and
// nobody outside the configured groups may decide after it.
func TestEscalation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, escalateConfig)
	h.slack.AddUser("U0LEAD", "Lee Lead", "lee@company.com")
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	treasury := h.messageAt(id, "C0TREASURY")
	h.waitPosted(id, 1)

	h.clock.Advance(14 * time.Minute)
	if n := h.story(id).count(bot.EventEscalated); n != 0 || h.slack.Posts("C0LEADS") != 0 {
		t.Fatalf("escalated before 15 m: %d records, %d posts", n, h.slack.Posts("C0LEADS"))
	}
	// A lead clicking the treasury message is no approver of it.
	h.click("U0LEAD", treasury.Channel, treasury.TS, "approve", id)
	if got := h.told("U0LEAD", 1); !strings.Contains(got, "not an approver") {
		t.Fatalf("lead before the escalation was told %q", got)
	}

	h.clock.Advance(time.Minute)
	leads := h.messageAt(id, "C0LEADS")
	h.waitPosted(id, 2)
	got := h.waitReplies(treasury, 1)
	if !strings.Contains(got[0].Text, "Escalated to treasury-leads") {
		t.Fatalf("treasury thread: %q", got[0].Text)
	}
	h.waitFor("the treasury message saying it was escalated", func() bool {
		m, _ := h.slack.Message(treasury.Channel, treasury.TS)
		return strings.Contains(string(m.Blocks), "escalated to treasury-leads")
	})
	if n := h.story(id).count(bot.EventEscalated); n != 1 {
		t.Fatalf("%d escalations audited, want 1", n)
	}

	// Someone in neither group may not decide from the leads' message.
	h.click("U0MALLORY", leads.Channel, leads.TS, "approve", id)
	if got := h.told("U0MALLORY", 1); !strings.Contains(got, "Nothing changed") {
		t.Fatalf("outsider was told %q", got)
	}
	h.click("U0LEAD", leads.Channel, leads.TS, "approve", id)
	h.waitClosed(id, "Approved")
	r := h.status(id)
	if !r.answer.Approved || r.answer.Approver != "lee@company.com" {
		t.Fatalf("answer after the lead approved: %s", r.body)
	}
	h.waitFor("the vote in the treasury thread", func() bool {
		for _, r := range h.slack.Replies(treasury.Channel, treasury.TS) {
			if strings.Contains(r.Text, "Lee Lead approved") {
				return true
			}
		}
		return false
	})
}

// On Teams a reminder is a reply in the card's thread with a mention entity
// for each listed approver; the vote and the outcome follow in the thread.
func TestTeamsReminderAndHistory(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	config := strings.Replace(teamsConfig, "approvers: [payments-teams]\n    timeout: 5m\n", "approvers: [payments-teams]\n    timeout: 1h\n    reminders: [10m]\n", 1)
	if err := os.WriteFile(th.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	th.clock = bot.NewManualClock(time.Now())
	th.startInstalled()
	held := th.submit(legacyBody("teams-transfer"), auth())
	card, id := th.teamsCardIn(teamsApprovals, held)
	th.waitPosted(id, 1)

	th.clock.Advance(10 * time.Minute)
	var got []teamsfake.Reply
	waitOn(t, th.teams, "a reminder in the card's thread", th.logs, func() bool {
		got = th.teams.Replies(card.ConversationID)
		return len(got) >= 1
	})
	var ids []string
	for _, m := range got[0].Mentions {
		ids = append(ids, m.ID)
	}
	if !strings.Contains(got[0].Text, "Reminder") || !slices.Equal(ids, []string{"jane@company.com", "carl@company.com", teamsSam.AadObjectID}) {
		t.Fatalf("reminder %q mentions %v", got[0].Text, ids)
	}

	th.teamsClick(teamsJane, card, "allow")
	if a := th.await(held); !a.answer.Approved {
		t.Fatalf("agent got %s", a.body)
	}
	waitOn(t, th.teams, "the vote and the outcome in the thread", th.logs, func() bool {
		got = th.teams.Replies(card.ConversationID)
		return len(got) >= 3
	})
	if !strings.Contains(got[1].Text, "Jane Doe approved") || !strings.Contains(got[2].Text, "Approved by Jane Doe") || len(got[1].Mentions) != 0 {
		t.Fatalf("thread after the vote: %+v", got)
	}
}

// In a two-stage chain, each vote names its stage, the next stage's opening
// is told in the first stage's thread, and the next stage's message starts
// a thread of its own that gets what follows.
func TestThreadHistoryAcrossStages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, configHead+configOperations+twoGroups+`chains:
  two:
    version: "1"
    stages:
      - {approvers: [treasury-ops]}
      - {approvers: [compliance]}
routes:
  - match: {rule_name: approve-large-transfer}
    chain: two
`)
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	treasury := h.messageAt(id, "C0TREASURY")
	h.waitPosted(id, 1)
	h.click("U0JANE", treasury.Channel, treasury.TS, "approve", id)
	compliance := h.messageAt(id, "C0COMPLIANCE")
	got := h.waitReplies(treasury, 2)
	if got[0].Text != "Jane Doe approved stage 1 of 2" || !strings.HasPrefix(got[1].Text, "Stage 2 of 2 opened: waiting for compliance") {
		t.Fatalf("stage 1 thread: %q", texts(got))
	}
	h.waitPosted(id, 2)
	h.click("U0CARL", compliance.Channel, compliance.TS, "deny", id)
	h.waitClosed(id, "Denied")
	got = h.waitReplies(treasury, 4)
	own := h.waitReplies(compliance, 2)
	if got[2].Text != "Carl denied stage 2 of 2" || own[0].Text != got[2].Text || !strings.Contains(own[1].Text, "Denied by Carl") || own[1].Text != got[3].Text {
		t.Fatalf("threads after the denial: stage 1 %q, stage 2 %q", texts(got), texts(own))
	}
}
