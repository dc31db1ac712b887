package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/fakewait"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// The end-to-end tests start the real program (run, as main does) on a
// loopback port with a real bbolt file, against a loopback fake of Slack's
// Web API, and talk to it over HTTP exactly as an agent and Slack do.

const (
	callerToken   = "payments-agent-token-0123456789"
	adminToken    = "admin-token-0123456789abcdef"
	botToken      = "xoxb-test-token"
	signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
)

// baseConfig routes approve-large-transfer to treasury-ops (Jane, by user id)
// or compliance (members of a user group).
// configHead and configOperations are the parts every test config shares:
// a free loopback port, the store in the test's directory, two callers, the
// fake Slack; the signing key, the admin token and the delivery timeout.
const configHead = `
listen: 127.0.0.1:0
store:
  path: ${DIR}/approvebot.db
callers:
  - name: payments-agent
    token: ${PAYMENTS_AGENT_TOKEN}
    rate: 100000/s
    burst: 100000
    max_pending: 100000
  - name: other-agent
    token: other-agent-token-0123456789
slack:
  bot_token: ${SLACK_BOT_TOKEN}
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: ${SLACK_API_URL}
  channel_interval: 0s
`

const configOperations = `signing:
  key_file: ${DIR}/signing.key
  issuer: approvebot-test
admin:
  token: ${ADMIN_TOKEN}
delivery:
  timeout: ${DELIVERY_TIMEOUT}
`

const baseConfig = configHead + configOperations + twoGroups + `  branch-manager:
    slack:
      channels: [C0BRANCH]
      users: [bob@company.com]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops, compliance]
    quorum: any
    timeout: 5m
`

// twoGroups are the approver groups most test configs start from:
// treasury-ops (Jane, by user id) and compliance (a user group's members).
const twoGroups = `approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
  compliance:
    slack:
      channels: [C0COMPLIANCE]
      usergroups: [S0COMPLIANCE]
`

type harness struct {
	t      *testing.T
	dir    string
	slack  *slackfake.Fake
	env    map[string]string
	config string

	// clock, when set, is the clock run is given, for serve and the
	// operator commands alike: the test moves it.
	clock *bot.ManualClock

	// reasonText is what the harness types in a reason modal it submits;
	// submittedViews are the modals it has submitted (by view id).
	reasonText     string
	submittedViews sync.Map

	url    string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// syncBuffer collects the service's log. Lines reach it from the log
// stream's goroutine a moment after they are logged, so a test waits for a
// line (waitLogged) rather than reading the log at once.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changes fakewait.Changes
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.changes.Notify()
	return b.buf.Write(p)
}

// WaitFor waits until cond holds, checking it after every write.
func (b *syncBuffer) WaitFor(ctx context.Context, cond func() bool) error {
	return b.changes.WaitFor(ctx, cond)
}

// waitLogged waits until the log holds s n times or more.
func (h *harness) waitLogged(s string, n int) {
	h.t.Helper()
	logs := h.logs
	waitOn(h.t, logs, fmt.Sprintf("%d log lines with %s", n, s), logs, func() bool { return strings.Count(logs.String(), s) >= n })
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newHarness(t *testing.T, config string) *harness {
	t.Helper()
	fake := slackfake.New(botToken)
	t.Cleanup(fake.Close)
	fake.AddUser("U0JANE", "Jane Doe", "jane@company.com")
	fake.AddUser("U0MALLORY", "Mallory", "mallory@company.com")
	fake.AddUser("U0CARL", "Carl", "carl@company.com")
	fake.AddUser("U0BOB", "Bob", "bob@company.com")
	fake.AddUsergroup("S0COMPLIANCE", "U0CARL")
	dir := t.TempDir()
	h := &harness{
		t:     t,
		dir:   dir,
		slack: fake,
		env: map[string]string{
			"DIR":                  dir,
			"PAYMENTS_AGENT_TOKEN": callerToken,
			"SLACK_BOT_TOKEN":      botToken,
			"SLACK_SIGNING_SECRET": signingSecret,
			"SLACK_API_URL":        fake.URL(),
			"ADMIN_TOKEN":          adminToken,
			"DELIVERY_TIMEOUT":     "5s",
		},
		config: filepath.Join(dir, "approvebot.yaml"),
	}
	if err := os.WriteFile(h.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) getenv(k string) (string, bool) {
	v, ok := h.env[k]
	return v, ok
}

// start runs `approvebot serve` and waits for it to listen.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	h.logs = &syncBuffer{}
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() {
		err := run(ctx, h.runClock(), []string{"serve", "--config", h.config}, h.getenv, pw, h.logs)
		pw.CloseWithError(fmt.Errorf("approvebot exited: %v", err))
		h.done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		h.t.Fatalf("approvebot did not start: %v\nlogs:\n%s", err, h.logs)
	}
	go io.Copy(io.Discard, pr)
	h.url = strings.TrimSpace(strings.TrimPrefix(line, "approvebot listening on "))
	h.t.Cleanup(h.stop)
}

// now is the time on the clock run is given: what Slack's signatures
// and the fakes' tokens are stamped with.
func (h *harness) now() time.Time { return h.runClock().Now() }

// waitTimers waits until n timers are pending on the test's clock: what
// the program must arm before the test moves time.
func (h *harness) waitTimers(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.clock.WaitTimers(ctx, n); err != nil {
		h.t.Fatalf("waiting for timers: %v\nlogs:\n%s", err, h.logs)
	}
}

// runClock is the clock run is given: the test's, or the wall clock for
// tests that move no time.
func (h *harness) runClock() bot.Clock {
	if h.clock != nil {
		return h.clock
	}
	return bot.SystemClock{}
}

// stop asks approvebot to stop, as SIGTERM does, and waits for it.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	// Bursts of concurrent requests leave the client's transport with
	// spare connections that never sent a request; Shutdown counts those
	// as busy for 5 s.
	client.CloseIdleConnections()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("approvebot exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		h.t.Errorf("approvebot did not stop\nlogs:\n%s", h.logs)
	}
	h.cancel = nil
}

type answer struct {
	Approved          bool             `json:"approved"`
	Approver          string           `json:"approver"`
	Reason            string           `json:"reason"`
	ApprovalRequestID string           `json:"approval_request_id"`
	Status            string           `json:"status"`
	DecidedAt         string           `json:"decided_at"`
	SchemaVersion     string           `json:"schema_version"`
	ActionDigest      string           `json:"action_digest"`
	Decision          string           `json:"decision"`
	ChainEntries      []map[string]any `json:"chain_entries"`
	IdentityAssertion string           `json:"identity_assertion"`
	Error             string           `json:"error"`
	Field             string           `json:"field"`
}

type response struct {
	status int
	header http.Header
	body   []byte
	answer answer
}

var client = &http.Client{Timeout: 2 * time.Minute}

func (h *harness) do(method, path string, body []byte, header map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &out.answer)
	return out
}

func auth(extra ...string) map[string]string {
	m := map[string]string{"Authorization": "Bearer " + callerToken}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// submit posts an approval request in the background and returns a channel
// with the held answer.
func (h *harness) submit(body []byte, header map[string]string) <-chan response {
	out := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/approvals", bytes.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			out <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		_ = json.Unmarshal(b, &r.answer)
		out <- r
	}()
	return out
}

func (h *harness) await(ch <-chan response) response {
	h.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(90 * time.Second):
		h.t.Fatalf("no answer from approvebot\nlogs:\n%s", h.logs)
		return response{}
	}
}

func legacyBody(rule string, approvers ...string) []byte {
	if approvers == nil {
		approvers = []string{}
	}
	b, _ := json.Marshal(map[string]any{
		"type":         "approval_request",
		"rule_name":    rule,
		"policy_name":  "financial-approvals",
		"agent_id":     "payments-agent",
		"action":       "transfer",
		"approvers":    approvers,
		"requested_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000") + "+00:00",
	})
	return b
}

// waitMessages waits until the fake holds n messages for the request.
func (h *harness) waitMessages(requestID string, n int) []slackfake.Message {
	h.t.Helper()
	var got []slackfake.Message
	h.waitFor("messages for "+requestID, func() bool {
		got = h.messages(requestID)
		return len(got) >= n
	})
	h.waitPosted(requestID, n)
	return got
}

// waitPosted waits until the store has recorded n posted messages for the
// request (the fake holds a message a moment before approvebot records it,
// and a click on it counts only once it is recorded). With ts, only the
// messages of those Slack timestamps count.
func (h *harness) waitPosted(requestID string, n int, ts ...string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := h.do(http.MethodGet, "/admin/requests/"+url.PathEscape(requestID), nil, map[string]string{"Authorization": "Bearer " + adminToken})
		var story struct {
			Request struct {
				Destinations []struct {
					State string `json:"state"`
					Ref   struct {
						ID string `json:"id"`
					} `json:"ref"`
				} `json:"destinations"`
			} `json:"request"`
		}
		_ = json.Unmarshal(r.body, &story)
		posted := 0
		for _, d := range story.Request.Destinations {
			if d.State == "posted" && (len(ts) == 0 || slices.Contains(ts, d.Ref.ID)) {
				posted++
			}
		}
		if posted >= n {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("request %s: %d of %d messages recorded as posted: %s", requestID, posted, n, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) messages(requestID string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range h.slack.Messages() {
		if bytes.Contains(m.Blocks, []byte(requestID)) || strings.Contains(m.Text, requestID) {
			out = append(out, m)
		}
	}
	return out
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	waitOn(h.t, h.slack, what, h.logs, cond)
}

// waitOn waits, at most a minute, until cond holds, re-checking whenever
// the fake platform's state changes.
func waitOn(t *testing.T, fake interface {
	WaitFor(context.Context, func() bool) error
}, what string, logs fmt.Stringer, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fake.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v\nlogs:\n%s", what, err, logs)
	}
}

// click sends a signed block_actions interaction, as Slack does.
func (h *harness) click(user, channel, ts, action, requestID string) response {
	h.t.Helper()
	return h.clickAt(user, channel, ts, action, requestID, h.now(), signingSecret)
}

// storeID is approvebot's own id of requestID, which its buttons carry and
// its audit records name: for a schema 1.0 request it is not the
// approval_request_id the agent gave and the tests hold. An id the admin
// API does not know is returned as it is.
func (h *harness) storeID(requestID string) string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/admin/requests/"+url.PathEscape(requestID), nil, map[string]string{"Authorization": "Bearer " + adminToken})
	var story struct {
		Request struct {
			ID string `json:"id"`
		} `json:"request"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &story) != nil || story.Request.ID == "" {
		return requestID
	}
	return story.Request.ID
}

func (h *harness) clickAt(user, channel, ts, action, requestID string, at time.Time, secret string) response {
	h.t.Helper()
	payload := slackfake.BlockActionPayload(slackfake.Click{
		UserID: user, UserName: strings.ToLower(user), Channel: channel, MessageTS: ts,
		ActionID: action, Value: h.storeID(requestID),
	})
	r, err := h.slackClick(user, payload, secret, at)
	if err != nil {
		h.t.Fatalf("click: %v", err)
	}
	return r
}

// pendingID submits asynchronously and returns the request id.
func (h *harness) pendingID(body []byte, extra ...string) string {
	h.t.Helper()
	header := auth(extra...)
	header["Prefer"] = strings.Trim("respond-async, "+header["Prefer"], ", ")
	r := h.do(http.MethodPost, "/v1/approvals", body, header)
	if r.status != http.StatusAccepted {
		h.t.Fatalf("async submit: %d %s", r.status, r.body)
	}
	return r.answer.ApprovalRequestID
}

func (h *harness) ephemeralsFor(user string) []slackfake.Ephemeral {
	var out []slackfake.Ephemeral
	for _, e := range h.slack.Ephemerals() {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}
