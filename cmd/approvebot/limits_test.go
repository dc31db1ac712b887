package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
)

// limitedConfig gives other-agent small limits of its own.
func limitedConfig(limits string) string {
	return strings.Replace(baseConfig, "    token: other-agent-token-0123456789\n",
		"    token: other-agent-token-0123456789\n"+limits, 1)
}

type refusal struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	Limit    string `json:"limit"`
	Approved bool   `json:"approved"`
}

func (h *harness) submitAs(token string, body []byte, header ...string) response {
	h.t.Helper()
	m := map[string]string{"Authorization": "Bearer " + token, "Prefer": "respond-async"}
	for i := 0; i+1 < len(header); i += 2 {
		m[header[i]] = header[i+1]
	}
	return h.do(http.MethodPost, "/v1/approvals", body, m)
}

// waitMetric waits until approvebot's metrics show name at value.
func (h *harness) waitMetric(name, value string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := h.do(http.MethodGet, "/metrics", nil, nil)
		if strings.Contains("\n"+string(r.body), "\n"+name+" "+value+"\n") {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("metric %s never reached %s:\n%s", name, value, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// opened reads how many requests approvebot has opened, from its metrics.
func (h *harness) opened() string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/metrics", nil, nil)
	for _, line := range strings.Split(string(r.body), "\n") {
		if strings.HasPrefix(line, `approvebot_requests_total{schema="legacy"}`) {
			return strings.TrimSpace(strings.TrimPrefix(line, `approvebot_requests_total{schema="legacy"}`))
		}
	}
	return "0"
}

func wantRefused(t *testing.T, r response, limit, retryAfter string) {
	t.Helper()
	var got refusal
	if r.status != http.StatusTooManyRequests || json.Unmarshal(r.body, &got) != nil || got.Limit != limit || got.Approved ||
		got.Code != "too_many_requests" || !strings.Contains(got.Error, "callers[]."+limit) {
		t.Fatalf("got %d %s, want 429 naming limit %q", r.status, r.body, limit)
	}
	if ra := r.header.Get("Retry-After"); ra != retryAfter {
		t.Fatalf("Retry-After %q, want %q", ra, retryAfter)
	}
}

// A caller over its request rate is answered 429 with Retry-After and the
// limit's name, before anything is recorded; once its bucket refills it is
// served again. Another caller is not affected.
func TestCallerRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, limitedConfig("    rate: 1/m\n    burst: 2\n"))
	h.clock = bot.NewManualClock(time.Now())
	h.start()
	for i := range 2 {
		if r := h.submitAs(otherToken, burstBody("treasury-ops", i)); r.status != http.StatusAccepted {
			t.Fatalf("request %d within the burst: %d %s", i, r.status, r.body)
		}
	}
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 2)), "rate", "60")
	if n := h.opened(); n != "2" {
		t.Fatalf("%s requests opened, want 2: the refused one must leave no trace", n)
	}
	if r := h.submitAs(callerToken, burstBody("treasury-ops", 3)); r.status != http.StatusAccepted {
		t.Fatalf("another caller: %d %s", r.status, r.body)
	}
	h.clock.Advance(59 * time.Second)
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 4)), "rate", "1")
	h.clock.Advance(time.Second)
	if r := h.submitAs(otherToken, burstBody("treasury-ops", 5)); r.status != http.StatusAccepted {
		t.Fatalf("after the bucket refilled: %d %s", r.status, r.body)
	}
}

// A caller at its cap of pending requests is answered 429 naming
// max_pending; a retry of one of its open requests still attaches, and a
// decision frees a place.
func TestCallerPendingCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, limitedConfig("    max_pending: 2\n"))
	h.start()
	firstBody := burstBody("treasury-ops", 0)
	first := h.submitAs(otherToken, firstBody, "Idempotency-Key", "first")
	second := h.submitAs(otherToken, burstBody("treasury-ops", 1))
	if first.status != http.StatusAccepted || second.status != http.StatusAccepted {
		t.Fatalf("two requests within the cap: %d %s / %d %s", first.status, first.body, second.status, second.body)
	}
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 2)), "max_pending", "5")
	if n := h.opened(); n != "2" {
		t.Fatalf("%s requests opened, want 2: the refused one must leave no trace", n)
	}
	again := h.submitAs(otherToken, firstBody, "Idempotency-Key", "first")
	if again.status != http.StatusAccepted || again.answer.ApprovalRequestID != first.answer.ApprovalRequestID {
		t.Fatalf("a retry at the cap: %d %s, want it attached to %s", again.status, again.body, first.answer.ApprovalRequestID)
	}
	// Jane denies the first: a place frees.
	id := first.answer.ApprovalRequestID
	msg := h.waitMessages(id, 1)[0]
	h.click("U0JANE", msg.Channel, msg.TS, "deny", id)
	if got := h.finalStatus(otherToken, id); got.Status != "denied" {
		t.Fatalf("first request %s, want denied", got.Status)
	}
	if r := h.submitAs(otherToken, burstBody("treasury-ops", 3)); r.status != http.StatusAccepted {
		t.Fatalf("after a decision freed a place: %d %s", r.status, r.body)
	}
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 4)), "max_pending", "5")
}

// A body without an id of its own (legacy, no Idempotency-Key) sent again
// while the first is open attaches to it: one request, one message. Once
// it is decided, the same body is a new request.
func TestIdenticalPendingRequestAttaches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	body := burstBody("treasury-ops", 7)
	a := h.submitAs(callerToken, body)
	b := h.submitAs(callerToken, body)
	if a.status != http.StatusAccepted || b.answer.ApprovalRequestID != a.answer.ApprovalRequestID {
		t.Fatalf("identical body while pending: %s then %s, want the same request", a.body, b.body)
	}
	// Another caller's identical body is its own request.
	c := h.submitAs(otherToken, body)
	if c.answer.ApprovalRequestID == a.answer.ApprovalRequestID || c.status != http.StatusAccepted {
		t.Fatalf("another caller's identical body attached to the first caller's request: %s", c.body)
	}
	id := a.answer.ApprovalRequestID
	msg := h.waitMessages(id, 1)[0]
	h.waitMessages(c.answer.ApprovalRequestID, 1)
	if n := h.slack.Posts("C0TREASURY"); n != 2 {
		t.Fatalf("%d posts, want 2 (one per caller)", n)
	}
	// A held retry of the identical body gets the decision.
	held := h.submit(body, auth())
	h.waitMetric("approvebot_held_connections", "1")
	h.click("U0JANE", msg.Channel, msg.TS, "approve", id)
	if got := h.await(held); !got.answer.Approved || got.answer.ApprovalRequestID != id {
		t.Fatalf("held identical retry got %s, want the approval of %s", got.body, id)
	}
	d := h.submitAs(callerToken, body)
	if d.answer.ApprovalRequestID == id || d.status != http.StatusAccepted {
		t.Fatalf("identical body after the decision: %s, want a new request", d.body)
	}
}

// What a caller has pending, and which of its open requests an identical
// body attaches to, are rebuilt from the store at start.
func TestCallerLimitsSurviveRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, limitedConfig("    max_pending: 2\n"))
	h.start()
	body := burstBody("treasury-ops", 0)
	first := h.submitAs(otherToken, body)
	h.submitAs(otherToken, burstBody("treasury-ops", 1))
	h.waitMessages(first.answer.ApprovalRequestID, 1)
	h.stop()
	h.start()
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 2)), "max_pending", "5")
	if again := h.submitAs(otherToken, body); again.answer.ApprovalRequestID != first.answer.ApprovalRequestID {
		t.Fatalf("identical body after a restart: %d %s, want it attached to %s", again.status, again.body, first.answer.ApprovalRequestID)
	}
}

// A reload changes a caller's limits at once; its pending requests still
// count.
func TestReloadChangesCallerLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, limitedConfig("    max_pending: 1\n"))
	h.start()
	if r := h.submitAs(otherToken, burstBody("treasury-ops", 0)); r.status != http.StatusAccepted {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 1)), "max_pending", "5")
	h.rewriteConfig("    max_pending: 1\n", "    max_pending: 2\n")
	if out, err := h.reloadCLI(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if r := h.submitAs(otherToken, burstBody("treasury-ops", 2)); r.status != http.StatusAccepted {
		t.Fatalf("within the reloaded cap: %d %s", r.status, r.body)
	}
	wantRefused(t, h.submitAs(otherToken, burstBody("treasury-ops", 3)), "max_pending", "5")
}

// An identical body attaches only while it is routed the same way: after a
// reload sends it to other approvers, it is a request of its own.
func TestIdenticalBodyRoutedElsewhereIsNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	body := burstBody("treasury-ops", 0)
	first := h.submitAs(callerToken, body)
	h.rewriteConfig("routes:\n", "routes:\n  - match: {rule_name: burst}\n    approvers: [branch-manager]\n")
	if out, err := h.reloadCLI(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	second := h.submitAs(callerToken, body)
	if second.status != http.StatusAccepted || second.answer.ApprovalRequestID == first.answer.ApprovalRequestID {
		t.Fatalf("identical body routed elsewhere: %s, want a new request (first %s)", second.body, first.answer.ApprovalRequestID)
	}
	if msgs := h.waitMessages(second.answer.ApprovalRequestID, 1); msgs[0].Channel != "C0BRANCH" {
		t.Fatalf("new request posted to %s, want C0BRANCH", msgs[0].Channel)
	}
	// The newest of the two is the one a third identical body attaches to.
	if third := h.submitAs(callerToken, body); third.answer.ApprovalRequestID != second.answer.ApprovalRequestID {
		t.Fatalf("third identical body: %s, want %s", third.body, second.answer.ApprovalRequestID)
	}
}
