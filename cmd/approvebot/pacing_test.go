package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/teams"
)

// pacedConfig is baseConfig with Slack's real pace: one post a second per
// channel. The tests run it on a clock they move, so a second of pacing
// costs them nothing.
var pacedConfig = strings.Replace(baseConfig, "channel_interval: 0s", "channel_interval: 1s", 1)

func newPacedHarness(t *testing.T) *harness {
	h := newHarness(t, pacedConfig)
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	return h
}

// burstBody is a request for one group; n makes each body distinct.
func burstBody(group string, n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "approval_request", "rule_name": "burst", "policy_name": "burst", "agent_id": "payments-agent",
		"action": fmt.Sprintf("transfer %04d", n), "approvers": []string{group},
		"requested_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000") + "+00:00",
	})
	return b
}

func (h *harness) asyncAs(token string, body []byte, prefer string) string {
	h.t.Helper()
	r := h.do(http.MethodPost, "/v1/approvals", body, map[string]string{
		"Authorization": "Bearer " + token, "Prefer": strings.Trim("respond-async, "+prefer, ", ")})
	if r.status != http.StatusAccepted && r.status != http.StatusOK {
		h.t.Fatalf("async submit: %d %s", r.status, r.body)
	}
	return r.answer.ApprovalRequestID
}

// finalStatus long-polls until the request is final (it must already be, or
// be about to be, when asked).
func (h *harness) finalStatus(token, id string) answer {
	h.t.Helper()
	r := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, map[string]string{"Authorization": "Bearer " + token})
	if r.status != http.StatusOK {
		h.t.Fatalf("get %s: %d %s", id, r.status, r.body)
	}
	return r.answer
}

// A burst that outruns a channel's pace must not cost anyone a post: 40
// requests from one agent to one group and then one from another agent are
// all posted, one a second, in order. (Each post used to reserve a slot that
// was lost when its call's context expired, and each retry reserved another:
// the other agent's request was never posted.)
func TestBurstToOneChannelLosesNoPost(t *testing.T) {
	t.Parallel()
	h := newPacedHarness(t)
	var ids []string
	for i := range 40 {
		ids = append(ids, h.asyncAs(callerToken, burstBody("treasury-ops", i), ""))
	}
	ids = append(ids, h.asyncAs(otherToken, burstBody("treasury-ops", 40), ""))
	for i := range ids {
		h.waitFor(fmt.Sprintf("post %d of %d", i+1, len(ids)), func() bool { return h.slack.Posts("C0TREASURY") > i })
		if n := h.slack.Posts("C0TREASURY"); n != i+1 {
			t.Fatalf("%d posts after %d s of pacing, want %d: more than one a second", n, i, i+1)
		}
		h.clock.Advance(time.Second)
	}
	msgs := h.slack.Messages()
	for i, id := range ids {
		if got := requestIDOf(t, msgs[i]); got != id {
			t.Fatalf("post %d is request %s, want %s (posts leave in arrival order)", i, got, id)
		}
	}
	for _, id := range ids {
		h.waitPosted(id, 1)
	}
	if got := h.do(http.MethodGet, "/v1/approvals/"+ids[40], nil, map[string]string{"Authorization": "Bearer " + otherToken}); got.answer.Status != "pending" {
		t.Fatalf("the other agent's request is %s, want pending: %s", got.answer.Status, got.body)
	}
}

// A post to an idle channel goes at once, however many posts wait for
// another channel's turn: waiting for a turn holds no outbox worker.
func TestBurstDoesNotHoldUpAnIdleChannel(t *testing.T) {
	t.Parallel()
	h := newPacedHarness(t)
	var burst []string
	for i := range 120 {
		burst = append(burst, h.asyncAs(callerToken, burstBody("treasury-ops", i), ""))
	}
	idle := h.asyncAs(otherToken, burstBody("compliance", 1000), "")
	// The clock has not moved: one post to the busy channel is all its pace
	// allows, and the idle channel's post must not wait behind the rest.
	h.waitFor("the idle channel's post", func() bool { return h.slack.Posts("C0COMPLIANCE") == 1 })
	if n := h.slack.Posts("C0TREASURY"); n != 1 {
		t.Fatalf("%d posts to the busy channel before the idle one's, want 1 (the idle post waited for the burst)", n)
	}
	h.waitPosted(idle, 1)
	// The burst then drains at the channel's pace, every post in its turn.
	for i := 1; i < len(burst); i++ {
		h.clock.Advance(time.Second)
		h.waitFor(fmt.Sprintf("burst post %d", i+1), func() bool { return h.slack.Posts("C0TREASURY") > i })
	}
	for _, id := range burst {
		h.waitPosted(id, 1)
	}
}

// A destination whose turn would come after the request's deadline fails at
// once as "rate limited": the other destinations still get the request and
// say which one did not, and a request left with none ends undeliverable,
// saying so, instead of timing out in silence.
func TestPostThatCannotBeMadeInTimeIsRateLimited(t *testing.T) {
	t.Parallel()
	h := newPacedHarness(t)
	// Ten requests that must be seen within 10 s take the treasury
	// channel's turns at 0 s … 9 s.
	for i := range 10 {
		h.asyncAs(callerToken, burstBody("treasury-ops", i), "wait=10")
	}
	late := h.asyncAs(callerToken, burstBody("treasury-ops", 10), "wait=10")
	got := h.finalStatus(callerToken, late)
	if got.Status != "undeliverable" || got.Approved || !strings.Contains(got.Reason, "rate limited") {
		t.Fatalf("a request whose only channel is booked past its deadline: %s %q, want undeliverable, rate limited", got.Status, got.Reason)
	}

	// A request for both groups: treasury is booked, compliance is free.
	both := h.asyncAs(callerToken, legacyBody("approve-large-transfer"), "wait=10")
	h.waitFor("the compliance message to name the channel that was not reached", func() bool {
		for _, m := range h.messages(both) {
			if m.Channel == "C0COMPLIANCE" && strings.Contains(string(m.Blocks), "C0TREASURY (rate limited)") {
				return true
			}
		}
		return false
	})
	// The fake holds a message a moment before approvebot records it.
	h.waitPosted(both, 1)
	s := h.story(both)
	if s.Request.Status != "pending" {
		t.Fatalf("request with one channel reached is %s, want pending", s.Request.Status)
	}
	for _, d := range s.Request.Destinations {
		want := map[string]string{"C0TREASURY": "failed", "C0COMPLIANCE": "posted"}[d.Channel]
		if d.State != want {
			t.Errorf("destination %s is %s, want %s", d.Channel, d.State, want)
		}
	}
	if n := h.slack.Posts("C0TREASURY"); n != 1 {
		t.Errorf("%d posts to the treasury channel without the clock moving, want 1", n)
	}
}

// Teams is paced by the same scheduler, at its own interval (200 ms between
// new threads in a channel): a burst to one Teams channel holds up neither
// another channel, on Teams or Slack, nor itself beyond its pace.
func TestTeamsBurstIsPacedAndHoldsUpNobody(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.clock = bot.NewManualClock(time.Now())
	th.startInstalled()
	const n = 80 // more than the outbox has workers
	for i := range n {
		th.asyncAs(callerToken, burstBody("payments-teams", i), "")
	}
	burst := func() int {
		c := 0
		for _, p := range th.teams.Posted() {
			if p.ChannelID == teamsApprovals {
				c++
			}
		}
		return c
	}
	// treasury-both: one Slack channel and one Teams channel, both idle.
	idle := th.asyncAs(otherToken, burstBody("treasury-both", 1000), "")
	th.waitFor("the Slack post", func() bool { return th.slack.Posts("C0TREASURY") == 1 })
	waitOn(t, th.teams, "the idle Teams channel's post", th.logs, func() bool { return len(th.teams.Posted()) == burst()+1 })
	if got := burst(); got != 1 {
		t.Fatalf("%d posts to the busy Teams channel before the idle channels' ones, want 1 (the clock has not moved)", got)
	}
	th.waitPosted(idle, 2)
	for i := 1; i < n; i++ {
		th.clock.Advance(teams.DefaultChannelInterval)
		waitOn(t, th.teams, fmt.Sprintf("Teams post %d", i+1), th.logs, func() bool { return burst() > i })
		if got := burst(); got != i+1 {
			t.Fatalf("%d Teams posts after %d intervals, want %d", got, i, i+1)
		}
	}
}
