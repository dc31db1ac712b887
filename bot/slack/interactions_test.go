package slack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// recordingDecider stands in for the engine at the bot.Decider seam: it
// records the ballots it is given and answers with a fixed message.
type recordingDecider struct {
	reply   string
	block   chan struct{} // when set, Click waits for it to close
	entered chan struct{} // Click signals here when it starts

	mu      sync.Mutex
	ballots []approvebot.Ballot
	ids     []string
	got     chan struct{}
}

func newDecider(reply string) *recordingDecider {
	return &recordingDecider{reply: reply, got: make(chan struct{}, 1024), entered: make(chan struct{}, 1024)}
}

func (d *recordingDecider) Click(ctx context.Context, b approvebot.Ballot, requestID string) bot.ClickResult {
	d.entered <- struct{}{}
	if d.block != nil {
		select {
		case <-d.block:
		case <-ctx.Done():
		}
	}
	d.mu.Lock()
	d.ballots = append(d.ballots, b)
	d.ids = append(d.ids, requestID)
	d.mu.Unlock()
	d.got <- struct{}{}
	return bot.ClickResult{Counted: true, Message: d.reply}
}

func (d *recordingDecider) calls() ([]approvebot.Ballot, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]approvebot.Ballot(nil), d.ballots...), append([]string(nil), d.ids...)
}

func send(t *testing.T, srv *httptest.Server, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+InteractionsPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

func TestHandlerSignedClick(t *testing.T) {
	for _, tc := range []struct {
		action, decision string
	}{{"approve", approvebot.Allow}, {"deny", approvebot.Deny}} {
		t.Run(tc.action, func(t *testing.T) {
			f := newFake(t)
			s := newSlack(t, f, nil)
			d := newDecider("Your approval was counted.")
			srv := httptest.NewServer(s.Handler(d))
			defer srv.Close()

			payload := slackfake.BlockActionPayload(slackfake.Click{
				UserID: "U1", UserName: "jane", Channel: "C0APPROVALS", MessageTS: "1700000000.000042",
				ActionID: tc.action, Value: "req_01HZX3K9", TriggerID: f.Trigger("U1"),
			})
			body, h := slackfake.SignInteraction(testSecret, payload, time.Now())
			code, respBody := send(t, srv, body, h)
			if code != http.StatusOK || respBody != "" {
				t.Fatalf("signed click answered %d %q, want 200 with an empty body", code, respBody)
			}
			if tc.decision == approvebot.Deny {
				// Deny opens the reason modal and decides nothing; its
				// submission is the vote.
				if b, _ := d.calls(); len(b) != 0 || len(f.Views()) != 1 || f.Views()[0].CallbackID != ReasonCallbackID {
					t.Fatalf("Deny: %d ballots, views %+v; want none and the reason modal", len(b), f.Views())
				}
				sub := slackfake.ViewSubmissionWithInput(f.Views()[0], "U1", "jane", ReasonBlockID, ReasonInputID, "wrong IBAN")
				body, h = slackfake.SignInteraction(testSecret, sub, time.Now())
				if code, respBody := send(t, srv, body, h); code != http.StatusOK || respBody != "" {
					t.Fatalf("reason submission answered %d %q, want 200 with an empty body", code, respBody)
				}
			}
			select {
			case <-d.got:
			case <-wait(t).Done():
				t.Fatal("the decider never received the click")
			}
			ballots, ids := d.calls()
			b := ballots[0]
			want := approvebot.Ballot{
				Platform: "slack",
				Ref:      approvebot.MessageRef{Channel: "C0APPROVALS", ID: "1700000000.000042"},
				Approver: approvebot.Approver{Platform: "slack", Workspace: slackfake.TeamID, UserID: "U1", Name: "jane"},
				Decision: tc.decision, Assurance: "slack_signed_interaction",
			}
			if ids[0] != "req_01HZX3K9" || b.Platform != want.Platform || b.Ref != want.Ref || b.Decision != want.Decision ||
				b.Assurance != want.Assurance || b.Approver.UserID != "U1" || b.Approver.Workspace != slackfake.TeamID ||
				b.Approver.Name != "jane" || b.Approver.Platform != "slack" ||
				tc.decision == approvebot.Deny && b.Reason != "wrong IBAN" {
				t.Errorf("ballot = %+v for %q, want %+v for req_01HZX3K9", b, ids[0], want)
			}
			err := f.WaitFor(wait(t), func() bool { return len(f.Ephemerals()) == 1 })
			if err != nil {
				t.Fatal(err)
			}
			if e := f.Ephemerals()[0]; e != (slackfake.Ephemeral{Channel: "C0APPROVALS", User: "U1", Text: "Your approval was counted."}) {
				t.Errorf("ephemeral = %+v", e)
			}
		})
	}
}

func TestHandlerNoEphemeralWithoutMessage(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	d := newDecider("")
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()
	body, h := slackfake.SignInteraction(testSecret, slackfake.BlockActionPayload(slackfake.Click{ActionID: "approve", Value: "r1"}), time.Now())
	if code, _ := send(t, srv, body, h); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	s.Close()
	if b, _ := d.calls(); len(b) != 1 {
		t.Fatalf("decider got %d clicks, want 1", len(b))
	}
	if n := f.CallCount("chat.postEphemeral"); n != 0 {
		t.Errorf("%d ephemerals sent for an empty result message", n)
	}
}

func TestHandlerRejectsUnsigned(t *testing.T) {
	valid := slackfake.BlockActionPayload(slackfake.Click{ActionID: "approve", Value: "req_1"})
	// The adapter's clock, months from the wall clock: its time alone
	// decides a signature's age.
	clock := bot.NewManualClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	now := clock.Now()
	tests := []struct {
		name string
		make func() ([]byte, http.Header)
	}{
		{"wrong secret", func() ([]byte, http.Header) { return slackfake.SignInteraction("another-secret", valid, now) }},
		{"body changed after signing", func() ([]byte, http.Header) {
			body, h := slackfake.SignInteraction(testSecret, valid, now)
			return bytes.Replace(body, []byte("approve"), []byte("deny"), 1), h
		}},
		{"stale timestamp", func() ([]byte, http.Header) {
			return slackfake.SignInteraction(testSecret, valid, now.Add(-6*time.Minute))
		}},
		{"future timestamp", func() ([]byte, http.Header) {
			return slackfake.SignInteraction(testSecret, valid, now.Add(6*time.Minute))
		}},
		{"timestamp of the wall clock, not the adapter's", func() ([]byte, http.Header) {
			return slackfake.SignInteraction(testSecret, valid, time.Now())
		}},
		{"missing signature", func() ([]byte, http.Header) {
			body, h := slackfake.SignInteraction(testSecret, valid, now)
			h.Del("X-Slack-Signature")
			return body, h
		}},
		{"missing timestamp", func() ([]byte, http.Header) {
			body, h := slackfake.SignInteraction(testSecret, valid, now)
			h.Del("X-Slack-Request-Timestamp")
			return body, h
		}},
		{"no headers", func() ([]byte, http.Header) {
			body, _ := slackfake.SignInteraction(testSecret, valid, now)
			return body, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		}},
		{"signature without v0=", func() ([]byte, http.Header) {
			body, h := slackfake.SignInteraction(testSecret, valid, now)
			h.Set("X-Slack-Signature", strings.TrimPrefix(h.Get("X-Slack-Signature"), "v0="))
			return body, h
		}},
		{"timestamp not a number", func() ([]byte, http.Header) {
			body, h := slackfake.SignInteraction(testSecret, valid, now)
			h.Set("X-Slack-Request-Timestamp", "yesterday")
			return body, h
		}},
	}
	f := newFake(t)
	s := newSlack(t, f, func(c *Config) { c.Clock = clock })
	d := newDecider("counted")
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, h := tt.make()
			code, respBody := send(t, srv, body, h)
			if code != http.StatusUnauthorized || respBody != "" {
				t.Errorf("answered %d %q, want 401 with no details", code, respBody)
			}
		})
	}
	s.Close() // waits for anything queued
	if b, _ := d.calls(); len(b) != 0 {
		t.Errorf("the decider received %d unsigned clicks", len(b))
	}
}

// A signature is good for five minutes either side of the adapter's clock,
// and no longer.
func TestSignatureAgeOnTheClock(t *testing.T) {
	clock := bot.NewManualClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	f := newFake(t)
	s := newSlack(t, f, func(c *Config) { c.Clock = clock })
	d := newDecider("counted")
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()
	payload := slackfake.BlockActionPayload(slackfake.Click{ActionID: "approve", Value: "req_1"})
	body, h := slackfake.SignInteraction(testSecret, payload, clock.Now())
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{
		{0, http.StatusOK},
		{5 * time.Minute, http.StatusOK},
		{time.Second, http.StatusUnauthorized},
	} {
		clock.Advance(step.advance)
		if code, _ := send(t, srv, body, h); code != step.want {
			t.Fatalf("%s after signing: %d, want %d", clock.Now().Sub(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), code, step.want)
		}
	}
	later := clock.Now().Add(5 * time.Minute)
	body, h = slackfake.SignInteraction(testSecret, payload, later)
	if code, _ := send(t, srv, body, h); code != http.StatusOK {
		t.Fatalf("signed five minutes ahead of the clock: %d, want 200", code)
	}
	body, h = slackfake.SignInteraction(testSecret, payload, later.Add(time.Second))
	if code, _ := send(t, srv, body, h); code != http.StatusUnauthorized {
		t.Fatalf("signed past five minutes ahead of the clock: %d, want 401", code)
	}
}

func TestHandlerMalformedAndIgnored(t *testing.T) {
	click := func(c slackfake.Click) map[string]any { return slackfake.BlockActionPayload(c) }
	without := func(p map[string]any, path ...string) map[string]any {
		m := p
		for _, k := range path[:len(path)-1] {
			m = m[k].(map[string]any)
		}
		delete(m, path[len(path)-1])
		return p
	}
	tests := []struct {
		name    string
		payload any    // signed as the payload field
		raw     []byte // or a raw signed body
		want    int
	}{
		{"not form encoded", nil, []byte("%zz%"), http.StatusBadRequest},
		{"no payload field", nil, []byte("other=1"), http.StatusBadRequest},
		{"payload not JSON", "{not json", nil, http.StatusBadRequest},
		{"payload is an array", "[1,2]", nil, http.StatusBadRequest},
		{"actions not a list", `{"type":"block_actions","actions":{"a":1}}`, nil, http.StatusBadRequest},
		{"no user id", without(click(slackfake.Click{ActionID: "approve", Value: "r"}), "user", "id"), nil, http.StatusBadRequest},
		{"no channel", without(without(click(slackfake.Click{ActionID: "approve", Value: "r"}), "container", "channel_id"), "channel", "id"), nil, http.StatusBadRequest},
		{"no message ts", without(without(click(slackfake.Click{ActionID: "approve", Value: "r"}), "container", "message_ts"), "message", "ts"), nil, http.StatusBadRequest},
		{"view submission", click(slackfake.Click{Type: "view_submission", ActionID: "approve", Value: "r"}), nil, http.StatusOK},
		{"shortcut", map[string]any{"type": "shortcut", "callback_id": "x"}, nil, http.StatusOK},
		{"unknown action id", click(slackfake.Click{ActionID: "escalate", Value: "r"}), nil, http.StatusOK},
		{"other block", click(slackfake.Click{ActionID: "approve", BlockID: "someone_else", Value: "r"}), nil, http.StatusOK},
		{"no block id", click(slackfake.Click{ActionID: "approve", OmitBlockID: true, Value: "r"}), nil, http.StatusOK},
		{"empty value", click(slackfake.Click{ActionID: "approve"}), nil, http.StatusOK},
		{"value too long", click(slackfake.Click{ActionID: "approve", Value: strings.Repeat("r", 2001)}), nil, http.StatusOK},
		{"no actions", without(click(slackfake.Click{ActionID: "approve", Value: "r"}), "actions"), nil, http.StatusOK},
	}
	f := newFake(t)
	s := newSlack(t, f, nil)
	d := newDecider("")
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			var h http.Header
			if tt.raw != nil {
				body = tt.raw
				h = slackfake.SignBody(testSecret, body, time.Now())
			} else {
				body, h = slackfake.SignInteraction(testSecret, tt.payload, time.Now())
			}
			if code, _ := send(t, srv, body, h); code != tt.want {
				t.Errorf("answered %d, want %d", code, tt.want)
			}
		})
	}
	s.Close()
	if b, _ := d.calls(); len(b) != 0 {
		t.Errorf("the decider received %d clicks, want none: %+v", len(b), b)
	}
}

func TestHandlerMethodAndSize(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	srv := httptest.NewServer(s.Handler(newDecider("")))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + InteractionsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET answered %d, want 405", resp.StatusCode)
	}
	big := bytes.Repeat([]byte("a"), 2<<20)
	if code, _ := send(t, srv, big, slackfake.SignBody(testSecret, big, time.Now())); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body answered %d, want 413", code)
	}
}

func TestHandlerQueueFullAndShutdown(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, func(c *Config) { c.Workers, c.Queue = 1, 1 })
	d := newDecider("")
	d.block = make(chan struct{})
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()

	codes := map[int]int{}
	for i := range 3 {
		p := slackfake.BlockActionPayload(slackfake.Click{ActionID: "approve", Value: "r" + string(rune('0'+i))})
		body, h := slackfake.SignInteraction(testSecret, p, time.Now())
		code, _ := send(t, srv, body, h)
		codes[code]++
		if i == 0 {
			<-d.entered // the one worker holds the first click
		}
	}
	// One click runs, one waits in the queue: the third cannot be taken.
	if codes[http.StatusOK] != 2 || codes[http.StatusServiceUnavailable] != 1 {
		t.Errorf("status counts %v, want two 200 (running, queued) and one 503", codes)
	}
	close(d.block)
	s.Close()
	if b, _ := d.calls(); len(b) != codes[http.StatusOK] {
		t.Errorf("decider got %d clicks, want the %d acknowledged", len(b), codes[http.StatusOK])
	}

	body, h := slackfake.SignInteraction(testSecret, slackfake.BlockActionPayload(slackfake.Click{ActionID: "approve", Value: "late"}), time.Now())
	if code, _ := send(t, srv, body, h); code != http.StatusServiceUnavailable {
		t.Errorf("click after Close answered %d, want 503", code)
	}
}

func TestParseInteractionFields(t *testing.T) {
	p := slackfake.BlockActionPayload(slackfake.Click{UserID: "W1", UserName: "jane", TeamID: "T9", Channel: "C9", MessageTS: "1.2", ActionID: "deny", Value: "req"})
	// Grid-style: no team object; the user's team_id stands in.
	delete(p, "team")
	js, _ := json.Marshal(p)
	body, _ := slackfake.SignInteraction(testSecret, js, time.Now())
	in, err := parseInteraction(body)
	if err != nil {
		t.Fatal(err)
	}
	c := in.click
	want := click{RequestID: "req", Decision: approvebot.Deny, Channel: "C9", MessageTS: "1.2", TeamID: "T9", UserID: "W1", UserName: "jane"}
	if c != want {
		t.Errorf("parseInteraction = %+v, want %+v", c, want)
	}
}

// A click is acknowledged only once the engine has dealt with it (when that
// is quick), so a crash right after Slack shows it as accepted cannot lose it.
func TestHandlerAcknowledgesAfterTheDecision(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	d := newDecider("Your approval was counted.")
	srv := httptest.NewServer(s.Handler(d))
	defer srv.Close()
	payload := slackfake.BlockActionPayload(slackfake.Click{
		UserID: "U1", UserName: "jane", Channel: "C0APPROVALS", MessageTS: "1700000000.000042",
		ActionID: "approve", Value: "req_01HZX3K9",
	})
	body, h := slackfake.SignInteraction(testSecret, payload, time.Now())
	if code, _ := send(t, srv, body, h); code != http.StatusOK {
		t.Fatalf("signed click answered %d", code)
	}
	if ballots, _ := d.calls(); len(ballots) != 1 {
		t.Fatalf("acknowledged with %d ballots decided, want 1", len(ballots))
	}
}

// The full view's metadata is sealed: any change, another key, or a page
// outside the view is refused.
func TestFullViewMetadataSealed(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	m := viewMeta{Request: "ar_1", Channel: "C1", TS: "1.2", User: "U1", Page: 1, Pages: 2}
	sealed := s.sealMeta(m)
	got, err := s.openMeta(sealed)
	if err != nil || got != m {
		t.Fatalf("openMeta = %+v, %v", got, err)
	}
	body, sig, _ := strings.Cut(sealed, ".")
	mallory, _ := json.Marshal(viewMeta{Request: "ar_1", Channel: "C1", TS: "1.2", User: "U0MALLORY", Page: 1, Pages: 2})
	forged := base64.RawURLEncoding.EncodeToString(mallory) + "." + sig
	other := viewMeta{Request: "ar_1", Channel: "C1", TS: "1.2", User: "U1", Page: 5, Pages: 2}
	for name, bad := range map[string]string{
		"no seal":      body,
		"forged body":  forged,
		"bad base64":   "!!." + sig,
		"empty":        "",
		"page outside": s.sealMeta(other),
	} {
		if _, err := s.openMeta(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A seal made by another app (another bot token) does not open.
	s2 := newSlack(t, f, func(c *Config) { c.BotToken = "xoxb-another-app" })
	if _, err := s2.openMeta(sealed); err == nil {
		t.Error("a view sealed by another app was accepted")
	}
}
