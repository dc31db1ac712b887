package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTemp(t *testing.T, o Options) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "approvebot.db")
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// chat names the platform of the tests' destinations: the store keeps
// whatever the engine names.
const chat = "chat"

// newRequest is a pending request shown in two channels, neither posted yet.
func newRequest(id string, deadline time.Time) *approvebot.Request {
	return &approvebot.Request{
		ID: id, Schema: approvebot.SchemaLegacy, Caller: "agent", Digest: "d-" + id,
		Fields:    approvebot.Fields{Type: "approval_request", AgentID: "agent", Action: "transfer " + id},
		Chain:     approvebot.Chain{Stages: []approvebot.Stage{{Groups: []approvebot.Group{{Name: "ops"}}, Quorum: approvebot.Quorum{Mode: approvebot.QuorumAny}}}},
		CreatedAt: t0, Deadline: deadline, Status: approvebot.StatusPending, Version: 1,
		Destinations: []approvebot.Destination{
			{Platform: chat, Channel: "C0A", Groups: []string{"ops"}, State: approvebot.DeliveryQueued},
			{Platform: chat, Channel: "C0B", Groups: []string{"ops"}, State: approvebot.DeliveryQueued},
		},
	}
}

func requested(id string) approvebot.Event {
	return approvebot.Event{Type: approvebot.EventRequested, RequestID: id, At: t0}
}

// checkConsistent asserts the invariants the indexes promise: a request is in
// the pending index, under its deadline, exactly when it is not final; the
// outbox holds a job exactly for the destinations that do not show the
// request's current version; every index entry names a stored request; and
// the audit trail verifies.
func checkConsistent(t *testing.T, s *Bolt) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		wantPending := map[string]bool{}
		wantJobs := map[string]bool{}
		wantNudges := map[string]bool{}
		err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			r, err := getRequest(tx, string(k))
			if err != nil {
				return err
			}
			if !r.Status.Final() {
				wantPending[string(pendingKey(r.Deadline, r.ID))] = true
				if !r.Nudge.IsZero() {
					wantNudges[string(pendingKey(r.Nudge, r.ID))] = true
				}
			}
			for i, d := range r.Destinations {
				if d.State == approvebot.DeliveryQueued || (d.State == approvebot.DeliveryPosted && (d.Shown < r.Version || d.Replied < len(r.Thread))) {
					wantJobs[string(JobKey{ID: r.ID, Dest: i}.bytes())] = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for name, want := range map[string]map[string]bool{"pending": wantPending, "outbox": wantJobs, "nudges": wantNudges} {
			bucket := map[string][]byte{"pending": bucketPending, "outbox": bucketOutbox, "nudges": bucketNudges}[name]
			got := map[string]bool{}
			_ = tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
				got[string(k)] = true
				return nil
			})
			for k := range want {
				if !got[k] {
					t.Errorf("%s index lacks %q", name, k)
				}
			}
			for k := range got {
				if !want[k] {
					t.Errorf("%s index holds stray %q", name, k)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(policy.EntryDigest, policy.ResolutionDigest)
	if err != nil || rep.Break != nil {
		t.Fatalf("audit verify: %v %+v", err, rep.Break)
	}
}

// blockWriter occupies the writer until the returned func is called, so
// that writes queued meanwhile share the next commit.
func blockWriter(t *testing.T, s *Bolt) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(func(tx *bolt.Tx) error {
			select {
			case <-started:
			default:
				close(started)
			}
			<-gate
			return nil
		})
	}()
	<-started
	return func() {
		close(gate)
		if err := <-done; err != nil {
			t.Errorf("blocking write: %v", err)
		}
	}
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, s *Bolt, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(s.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitIsolatesAFailingOp(t *testing.T) {
	s, _ := openTemp(t, Options{})
	release := blockWriter(t, s)

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("ar_%02d", i)
			if i == n/2 {
				// Writes something, then fails: none of it may remain.
				errs[i] = s.write(func(tx *bolt.Tx) error {
					if err := tx.Bucket(bucketRequests).Put([]byte(id), []byte(`{"id":"half"}`)); err != nil {
						return err
					}
					if err := appendEvents(tx, []approvebot.Event{requested(id)}); err != nil {
						return err
					}
					return errors.New("transition refused")
				})
				return
			}
			r := newRequest(id, t0.Add(time.Hour))
			_, created, err := s.Create(r, requested(id))
			if err == nil && !created {
				err = errors.New("not created")
			}
			errs[i] = err
		})
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()

	for i, err := range errs {
		switch {
		case i == n/2 && (err == nil || err.Error() != "transition refused"):
			t.Errorf("failing op got %v, want its own error", err)
		case i != n/2 && err != nil:
			t.Errorf("op %d: %v (a failing neighbour must not take it down)", i, err)
		}
	}
	if _, err := s.Get(fmt.Sprintf("ar_%02d", n/2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failing op's write remains: %v", err)
	}
	st, _ := s.Stats()
	if st.Requests != n-1 || st.Audit != n-1 || st.Pending != n-1 || st.Outbox != 2*(n-1) {
		t.Errorf("stats %+v, want %d requests, audit records and pending, %d jobs", st, n-1, 2*(n-1))
	}
	checkConsistent(t, s)
}

func TestGroupCommitSharesOneTransaction(t *testing.T) {
	s, _ := openTemp(t, Options{})
	release := blockWriter(t, s)
	const n = 50
	seen := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.write(func(tx *bolt.Tx) error {
				seen[i] = tx.ID()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()
	for i := range seen {
		if seen[i] != seen[0] {
			t.Fatalf("write %d committed in transaction %d, write 0 in %d: queued writes must share one commit", i, seen[i], seen[0])
		}
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTemp(t, Options{})
	for _, o := range []Options{{LockTimeout: 100 * time.Millisecond}, {ReadOnly: true, LockTimeout: 100 * time.Millisecond}} {
		s2, err := Open(path, o)
		if err == nil {
			s2.Close()
			t.Fatalf("second Open (read-only %v) succeeded", o.ReadOnly)
		}
		if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
			t.Errorf("second Open: %v", err)
		}
	}
}

func TestOpenErrorsSayWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ path, want string }{
		"missing directory": {filepath.Join(dir, "nope", "approvebot.db"), "its directory " + filepath.Join(dir, "nope") + " does not exist"},
		"a directory":       {dir, "it is a directory"},
		"under a file":      {filepath.Join(notDB, "approvebot.db"), "is a file, not a directory"},
		"not a bbolt file":  {notDB, "not an approvebot store"},
	}
	if os.Geteuid() != 0 { // root ignores file modes
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cases["unwritable directory"] = struct{ path, want string }{filepath.Join(ro, "approvebot.db"), "permission denied"}
	}
	for name, c := range cases {
		s, err := Open(c.path, Options{LockTimeout: 100 * time.Millisecond})
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

func TestIndexesFollowTransitions(t *testing.T) {
	s, _ := openTemp(t, Options{})
	var announced []JobKey
	var mu sync.Mutex
	s.Watch(func(c Commit) {
		mu.Lock()
		announced = append(announced, c.Jobs...)
		mu.Unlock()
	})
	r := newRequest("ar_a", t0.Add(time.Hour))
	if _, _, err := s.Create(r, requested(r.ID)); err != nil {
		t.Fatal(err)
	}
	other := newRequest("ar_b", t0.Add(2*time.Hour))
	if _, _, err := s.Create(other, requested(other.ID)); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
	if jobs, _ := s.Jobs(); len(jobs) != 4 || len(announced) != 4 {
		t.Fatalf("jobs %v, announced %v: want both destinations of both requests", jobs, announced)
	}

	// A retry of the same request writes nothing.
	if got, created, err := s.Create(newRequest("ar_a", t0.Add(time.Hour)), requested("ar_a")); err != nil || created || got.ID != "ar_a" {
		t.Fatalf("second Create: %v %v %v", got, created, err)
	}

	// Posting destination 0 clears its job; the request did not change.
	post := func(dest int, ts string) bool {
		t.Helper()
		_, owed, err := s.Deliver(JobKey{ID: "ar_a", Dest: dest}, nil, func(r *approvebot.Request, d *approvebot.Destination) (Change, error) {
			d.State, d.Ref, d.Shown = approvebot.DeliveryPosted, approvebot.MessageRef{Channel: d.Channel, ID: ts}, 1
			return Change{Events: []approvebot.Event{{Type: approvebot.EventPosted, RequestID: "ar_a", At: t0}}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return owed
	}
	if post(0, "1.1") {
		t.Fatal("destination 0 still owed after it was posted")
	}
	checkConsistent(t, s)

	// The deadline moves: the pending index follows.
	if _, err := s.Update("ar_a", func(r *approvebot.Request) (Change, error) {
		r.Deadline = t0.Add(30 * time.Minute)
		return Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)

	// A visible change makes the posted copy stale: a new job for it.
	before := len(announced)
	if _, err := s.Update("ar_a", func(r *approvebot.Request) (Change, error) {
		policy.Expire(r, approvebot.StatusTimedOut, "timed out", t0.Add(30*time.Minute))
		return Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
	mu.Lock()
	if len(announced) == before {
		t.Error("a visible change announced no job")
	}
	mu.Unlock()

	// Destination 1 is posted showing version 1, but the request is at 2:
	// the job stays owed.
	if !post(1, "1.2") {
		t.Error("a copy posted with an old version is not owed an update")
	}
	checkConsistent(t, s)

	// An aborted transition writes its events and nothing else.
	st0, _ := s.Stats()
	if _, err := s.Update("ar_b", func(r *approvebot.Request) (Change, error) {
		r.Status = approvebot.StatusApproved // must not stick
		return Change{Abort: true, Events: []approvebot.Event{{Type: approvebot.EventRefused, RequestID: "ar_b", At: t0}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get("ar_b"); got.Status != approvebot.StatusPending {
		t.Errorf("aborted transition changed the request: %s", got.Status)
	}
	if st1, _ := s.Stats(); st1.Audit != st0.Audit+1 {
		t.Errorf("aborted transition wrote %d audit records, want 1", st1.Audit-st0.Audit)
	}
	// A failing transition writes nothing at all.
	if _, err := s.Update("ar_b", func(r *approvebot.Request) (Change, error) {
		r.Status = approvebot.StatusApproved
		return Change{Events: []approvebot.Event{{Type: approvebot.EventRefused, RequestID: "ar_b", At: t0}}}, errors.New("no")
	}); err == nil {
		t.Fatal("failing transition reported success")
	}
	if st2, _ := s.Stats(); st2.Audit != st0.Audit+1 {
		t.Error("a failing transition wrote audit records")
	}
	// Deliver for a destination the request does not have just drops the job.
	if _, _, err := s.Deliver(JobKey{ID: "ar_b", Dest: 7}, nil, func(*approvebot.Request, *approvebot.Destination) (Change, error) {
		t.Error("called for a missing destination")
		return Change{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("ar_missing", func(*approvebot.Request) (Change, error) { return Change{}, nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing request: %v", err)
	}
	checkConsistent(t, s)

	var ids []string
	_ = s.Pending(func(id string, deadline time.Time) error {
		ids = append(ids, id+"@"+deadline.UTC().Format(time.RFC3339))
		return nil
	})
	if want := "ar_b@" + t0.Add(2*time.Hour).Format(time.RFC3339); len(ids) != 1 || ids[0] != want {
		t.Errorf("pending %v, want [%s]", ids, want)
	}
}

func TestIdempotencyKeyIsPerCaller(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a := newRequest("ar_1", t0.Add(time.Hour))
	a.IdempotencyKey = "k1"
	if _, created, err := s.Create(a, requested(a.ID)); err != nil || !created {
		t.Fatal(created, err)
	}
	retry := newRequest("ar_2", t0.Add(time.Hour))
	retry.IdempotencyKey = "k1"
	got, created, err := s.Create(retry, requested(retry.ID))
	if err != nil || created || got.ID != "ar_1" {
		t.Fatalf("retry with the same key: %v %v %v", got.ID, created, err)
	}
	other := newRequest("ar_3", t0.Add(time.Hour))
	other.IdempotencyKey, other.Caller = "k1", "another-agent"
	if got, created, err := s.Create(other, requested(other.ID)); err != nil || !created || got.ID != "ar_3" {
		t.Fatalf("another caller's key: %v %v %v", got.ID, created, err)
	}
	if _, err := s.Get("ar_2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the retry was stored as a request of its own: %v", err)
	}
	checkConsistent(t, s)
}

func TestCloseDrainsQueuedWrites(t *testing.T) {
	s, path := openTemp(t, Options{})
	release := blockWriter(t, s)
	const n = 30
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("ar_%02d", i)
			_, _, err := s.Create(newRequest(id, t0.Add(time.Hour)), requested(id))
			errs <- err
		}()
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close must wait for the queued writes, not cut them off.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while writes were queued", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued write: %v", err)
		}
	}
	if _, _, err := s.Create(newRequest("ar_late", t0), requested("ar_late")); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if st, _ := ro.Stats(); st.Requests != n || st.Audit != n {
		t.Errorf("after reopening: %+v, want %d requests", st, n)
	}
	if _, _, err := ro.Create(newRequest("ar_ro", t0), requested("ar_ro")); !errors.Is(err, ErrClosed) {
		t.Errorf("write to a read-only store: %v", err)
	}
}

func TestMaxSizeRefusesWholeTransitions(t *testing.T) {
	s, path := openTemp(t, Options{MaxSize: 1 << 20})
	// Large enough that a few hundred requests fill a mebibyte.
	big := strings.Repeat("x", 2000)
	var full error
	stored := 0
	for i := range 5000 {
		id := fmt.Sprintf("ar_%04d", i)
		r := newRequest(id, t0.Add(time.Hour))
		r.Fields.Action = big
		if _, _, err := s.Create(r, requested(id)); err != nil {
			full = err
			if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("refused request %s is stored: %v", id, err)
			}
			break
		}
		stored++
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("after %d requests: %v, want ErrFull", stored, full)
	}
	t.Logf("%d requests fit in 1 MiB; then: %v", stored, full)
	st, err := s.Stats()
	if err != nil || st.Requests != stored || st.Audit != stored {
		t.Fatalf("stats %+v %v, want %d requests", st, err, stored)
	}
	checkConsistent(t, s)
	if fi, err := os.Stat(path); err != nil || fi.Size() > 1<<20 {
		t.Errorf("file is %d bytes, over the 1 MiB cap (%v)", fi.Size(), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the cap, the same file takes writes again.
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r := newRequest("ar_after", t0.Add(time.Hour))
	r.Fields.Action = big
	if _, _, err := s2.Create(r, requested(r.ID)); err != nil {
		t.Fatalf("after lifting the cap: %v", err)
	}
	checkConsistent(t, s2)
}

var errNoSpace = syscall.ENOSPC

func TestCommitErrorMarksFullDisks(t *testing.T) {
	for _, err := range []error{
		&os.PathError{Op: "write", Path: "x", Err: errNoSpace},
		fmt.Errorf("file resize error: %s", errNoSpace),
	} {
		if !errors.Is(commitError(err), ErrFull) {
			t.Errorf("%v is not reported as ErrFull", err)
		}
	}
	if errors.Is(commitError(errors.New("input/output error")), ErrFull) {
		t.Error("an I/O error is reported as ErrFull")
	}
}

func TestJobKeyRoundTrip(t *testing.T) {
	for _, k := range []JobKey{{ID: "ar_1", Dest: 0}, {ID: "x", Dest: 1 << 20}} {
		got, err := parseJobKey(k.bytes())
		if err != nil || got != k {
			t.Errorf("%v: %v %v", k, got, err)
		}
	}
	for _, b := range [][]byte{nil, []byte("ar_1"), append([]byte("ar_1\x00"), 1, 2), binary.BigEndian.AppendUint32([]byte("a"), 1)} {
		if _, err := parseJobKey(b); err == nil {
			t.Errorf("%q parsed", b)
		}
	}
}

// v1Request is a schema 1.0 request of caller whose agent named it agentID.
func v1Request(id, caller, agentID string) *approvebot.Request {
	r := newRequest(id, t0.Add(time.Minute))
	r.Schema, r.Caller, r.Fields.ApprovalRequestID = approvebot.SchemaV1, caller, agentID
	return r
}

// Agents choose schema 1.0 ids: two callers' "ar_1" are two requests, and
// each caller finds only its own.
func TestAgentIDsPerCaller(t *testing.T) {
	s, _ := openTemp(t, Options{})
	a := v1Request("ar_00000000000000000000000000000001", "agent-a", "ar_1")
	b := v1Request("ar_00000000000000000000000000000002", "agent-b", "ar_1")
	for _, r := range []*approvebot.Request{a, b} {
		if _, created, err := s.Create(r, requested(r.ID)); err != nil || !created {
			t.Fatalf("create %s: %v %v", r.ID, created, err)
		}
	}
	// A's retry, under a fresh id of approvebot's, finds A's request.
	retry := v1Request("ar_00000000000000000000000000000003", "agent-a", "ar_1")
	if got, created, err := s.Create(retry, requested(retry.ID)); err != nil || created || got.ID != a.ID {
		t.Fatalf("retry: %v %v %v", got, created, err)
	}
	for caller, want := range map[string]string{"agent-a": a.ID, "agent-b": b.ID} {
		if got, err := s.Lookup(caller, "ar_1"); err != nil || got.ID != want {
			t.Errorf("Lookup(%s, ar_1) = %v, %v; want %s", caller, got, err, want)
		}
	}
	if _, err := s.Lookup("agent-c", "ar_1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another caller found ar_1: %v", err)
	}
	if _, err := s.Lookup("agent-a", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup by approvebot's id: %v", err)
	}
	found, err := s.Find("ar_1")
	if err != nil || len(found) != 2 {
		t.Errorf("Find(ar_1) = %d requests, %v", len(found), err)
	}
	if _, err := s.Get(retry.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the retry was stored: %v", err)
	}
	checkConsistent(t, s)
}

// Files written before the index stored a 1.0 request under the agent's id
// itself: it is still found, only by its caller, and a retry attaches to it.
func TestAgentIDsOfOlderFiles(t *testing.T) {
	s, _ := openTemp(t, Options{})
	old := v1Request("ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b", "agent-a", "ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b")
	if _, _, err := s.Create(old, requested(old.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketAgentIDs) }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup("agent-a", old.ID); err != nil || got.ID != old.ID {
		t.Errorf("Lookup of an older record: %v %v", got, err)
	}
	if _, err := s.Lookup("agent-b", old.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another caller found the older record: %v", err)
	}
	if found, err := s.Find(old.ID); err != nil || len(found) != 1 {
		t.Errorf("Find: %d, %v", len(found), err)
	}
	s.Close()
	// Reopening creates the index bucket again; the older record stays found.
	s2, err := Open(s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	retry := v1Request("ar_00000000000000000000000000000009", "agent-a", old.ID)
	if got, created, err := s2.Create(retry, requested(retry.ID)); err != nil || created || got.ID != old.ID {
		t.Errorf("retry of an older request: %v %v %v", got, created, err)
	}
	other := v1Request("ar_0000000000000000000000000000000a", "agent-b", old.ID)
	if got, created, err := s2.Create(other, requested(other.ID)); err != nil || !created || got.ID != other.ID {
		t.Errorf("another caller's request with the same agent id: %v %v %v", got, created, err)
	}
}
