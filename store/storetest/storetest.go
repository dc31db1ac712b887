// Package storetest owns the contract of store.Store as a test suite: every
// implementation runs Run against itself, so the engine can rely on the
// contract alone whichever store holds its state.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/store"
)

// Open returns a new, empty store for one test. The suite closes it (and
// may close it twice); whatever else it holds, open cleans up through t.
type Open func(t *testing.T) store.Store

// Run runs the whole contract against stores from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateIdempotent", testCreateIdempotent},
		{"AgentIDPerCaller", testAgentIDPerCaller},
		{"CreateAdmitted", testCreateAdmitted},
		{"Update", testUpdate},
		{"UpdateFailsWritesNothing", testUpdateFails},
		{"Abort", testAbort},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Deadlines", testDeadlines},
		{"Nudges", testNudges},
		{"Outbox", testOutbox},
		{"DeliverWhileChanged", testDeliverWhileChanged},
		{"AuditChain", testAuditChain},
		{"Resolved", testResolved},
		{"Watch", testWatch},
		{"Refresh", testRefresh},
		{"Reads", testReads},
		{"PlatformData", testPlatformData},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// request is a pending request shown in two channels, neither posted yet.
func request(id string, deadline time.Time) *approvebot.Request {
	return &approvebot.Request{
		ID: id, Schema: approvebot.SchemaLegacy, Caller: "agent", Digest: "d-" + id,
		Fields:    approvebot.Fields{Type: "approval_request", AgentID: "agent", Action: "transfer " + id},
		Context:   json.RawMessage(`{"amount":12}`),
		Chain:     approvebot.Chain{Stages: []approvebot.Stage{{Groups: []approvebot.Group{{Name: "ops"}}, Quorum: approvebot.Quorum{Mode: approvebot.QuorumAny}}}},
		CreatedAt: t0, Deadline: deadline, Status: approvebot.StatusPending, Version: 1,
		Destinations: []approvebot.Destination{
			{Platform: "chat", Channel: "C0A", Groups: []string{"ops"}, State: approvebot.DeliveryQueued},
			{Platform: "chat", Channel: "C0B", Groups: []string{"ops"}, State: approvebot.DeliveryQueued},
		},
	}
}

// v1 is a schema 1.0 request of caller, which the agent calls agentID.
func v1(id, caller, agentID string) *approvebot.Request {
	r := request(id, t0.Add(time.Hour))
	r.Schema, r.Caller = approvebot.SchemaV1, caller
	r.Fields = approvebot.Fields{ApprovalRequestID: agentID, Operation: "deploy"}
	return r
}

func event(typ, id string, detail string) approvebot.Event {
	ev := approvebot.Event{Type: typ, RequestID: id, At: t0, Actor: "system"}
	if detail != "" {
		ev.Detail = json.RawMessage(detail)
	}
	return ev
}

func mustCreate(t *testing.T, s store.Store, r *approvebot.Request) {
	t.Helper()
	if _, created, err := s.Create(r, event(approvebot.EventRequested, r.ID, `{"b":1,"a":[true,null]}`)); err != nil || !created {
		t.Fatalf("create %s: created %v, %v", r.ID, created, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) *approvebot.Request {
	t.Helper()
	r, err := s.Get(id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return r
}

// records is the whole audit log.
func records(t *testing.T, s store.Store) []store.Record {
	t.Helper()
	var out []store.Record
	if err := s.Audit(0, func(rec store.Record, _ []byte) error {
		out = append(out, rec)
		return nil
	}); err != nil {
		t.Fatalf("audit: %v", err)
	}
	return out
}

func jobs(t *testing.T, s store.Store) []store.JobKey {
	t.Helper()
	js, err := s.Jobs()
	if err != nil {
		t.Fatalf("jobs: %v", err)
	}
	slices.SortFunc(js, func(a, b store.JobKey) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		return a.Dest - b.Dest
	})
	return js
}

func pending(t *testing.T, s store.Store) []string {
	t.Helper()
	var out []string
	if err := s.Pending(func(id string, deadline time.Time) error {
		out = append(out, fmt.Sprintf("%s@%d", id, deadline.Sub(t0)/time.Minute))
		return nil
	}); err != nil {
		t.Fatalf("pending: %v", err)
	}
	return out
}

func testCreateGet(t *testing.T, s store.Store) {
	r := request("r1", t0.Add(time.Hour))
	stored, created, err := s.Create(r, event(approvebot.EventRequested, r.ID, ""))
	if err != nil || !created || stored.ID != "r1" {
		t.Fatalf("create: %+v created %v, %v", stored, created, err)
	}
	got := mustGet(t, s, "r1")
	if got.Caller != "agent" || got.Digest != "d-r1" || got.Fields.Action != "transfer r1" || string(got.Context) != `{"amount":12}` ||
		!got.Deadline.Equal(r.Deadline) || got.Status != approvebot.StatusPending || got.Version != 1 || len(got.Destinations) != 2 ||
		len(got.Chain.Stages) != 1 || got.Chain.Stages[0].Groups[0].Name != "ops" {
		t.Fatalf("get returned %+v, want what was created", got)
	}
	if st, err := s.Status("r1"); err != nil || st != approvebot.StatusPending {
		t.Fatalf("status: %q, %v", st, err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.Status("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("status of an unknown id: %v, want ErrNotFound", err)
	}
	// A second create of the id returns the first and writes nothing.
	again := request("r1", t0.Add(2*time.Hour))
	again.Fields.Action = "something else"
	stored, created, err = s.Create(again, event(approvebot.EventRequested, "r1", ""))
	if err != nil || created || stored.Fields.Action != "transfer r1" {
		t.Fatalf("create of an existing id: %+v created %v, %v; want the stored one, not created", stored, created, err)
	}
	if n := len(records(t, s)); n != 1 {
		t.Fatalf("audit holds %d records after a repeated create, want 1", n)
	}
}

func testCreateIdempotent(t *testing.T, s store.Store) {
	a := request("r1", t0.Add(time.Hour))
	a.IdempotencyKey = "k"
	mustCreate(t, s, a)
	retry := request("r2", t0.Add(time.Hour))
	retry.IdempotencyKey = "k"
	stored, created, err := s.Create(retry, event(approvebot.EventRequested, "r2", ""))
	if err != nil || created || stored.ID != "r1" {
		t.Fatalf("same caller, same key: %v created %v, %v; want r1, not created", stored, created, err)
	}
	if _, err := s.Get("r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the retry was stored: %v", err)
	}
	other := request("r3", t0.Add(time.Hour))
	other.Caller, other.IdempotencyKey = "other", "k"
	if stored, created, err := s.Create(other, event(approvebot.EventRequested, "r3", "")); err != nil || !created || stored.ID != "r3" {
		t.Fatalf("another caller's same key: %v created %v, %v; want a new request", stored, created, err)
	}
	if n := len(records(t, s)); n != 2 {
		t.Fatalf("audit holds %d records, want 2 (the retry wrote none)", n)
	}
}

func testAgentIDPerCaller(t *testing.T, s store.Store) {
	mustCreate(t, s, v1("s1", "alpha", "ar_1"))
	mustCreate(t, s, v1("s2", "beta", "ar_1"))
	stored, created, err := s.Create(v1("s3", "alpha", "ar_1"), event(approvebot.EventRequested, "s3", ""))
	if err != nil || created || stored.ID != "s1" {
		t.Fatalf("alpha's ar_1 again: %v created %v, %v; want s1", stored, created, err)
	}
	for caller, want := range map[string]string{"alpha": "s1", "beta": "s2"} {
		r, err := s.Lookup(caller, "ar_1")
		if err != nil || r.ID != want {
			t.Fatalf("lookup %s ar_1: %v, %v; want %s", caller, r, err, want)
		}
	}
	if _, err := s.Lookup("gamma", "ar_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup of a caller's id it never used: %v, want ErrNotFound", err)
	}
	found, err := s.Find("ar_1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range found {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"s1", "s2"}) {
		t.Fatalf("find ar_1: %v, want s1 and s2", ids)
	}
}

func testCreateAdmitted(t *testing.T, s store.Store) {
	refuse := errors.New("over the limit")
	_, _, err := s.CreateAdmitted(request("r1", t0.Add(time.Hour)), func() error { return refuse }, event(approvebot.EventRequested, "r1", ""))
	if !errors.Is(err, refuse) {
		t.Fatalf("refused create: %v, want admit's error", err)
	}
	if _, err := s.Get("r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused request was stored: %v", err)
	}
	if n := len(records(t, s)) + len(jobs(t, s)) + len(pending(t, s)); n != 0 {
		t.Fatalf("a refused request left %d records, jobs or pending entries", n)
	}
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	// A retry of a stored request is answered before admit is asked.
	stored, created, err := s.CreateAdmitted(request("r1", t0.Add(time.Hour)), func() error { return refuse })
	if err != nil || created || stored.ID != "r1" {
		t.Fatalf("retry of a stored request: %v created %v, %v; want it, not refused", stored, created, err)
	}
}

func testUpdate(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	var seen *approvebot.Request
	out, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Stage = 1
		r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteVote, Text: "vote", At: t0, Stage: -1})
		return store.Change{Visible: true, Events: []approvebot.Event{event(approvebot.EventEntry, "r1", `{"n":1}`)}}, nil
	}, func(r *approvebot.Request) { seen = r })
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 2 || out.Stage != 1 || seen == nil || seen.Version != 2 {
		t.Fatalf("visible update: version %d stage %d, committed saw %v; want version 2, stage 1, seen", out.Version, out.Stage, seen)
	}
	if got := mustGet(t, s, "r1"); got.Version != 2 || got.Stage != 1 || len(got.Thread) != 1 {
		t.Fatalf("stored after update: %+v", got)
	}
	out, err = s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Reminded = 1
		r.Fields.Action, r.Caller = "rewritten", "someone else" // what it was created with: not stored
		return store.Change{}, nil
	})
	if err != nil || out.Version != 2 || mustGet(t, s, "r1").Reminded != 1 {
		t.Fatalf("invisible update: %+v, %v; want the change stored, version still 2", out, err)
	}
	if got := mustGet(t, s, "r1"); got.Fields.Action != "transfer r1" || got.Caller != "agent" {
		t.Fatalf("a transition rewrote what the request was created with: action %q caller %q", got.Fields.Action, got.Caller)
	}
	if n := len(records(t, s)); n != 2 {
		t.Fatalf("audit holds %d records, want 2", n)
	}
	if _, err := s.Update("nope", func(*approvebot.Request) (store.Change, error) { return store.Change{}, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an unknown id: %v, want ErrNotFound", err)
	}
}

func testUpdateFails(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	bad := errors.New("refused")
	_, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusDenied
		return store.Change{Visible: true, Events: []approvebot.Event{event(approvebot.EventEntry, "r1", "")}}, bad
	})
	if !errors.Is(err, bad) {
		t.Fatalf("update: %v, want fn's error", err)
	}
	if got := mustGet(t, s, "r1"); got.Status != approvebot.StatusPending || got.Version != 1 {
		t.Fatalf("a failed update changed the request: %+v", got)
	}
	if n := len(records(t, s)); n != 1 {
		t.Fatalf("a failed update appended to the audit log: %d records", n)
	}
	// Events whose detail is not JSON fail the transition, whole.
	_, err = s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusDenied
		return store.Change{Events: []approvebot.Event{event(approvebot.EventEntry, "r1", "{not json")}}, nil
	})
	if err == nil || mustGet(t, s, "r1").Status != approvebot.StatusPending {
		t.Fatalf("update with a malformed event: %v; want an error and nothing written", err)
	}
}

func testAbort(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	out, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusApproved
		return store.Change{Abort: true, Visible: true, Events: []approvebot.Event{event(approvebot.EventRefused, "r1", `{"why":"not eligible"}`)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != approvebot.StatusPending || out.Version != 1 {
		t.Fatalf("aborted update answered %+v, want the request as stored", out)
	}
	if got := mustGet(t, s, "r1"); got.Status != approvebot.StatusPending || got.Version != 1 {
		t.Fatalf("an aborted update changed the request: %+v", got)
	}
	recs := records(t, s)
	if len(recs) != 2 || recs[1].Type != approvebot.EventRefused {
		t.Fatalf("audit after abort: %+v, want the refusal appended", recs)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
				r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteVote, Text: fmt.Sprint(i), At: t0, Stage: -1})
				return store.Change{Visible: true, Events: []approvebot.Event{event(approvebot.EventEntry, "r1", fmt.Sprintf(`{"i":%d}`, i))}}, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := mustGet(t, s, "r1")
	texts := map[string]bool{}
	for _, note := range got.Thread {
		texts[note.Text] = true
	}
	if len(got.Thread) != n || len(texts) != n || got.Version != 1+n {
		t.Fatalf("after %d concurrent updates: %d notes (%d distinct), version %d; want every one applied once", n, len(got.Thread), len(texts), got.Version)
	}
	if recs := records(t, s); len(recs) != 1+n {
		t.Fatalf("audit holds %d records, want %d", len(recs), 1+n)
	}

	// Two deciders race: exactly one finds the request pending.
	mustCreate(t, s, request("r2", t0.Add(time.Hour)))
	won := make(chan bool, 2)
	for _, st := range []approvebot.Status{approvebot.StatusApproved, approvebot.StatusDenied} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decided := false
			_, err := s.Update("r2", func(r *approvebot.Request) (store.Change, error) {
				decided = false
				if r.Status.Final() {
					return store.Change{Abort: true}, nil
				}
				r.Status, decided = st, true
				return store.Change{Visible: true}, nil
			})
			won <- err == nil && decided
		}()
	}
	wg.Wait()
	close(won)
	wins := 0
	for w := range won {
		if w {
			wins++
		}
	}
	if wins != 1 || !mustGet(t, s, "r2").Status.Final() {
		t.Fatalf("%d of two racing decisions won, want exactly one", wins)
	}
}

func testDeadlines(t *testing.T, s store.Store) {
	mustCreate(t, s, request("late", t0.Add(3*time.Minute)))
	mustCreate(t, s, request("soon", t0.Add(1*time.Minute)))
	mustCreate(t, s, request("mid", t0.Add(2*time.Minute)))
	if got := pending(t, s); !slices.Equal(got, []string{"soon@1", "mid@2", "late@3"}) {
		t.Fatalf("pending: %v, want soonest first", got)
	}
	if _, err := s.Update("late", func(r *approvebot.Request) (store.Change, error) {
		r.Deadline = t0
		return store.Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("mid", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusExpired
		return store.Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s); !slices.Equal(got, []string{"late@0", "soon@1"}) {
		t.Fatalf("pending after a deadline moved and a request expired: %v", got)
	}
	var owners []string
	if err := s.EachPending(func(r *approvebot.Request) error {
		owners = append(owners, fmt.Sprintf("%s %s %s %s %d", r.ID, r.Caller, r.Digest, r.Status, r.Deadline.Sub(t0)/time.Minute))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"late agent d-late pending 0", "soon agent d-soon pending 1"}; !slices.Equal(owners, want) {
		t.Fatalf("each pending: %q, want %q", owners, want)
	}
}

func testNudges(t *testing.T, s store.Store) {
	nudges := func() []string {
		var out []string
		if err := s.Nudges(func(id string, at time.Time) error {
			out = append(out, fmt.Sprintf("%s@%d", id, at.Sub(t0)/time.Minute))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := request("a", t0.Add(time.Hour))
	a.Nudge = t0.Add(5 * time.Minute)
	mustCreate(t, s, a)
	b := request("b", t0.Add(time.Hour))
	b.Nudge = t0.Add(2 * time.Minute)
	mustCreate(t, s, b)
	mustCreate(t, s, request("c", t0.Add(time.Hour)))
	if got := nudges(); !slices.Equal(got, []string{"b@2", "a@5"}) {
		t.Fatalf("nudges: %v, want b then a", got)
	}
	set := func(id string, fn func(r *approvebot.Request)) {
		t.Helper()
		if _, err := s.Update(id, func(r *approvebot.Request) (store.Change, error) { fn(r); return store.Change{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("b", func(r *approvebot.Request) { r.Nudge = t0.Add(9 * time.Minute) })
	set("c", func(r *approvebot.Request) { r.Nudge = t0.Add(1 * time.Minute) })
	set("a", func(r *approvebot.Request) { r.Status = approvebot.StatusApproved })
	if got := nudges(); !slices.Equal(got, []string{"c@1", "b@9"}) {
		t.Fatalf("nudges after moves and a decision: %v, want c then b", got)
	}
	set("c", func(r *approvebot.Request) { r.Nudge = time.Time{} })
	if got := nudges(); !slices.Equal(got, []string{"b@9"}) {
		t.Fatalf("nudges after one was cleared: %v", got)
	}
}

// post is what the outbox does once a destination shows the request.
func post(r *approvebot.Request, d *approvebot.Destination) (store.Change, error) {
	d.State, d.Shown, d.Replied = approvebot.DeliveryPosted, r.Version, len(r.Thread)
	d.Ref = approvebot.MessageRef{Channel: d.Channel, ID: "m-" + d.Channel}
	return store.Change{Events: []approvebot.Event{event(approvebot.EventPosted, r.ID, "")}}, nil
}

func testOutbox(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	want := []store.JobKey{{ID: "r1", Dest: 0}, {ID: "r1", Dest: 1}}
	if got := jobs(t, s); !slices.Equal(got, want) {
		t.Fatalf("jobs after create: %v, want %v", got, want)
	}
	for _, k := range want {
		r, owed, err := s.Deliver(k, nil, post)
		if err != nil || owed || r.Destinations[k.Dest].State != approvebot.DeliveryPosted {
			t.Fatalf("deliver %v: owed %v, %v", k, owed, err)
		}
	}
	if got := jobs(t, s); len(got) != 0 {
		t.Fatalf("jobs after both were shown: %v", got)
	}
	// An invisible change owes nothing; a visible one, every posted
	// destination; a thread note, every destination that has not replied.
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) { r.Reminded = 1; return store.Change{}, nil }); err != nil {
		t.Fatal(err)
	}
	if got := jobs(t, s); len(got) != 0 {
		t.Fatalf("jobs after an invisible change: %v", got)
	}
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteReminder, Text: "remind", At: t0, Stage: -1})
		return store.Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := jobs(t, s); !slices.Equal(got, want) {
		t.Fatalf("jobs after a thread note: %v, want %v", got, want)
	}
	for _, k := range want {
		if _, _, err := s.Deliver(k, nil, post); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusApproved
		return store.Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := jobs(t, s); !slices.Equal(got, want) {
		t.Fatalf("jobs after a visible change: %v, want %v", got, want)
	}
	// A job for a destination the request does not have is dropped.
	r, owed, err := s.Deliver(store.JobKey{ID: "r1", Dest: 7}, nil, func(*approvebot.Request, *approvebot.Destination) (store.Change, error) {
		t.Error("deliver called fn for a destination the request does not have")
		return store.Change{}, nil
	})
	if err != nil || owed || r != nil {
		t.Fatalf("deliver to a missing destination: %v owed %v, %v", r, owed, err)
	}
	if _, _, err := s.Deliver(store.JobKey{ID: "nope"}, nil, post); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deliver for an unknown request: %v, want ErrNotFound", err)
	}
	// A failed delivery leaves the job owed.
	bad := errors.New("platform down")
	if _, _, err := s.Deliver(want[0], nil, func(*approvebot.Request, *approvebot.Destination) (store.Change, error) { return store.Change{}, bad }); !errors.Is(err, bad) {
		t.Fatalf("deliver whose fn failed: %v", err)
	}
	if got := jobs(t, s); !slices.Equal(got, want) {
		t.Fatalf("jobs after a failed delivery: %v, want %v", got, want)
	}
}

func testDeliverWhileChanged(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	k := store.JobKey{ID: "r1", Dest: 0}
	// The destination shows version 1 while the request is already at 2:
	// the job stays owed.
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Stage = 0
		return store.Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, owed, err := s.Deliver(k, nil, func(r *approvebot.Request, d *approvebot.Destination) (store.Change, error) {
		d.State, d.Shown = approvebot.DeliveryPosted, 1
		return store.Change{}, nil
	})
	if err != nil || !owed {
		t.Fatalf("deliver of a stale version: owed %v, %v; want owed", owed, err)
	}
	if got := jobs(t, s); !slices.Contains(got, k) {
		t.Fatalf("jobs %v lack the owed %v", got, k)
	}
	if _, owed, err := s.Deliver(k, nil, post); err != nil || owed {
		t.Fatalf("deliver of the current version: owed %v, %v", owed, err)
	}
	if got := jobs(t, s); slices.Contains(got, k) {
		t.Fatalf("jobs %v still hold %v", got, k)
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	if h, err := s.Head(); err != nil || h.Seq != 0 || h.Digest != "" {
		t.Fatalf("head of an empty log: %+v, %v", h, err)
	}
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	mustCreate(t, s, request("r2", t0.Add(time.Hour)))
	for i := range 3 {
		if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
			return store.Change{Events: []approvebot.Event{
				event(approvebot.EventEntry, "r1", fmt.Sprintf(`{"i":%d,"z":"é\u2028"}`, i)),
				event(approvebot.EventStage, "r1", ""),
			}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	recs := records(t, s)
	if len(recs) != 8 {
		t.Fatalf("audit holds %d records, want 8", len(recs))
	}
	prev := ""
	for i, rec := range recs {
		if rec.Seq != recs[0].Seq+uint64(i) {
			t.Fatalf("record %d has seq %d after %d: want consecutive", i, rec.Seq, recs[0].Seq)
		}
		if rec.Prev != prev {
			t.Fatalf("record %d links to %q, want the one before (%q)", rec.Seq, rec.Prev, prev)
		}
		d, err := store.RecordDigest(rec)
		if err != nil || d != rec.Digest {
			t.Fatalf("record %d digest %q, recomputed %q (%v)", rec.Seq, rec.Digest, d, err)
		}
		prev = rec.Digest
		if h, found, err := s.Record(rec.Seq); err != nil || !found || h.Digest != rec.Digest {
			t.Fatalf("record %d: %+v found %v, %v", rec.Seq, h, found, err)
		}
	}
	if recs[0].Type != approvebot.EventRequested || recs[0].RequestID != "r1" || recs[1].RequestID != "r2" || recs[2].Type != approvebot.EventEntry {
		t.Fatalf("records out of commit order: %+v", recs[:3])
	}
	last := recs[len(recs)-1]
	if h, err := s.Head(); err != nil || h.Seq != last.Seq || h.Digest != last.Digest {
		t.Fatalf("head %+v, want the last record (%d %s)", h, last.Seq, last.Digest)
	}
	if _, found, err := s.Record(last.Seq + 1); err != nil || found {
		t.Fatalf("record past the head: found %v, %v", found, err)
	}
	var from []uint64
	if err := s.Audit(recs[5].Seq, func(rec store.Record, raw []byte) error {
		var back store.Record
		if err := json.Unmarshal(raw, &back); err != nil || back.Digest != rec.Digest {
			return fmt.Errorf("raw record %s does not decode to the record", raw)
		}
		from = append(from, rec.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(from, []uint64{recs[6].Seq, recs[7].Seq}) {
		t.Fatalf("audit after %d: %v", recs[5].Seq, from)
	}
}

func testResolved(t *testing.T, s store.Store) {
	// Registered before the first write, as the contract asks.
	s.OnResolved(func(r *approvebot.Request) { r.Assertion = fmt.Sprintf("signed %d", r.Receipt.AuditSeq) })
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	out, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusApproved
		r.Resolution = &approvebot.Resolution{Outcome: "allow", Status: approvebot.StatusApproved, Approver: "u1", ResolvedAt: t0}
		return store.Change{Visible: true, Events: []approvebot.Event{event(approvebot.EventResolved, "r1", `{"outcome":"allow"}`)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, s)
	last := recs[len(recs)-1]
	got := mustGet(t, s, "r1")
	for _, r := range []*approvebot.Request{out, got} {
		if r.Receipt == nil || r.Receipt.AuditSeq != last.Seq || r.Receipt.AuditHead != last.Digest || r.Assertion != fmt.Sprintf("signed %d", last.Seq) {
			t.Fatalf("decided request: receipt %+v assertion %q; want the resolved record (%d) and what OnResolved set", r.Receipt, r.Assertion, last.Seq)
		}
	}
	// Later transitions of a final request keep its receipt.
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		return store.Change{Events: []approvebot.Event{event(approvebot.EventResolved, "r1", "")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if again := mustGet(t, s, "r1"); again.Receipt.AuditSeq != last.Seq {
		t.Fatalf("a later transition moved the receipt to %d", again.Receipt.AuditSeq)
	}
}

func testWatch(t *testing.T, s store.Store) {
	var mu sync.Mutex
	var seen []store.Commit
	stop := s.Watch(func(c store.Commit) {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
	})
	got := func() []store.Commit {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	if c := got(); len(c) != 1 || c[0].ID != "r1" || c[0].Version != 1 || c[0].Status != approvebot.StatusPending || len(c[0].Jobs) != 2 {
		t.Fatalf("watch after create: %+v, want r1 at version 1 with two jobs", c)
	}
	if _, _, err := s.Create(request("r1", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) { return store.Change{Abort: true}, nil }); err != nil {
		t.Fatal(err)
	}
	if c := got(); len(c) != 1 {
		t.Fatalf("a repeated create or an abort was watched: %+v", c)
	}
	var order []string
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusDenied
		return store.Change{Visible: true}, nil
	}, func(*approvebot.Request) {
		order = append(order, "committed")
		if len(got()) != 1 {
			order = append(order, "watched first")
		}
	}); err != nil {
		t.Fatal(err)
	}
	c := got()
	if len(c) != 2 || c[1].Version != 2 || c[1].Status != approvebot.StatusDenied || !slices.Equal(order, []string{"committed"}) {
		t.Fatalf("watch after a decision: %+v, order %v; want version 2 denied, after the committed functions", c, order)
	}
	order = nil
	if _, _, err := s.Deliver(store.JobKey{ID: "r1", Dest: 0}, nil, post, func(r *approvebot.Request) {
		order = append(order, "committed "+r.ID)
		if len(got()) != 2 {
			order = append(order, "watched first")
		}
	}); err != nil {
		t.Fatal(err)
	}
	if c := got(); len(c) != 3 || c[2].ID != "r1" || !slices.Equal(order, []string{"committed r1"}) {
		t.Fatalf("watch after a delivery: %+v, order %v; want it after the committed functions", c, order)
	}
	stop()
	stop()
	mustCreate(t, s, request("r2", t0.Add(time.Hour)))
	if c := got(); len(c) != 3 {
		t.Fatalf("watched after stop: %+v", c)
	}
}

// testRefresh holds Refresh and Deliver, given any announced or returned
// copy of a request, to what Get returns after later transitions; and the request a
// creation announces to the one stored, even where the creator's copy was
// in a form that encoding changes (JSON text with spaces and characters
// that are escaped, a time with a monotonic reading).
func testRefresh(t *testing.T, s store.Store) {
	var mu sync.Mutex
	announced := map[uint64]*approvebot.Request{}
	stop := s.Watch(func(c store.Commit) {
		mu.Lock()
		defer mu.Unlock()
		if c.Request == nil || c.Request.ID != c.ID {
			t.Errorf("commit of %s announced request %+v", c.ID, c.Request)
			return
		}
		announced[uint64(len(announced))] = c.Request
	})
	defer stop()
	r := request("r1", t0.Add(time.Hour))
	r.Context = json.RawMessage(" {\n \"note\" : \"<b>a & b</b>\",\t\"n\": [1, 2.50]\n} ")
	r.ActionBinding = json.RawMessage(`{}`)
	r.CreatedAt = time.Now() // with a monotonic reading
	mustCreate(t, s, r)
	same := func(what string, got *approvebot.Request) {
		t.Helper()
		want := mustGet(t, s, "r1")
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
		}
		if !slices.Equal(got.Context, want.Context) || !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt != got.CreatedAt.Round(0) {
			t.Fatalf("%s: head %q %v, want %q %v without a monotonic reading", what, got.Context, got.CreatedAt, want.Context, want.CreatedAt)
		}
	}
	mu.Lock()
	created := announced[0]
	mu.Unlock()
	if created == nil {
		t.Fatal("creation not announced")
	}
	same("the announced creation", created)
	fresh, err := s.Refresh(created)
	if err != nil {
		t.Fatal(err)
	}
	same("refreshed at once", fresh)
	if _, _, err := s.Deliver(store.JobKey{ID: "r1", Dest: 0}, &approvebot.Request{ID: "r2"}, post); err == nil {
		t.Fatal("a delivery given another request's copy was taken")
	}
	delivered, _, err := s.Deliver(store.JobKey{ID: "r1", Dest: 0}, created, post)
	if err != nil {
		t.Fatal(err)
	}
	same("delivered from the announced creation", delivered)
	if _, err := s.Update("r1", func(r *approvebot.Request) (store.Change, error) {
		r.Status = approvebot.StatusApproved
		r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteOutcome, Text: "approved", At: t0})
		return store.Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(created)
	fresh, err = s.Refresh(created)
	if err != nil {
		t.Fatal(err)
	}
	same("refreshed from the creation after a delivery and a decision", fresh)
	if fresh.Status != approvebot.StatusApproved || fresh.Destinations[0].State != approvebot.DeliveryPosted || len(fresh.Thread) != 1 {
		t.Fatalf("refresh kept an old state: %+v", fresh)
	}
	if after, _ := json.Marshal(created); string(after) != string(before) {
		t.Fatalf("refresh changed the copy it was given:\n%s\n%s", before, after)
	}
	if _, err := s.Refresh(&approvebot.Request{ID: "missing"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refresh of a request never stored: %v, want ErrNotFound", err)
	}
}

func testReads(t *testing.T, s store.Store) {
	for _, id := range []string{"r1", "r2", "r3"} {
		mustCreate(t, s, request(id, t0.Add(time.Hour)))
	}
	var recent []string
	if err := s.Recent(2, func(r *approvebot.Request) bool { recent = append(recent, r.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recent, []string{"r3", "r2"}) {
		t.Fatalf("recent 2: %v, want r3 r2", recent)
	}
	recent = nil
	if err := s.Recent(3, func(r *approvebot.Request) bool { recent = append(recent, r.ID); return false }); err != nil || len(recent) != 1 {
		t.Fatalf("recent stopping at once: %v, %v", recent, err)
	}
	var all []string
	if err := s.Each(func(r *approvebot.Request) error { all = append(all, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"r1", "r2", "r3"}) {
		t.Fatalf("each: %v", all)
	}
	stop := errors.New("stop")
	if err := s.Each(func(*approvebot.Request) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("each returned %v, want fn's error", err)
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func testPlatformData(t *testing.T, s store.Store) {
	a, b := s.PlatformData("alpha"), s.PlatformData("beta")
	if got, err := a.Get("k"); err != nil || got != nil {
		t.Fatalf("get before any put: %q, %v; want nil, nil", got, err)
	}
	if err := a.Delete("k"); err != nil {
		t.Fatalf("delete of an absent key: %v", err)
	}
	if all, err := a.List(); err != nil || len(all) != 0 {
		t.Fatalf("list before any put: %v, %v", all, err)
	}
	for _, put := range []struct {
		kv   store.KV
		k, v string
	}{{a, "k", "a1"}, {a, "k", "a2"}, {a, "other", "a3"}, {b, "k", "b1"}} {
		if err := put.kv.Put(put.k, []byte(put.v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Delete("other"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		kv   store.KV
		name string
		all  map[string]string
	}{{a, "alpha", map[string]string{"k": "a2"}}, {b, "beta", map[string]string{"k": "b1"}}, {s.PlatformData("gamma"), "gamma", map[string]string{}}} {
		all, err := want.kv.List()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range all {
			got[k] = string(v)
		}
		if !maps.Equal(got, want.all) {
			t.Errorf("%s lists %v, want %v", want.name, got, want.all)
		}
		for k, v := range want.all {
			if got, err := want.kv.Get(k); err != nil || string(got) != v {
				t.Errorf("%s's %s: %q, %v; want %q", want.name, k, got, err, v)
			}
		}
	}
}

func testClosed(t *testing.T, s store.Store) {
	mustCreate(t, s, request("r1", t0.Add(time.Hour)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(request("r2", t0.Add(time.Hour))); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("create after close: %v, want ErrClosed", err)
	}
	if _, err := s.Update("r1", func(*approvebot.Request) (store.Change, error) { return store.Change{}, nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("update after close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Deliver(store.JobKey{ID: "r1"}, nil, post); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("deliver after close: %v, want ErrClosed", err)
	}
	if err := s.Ping(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
	if _, err := s.Get("r1"); err == nil {
		t.Fatal("get after close succeeded")
	}
}
