package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// EventReminder records a reminder sent to a stage's approvers;
// EventEscalated a stage widened to the groups of an escalation step.
const (
	EventReminder  = "approval_reminder"
	EventEscalated = "approval_escalated"
)

// Replier is an optional Platform method: post a note of a request's
// history as a reply in the thread of the message at ref. mention lists the
// groups whose approvers the note calls on (reminders); the platform names
// those of them it knows.
type Replier interface {
	Reply(ctx context.Context, ref approvebot.MessageRef, note approvebot.Note, mention []approvebot.Group) error
}

// nudgeTimers are the armed reminder timers, one per pending request with
// a reminder due.
type nudgeTimers struct {
	mu     sync.Mutex
	timers map[string]Timer
}

func (n *nudgeTimers) set(id string, t Timer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.timers == nil {
		n.timers = map[string]Timer{}
	}
	if old, ok := n.timers[id]; ok {
		old.Stop()
	}
	if t == nil {
		delete(n.timers, id)
		return
	}
	n.timers[id] = t
}

func (n *nudgeTimers) stopAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, t := range n.timers {
		t.Stop()
		delete(n.timers, id)
	}
}

// reminderTimes are when a request's approvers are reminded: each of its
// chain's reminders after it opened, and before_deadline before its
// deadline; only those before the deadline, in order.
func reminderTimes(r *approvebot.Request) []time.Time {
	var out []time.Time
	for _, d := range r.Chain.Reminders {
		out = append(out, r.CreatedAt.Add(d))
	}
	if b := r.Chain.BeforeDeadline; b > 0 {
		if t := r.Deadline.Add(-b); t.After(r.CreatedAt) {
			out = append(out, t)
		}
	}
	out = slices.DeleteFunc(out, func(t time.Time) bool { return !t.Before(r.Deadline) })
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, time.Time.Equal)
}

// escalationDue is when step of r's chain escalates; ok is false for a
// step that does not exist or would come at or after the deadline.
func escalationDue(r *approvebot.Request, step int) (time.Time, bool) {
	if step >= len(r.Chain.Escalate) {
		return time.Time{}, false
	}
	t := r.CreatedAt.Add(r.Chain.Escalate[step].After)
	return t, t.Before(r.Deadline)
}

// nextNudge is when r's next reminder or escalation is due (zero: none
// left).
func nextNudge(r *approvebot.Request) time.Time {
	if r.Status.Final() {
		return time.Time{}
	}
	var next time.Time
	if times := reminderTimes(r); r.Reminded < len(times) {
		next = times[r.Reminded]
	}
	if t, ok := escalationDue(r, len(r.Escalations)); ok && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next.Round(0)
}

// armNudge sets r's reminder timer from its stored Nudge.
func (e *Engine) armNudge(id string, at time.Time) {
	if at.IsZero() {
		e.nudges.set(id, nil)
		return
	}
	e.nudges.set(id, e.clock.AfterFunc(at.Sub(e.clock.Now()), func() { e.nudge(id) }))
}

// rearmNudges arms, at start, the reminder of every pending request that has
// one due, from the store's reminder index. One already past is sent now,
// once: a request whose several reminders came due while approvebot was
// down gets only the latest of them.
func (e *Engine) rearmNudges() error {
	return e.store.Nudges(func(id string, at time.Time) error {
		e.armNudge(id, at)
		return nil
	})
}

// nudge sends the reminder due for a pending request: a note in the thread
// of each of its current stage's messages, naming that stage's approvers.
// Reminders owed and missed (the server was down, or busy) collapse into
// one.
func (e *Engine) nudge(id string) {
	now := e.clock.Now()
	r, err := e.store.Update(id, func(r *approvebot.Request) (store.Change, error) {
		if r.Status.Final() {
			return store.Change{Abort: true}, nil
		}
		var ch store.Change
		// Every escalation step due happens, in order: each widens the
		// stage then current, as configured.
		for {
			t, ok := escalationDue(r, len(r.Escalations))
			if !ok || t.After(now) {
				break
			}
			ch.Events = append(ch.Events, e.escalate(r, now))
			ch.Visible = true
		}
		times := reminderTimes(r)
		owed := -1
		for i := r.Reminded; i < len(times); i++ {
			if !times[i].After(now) {
				owed = i
			}
		}
		if owed >= 0 {
			// Reminders missed (the server was down) are not replayed:
			// only the latest is sent.
			skipped := owed - r.Reminded
			r.Reminded = owed + 1
			r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteReminder, At: now, Stage: r.Stage,
				Text: "Reminder: this request is still waiting for " + waiting(r)})
			ch.Events = append(ch.Events, event(EventReminder, r.ID, now, "system:reminder", map[string]any{
				"stage": r.Stage, "groups": r.Chain.Stages[r.Stage].GroupNames(), "skipped": skipped,
			}))
		}
		if len(ch.Events) == 0 {
			return store.Change{Abort: true}, nil
		}
		r.Nudge = nextNudge(r)
		return ch, nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrClosed) {
			return
		}
		// A reminder's timer has no context: the line names the request.
		e.log.Error("reminder failed; retrying", "request_id", id, "err", err)
		e.nudges.set(id, e.clock.AfterFunc(time.Second, func() { e.nudge(id) }))
		return
	}
	if r.Status.Final() {
		e.nudges.set(id, nil)
		return
	}
	e.armNudge(id, r.Nudge)
}

// escalate widens r's current stage to the groups of its chain's next
// escalation step: they get the request in their channels (new messages,
// or added to a message of the stage already in that channel), may decide
// the stage from there, and every message's thread says so. It returns the
// audit record.
func (e *Engine) escalate(r *approvebot.Request, now time.Time) approvebot.Event {
	step := len(r.Escalations)
	esc := r.Chain.Escalate[step]
	names := approvebot.Stage{Groups: esc.Groups}.GroupNames()
	r.Escalations = append(r.Escalations, approvebot.Escalated{Step: step, Stage: r.Stage, Groups: names, At: now})
	for _, d := range stageDestinations(approvebot.Stage{Groups: esc.Groups}, r.Stage, approvebot.DeliveryQueued, e.order) {
		i := slices.IndexFunc(r.Destinations, func(x approvebot.Destination) bool {
			return x.Platform == d.Platform && x.Channel == d.Channel && x.Stage == d.Stage
		})
		if i < 0 {
			r.Destinations = append(r.Destinations, d)
			continue
		}
		for _, g := range d.Groups {
			if !slices.Contains(r.Destinations[i].Groups, g) {
				r.Destinations[i].Groups = append(r.Destinations[i].Groups, g)
			}
		}
	}
	list := groupList(approvebot.Stage{Groups: esc.Groups})
	r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteEscalate, At: now, Stage: -1,
		Text: fmt.Sprintf("Escalated to %s: still undecided %s after it was requested; they may now decide %s", list, esc.After, stageName(r))})
	return event(EventEscalated, r.ID, now, "system:escalation", map[string]any{
		"step": step, "stage": r.Stage, "groups": names, "after": esc.After.String(),
	})
}

func stageName(r *approvebot.Request) string {
	if n := len(r.Chain.Stages); n > 1 {
		return fmt.Sprintf("stage %d of %d", r.Stage+1, n)
	}
	return "it"
}

// waiting names the stage a pending request waits on, and its groups.
func waiting(r *approvebot.Request) string {
	s := groupList(r.Chain.Stages[r.Stage])
	if n := len(r.Chain.Stages); n > 1 {
		s += fmt.Sprintf(" (stage %d of %d)", r.Stage+1, n)
	}
	return s
}

// voteNotes add a counted vote to the request's history: the vote, the
// stage it opened, and the outcome it decided.
func voteNotes(r *approvebot.Request, out policy.VoteOutcome, who approvebot.Approver, now time.Time) {
	if out.Entry == nil {
		return
	}
	verb := "approved"
	if out.Entry.Decision != approvebot.Allow {
		verb = "denied"
	}
	text := personName(who) + " " + verb
	if n := len(r.Chain.Stages); n > 1 {
		text += fmt.Sprintf(" stage %d of %d", out.Entry.StageIndex+1, n)
	}
	r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteVote, Text: text, At: now, Stage: -1})
	if out.StageOpened && !r.Status.Final() {
		r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteStage, At: now, Stage: -1,
			Text: fmt.Sprintf("Stage %d of %d opened: waiting for %s", r.Stage+1, len(r.Chain.Stages), groupList(r.Chain.Stages[r.Stage]))})
	}
	outcomeNote(r, now)
}

// outcomeNote adds the outcome of a request that just became final to its
// history.
func outcomeNote(r *approvebot.Request, now time.Time) {
	if !r.Status.Final() {
		return
	}
	r.Nudge = time.Time{}
	// Thread replies are mrkdwn: the approvers' reasons stay on the message.
	r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteOutcome, Text: policy.OutcomeWithoutReasons(r), At: now, Stage: -1})
}

func personName(who approvebot.Approver) string {
	switch {
	case who.Name != "":
		return who.Name
	case who.Email != "":
		return who.Email
	}
	return who.UserID
}

// replies posts the notes of the request's history its message at
// destination k has not had yet, each recorded once posted. Its error is
// the platform's, or the store's, when one could not be posted or recorded:
// the job then retries.
func (o *outbox) replies(k store.JobKey, r *approvebot.Request, d approvebot.Destination, p Platform) error {
	e := o.e
	rp, can := p.(Replier)
	done := d.Replied
	record := func(n int) error {
		return o.settle(k, r, func(_ *approvebot.Request, d *approvebot.Destination) store.Change {
			d.Replied = max(d.Replied, n)
			return store.Change{}
		})
	}
	for i := d.Replied; i < len(r.Thread); i++ {
		n := r.Thread[i]
		send := can && (n.Stage < 0 || n.Stage == d.Stage) &&
			(n.Kind != approvebot.NoteReminder || (!r.Status.Final() && r.Stage == n.Stage))
		if !send {
			continue
		}
		var mention []approvebot.Group
		if n.Kind == approvebot.NoteReminder && d.Stage < len(r.Chain.Stages) {
			for _, g := range append(slices.Clone(r.Chain.Stages[d.Stage].Groups), policy.EscalatedTo(r, d.Stage).Groups...) {
				if slices.Contains(d.Groups, g.Name) {
					mention = append(mention, g)
				}
			}
		}
		ctx, cancel := context.WithTimeout(WithRequestID(o.ctx, k.ID), callTimeout)
		err := rp.Reply(ctx, d.Ref, n, mention)
		cancel()
		e.metrics.delivery.WithLabelValues(d.Platform, "reply", callResult(err)).Inc()
		if err != nil && !approvebot.IsPermanent(err) {
			e.log.WarnContext(ctx, "thread reply failed; will retry", "platform", d.Platform, "channel", d.Channel, "err", err)
			return err
		}
		if err != nil {
			e.log.WarnContext(ctx, "thread reply failed; not retried", "platform", d.Platform, "channel", d.Channel, "err", err)
		}
		done = i + 1
		if err := record(done); err != nil {
			return err
		}
	}
	if done < len(r.Thread) {
		return record(len(r.Thread))
	}
	return nil
}
