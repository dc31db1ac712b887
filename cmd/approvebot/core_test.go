package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

func TestApproveFromSlack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()

	held := h.submit(legacyBody("approve-large-transfer", "treasury-ops", "compliance"), auth())
	// The route sends it to both groups' channels.
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	for _, m := range msgs {
		if !m.Actionable {
			t.Fatalf("message in %s shows no buttons", m.Channel)
		}
	}
	treasury := messageIn(t, msgs, "C0TREASURY")

	if r := h.click("U0JANE", "C0TREASURY", treasury.TS, "approve", id); r.status != http.StatusOK {
		t.Fatalf("click answered %d", r.status)
	}
	got := h.await(held)
	if got.status != http.StatusOK || !got.answer.Approved || got.answer.Approver != "jane@company.com" ||
		got.answer.Status != "approved" || got.answer.ApprovalRequestID != id || got.answer.DecidedAt == "" {
		t.Fatalf("agent got %d %s", got.status, got.body)
	}
	// Every copy now reads approved, without buttons.
	h.waitClosed(id, "Approved by Jane Doe")
	h.updatedOnce(id)
}

func TestUsergroupMemberDenies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	compliance := messageIn(t, msgs, "C0COMPLIANCE")

	h.click("U0CARL", "C0COMPLIANCE", compliance.TS, "deny", id)
	got := h.await(held)
	if got.answer.Approved || got.answer.Status != "denied" || got.answer.Approver != "carl@company.com" ||
		!strings.Contains(got.answer.Reason, "Denied by carl@company.com") {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitClosed(id, "Denied by Carl")
}

func TestUnauthorisedClickerChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	treasury := messageIn(t, msgs, "C0TREASURY")

	h.click("U0MALLORY", "C0TREASURY", treasury.TS, "approve", id)
	h.waitFor("ephemeral to Mallory", func() bool { return len(h.ephemeralsFor("U0MALLORY")) == 1 })
	eph := h.ephemeralsFor("U0MALLORY")[0]
	if !strings.Contains(eph.Text, "not an approver for treasury-ops, compliance") {
		t.Fatalf("Mallory was told %q", eph.Text)
	}
	status := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth())
	if status.answer.Status != "pending" || status.answer.Approved {
		t.Fatalf("after an unauthorised click: %s", status.body)
	}
	for _, m := range h.messages(id) {
		if m.Updates != 0 || !m.Actionable {
			t.Fatalf("message in %s changed after an unauthorised click", m.Channel)
		}
	}
	// Jane may still decide, and a later click is told it is over.
	h.click("U0JANE", "C0TREASURY", treasury.TS, "approve", id)
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
	h.click("U0CARL", "C0COMPLIANCE", messageIn(t, msgs, "C0COMPLIANCE").TS, "deny", id)
	h.waitFor("late click told", func() bool { return len(h.ephemeralsFor("U0CARL")) == 1 })
	if e := h.ephemeralsFor("U0CARL")[0]; !strings.Contains(e.Text, "already approved by Jane Doe") {
		t.Fatalf("late clicker was told %q", e.Text)
	}
}

func TestBadSignaturesAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessagesIn(2)
	ts := messageIn(t, msgs, "C0TREASURY").TS

	cases := map[string]response{
		"wrong secret":          h.clickAt("U0JANE", "C0TREASURY", ts, "approve", id, h.now(), "not-the-secret-0000000000000000"),
		"timestamp 6 min old":   h.clickAt("U0JANE", "C0TREASURY", ts, "approve", id, h.now().Add(-6*time.Minute), signingSecret),
		"timestamp 6 min ahead": h.clickAt("U0JANE", "C0TREASURY", ts, "approve", id, h.now().Add(6*time.Minute), signingSecret),
	}
	unsigned := h.do(http.MethodPost, "/slack/interactions", []byte("payload=%7B%7D"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	cases["no signature"] = unsigned
	for name, r := range cases {
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, r.status)
		}
	}
	if got := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); got.answer.Status != "pending" {
		t.Fatalf("request changed by unsigned clicks: %s", got.body)
	}
}

func TestTimeoutIsADenialThatSaysSo(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth("Prefer", "wait=1"))
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	h.clock.Advance(time.Second - time.Millisecond)
	if got := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); got.answer.Status != "pending" {
		t.Fatalf("before its deadline the request is %s, want pending", got.body)
	}
	h.clock.Advance(time.Millisecond)
	got := h.await(held)
	if got.answer.Approved || got.answer.Status != "timed_out" || got.answer.Approver != "system:timeout" ||
		!strings.Contains(got.answer.Reason, "timed out after 1 s") {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitClosed(id, "Expired")
	// A click after expiry changes nothing and says why.
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	h.waitFor("late click told", func() bool { return len(h.ephemeralsFor("U0JANE")) == 1 })
	if e := h.ephemeralsFor("U0JANE")[0]; !strings.Contains(e.Text, "expired") {
		t.Fatalf("Jane was told %q", e.Text)
	}
}

func TestUnknownGroupIsNoRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	got := h.await(h.submit(legacyBody("some-other-rule", "treasury-ops", "payroll"), auth()))
	if got.status != http.StatusOK || got.answer.Approved || got.answer.Status != "no_route" ||
		!strings.Contains(got.answer.Reason, "payroll") {
		t.Fatalf("agent got %d %s", got.status, got.body)
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Fatalf("%d messages posted for an unroutable request", n)
	}
}

func TestSlackUnreachableIsUndeliverable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.env["SLACK_API_URL"] = "http://127.0.0.1:1/api/"
	h.env["DELIVERY_TIMEOUT"] = "1s"
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	idle := h.clock.Timers()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	// Both posts failed: the deadline and a retry for each are armed.
	h.waitTimers(idle + 3)
	// Retried just inside delivery.timeout (Jump runs the retries late, at
	// the new time): failed again, retried again.
	h.clock.Jump(time.Second - time.Millisecond)
	h.waitTimers(idle + 3)
	if got := h.status(id); got.answer.Status != "pending" {
		t.Fatalf("inside delivery.timeout the request is %s, want pending", got.body)
	}
	// Past it, the next failures give up.
	h.clock.Jump(time.Second)
	got := h.finalStatus(callerToken, id)
	if got.Approved || got.Status != "undeliverable" ||
		!strings.Contains(got.Reason, "could not be shown to any approver") ||
		!strings.Contains(got.Reason, "C0TREASURY") {
		t.Fatalf("agent got %+v", got)
	}
}

func TestPermanentSlackErrorOnOneChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	h.slack.FailNext("chat.postMessage", 1, slackfake.SlackError("channel_not_found"))
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	// One channel failed; the other shows the request and says which failed.
	h.waitFor("the surviving message warns", func() bool {
		for _, m := range h.slack.Messages() {
			if strings.Contains(string(m.Blocks), "Not delivered to slack") && strings.Contains(string(m.Blocks), "channel_not_found") {
				return true
			}
		}
		return false
	})
	msgs := h.slack.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	id := requestIDOf(t, msgs[0])
	user := map[string]string{"C0TREASURY": "U0JANE", "C0COMPLIANCE": "U0CARL"}[msgs[0].Channel]
	h.click(user, msgs[0].Channel, msgs[0].TS, "approve", id)
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
}

func TestRateLimitedThenPosted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	h.slack.FailNext("chat.postMessage", 2, slackfake.RateLimited{RetryAfter: time.Second})
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	if n := h.slack.CallCount("chat.postMessage"); n != 4 {
		t.Errorf("chat.postMessage called %d times, want 4 (2 rate-limited, 2 posted)", n)
	}
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
}

func TestConcurrentClicksDecideOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	for i := range 25 {
		id := "U0APPROVER" + string(rune('A'+i))
		h.slack.AddUser(id, "Approver "+id, strings.ToLower(id)+"@company.com")
	}
	var members []string
	for i := range 25 {
		members = append(members, "U0APPROVER"+string(rune('A'+i)))
	}
	h.slack.AddUsergroup("S0COMPLIANCE", members...)
	h.start()
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	compliance := messageIn(t, msgs, "C0COMPLIANCE")

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := members[i%25]
			action := "approve"
			if i%2 == 1 {
				action = "deny"
			}
			if r := h.click(user, "C0COMPLIANCE", compliance.TS, action, id); r.status != http.StatusOK {
				t.Errorf("click %d answered %d", i, r.status)
			}
		}()
	}
	wg.Wait()
	got := h.await(held)
	if got.answer.Status != "approved" && got.answer.Status != "denied" {
		t.Fatalf("agent got %s", got.body)
	}
	// All 50 clicks answered: one decided, 49 were told it was decided already.
	h.waitFor("49 refusals", func() bool { return len(h.slack.Ephemerals()) >= 50 })
	decided := 0
	for _, e := range h.slack.Ephemerals() {
		if strings.HasPrefix(e.Text, "You approved") || strings.HasPrefix(e.Text, "You denied") {
			decided++
		}
	}
	if decided != 1 {
		t.Fatalf("%d clicks decided the request, want exactly 1", decided)
	}
	h.waitClosed(id, "")
	h.stop() // flush: no update may still be in flight
	h.updatedOnce(id)
}

func TestRestartKeepsPendingRequests(t *testing.T) {
	h := newHarness(t, baseConfig)
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	id := h.pendingID(legacyBody("approve-large-transfer"))
	short := h.pendingID(legacyBody("approve-large-transfer"), "Prefer", "wait=2")
	h.waitMessages(id, 2)
	h.waitMessages(short, 2)
	h.stop()

	// While approvebot is down, the short request's deadline passes: the
	// next start's clock reads 2.5 s later.
	h.clock = bot.NewManualClock(h.clock.Now().Add(2500 * time.Millisecond))
	h.start()

	// The expired one is answered as a timeout and its copies updated.
	got := h.do(http.MethodGet, "/v1/approvals/"+short+"?wait=30", nil, auth())
	if got.answer.Status != "timed_out" {
		t.Fatalf("request that expired while down: %s", got.body)
	}
	h.waitClosed(short, "")
	// The other is still pending, and a click on its old message counts.
	msgs := h.messages(id)
	if n := len(msgs); n != 2 {
		t.Fatalf("%d messages for the pending request after restart, want 2 (no repost)", n)
	}
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	got = h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth())
	if !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("after restart: %s", got.body)
	}
}

func TestCallerAuthAndBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	body := legacyBody("approve-large-transfer")
	cases := []struct {
		name   string
		body   []byte
		header map[string]string
		status int
		want   string
	}{
		{"no token", body, nil, 401, "bearer token"},
		{"wrong token", body, map[string]string{"Authorization": "Bearer nope"}, 401, "bearer token"},
		{"not JSON", []byte("{"), auth(), 400, ""},
		{"wrong type", bytes.Replace(body, []byte(`"approvers":[]`), []byte(`"approvers":"treasury-ops"`), 1), auth(), 400, "approvers"},
		{"unknown type", bytes.Replace(body, []byte(`"approval_request"`), []byte(`"approval_response"`), 1), auth(), 400, "type"},
		{"too large", append(bytes.Repeat([]byte(" "), 70<<10), body...), auth(), 413, "exceeds"},
	}
	for _, c := range cases {
		r := h.do(http.MethodPost, "/v1/approvals", c.body, c.header)
		if r.status != c.status || !strings.Contains(r.answer.Error, c.want) || r.answer.Approved {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	if strings.Contains(h.logs.String(), callerToken) {
		t.Fatal("a caller token reached the logs")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	if r := h.do(http.MethodGet, "/healthz", nil, nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := h.do(http.MethodGet, "/readyz", nil, nil); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
}

// helpers

func (h *harness) waitMessagesIn(n int) []slackfake.Message {
	h.t.Helper()
	var got []slackfake.Message
	h.waitFor("messages", func() bool {
		got = h.slack.Messages()
		return len(got) >= n
	})
	// A click counts only on a message the store has recorded: wait for
	// every message of each request, not its first.
	per := map[string]int{}
	for _, m := range got {
		per[requestIDOf(h.t, m)]++
	}
	for _, id := range requestIDs(h.t, got) {
		h.waitPosted(id, per[id])
	}
	return got
}

func messageIn(t *testing.T, msgs []slackfake.Message, channel string) slackfake.Message {
	t.Helper()
	for _, m := range msgs {
		if m.Channel == channel {
			return m
		}
	}
	t.Fatalf("no message in %s", channel)
	return slackfake.Message{}
}

// requestIDOf reads the request id from the message's Approve button.
func requestIDOf(t *testing.T, m slackfake.Message) string {
	t.Helper()
	// The buttons carry approvebot's id for the request; the message also
	// shows the agent's approval_request_id, which may differ.
	if v := buttonValueRE.FindSubmatch(m.Blocks); v != nil {
		return string(v[1])
	}
	i := bytes.Index(m.Blocks, []byte("Request: ar_"))
	if i < 0 {
		t.Fatalf("no request id in message %s", m.Blocks)
	}
	return string(m.Blocks[i+len("Request: ") : i+len("Request: ")+35])
}

var buttonValueRE = regexp.MustCompile(`"action_id":"(?:approve|approve_comment|approve_confirmed|deny|deny_reason|view_all)","value":"([^"]+)"`)

func requestIDs(t *testing.T, msgs []slackfake.Message) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range msgs {
		if id := requestIDOf(t, m); !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func TestMemberOfAnotherOrganisationIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	// Bob is listed by email; someone in a Slack Connect partner workspace
	// uses the same address.
	h.slack.AddExternalUser("U0EVE", "Eve", "bob@company.com", "T0OTHERCORP")
	h.start()
	id := h.pendingID(legacyBody("close", "branch-manager"))
	msg := h.waitMessages(id, 1)[0]
	h.click("U0EVE", "C0BRANCH", msg.TS, "approve", id)
	h.waitFor("Eve told", func() bool { return len(h.ephemeralsFor("U0EVE")) == 1 })
	if e := h.ephemeralsFor("U0EVE")[0]; !strings.Contains(e.Text, "of another organisation") {
		t.Fatalf("Eve was told %q", e.Text)
	}
	h.click("U0BOB", "C0BRANCH", msg.TS, "approve", id)
	got := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth())
	if !got.answer.Approved || got.answer.Approver != "bob@company.com" {
		t.Fatalf("after Bob's click: %s", got.body)
	}
}

// waitClosed waits until every copy of the request's message has lost its
// buttons and shows text.
func (h *harness) waitClosed(id, text string) {
	h.t.Helper()
	h.waitFor("every copy of "+id+" closed, showing "+strconv.Quote(text), func() bool {
		msgs := h.messages(id)
		for _, m := range msgs {
			if m.Actionable || !strings.Contains(string(m.Blocks), text) {
				return false
			}
		}
		return len(msgs) > 0
	})
}

// updatedOnce checks that every copy of the request's message was updated
// exactly once.
func (h *harness) updatedOnce(id string) {
	h.t.Helper()
	for _, m := range h.messages(id) {
		if m.Updates != 1 {
			h.t.Errorf("message in %s updated %d times, want 1", m.Channel, m.Updates)
		}
	}
}
