package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

const appToken = "xapp-1-A0FAKEAPP-1234-abcdef"

// socketConfig is baseConfig with Slack in Socket Mode and no signing
// secret: nothing comes in over HTTP.
var socketConfig = strings.Replace(
	strings.Replace(baseConfig, "  signing_secret: ${SLACK_SIGNING_SECRET}\n", "", 1),
	"  channel_interval: 0s\n", "  channel_interval: 0s\n  socket_mode: true\n  app_token: ${SLACK_APP_TOKEN}\n", 1)

// socketRequest starts approvebot in Socket Mode with one async request
// posted, and returns its id and its treasury message.
func socketRequest(t *testing.T) (*harness, string, slackfake.Message) {
	t.Helper()
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)
	id := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(id, 2)
	return h, id, messageIn(t, msgs, "C0TREASURY")
}

func newSocketHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, socketConfig)
	h.env["SLACK_APP_TOKEN"] = appToken
	h.slack.EnableSocketMode(appToken)
	return h
}

// socketClick sends a click as an interactive envelope and returns its id.
func (h *harness) socketClick(user, channel, ts, action, requestID string) string {
	return h.slack.SendInteractive(slackfake.BlockActionPayload(slackfake.Click{
		UserID: user, UserName: strings.ToLower(user), Channel: channel, MessageTS: ts,
		ActionID: action, Value: requestID,
	}))
}

func (h *harness) waitAcked(envelope string) {
	h.t.Helper()
	h.waitFor("ack of "+envelope, func() bool { _, acks := h.slack.Envelope(envelope); return acks > 0 })
}

func (h *harness) waitSocketReady(ready bool) {
	h.t.Helper()
	want := http.StatusOK
	if !ready {
		want = http.StatusServiceUnavailable
	}
	// /readyz changes without a platform call the fake could announce.
	eventually(h.t, fmt.Sprintf("/readyz to answer %d", want), func() bool {
		return h.do(http.MethodGet, "/readyz", nil, nil).status == want
	})
}

func TestSocketModeClickDecides(t *testing.T) {
	t.Parallel()
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)

	held := h.submit(legacyBody("approve-large-transfer", "treasury-ops", "compliance"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	treasury := messageIn(t, msgs, "C0TREASURY")

	env := h.socketClick("U0JANE", "C0TREASURY", treasury.TS, "approve", id)
	got := h.await(held)
	if !got.answer.Approved || got.answer.Approver != "jane@company.com" || got.answer.Status != "approved" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitAcked(env)
	h.waitClosed(id, "Approved by Jane Doe")

	// No inbound interactivity endpoint: a signed HTTP click goes nowhere.
	if r := h.click("U0JANE", "C0TREASURY", treasury.TS, "approve", id); r.status != http.StatusNotFound {
		t.Fatalf("HTTP interaction in Socket Mode answered %d, want 404", r.status)
	}
}

// A redelivered envelope (Slack resends one whose ack came late) is
// acknowledged again but handled once: the clicker is told once.
func TestSocketModeRedeliveryHandledOnce(t *testing.T) {
	t.Parallel()
	h, id, treasury := socketRequest(t)

	refusals := func() int {
		story := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
		return strings.Count(string(story.body), `"type":"click_refused"`)
	}
	env := h.socketClick("U0MALLORY", "C0TREASURY", treasury.TS, "approve", id)
	h.waitAcked(env)
	h.waitFor("Mallory told", func() bool { return len(h.ephemeralsFor("U0MALLORY")) == 1 })
	if n := refusals(); n != 1 {
		t.Fatalf("%d refused clicks audited, want 1", n)
	}
	h.slack.Resend(env)
	h.waitFor("second ack", func() bool { _, acks := h.slack.Envelope(env); return acks == 2 })
	// A click is acknowledged once its refusal is committed, so a second
	// handling would show here.
	if n := refusals(); n != 1 {
		t.Fatalf("a redelivered click was handled again: %d refusals audited", n)
	}
	if d, _ := h.slack.Envelope(env); d != 2 {
		t.Fatalf("envelope delivered %d times, want 2", d)
	}
}

// Clicks keep arriving while the socket drops and Slack asks for a refresh:
// every acknowledged click is decided and none is counted twice.
func TestSocketModeDropMidBurstLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 24
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)

	type pending struct {
		id, ts string
		held   <-chan response
	}
	var reqs []pending
	for i := range n {
		body := legacyBody(fmt.Sprintf("burst-%02d", i), "treasury-ops")
		held := h.submit(body, auth())
		var id, ts string
		h.waitFor("message of request "+fmt.Sprint(i), func() bool {
			for _, m := range h.slack.Messages() {
				if strings.Contains(m.Text, fmt.Sprintf("burst-%02d", i)) || strings.Contains(string(m.Blocks), fmt.Sprintf("burst-%02d", i)) {
					id, ts = requestIDOf(t, m), m.TS
					return id != ""
				}
			}
			return false
		})
		h.waitPosted(id, 1)
		reqs = append(reqs, pending{id: id, ts: ts, held: held})
	}

	var envs []string
	for i, r := range reqs {
		switch i {
		case n / 3:
			// Clicks sent from here on wait for the next connection.
			h.slack.DropSocket()
		case n / 2:
			h.waitFor("reconnect after the drop", func() bool { opened, open := h.slack.SocketConnections(); return opened >= 2 && open == 1 })
		case 2 * n / 3:
			h.slack.DisconnectSocket("refresh_requested")
		}
		// Jane clicks twice on every request: a second count would be a
		// second vote, which must never happen.
		envs = append(envs, h.socketClick("U0JANE", "C0TREASURY", r.ts, "approve", r.id))
		if i%4 == 0 {
			envs = append(envs, h.socketClick("U0JANE", "C0TREASURY", r.ts, "approve", r.id))
		}
	}
	h.waitFor("reconnect after the refresh", func() bool { opened, _ := h.slack.SocketConnections(); return opened >= 3 })
	for _, e := range envs {
		h.waitAcked(e)
	}
	for i, r := range reqs {
		got := h.await(r.held)
		if !got.answer.Approved || got.answer.Approver != "jane@company.com" {
			t.Fatalf("request %d: agent got %s", i, got.body)
		}
	}
	// Each request has exactly one counted vote in its story.
	for i, r := range reqs {
		story := h.do(http.MethodGet, "/admin/requests/"+r.id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
		if c := strings.Count(string(story.body), `"type":"approval_chain_entry"`); c != 1 {
			t.Fatalf("request %d has %d chain entries, want 1: %s", i, c, story.body)
		}
	}
}

func TestSocketModeReadinessFollowsTheSocket(t *testing.T) {
	t.Parallel()
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)
	// The socket drops and Slack refuses new connections for a while:
	// /readyz fails until the client is connected again.
	h.slack.FailFor("apps.connections.open", time.Hour, slackfake.Status(500))
	h.slack.DropSocket()
	h.waitSocketReady(false)
	h.slack.Heal("apps.connections.open")
	h.waitSocketReady(true)
}

func TestSocketModeRefusedTokenStopsTheService(t *testing.T) {
	t.Parallel()
	h := newSocketHarness(t)
	h.env["SLACK_APP_TOKEN"] = "xapp-1-revoked"
	h.start()
	select {
	case err := <-h.done:
		h.cancel = nil // stopped by itself
		if err == nil || !strings.Contains(err.Error(), "invalid_auth") {
			t.Fatalf("serve ended with %v, want the refused token named", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve kept running with a refused app-level token\nlogs:\n%s", h.logs)
	}
	if !strings.Contains(h.logs.String(), "check slack.app_token") {
		t.Errorf("logs do not say what to fix:\n%s", h.logs)
	}
}

// An envelope is acknowledged once its vote is committed: when Slack has
// the acknowledgement, the vote is already in the request's story.
func TestSocketModeAcknowledgesOnceCommitted(t *testing.T) {
	t.Parallel()
	h, id, treasury := socketRequest(t)

	entriesAtAck := make(chan int, 1)
	h.slack.OnAck(func(string) {
		story := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
		entriesAtAck <- strings.Count(string(story.body), `"type":"approval_chain_entry"`)
	})
	env := h.socketClick("U0JANE", "C0TREASURY", treasury.TS, "approve", id)
	h.waitAcked(env)
	if n := <-entriesAtAck; n != 1 {
		t.Fatalf("acknowledged with %d chain entries committed, want the vote already in", n)
	}
}

// Envelopes whose acknowledgement was lost are sent again on the next
// connection; their clicks were taken already, so they are acknowledged
// and not handled a second time.
func TestSocketModeUnacknowledgedClicksAreResentAndCountedOnce(t *testing.T) {
	t.Parallel()
	const n = 4
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)
	var ids, envs []string
	for i := range n {
		id := h.pendingID(legacyBody(fmt.Sprintf("lost-ack-%d", i), "treasury-ops"))
		msgs := h.waitMessages(id, 1)
		ids = append(ids, id)
		h.slack.IgnoreAcks(true)
		envs = append(envs, h.socketClick("U0JANE", "C0TREASURY", msgs[0].TS, "approve", id))
	}
	for _, id := range ids {
		h.waitFor("decision of "+id, func() bool { return h.status(id).answer.Status == "approved" })
	}
	h.slack.DropSocket()
	h.slack.IgnoreAcks(false)
	for _, e := range envs {
		h.waitAcked(e)
		if d, _ := h.slack.Envelope(e); d < 2 {
			t.Fatalf("envelope %s delivered %d times, want it sent again after the drop", e, d)
		}
	}
	for _, id := range ids {
		s := h.story(id)
		if s.count("approval_chain_entry") != 1 || s.count("click_refused") != 0 {
			t.Fatalf("request %s: %d entries, %d refusals; a resent click was handled again", id, s.count("approval_chain_entry"), s.count("click_refused"))
		}
	}
}
