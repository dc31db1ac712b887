package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// homeConfig: Jane approves for treasury-ops, Carl for security; each
// route goes to one of them.
var homeConfig = configHead + configOperations + `approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
  security:
    slack:
      channels: [C0SECURITY]
      users: [carl@company.com]
routes:
  - match: {rule_name: treasury-transfer}
    approvers: [treasury-ops]
    timeout: 5m
  - match: {rule_name: security-change}
    approvers: [security]
    timeout: 5m
`

// event posts an Events API body to /slack/events, signed with secret.
func (h *harness) event(ev any, secret string) response {
	h.t.Helper()
	body, header := slackfake.SignEvent(secret, ev, h.now())
	r, err := h.postSigned("/slack/events", body, header)
	if err != nil {
		h.t.Fatalf("event: %v", err)
	}
	return r
}

// openHome opens user's Home tab, as Slack announces it, and waits until a
// Home tab published after that satisfies cond.
func (h *harness) openHome(user string, cond func(string) bool) string {
	h.t.Helper()
	before, _ := h.slack.Home(user)
	if r := h.event(slackfake.AppHomeOpened(user, "home"), signingSecret); r.status != http.StatusOK {
		h.t.Fatalf("app_home_opened answered %d %s", r.status, r.body)
	}
	return h.waitHome(user, before.Publishes+1, cond)
}

// waitHome waits until user's Home tab was published at least n times and
// its latest version satisfies cond, and returns it.
func (h *harness) waitHome(user string, n int, cond func(string) bool) string {
	h.t.Helper()
	var blocks string
	h.waitFor(user+"'s Home tab", func() bool {
		home, ok := h.slack.Home(user)
		blocks = string(home.Blocks)
		return ok && home.Publishes >= n && cond(blocks)
	})
	return blocks
}

var homeBlockID = regexp.MustCompile(`"block_id":"(home_review\.[^"]+)"`)

// homeButtons lists the Home tab's request button blocks.
func homeButtons(blocks string) []string {
	var out []string
	for _, m := range homeBlockID.FindAllStringSubmatch(blocks, -1) {
		out = append(out, m[1])
	}
	return out
}

// homeLists reports whether the Home tab offers buttons for request id.
func homeLists(blocks, id string) bool {
	for _, b := range homeButtons(blocks) {
		if strings.HasSuffix(b, "."+id) {
			return true
		}
	}
	return false
}

func TestSlackAppHome(t *testing.T) {
	t.Parallel()
	h := newHarness(t, homeConfig)
	h.start()
	heldT := h.submit(legacyBody("treasury-transfer"), auth())
	heldS := h.submit(legacyBody("security-change"), auth())
	msgs := h.waitMessagesIn(2)
	treasury, security := messageIn(t, msgs, "C0TREASURY"), messageIn(t, msgs, "C0SECURITY")
	idT, idS := requestIDOf(t, treasury), requestIDOf(t, security)
	h.waitPosted(idT, 1)
	h.waitPosted(idS, 1)

	// Each viewer sees only what they may decide.
	jane := h.openHome("U0JANE", func(b string) bool { return homeLists(b, idT) })
	if homeLists(jane, idS) || len(homeButtons(jane)) != 1 || !strings.Contains(jane, `"action_id":"approve"`) {
		t.Fatalf("Jane's Home tab:\n%s", jane)
	}
	carl := h.openHome("U0CARL", func(b string) bool { return homeLists(b, idS) })
	if homeLists(carl, idT) || len(homeButtons(carl)) != 1 {
		t.Fatalf("Carl's Home tab:\n%s", carl)
	}
	mallory := h.openHome("U0MALLORY", func(b string) bool { return strings.Contains(b, "Nothing is waiting") })
	if len(homeButtons(mallory)) != 0 {
		t.Fatalf("Mallory's Home tab:\n%s", mallory)
	}

	// A forged Home click for a request Jane may not decide is refused,
	// and her Home tab says why.
	forged := h.slack.HomeActionPayload("U0JANE", "jane", "home_review.0.f."+idS, "approve", idS)
	if r := h.interact(forged); r.status != http.StatusOK {
		t.Fatalf("forged Home click answered %d %s", r.status, r.body)
	}
	h.waitHome("U0JANE", 1, func(b string) bool { return strings.Contains(b, "you are not an approver for security") })
	if r := h.status(idS); r.answer.Status != "pending" {
		t.Fatalf("after the forged click: %s", r.body)
	}

	// Jane approves from Home: the agent is answered, the channel message
	// closes, and her Home tab then shows the decision instead.
	block := homeButtons(jane)[0]
	if r := h.interact(h.slack.HomeActionPayload("U0JANE", "jane", block, "approve", idT)); r.status != http.StatusOK {
		t.Fatalf("Home click answered %d %s", r.status, r.body)
	}
	if got := h.await(heldT); !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitClosed(idT, "Approved by Jane Doe")
	h.waitHome("U0JANE", 1, func(b string) bool {
		return !homeLists(b, idT) && strings.Contains(b, "Your recent decisions") && strings.Contains(b, "request "+idT+")")
	})

	// Carl opened Home lately: a new request for him reaches it without
	// his opening it again.
	h.pendingID(legacyBody("security-change"))
	h.waitFor("a second security message", func() bool { return len(h.slack.Messages()) == 3 })
	h.waitHome("U0CARL", 1, func(b string) bool { return len(homeButtons(b)) == 2 })
	// Carl denies the first from Home.
	carl, _ = func() (string, bool) { c, ok := h.slack.Home("U0CARL"); return string(c.Blocks), ok }()
	for _, b := range homeButtons(carl) {
		if strings.HasSuffix(b, "."+idS) {
			h.interact(h.slack.HomeActionPayload("U0CARL", "carl", b, "deny", idS))
		}
	}
	if got := h.await(heldS); got.answer.Approved || got.answer.Status != "denied" {
		t.Fatalf("agent got %s", got.body)
	}
}

// TestSlackAppHomeLargeAction: a request too large to show in full offers
// no Approve on the Home tab, and a forged one is refused.
func TestSlackAppHomeLargeAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chainConfig)
	h.start()
	body, _ := largeBinding("payments", "7")
	h.pendingID(body)
	msg := h.waitMessagesIn(1)[0]
	id := buttonValue(t, msg.Blocks, "view_all")
	h.waitPosted(id, 1)
	home := h.openHome("U0JANE", func(b string) bool { return homeLists(b, id) })
	if strings.Contains(home, `"action_id":"approve"`) || homeButtons(home)[0] != "home_review.0.p."+id {
		t.Fatalf("Home tab of a partial request:\n%s", home)
	}
	h.interact(h.slack.HomeActionPayload("U0JANE", "jane", "home_review.0.f."+id, "approve", id))
	h.waitHome("U0JANE", 1, func(b string) bool { return strings.Contains(b, "too large to show in full here") })
	if r := h.status(id); r.answer.Status != "pending" {
		t.Fatalf("after the forged approval: %s", r.body)
	}
}

func TestSlackEventsVerified(t *testing.T) {
	t.Parallel()
	h := newHarness(t, homeConfig)
	h.start()
	r := h.event(slackfake.URLVerification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"), signingSecret)
	if r.status != http.StatusOK || string(r.body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("url_verification answered %d %q", r.status, r.body)
	}
	for name, secret := range map[string]string{"forged": "not-the-signing-secret-0123456789"} {
		if r := h.event(slackfake.URLVerification("x"), secret); r.status != http.StatusUnauthorized || bytes.Contains(r.body, []byte("x")) {
			t.Fatalf("%s url_verification answered %d %q", name, r.status, r.body)
		}
		if r := h.event(slackfake.AppHomeOpened("U0JANE", "home"), secret); r.status != http.StatusUnauthorized {
			t.Fatalf("%s app_home_opened answered %d %q", name, r.status, r.body)
		}
	}
	// A signature too old is refused too.
	body, header := slackfake.SignEvent(signingSecret, slackfake.AppHomeOpened("U0JANE", "home"), h.now().Add(-time.Hour))
	if r, err := h.postSigned("/slack/events", body, header); err != nil || r.status != http.StatusUnauthorized {
		t.Fatalf("stale event answered %d (%v)", r.status, err)
	}
	// The Messages tab publishes nothing; nor did the refused events.
	if r := h.event(slackfake.AppHomeOpened("U0JANE", "messages"), signingSecret); r.status != http.StatusOK {
		t.Fatalf("messages tab answered %d", r.status)
	}
	h.stop()
	if _, ok := h.slack.Home("U0JANE"); ok {
		t.Fatal("a Home tab was published for a refused event or the Messages tab")
	}
}

func TestSocketModeAppHome(t *testing.T) {
	t.Parallel()
	h := newSocketHarness(t)
	h.start()
	h.waitSocketReady(true)
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	h.waitPosted(id, 2)
	env := h.slack.SendEvent(slackfake.AppHomeOpened("U0JANE", "home"))
	h.waitAcked(env)
	home := h.waitHome("U0JANE", 1, func(b string) bool { return homeLists(b, id) })
	env = h.slack.SendInteractive(h.slack.HomeActionPayload("U0JANE", "jane", homeButtons(home)[0], "approve", id))
	if got := h.await(held); !got.answer.Approved || got.answer.Approver != "jane@company.com" {
		t.Fatalf("agent got %s", got.body)
	}
	h.waitAcked(env)
}

// TestSlackAppHomeStages: a two-stage request is on the Home tab of the
// first stage's approver, then of the second's; a click from a Home tab
// left open on the first stage counts for nobody once the second opened.
func TestSlackAppHomeStages(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	body, _ := chainBody("")
	held := h.submit(body, auth())
	msg := h.waitMessagesIn(1)[0]
	id := requestIDOf(t, msg)
	h.waitPosted(id, 1)
	bob := h.openHome("U0BOB", func(b string) bool { return homeLists(b, id) })
	if homeButtons(bob)[0] != "home_review.0.f."+id {
		t.Fatalf("Bob's Home tab:\n%s", bob)
	}
	sam := h.openHome("U0SAM", func(b string) bool { return strings.Contains(b, "Nothing is waiting") })
	if len(homeButtons(sam)) != 0 {
		t.Fatalf("Sam's Home tab before his stage:\n%s", sam)
	}
	h.interact(h.slack.HomeActionPayload("U0BOB", "bob", homeButtons(bob)[0], "approve", id))
	// Stage 2 opens: Sam's tab (he opened it lately) now lists the request.
	sam = h.waitHome("U0SAM", 1, func(b string) bool { return homeLists(b, id) })
	if homeButtons(sam)[0] != "home_review.1.f."+id {
		t.Fatalf("Sam's Home tab at stage 2:\n%s", sam)
	}
	// A stale stage-1 button counts for nobody.
	h.interact(h.slack.HomeActionPayload("U0SAM", "sam", "home_review.0.f."+id, "approve", id))
	h.waitHome("U0SAM", 1, func(b string) bool { return strings.Contains(b, "Nothing changed: this message asked stage 1 of 2") })
	if r := h.status(id); r.answer.Status != "pending" {
		t.Fatalf("after the stale click: %s", r.body)
	}
	h.interact(h.slack.HomeActionPayload("U0SAM", "sam", "home_review.1.f."+id, "approve", id))
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
}
