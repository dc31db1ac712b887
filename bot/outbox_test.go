package bot

import (
	"errors"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

// TestJobNext walks every transition of an outbox job's state machine: from
// the destination's state, its request's, and what the last call answered,
// to the step the job takes next.
func TestJobNext(t *testing.T) {
	const giveUp = 30 * time.Second
	retryable := &approvebot.DeliveryError{Reason: "HTTP 503"}
	permanent := &approvebot.DeliveryError{Permanent: true, Reason: "channel_not_found"}
	limited := &approvebot.DeliveryError{Reason: "ratelimited", RetryAfter: 7 * time.Second}
	storeDown := errors.New("disk I/O error")

	// queued is a destination waiting for its post, on a configured platform.
	queued := jobView{hasDest: true, platform: chat, configured: true, dest: approvebot.DeliveryQueued, postGiveUp: giveUp}
	with := func(v jobView, f func(*jobView)) jobView { f(&v); return v }
	posted := with(queued, func(v *jobView) { v.dest = approvebot.DeliveryPosted })
	after := func(v jobView, a callAnswer) jobView { v.last = a; return v }

	for _, tt := range []struct {
		name string
		v    jobView
		want step
	}{
		// Nothing called yet: the stored state decides.
		{"request gone", jobView{gone: true}, step{do: doForget}},
		{"request unreadable", jobView{last: callAnswer{call: callStore, err: storeDown}}, step{do: doRetry}},
		{"destination gone", jobView{}, step{do: doSettle}},
		{"platform not configured", with(queued, func(v *jobView) { v.configured = false }),
			step{do: doFail, reason: "platform chat is not configured", config: true}},
		{"queued: ask for a turn", queued, step{do: doAwaitTurn}},
		{"queued with a turn: post", with(queued, func(v *jobView) { v.turn = true }), step{do: doPost}},
		{"queued, request final before the post: skip", with(queued, func(v *jobView) { v.final = true }), step{do: doSkip}},
		{"queued, final, a post unrecorded: still skip", with(queued, func(v *jobView) { v.final, v.unrecorded = true, true }), step{do: doSkip}},
		{"queued, a post unrecorded: record it, never post again", with(queued, func(v *jobView) { v.unrecorded, v.turn = true, true }), step{do: doRecordPost}},
		{"posted, up to date: settle", posted, step{do: doSettle}},
		{"posted, stale: update", with(posted, func(v *jobView) { v.stale = true }), step{do: doUpdate}},
		{"posted, notes owed: reply first", with(posted, func(v *jobView) { v.notesOwed, v.stale = true, true }), step{do: doReply}},
		{"posted but final: the update still goes", with(posted, func(v *jobView) { v.final, v.stale = true, true }), step{do: doUpdate}},
		{"waiting for its stage: settle", with(queued, func(v *jobView) { v.dest = approvebot.DeliveryWaiting }), step{do: doSettle}},
		{"failed: settle", with(queued, func(v *jobView) { v.dest = approvebot.DeliveryFailed }), step{do: doSettle}},
		{"skipped: settle", with(queued, func(v *jobView) { v.dest = approvebot.DeliverySkipped }), step{do: doSettle}},

		// The pacer answered.
		{"turn granted: post", after(queued, callAnswer{call: callPace, pace: goNow}), step{do: doPost}},
		{"turn to come: park", after(queued, callAnswer{call: callPace, pace: waitFor}), step{do: doPark}},
		{"no turn before the deadline: fail rate limited", after(queued, callAnswer{call: callPace, pace: tooLate}),
			step{do: doFail, reason: reasonRateLimited}},

		// The platform answered a post.
		{"posted: record it", after(queued, callAnswer{call: callPost}), step{do: doRecordPost}},
		{"post failed, retryable: back off", after(queued, callAnswer{call: callPost, err: retryable, failingFor: time.Second}),
			step{do: doRetry}},
		{"post failed for good: fail with the platform's reason", after(queued, callAnswer{call: callPost, err: permanent}),
			step{do: doFail, reason: "channel_not_found"}},
		{"post rate limited: hold the destination as asked", after(queued, callAnswer{call: callPost, err: limited}),
			step{do: doRetry, retryAfter: 7 * time.Second, holdLane: true}},
		{"post failing as long as allowed: fail", after(queued, callAnswer{call: callPost, err: retryable, failingFor: giveUp}),
			step{do: doFail, reason: "HTTP 503"}},
		{"post failing just short of the limit: retry", after(queued, callAnswer{call: callPost, err: retryable, failingFor: giveUp - 1}),
			step{do: doRetry}},
		{"post rate limited past the deadline: fail", after(queued, callAnswer{call: callPost, err: limited, pastDeadline: true}),
			step{do: doFail, reason: "ratelimited"}},

		// The platform answered the thread notes.
		{"notes replied, stale: update", after(with(posted, func(v *jobView) { v.notesOwed, v.stale = true, true }), callAnswer{call: callReply}),
			step{do: doUpdate}},
		{"notes replied, up to date: settle", after(with(posted, func(v *jobView) { v.notesOwed = true }), callAnswer{call: callReply}),
			step{do: doSettle}},
		{"notes failed: back off as asked", after(with(posted, func(v *jobView) { v.notesOwed = true }), callAnswer{call: callReply, err: limited}),
			step{do: doRetry, retryAfter: 7 * time.Second}},

		// The platform answered an update.
		{"updated: record the version shown", after(posted, callAnswer{call: callUpdate}), step{do: doRecordShown}},
		{"update failed, retryable: back off as asked", after(posted, callAnswer{call: callUpdate, err: limited}),
			step{do: doRetry, retryAfter: 7 * time.Second}},
		{"update failed for good: give up", after(posted, callAnswer{call: callUpdate, err: permanent}),
			step{do: doGiveUpUpdate, reason: "channel_not_found"}},
		{"update failing for hours: give up", after(posted, callAnswer{call: callUpdate, err: retryable, failingFor: updateGiveUp}),
			step{do: doGiveUpUpdate, reason: "HTTP 503"}},
		{"update failing past the post limit only: retry", after(posted, callAnswer{call: callUpdate, err: retryable, failingFor: updateGiveUp - time.Second}),
			step{do: doRetry}},

		// The store answered a record.
		{"recorded: done", after(queued, callAnswer{call: callStore}), step{do: doDone}},
		{"record failed: retry", after(queued, callAnswer{call: callStore, err: storeDown}), step{do: doRetry}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.next(); got != tt.want {
				t.Errorf("next() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestJobTransitions checks what each recorded outcome writes to a
// destination, and that the last destination of a stage failing ends the
// request as undeliverable.
func TestJobTransitions(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	req := func(states ...string) *approvebot.Request {
		r := &approvebot.Request{ID: "ar_1", Status: approvebot.StatusPending, Version: 3, Deadline: now.Add(time.Hour),
			Thread: []approvebot.Note{{Kind: approvebot.NoteStage, Text: "opened", Stage: -1}}}
		for i, s := range states {
			r.Destinations = append(r.Destinations, approvebot.Destination{Platform: chat, Channel: "C" + string(rune('A'+i)), State: s})
		}
		return r
	}

	t.Run("skipped only when final and queued", func(t *testing.T) {
		r := req(approvebot.DeliveryQueued)
		skipped(r, &r.Destinations[0])
		if r.Destinations[0].State != approvebot.DeliveryQueued {
			t.Fatalf("pending request: state %q, want queued", r.Destinations[0].State)
		}
		r.Status = approvebot.StatusApproved
		skipped(r, &r.Destinations[0])
		if r.Destinations[0].State != approvebot.DeliverySkipped {
			t.Fatalf("final request: state %q, want skipped", r.Destinations[0].State)
		}
	})
	t.Run("posted starts its own thread", func(t *testing.T) {
		r := req(approvebot.DeliveryQueued)
		d := &r.Destinations[0]
		d.Error = "HTTP 503"
		ref := approvebot.MessageRef{Channel: "CA", ID: "1.2"}
		ch := posted(ref, 3, now)(r, d)
		if d.State != approvebot.DeliveryPosted || d.Ref != ref || d.Shown != 3 || d.Error != "" || d.Replied != 1 {
			t.Fatalf("destination %+v", *d)
		}
		if len(ch.Events) != 1 || ch.Events[0].Type != approvebot.EventPosted {
			t.Fatalf("events %+v", ch.Events)
		}
	})
	t.Run("shown never goes back", func(t *testing.T) {
		r := req(approvebot.DeliveryPosted)
		d := &r.Destinations[0]
		d.Shown = 5
		shown(4)(r, d)
		if d.Shown != 5 {
			t.Fatalf("shown %d, want 5", d.Shown)
		}
		shown(6)(r, d)
		if d.Shown != 6 {
			t.Fatalf("shown %d, want 6", d.Shown)
		}
	})
	t.Run("failed, another destination left: still pending", func(t *testing.T) {
		r := req(approvebot.DeliveryQueued, approvebot.DeliveryPosted)
		ch := failed("channel_not_found", false, now)(r, &r.Destinations[0])
		if r.Destinations[0].State != approvebot.DeliveryFailed || r.Destinations[0].Error != "channel_not_found" {
			t.Fatalf("destination %+v", r.Destinations[0])
		}
		if r.Status != approvebot.StatusPending || len(ch.Events) != 1 || !ch.Visible {
			t.Fatalf("status %s, events %+v, visible %v", r.Status, ch.Events, ch.Visible)
		}
	})
	t.Run("failed, none left: undeliverable", func(t *testing.T) {
		r := req(approvebot.DeliveryFailed, approvebot.DeliveryQueued)
		r.Destinations[0].Error = "is_archived"
		ch := failed(reasonRateLimited, false, now)(r, &r.Destinations[1])
		if r.Status != approvebot.StatusUndeliverable {
			t.Fatalf("status %s, want undeliverable", r.Status)
		}
		const want = "could not be shown to any approver: chat CA: is_archived; chat CB: rate limited"
		if r.Resolution == nil || r.Resolution.Reason != want {
			t.Fatalf("resolution %+v, want reason %q", r.Resolution, want)
		}
		if len(ch.Events) != 2 || ch.Events[1].Type != approvebot.EventResolved {
			t.Fatalf("events %+v", ch.Events)
		}
		if n := r.Thread[len(r.Thread)-1]; n.Kind != approvebot.NoteOutcome {
			t.Fatalf("last note %+v, want the outcome", n)
		}
	})
	t.Run("failed leaves a destination no longer queued alone", func(t *testing.T) {
		r := req(approvebot.DeliveryPosted)
		if ch := failed("x", false, now)(r, &r.Destinations[0]); len(ch.Events) != 0 || r.Destinations[0].State != approvebot.DeliveryPosted {
			t.Fatalf("destination %+v, events %+v", r.Destinations[0], ch.Events)
		}
	})
	t.Run("update failed stops the updates", func(t *testing.T) {
		r := req(approvebot.DeliveryPosted)
		d := &r.Destinations[0]
		ch := updateFailed("message_not_found", now)(r, d)
		if d.Shown != 3 || d.Error != "update failed: message_not_found" || d.State != approvebot.DeliveryPosted {
			t.Fatalf("destination %+v", *d)
		}
		if len(ch.Events) != 1 || ch.Events[0].Type != approvebot.EventFailed {
			t.Fatalf("events %+v", ch.Events)
		}
	})
}
