package store

import (
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
)

// The reminder index holds a pending request under its next reminder, moves
// it when the reminder is sent, and drops it when none is left or the
// request ends (even with its Nudge still set); a note added to the thread owes a job to each posted
// message only.
func TestNudgeIndexFollowsTransitions(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := newRequest("ar_n", t0.Add(time.Hour))
	r.Nudge = t0.Add(10 * time.Minute)
	if _, _, err := s.Create(r, requested(r.ID)); err != nil {
		t.Fatal(err)
	}
	plain := newRequest("ar_p", t0.Add(time.Hour)) // no reminders
	if _, _, err := s.Create(plain, requested(plain.ID)); err != nil {
		t.Fatal(err)
	}
	list := func() map[string]time.Time {
		out := map[string]time.Time{}
		if err := s.Nudges(func(id string, at time.Time) error { out[id] = at; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list(); len(got) != 1 || !got["ar_n"].Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("index %v, want ar_n at 10 m only", got)
	}
	checkConsistent(t, s)

	// The first message is posted; then a reminder is sent and the next set.
	if _, _, err := s.Deliver(JobKey{ID: "ar_n", Dest: 0}, nil, func(r *approvebot.Request, d *approvebot.Destination) (Change, error) {
		d.State, d.Ref, d.Shown = approvebot.DeliveryPosted, approvebot.MessageRef{Channel: "C0A", ID: "1.1"}, r.Version
		return Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("ar_n", func(r *approvebot.Request) (Change, error) {
		r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteReminder, Text: "Reminder", Stage: 0})
		r.Reminded, r.Nudge = 1, t0.Add(50*time.Minute)
		return Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !got["ar_n"].Equal(t0.Add(50 * time.Minute)) {
		t.Fatalf("index %v after the first reminder", got)
	}
	checkConsistent(t, s) // the posted message owes the reply, the queued one its post
	jobs, _ := s.Jobs()
	if len(jobs) != 4 {
		t.Fatalf("jobs %v", jobs)
	}

	if _, err := s.Update("ar_n", func(r *approvebot.Request) (Change, error) {
		policy.Expire(r, approvebot.StatusTimedOut, "timed out", t0.Add(time.Hour))
		return Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("index %v after the request ended", got)
	}
	checkConsistent(t, s)
}
