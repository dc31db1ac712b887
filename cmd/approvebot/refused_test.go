package main

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// Every refused request is logged once, with its reason, and counted by
// reason in approvebot_http_refused_total.
func TestRefusedRequestsAreLoggedOnceAndCounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, limitedConfig("    rate: 1/m\n    burst: 1\n"))
	h.clock = bot.NewManualClock(time.Now())
	h.start()

	refusals := []struct {
		name   string
		send   func() int
		status int
		reason string
	}{
		{"no token", func() int {
			return h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"), nil).status
		}, http.StatusUnauthorized, "agents_unauthorized"},
		{"malformed body", func() int {
			return h.do(http.MethodPost, "/v1/approvals", []byte(`{"type":`), auth()).status
		}, http.StatusBadRequest, "agents_invalid"},
		{"body too large", func() int {
			return h.do(http.MethodPost, "/v1/approvals", bytes.Repeat([]byte(" "), 70<<10), auth()).status
		}, http.StatusRequestEntityTooLarge, "agents_too_large"},
		{"over the caller's rate", func() int {
			h.submitAs(otherToken, burstBody("treasury-ops", 0))
			return h.submitAs(otherToken, burstBody("treasury-ops", 1)).status
		}, http.StatusTooManyRequests, "agents_rate"},
		{"forged Slack click", func() int {
			return h.clickAt("U0JANE", "C0TREASURY", "1.1", "approve", "ar_x", h.now(), "not-the-secret-0123456789abcdef0").status
		}, http.StatusUnauthorized, "slack_bad_signature"},
		{"malformed Slack click", func() int {
			body := []byte("nopayload=1")
			req, _ := http.NewRequest(http.MethodPost, h.url+"/slack/interactions", bytes.NewReader(body))
			for k, v := range slackfake.SignBody(signingSecret, body, h.now()) {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}, http.StatusBadRequest, "slack_malformed"},
		{"wrong admin token", func() int {
			return h.do(http.MethodGet, "/admin/audit/verify", nil, map[string]string{"Authorization": "Bearer nope"}).status
		}, http.StatusUnauthorized, "admin_unauthorized"},
	}
	for _, c := range refusals {
		if got := c.send(); got != c.status {
			t.Fatalf("%s: HTTP %d, want %d", c.name, got, c.status)
		}
	}
	metrics := string(h.do(http.MethodGet, "/metrics", nil, nil).body)
	h.stop() // every line logged is in h.logs once run has returned
	for _, c := range refusals {
		if !strings.Contains(metrics, `approvebot_http_refused_total{reason="`+c.reason+`"} 1`) {
			t.Errorf("%s: metrics lack %s counted once", c.name, c.reason)
		}
		line := `"msg":"request refused","status":` + strconv.Itoa(c.status) + `,"reason":"` + c.reason + `"`
		if n := strings.Count(h.logs.String(), line); n != 1 {
			t.Errorf("%s: %d log lines %s, want 1", c.name, n, line)
		}
	}
	// Refusals are the only lines naming them: no handler logs its own too.
	for _, old := range []string{"slack interaction refused", "callback refused"} {
		if strings.Contains(h.logs.String(), old) {
			t.Errorf("a refusal was logged twice (%q)", old)
		}
	}
}
