package bot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/store"
)

// TestRequestRoutesAndPosts: a request is routed to its groups' channels,
// each gets one message with buttons, and each message is recorded.
func TestRequestRoutesAndPosts(t *testing.T) {
	rg := newRig(t)
	r := rg.submit("both")
	if r.Status != approvebot.StatusPending {
		t.Fatalf("status %s, want pending", r.Status)
	}
	if want := rg.clock.Now().Add(5 * time.Minute); !r.Deadline.Equal(want) {
		t.Errorf("deadline %v, want the route's 5m: %v", r.Deadline, want)
	}
	posts := rg.slack.waitCalls(t, "post", 2)
	got := map[string]bool{}
	for _, p := range posts {
		got[p.Channel] = true
		if p.Msg.RequestID != r.ID || !p.Msg.Actionable {
			t.Errorf("post to %s: request %q actionable %v, want %s with buttons", p.Channel, p.Msg.RequestID, p.Msg.Actionable, r.ID)
		}
	}
	if !got["C0OPS"] || !got["C0SEC"] || len(posts) != 2 {
		t.Fatalf("posted to %v, want C0OPS and C0SEC once each", got)
	}
	stored := rg.waitRecorded(r.ID, 2)
	for _, d := range stored.Destinations {
		if d.Ref.ID == "" || d.Shown != stored.Version || d.Error != "" {
			t.Errorf("destination %+v: want its message recorded", d)
		}
	}
	rg.slack.waitCalls(t, "recorded", 2)
}

// TestNoRoute: a request no route matches is denied at once and shown nowhere.
func TestNoRoute(t *testing.T) {
	rg := newRig(t)
	r := rg.submit("nobody")
	if r.Status != approvebot.StatusNoRoute || r.Resolution == nil || !strings.Contains(r.Resolution.Reason, "no route") {
		t.Fatalf("status %s resolution %+v, want no_route", r.Status, r.Resolution)
	}
	if len(r.Destinations) != 0 {
		t.Fatalf("destinations %+v, want none", r.Destinations)
	}
}

// TestClick: who may click what, and what the clicker is told.
func TestClick(t *testing.T) {
	for _, tt := range []struct {
		name     string
		rule     string
		before   [][2]string // user, channel: approvals counted first
		user     string
		channel  string
		decision string
		counted  bool
		decided  bool
		status   approvebot.Status // after the click
		says     string            // in what the clicker is told
	}{
		{name: "an approver approves", rule: "one", user: "U0ANN", channel: "C0OPS", decision: approvebot.Allow,
			counted: true, decided: true, status: approvebot.StatusApproved},
		{name: "an approver denies", rule: "one", user: "U0BEN", channel: "C0OPS", decision: approvebot.Deny,
			counted: true, decided: true, status: approvebot.StatusDenied},
		{name: "a member of a listed user group", rule: "one", user: "U0CAT", channel: "C0OPS", decision: approvebot.Allow,
			counted: true, decided: true, status: approvebot.StatusApproved},
		{name: "not an approver", rule: "one", user: "U0EVE", channel: "C0OPS", decision: approvebot.Allow,
			status: approvebot.StatusPending, says: "you are not an approver for ops"},
		{name: "an approver of another group", rule: "one", user: "U0SAM", channel: "C0OPS", decision: approvebot.Allow,
			status: approvebot.StatusPending, says: "you are not an approver for ops"},
		{name: "unknown to the platform", rule: "one", user: "U0GHOST", channel: "C0OPS", decision: approvebot.Allow,
			status: approvebot.StatusPending, says: "could not verify who you are"},
		{name: "quorum of two: the first approval counts, not decides", rule: "two", user: "U0ANN", channel: "C0OPS", decision: approvebot.Allow,
			counted: true, status: approvebot.StatusPending},
		{name: "quorum of two: the second decides", rule: "two", before: [][2]string{{"U0ANN", "C0OPS"}}, user: "U0BEN", channel: "C0OPS",
			decision: approvebot.Allow, counted: true, decided: true, status: approvebot.StatusApproved},
		{name: "already voted", rule: "two", before: [][2]string{{"U0ANN", "C0OPS"}}, user: "U0ANN", channel: "C0OPS",
			decision: approvebot.Allow, status: approvebot.StatusPending, says: "you already approved"},
		{name: "stage one approved opens stage two", rule: "staged", user: "U0ANN", channel: "C0OPS", decision: approvebot.Allow,
			counted: true, status: approvebot.StatusPending},
		{name: "stage two approved decides", rule: "staged", before: [][2]string{{"U0ANN", "C0OPS"}}, user: "U0SAM", channel: "C0SEC",
			decision: approvebot.Allow, counted: true, decided: true, status: approvebot.StatusApproved},
		{name: "a click on the message of a stage that is over", rule: "staged", before: [][2]string{{"U0ANN", "C0OPS"}}, user: "U0SAM", channel: "C0OPS",
			decision: approvebot.Allow, status: approvebot.StatusPending, says: "which is over"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rg := newRig(t)
			r := rg.posted(tt.rule, 1)
			for i, b := range tt.before {
				if res := rg.click(r.ID, b[1], b[0], approvebot.Allow); !res.Counted {
					t.Fatalf("approval %d by %s: %+v", i, b[0], res)
				}
			}
			if tt.rule == "staged" && len(tt.before) > 0 {
				rg.waitRecorded(r.ID, 2) // stage two's message
			}
			res := rg.click(r.ID, tt.channel, tt.user, tt.decision)
			if res.Counted != tt.counted || res.Decided != tt.decided {
				t.Errorf("click: counted %v decided %v (%q), want %v %v", res.Counted, res.Decided, res.Message, tt.counted, tt.decided)
			}
			if tt.says != "" && !strings.Contains(res.Message, tt.says) {
				t.Errorf("clicker told %q, want %q in it", res.Message, tt.says)
			}
			if !tt.counted && !strings.HasPrefix(res.Message, "Nothing changed") {
				t.Errorf("refused click told %q, want it to start with Nothing changed", res.Message)
			}
			got, err := rg.store.Get(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status {
				t.Errorf("status %s, want %s", got.Status, tt.status)
			}
		})
	}
}

// TestStagesPostInTurn: the second stage's group sees the request only
// once the first stage is approved, and the decision shows on every message.
func TestStagesPostInTurn(t *testing.T) {
	rg := newRig(t)
	r := rg.posted("staged", 1)
	if posts := rg.slack.callsOf("post"); len(posts) != 1 || posts[0].Channel != "C0OPS" {
		t.Fatalf("posts %+v, want only C0OPS before stage one is approved", posts)
	}
	if res := rg.click(r.ID, "C0OPS", "U0ANN", approvebot.Allow); !res.Counted || res.Decided {
		t.Fatalf("stage one: %+v", res)
	}
	posts := rg.slack.waitCalls(t, "post", 2)
	if posts[1].Channel != "C0SEC" {
		t.Fatalf("second post in %s, want C0SEC", posts[1].Channel)
	}
	rg.waitRecorded(r.ID, 2)
	if res := rg.click(r.ID, "C0SEC", "U0SAM", approvebot.Allow); !res.Decided {
		t.Fatalf("stage two: %+v", res)
	}
	final := rg.final(r.ID)
	if final.Status != approvebot.StatusApproved || len(final.Entries) != 2 {
		t.Fatalf("status %s with %d entries, want approved with 2", final.Status, len(final.Entries))
	}
	// Both messages end up showing the outcome, without buttons.
	rg.slack.waitFor(t, "both messages updated to the outcome", func() bool {
		shown := map[string]bool{}
		for _, u := range rg.slack.callsOf("update") {
			if u.Msg.Status == approvebot.StatusApproved && !u.Msg.Actionable {
				shown[u.Channel] = true
			}
		}
		return shown["C0OPS"] && shown["C0SEC"]
	})
	// And the outcome is replied in each message's thread.
	rg.slack.waitFor(t, "the outcome in both threads", func() bool {
		n := 0
		for _, c := range rg.slack.callsOf("reply") {
			if c.Note.Kind == approvebot.NoteOutcome {
				n++
			}
		}
		return n == 2
	})
}

// TestTimeoutDenies: at its deadline, a request nobody decided is denied
// as timed out, and a later click is refused.
func TestTimeoutDenies(t *testing.T) {
	rg := newRig(t)
	r := rg.posted("one", 1)
	rg.clock.Advance(5*time.Minute - time.Second)
	if got, _ := rg.store.Get(r.ID); got.Status != approvebot.StatusPending {
		t.Fatalf("a second before the deadline: status %s", got.Status)
	}
	rg.clock.Advance(time.Second)
	got := rg.final(r.ID)
	if got.Status != approvebot.StatusTimedOut {
		t.Fatalf("status %s, want timed_out", got.Status)
	}
	if want := "timed out after 300 s without a decision"; got.Resolution.Reason != want {
		t.Fatalf("reason %q, want %q", got.Resolution.Reason, want)
	}
	if res := rg.click(r.ID, "C0OPS", "U0ANN", approvebot.Allow); res.Counted || !strings.Contains(res.Message, "Nothing changed") {
		t.Fatalf("click after the timeout: %+v", res)
	}
}

// TestPreferWaitShortensTheDeadline: an agent that will wait less than the
// route's timeout is answered by its own wait.
func TestPreferWaitShortensTheDeadline(t *testing.T) {
	rg := newRig(t)
	body, _ := intaketest.LegacyBody(intaketest.Legacy{RuleName: "one", Approvers: []string{}, RequestedAt: rg.clock.Now()})
	r := rg.submitBody(body, SubmitOptions{Caller: "agent", Wait: 30 * time.Second})
	rg.waitRecorded(r.ID, 1)
	rg.clock.Advance(30 * time.Second)
	if got := rg.final(r.ID); got.Status != approvebot.StatusTimedOut || got.Resolution.Reason != "timed out after 30 s without a decision" {
		t.Fatalf("status %s reason %q", got.Status, got.Resolution.Reason)
	}
}

// wantUndeliverable fails the test unless got ended undeliverable with
// reason.
func wantUndeliverable(t *testing.T, got *approvebot.Request, reason string) {
	t.Helper()
	if got.Status != approvebot.StatusUndeliverable {
		t.Fatalf("status %s, want undeliverable", got.Status)
	}
	if got.Resolution.Reason != reason {
		t.Fatalf("reason %q, want %q", got.Resolution.Reason, reason)
	}
}

// TestDelivery: how a request fares when the platform fails its posts.
func TestDelivery(t *testing.T) {
	t.Run("a permanent failure on the only channel: undeliverable at once", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", permanent("channel_not_found"))
		r := rg.submit("one")
		got := rg.final(r.ID)
		wantUndeliverable(t, got, "could not be shown to any approver: chat C0OPS: channel_not_found")
		if d := got.Destinations[0]; d.State != approvebot.DeliveryFailed || d.Error != "channel_not_found" {
			t.Fatalf("destination %+v", d)
		}
	})
	t.Run("one channel of two failing: the other still decides", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", permanent("is_archived"))
		r := rg.submit("both")
		rg.waitOutbox()
		got, _ := rg.store.Get(r.ID)
		failed := 0
		var live string
		for _, d := range got.Destinations {
			if d.State == approvebot.DeliveryFailed {
				failed++
			} else {
				live = d.Channel
			}
		}
		if failed != 1 || got.Status != approvebot.StatusPending {
			t.Fatalf("status %s with %d failed, want pending with 1", got.Status, failed)
		}
		user := map[string]string{"C0OPS": "U0ANN", "C0SEC": "U0SAM"}[live]
		if res := rg.click(r.ID, live, user, approvebot.Allow); !res.Decided {
			t.Fatalf("click: %+v", res)
		}
	})
	t.Run("a retryable failure: retried after a backoff", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", retryable())
		r := rg.submit("one")
		rg.slack.waitCalls(t, "post", 1)
		rg.clock.waitTimers(t, 2) // the deadline's and the retry's
		if n := len(rg.slack.callsOf("post")); n != 1 {
			t.Fatalf("%d posts before the backoff, want 1", n)
		}
		rg.clock.Advance(backoffBase)
		got := rg.waitRecorded(r.ID, 1)
		if n := len(rg.slack.callsOf("post")); n != 2 || got.Destinations[0].Error != "" {
			t.Fatalf("%d posts, destination %+v; want the second to be recorded", n, got.Destinations[0])
		}
	})
	t.Run("rate limited: the retry waits as long as asked", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", rateLimited(7*time.Second))
		r := rg.submit("one")
		rg.slack.waitCalls(t, "post", 1)
		rg.clock.waitTimers(t, 2)
		rg.clock.Advance(7*time.Second - time.Millisecond)
		if n := len(rg.slack.callsOf("post")); n != 1 {
			t.Fatalf("%d posts before Retry-After, want 1", n)
		}
		rg.clock.Advance(time.Second) // past the jitter (a tenth of the wait)
		rg.waitRecorded(r.ID, 1)
	})
	t.Run("failing past the delivery timeout: undeliverable", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", retryable(), retryable())
		r := rg.submit("one")
		rg.slack.waitCalls(t, "post", 1)
		rg.clock.waitTimers(t, 2)
		rg.clock.Jump(30 * time.Second) // the configured delivery timeout
		got := rg.final(r.ID)
		if got.Status != approvebot.StatusUndeliverable || !strings.HasSuffix(got.Resolution.Reason, "chat C0OPS: HTTP 503") {
			t.Fatalf("status %s reason %q", got.Status, got.Resolution.Reason)
		}
		if n := len(rg.slack.callsOf("post")); n != 2 {
			t.Fatalf("%d posts, want 2", n)
		}
	})
	t.Run("rate limited past the deadline: failed as rate limited", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.setInterval(time.Second)
		rg.slack.failNext("post", rateLimited(10*time.Minute))
		first := rg.submit("one")
		rg.slack.waitCalls(t, "post", 1)
		rg.clock.waitTimers(t, 2)
		// The channel takes no post for ten minutes: a request that must
		// be decided in five is told now, not left to time out.
		second := rg.submit("one")
		got := rg.final(second.ID)
		wantUndeliverable(t, got, "could not be shown to any approver: chat C0OPS: rate limited")
		if n := len(rg.slack.callsOf("post")); n != 1 {
			t.Fatalf("%d posts, want only the first request's", n)
		}
		if got, _ := rg.store.Get(first.ID); got.Status != approvebot.StatusPending {
			t.Fatalf("first request %s, want still pending", got.Status)
		}
	})
	t.Run("decided before it could be posted: skipped", func(t *testing.T) {
		rg := newRig(t)
		rg.slack.failNext("post", retryable())
		r := rg.submit("one")
		rg.slack.waitCalls(t, "post", 1)
		rg.clock.waitTimers(t, 2)
		if _, err := rg.engine.Cancel("agent", r.ID); err != nil {
			t.Fatal(err)
		}
		rg.clock.Advance(time.Second)
		rg.waitOutbox()
		if got, _ := rg.store.Get(r.ID); got.Destinations[0].State != approvebot.DeliverySkipped {
			t.Fatalf("destination %+v, want skipped", got.Destinations[0])
		}
		if n := len(rg.slack.callsOf("post")); n != 1 {
			t.Fatalf("%d posts, want no second one", n)
		}
	})
	t.Run("an update failing for good is given up", func(t *testing.T) {
		rg := newRig(t)
		r := rg.posted("one", 1)
		rg.slack.failNext("update", permanent("message_not_found"))
		rg.click(r.ID, "C0OPS", "U0ANN", approvebot.Allow)
		rg.waitOutbox()
		if got, _ := rg.store.Get(r.ID); got.Destinations[0].Error != "update failed: message_not_found" {
			t.Fatalf("destination %+v, want the update's failure recorded", got.Destinations[0])
		}
		if n := len(rg.slack.callsOf("update")); n != 1 {
			t.Fatalf("%d updates, want 1", n)
		}
	})
}

// TestCancel: the agent withdraws its request; a second withdrawal finds
// it withdrawn; one decided first is not withdrawn; another caller's is
// not found.
func TestCancel(t *testing.T) {
	rg := newRig(t)
	r := rg.posted("one", 1)
	if _, err := rg.engine.Cancel("other", r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another caller's cancel: %v, want not found", err)
	}
	got, err := rg.engine.Cancel("agent", r.ID)
	if err != nil || got.Status != approvebot.StatusCancelled {
		t.Fatalf("cancel: %v, status %v", err, got)
	}
	if !strings.Contains(got.Resolution.Reason, "withdrawn by the agent (caller agent)") {
		t.Fatalf("reason %q", got.Resolution.Reason)
	}
	if again, err := rg.engine.Cancel("agent", r.ID); err != nil || again.Status != approvebot.StatusCancelled {
		t.Fatalf("second cancel: %v, %v", err, again)
	}
	if res := rg.click(r.ID, "C0OPS", "U0ANN", approvebot.Allow); res.Counted {
		t.Fatalf("click on a withdrawn request counted: %+v", res)
	}

	decided := rg.posted("one", 1)
	rg.click(decided.ID, "C0OPS", "U0ANN", approvebot.Allow)
	if got, err := rg.engine.Cancel("agent", decided.ID); !errors.Is(err, ErrFinal) || got.Status != approvebot.StatusApproved {
		t.Fatalf("cancel after the decision: %v, %v", err, got)
	}
}

// TestDecisionAnswersWaiter: an agent held on a request gets the decision
// as committed, from the click that made it; one whose wait ends first
// gets the request as it stands.
func TestDecisionAnswersWaiter(t *testing.T) {
	rg := newRig(t)
	r := rg.posted("one", 1)
	got := make(chan *approvebot.Request, 1)
	rg.engine.Watch(r.ID, func(w *approvebot.Request) { got <- w })
	select {
	case w := <-got:
		t.Fatalf("watcher answered with %s before any click", w.Status)
	default:
	}
	if res := rg.click(r.ID, "C0OPS", "U0ANN", approvebot.Allow); !res.Decided {
		t.Fatalf("click: %+v", res)
	}
	w := <-got
	if w.Status != approvebot.StatusApproved || w.Resolution.Approver != "ann@example.com" || w.Assertion != "" {
		t.Fatalf("watcher got %s by %q", w.Status, w.Resolution.Approver)
	}

	pending := rg.posted("one", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w, err := rg.engine.Wait(ctx, pending.ID); !errors.Is(err, context.Canceled) || w == nil || w.Status != approvebot.StatusPending {
		t.Fatalf("wait ended early: %v, %+v", err, w)
	}
	if w, err := rg.engine.Wait(context.Background(), r.ID); err != nil || w.Status != approvebot.StatusApproved {
		t.Fatalf("wait on a decided request: %v, %+v", err, w)
	}
}

// TestRestartKeepsDeadlines: an engine started on a store holding pending
// requests expires at once those whose deadline passed while it was down,
// and the others at their deadline.
func TestRestartKeepsDeadlines(t *testing.T) {
	rg := newRig(t)
	due := rg.posted("one", 1)
	rg.clock.Advance(4 * time.Minute)
	later := rg.posted("one", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rg.engine.Drain(ctx)
	rg.clock.Advance(2 * time.Minute) // while no engine runs
	e, err := New(Config{Policy: testPolicy(t), Store: rg.store, Platforms: []Platform{rg.slack}, Clock: rg.clock,
		Logger: rg.engine.log, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	rg.engine = e // drained by the rig's cleanup
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rg.final(due.ID); got.Status != approvebot.StatusTimedOut {
		t.Fatalf("status %s, want timed_out", got.Status)
	}
	if got, _ := rg.store.Get(later.ID); got.Status != approvebot.StatusPending {
		t.Fatalf("the later request %s at restart, want pending", got.Status)
	}
	rg.clock.Advance(3 * time.Minute)
	if got := rg.final(later.ID); got.Status != approvebot.StatusTimedOut {
		t.Fatalf("status %s, want timed_out at its deadline", got.Status)
	}
}

// TestDecidedElsewhere: a decision committed to the store by another writer
// (another replica sharing the store, an operator's command) reaches the
// agents held here, and the request's deadline timer is dropped.
func TestDecidedElsewhere(t *testing.T) {
	rg := newRig(t)
	r := rg.posted("one", 1)
	got := make(chan *approvebot.Request, 1)
	rg.engine.Watch(r.ID, func(w *approvebot.Request) { got <- w })
	if n := rg.engine.pendingTimers(); n != 1 {
		t.Fatalf("%d deadline timers, want the request's", n)
	}
	now := rg.clock.Now()
	if _, err := rg.store.Update(r.ID, func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusDenied
		r.Resolution = &approvebot.Resolution{Outcome: approvebot.Deny, Status: approvebot.StatusDenied, Approver: "ben@example.com", ResolvedAt: now}
		return store.Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var w *approvebot.Request
	select {
	case w = <-got:
	case <-time.After(time.Minute): // a hang guard, not a measure
		t.Fatal("the held agent was never answered")
	}
	if w.Status != approvebot.StatusDenied || w.Resolution.Approver != "ben@example.com" {
		t.Fatalf("the held agent got %s by %+v", w.Status, w.Resolution)
	}
	if n := rg.engine.pendingTimers(); n != 0 {
		t.Fatalf("%d deadline timers left for a request decided elsewhere", n)
	}
	if w, err := rg.engine.Wait(context.Background(), r.ID); err != nil || w.Status != approvebot.StatusDenied {
		t.Fatalf("wait after: %v %+v", err, w)
	}
}

// TestRequestedDetailEncodesAsTheMap: the approval_requested detail encodes
// byte for byte as the map of the same keys it replaced (what audit
// records written before it hold), with and without each optional key.
func TestRequestedDetailEncodesAsTheMap(t *testing.T) {
	yes, no := true, false
	target := "accounts/42"
	chain := approvebot.Chain{ID: "payments", Stages: []approvebot.Stage{{
		Groups: []approvebot.Group{{Name: "ops", Sides: map[string]approvebot.Side{"chat": {Channels: []string{"C0<&>"}, Users: []string{"U1"}}}}},
		Quorum: approvebot.Quorum{Mode: approvebot.QuorumAny},
	}}}
	for i, c := range []struct {
		naive  []string
		closed *bool
		body   string
	}{
		{}, {naive: []string{"requested_at"}}, {closed: &yes}, {closed: &no, naive: []string{"a", "b"}, body: "sha256:ff"},
		{naive: []string{}},
	} {
		fields := approvebot.Fields{Type: "approval_request", AgentID: "agent <1>", Action: "transfer \u2028 & more", Approvers: []string{"ops"},
			TargetResource: &target, FailClosedOnTimeout: c.closed}
		deadline := time.Date(2026, 12, 2, 12, 0, 0, 123, time.UTC)
		old := map[string]any{
			"schema": approvebot.SchemaLegacy, "digest": "sha256:00", "body_digest": c.body, "fields": fields, "chain": chain, "deadline": deadline,
		}
		if len(c.naive) > 0 {
			old["naive_times"] = c.naive
		}
		if c.closed != nil {
			old["fail_closed_on_timeout"] = *c.closed
		}
		want, err := json.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(requestedDetail{Schema: approvebot.SchemaLegacy, Digest: "sha256:00", BodyDigest: c.body, Fields: fields, Chain: chain,
			Deadline: deadline, NaiveTimes: c.naive, FailClosedOnTimeout: c.closed})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestPostedDetailEncodesAsTheMap: likewise for message_posted.
func TestPostedDetailEncodesAsTheMap(t *testing.T) {
	ref := approvebot.MessageRef{Channel: "C0<OPS>", ID: "1700000000.000100"}
	want, err := json.Marshal(map[string]any{"platform": "chat", "channel": "C0&OPS", "ref": ref, "version": uint64(3)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(postedDetail{Platform: "chat", Channel: "C0&OPS", Ref: ref, Version: 3})
	if err != nil || string(got) != string(want) {
		t.Fatalf("got %s (%v)\nwant %s", got, err, want)
	}
}
