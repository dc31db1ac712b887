package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

// testSeal stands in for the engine's signed checkpoint: the store keeps
// whatever line it is given, and checks only that it names the cut.
func testSeal(calls *int) SealFunc {
	return func(h Head) ([]byte, error) {
		*calls++
		return json.Marshal(map[string]any{"audit_seq": h.Seq, "audit_head": h.Digest, "checkpoint": "signed"})
	}
}

// decideAt makes a stored request final with a resolution event at at.
func decideAt(t *testing.T, s *Bolt, id string, at time.Time) {
	t.Helper()
	_, err := s.Update(id, func(r *approvebot.Request) (Change, error) {
		r.Status = approvebot.StatusDenied
		return Change{Events: []approvebot.Event{{Type: "approval_denied", RequestID: id, At: at}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPruneKeepsPendingRequestsAndWhatFollowsThem(t *testing.T) {
	s, _ := openTemp(t, Options{})
	create := func(id string, at time.Time) {
		r := newRequest(id, at.Add(24*time.Hour))
		r.IdempotencyKey = "key-" + id
		ev := requested(id)
		ev.At = at
		if _, _, err := s.Create(r, ev); err != nil {
			t.Fatal(err)
		}
	}
	// old-1 decided; then pending (old, never decided); then old-2
	// decided after it; then new, decided recently.
	create("old-1", t0)
	decideAt(t, s, "old-1", t0.Add(time.Minute))
	create("pending", t0.Add(2*time.Minute))
	create("old-2", t0.Add(3*time.Minute))
	decideAt(t, s, "old-2", t0.Add(4*time.Minute))
	create("new", t0.Add(48*time.Hour))
	decideAt(t, s, "new", t0.Add(48*time.Hour))

	calls := 0
	rep, err := s.Prune(t0.Add(24*time.Hour), testSeal(&calls))
	if err != nil {
		t.Fatal(err)
	}
	// Only old-1 and its two records go: the pending request's first
	// record keeps everything from it, old-2 included.
	if rep.Requests != 1 || rep.Records != 2 || rep.Seal.Seq != 2 || calls != 1 {
		t.Fatalf("pruned %+v (seal called %d times)", rep, calls)
	}
	for id, want := range map[string]bool{"old-1": false, "pending": true, "old-2": true, "new": true} {
		if _, err := s.Get(id); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", id, err == nil, want)
		}
	}
	// The removed request's idempotency key and outbox jobs went with it.
	if jobs, _ := s.Jobs(); len(jobs) != 6 {
		t.Errorf("outbox jobs %v, want the 6 of the kept requests", jobs)
	}
	rep2, err := s.Verify(func(approvebot.Entry) string { return "" }, func(*approvebot.Request) (string, error) { return "", nil })
	if err != nil || rep2.Break != nil || rep2.Seal == nil || rep2.Records != 5 {
		t.Fatalf("verify after prune: %+v, %v", rep2, err)
	}
	checkConsistent(t, s)

	// Nothing more to remove while pending waits: no seal is signed.
	if rep, err := s.Prune(t0.Add(24*time.Hour), testSeal(&calls)); err != nil || rep.Records != 0 || calls != 1 {
		t.Fatalf("second pass: %+v %v, seal called %d times", rep, err, calls)
	}
	// Decided now (its last record after new's), it goes with old-2: the
	// log is cut before new's first record, and the record of its decision
	// stays, of no stored request, until new goes too.
	decideAt(t, s, "pending", t0.Add(5*time.Minute))
	rep, err = s.Prune(t0.Add(24*time.Hour), testSeal(&calls))
	if err != nil || rep.Requests != 2 || rep.Records != 3 || rep.Seal.Seq != 5 {
		t.Fatalf("third pass: %+v %v", rep, err)
	}
	if rep, err := s.Verify(func(approvebot.Entry) string { return "" }, func(*approvebot.Request) (string, error) { return "", nil }); err != nil || rep.Break != nil {
		t.Fatalf("verify with a removed request's record left: %+v, %v", rep, err)
	}
	checkConsistent(t, s)
	// Once new is old as well, everything goes under a new seal.
	rep, err = s.Prune(t0.Add(72*time.Hour), testSeal(&calls))
	if err != nil || rep.Requests != 1 || rep.Seal.Seq != 8 || rep.Records != 3 {
		t.Fatalf("fourth pass: %+v %v", rep, err)
	}
	if st, _ := s.Stats(); st.Requests != 0 || st.Audit != 0 || st.Outbox != 0 {
		t.Errorf("left %+v", st)
	}
	h, found, err := s.Record(8)
	if err != nil || !found || h != rep.Seal {
		t.Errorf("Record at the seal: %+v %v %v", h, found, err)
	}
	checkConsistent(t, s)
}

func TestPruneRemovesNothingWhenTheSealFails(t *testing.T) {
	s, _ := openTemp(t, Options{})
	for i := range 3 {
		id := fmt.Sprint("r", i)
		if _, _, err := s.Create(newRequest(id, t0.Add(time.Hour)), requested(id)); err != nil {
			t.Fatal(err)
		}
		decideAt(t, s, id, t0)
	}
	before, _ := s.Stats()
	_, err := s.Prune(t0.Add(48*time.Hour), func(Head) ([]byte, error) { return nil, fmt.Errorf("sink full") })
	if err == nil {
		t.Fatal("prune went on without its seal")
	}
	_, err = s.Prune(t0.Add(48*time.Hour), func(h Head) ([]byte, error) {
		return json.Marshal(map[string]any{"audit_seq": h.Seq - 1, "audit_head": h.Digest, "checkpoint": "x"})
	})
	if err == nil {
		t.Fatal("prune accepted a seal of another record")
	}
	if after, _ := s.Stats(); after != before {
		t.Errorf("stats %+v, were %+v", after, before)
	}
}

// The seal is read back from the file, which whoever can write the file
// controls: any bytes must give a place or an error, never a panic.
func FuzzParseSeal(f *testing.F) {
	for _, s := range []string{
		`{"audit_seq":12,"audit_head":"sha256:ab","at":"2026-01-01T00:00:00Z","checkpoint":"eyJ.e30.sig","retention":true}`,
		`{"audit_seq":0,"audit_head":"","checkpoint":""}`, `{"audit_seq":-1}`, `[]`, `null`, ``, `{"audit_seq":1e30,"audit_head":"x","checkpoint":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseSeal(b)
		if err == nil && (h == nil || h.Seq == 0 || h.Digest == "") {
			t.Fatalf("%q: accepted %+v", b, h)
		}
	})
}

func TestPruneRemovesInBatches(t *testing.T) {
	s, _ := openTemp(t, Options{})
	// 3,400 decided requests of three records each: more than a batch.
	n := PruneBatch/3 + 67
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			id := fmt.Sprint("r", i)
			if _, _, err := s.Create(newRequest(id, t0.Add(time.Hour)), requested(id)); err != nil {
				errs <- err
				return
			}
			_, err := s.Update(id, func(r *approvebot.Request) (Change, error) {
				r.Status = approvebot.StatusDenied
				return Change{Events: []approvebot.Event{{Type: "vote", RequestID: id, At: t0}, {Type: "approval_denied", RequestID: id, At: t0}}}, nil
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	noDigest := func(approvebot.Entry) string { return "" }
	noResolution := func(*approvebot.Request) (string, error) { return "", nil }
	first, err := s.Prune(t0.Add(time.Hour), testSeal(&calls))
	if err != nil || first.Records != PruneBatch || first.Requests == 0 {
		t.Fatalf("first batch: %+v %v", first, err)
	}
	if rep, err := s.Verify(noDigest, noResolution); err != nil || rep.Break != nil || rep.Requests != n-first.Requests {
		t.Fatalf("verify after one batch: %+v %v", rep, err)
	}
	checkConsistent(t, s)
	second, err := s.Prune(t0.Add(time.Hour), testSeal(&calls))
	if err != nil || first.Requests+second.Requests != n || first.Records+second.Records != 3*n || calls != 2 {
		t.Fatalf("second batch: %+v %v (first %+v)", second, err, first)
	}
}

// Requests that overlap one another, each decided after the next was
// asked, must not hold each other back: otherwise one request still open
// at the cutoff would keep everything before it forever.
func TestPruneOverlappingRequests(t *testing.T) {
	s, _ := openTemp(t, Options{})
	create := func(id string, at time.Time) {
		ev := requested(id)
		ev.At = at
		if _, _, err := s.Create(newRequest(id, at.Add(time.Hour)), ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		create(fmt.Sprint("r", i), t0.Add(time.Duration(i)*time.Minute))
		if i > 0 {
			decideAt(t, s, fmt.Sprint("r", i-1), t0.Add(time.Duration(i)*time.Minute))
		}
	}
	create("young", t0.Add(30*time.Minute))
	decideAt(t, s, "young", t0.Add(2*time.Hour)) // after the cutoff
	decideAt(t, s, "r9", t0.Add(31*time.Minute))
	calls := 0
	rep, err := s.Prune(t0.Add(time.Hour), testSeal(&calls))
	if err != nil || rep.Requests != 10 || rep.Records != 19 {
		t.Fatalf("pruned %+v, %v; want the ten overlapping requests and the log up to young's first record", rep, err)
	}
	if _, err := s.Get("young"); err != nil {
		t.Errorf("young: %v", err)
	}
	checkConsistent(t, s)
}
