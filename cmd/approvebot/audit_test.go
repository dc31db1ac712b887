package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
	bolt "go.etcd.io/bbolt"
)

// The audit trail, end to end: what the running server records, what the
// operator commands print with the server up (admin API) and down (the
// file), and that a changed stored byte is found and named.

// newAuditHarness listens on a fixed free port: with the server up, the
// audit commands find it at the config's listen address.
func newAuditHarness(t *testing.T) *harness {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	h := newHarness(t, strings.Replace(chainConfig, "listen: 127.0.0.1:0", "listen: 127.0.0.1:"+port, 1))
	h.slack.AddUser("U0SAM", "Sam Security", "sam@company.com")
	return h
}

// cli runs an operator command as the binary does.
func (h *harness) cli(args ...string) (string, error) {
	return h.cliEnv(h.getenv, args...)
}

func (h *harness) cliEnv(getenv func(string) (string, bool), args ...string) (string, error) {
	h.t.Helper()
	// Flags first, then positional arguments, as the flag package wants.
	full := []string{args[0], args[1], "--config", h.config}
	full = append(full, args[2:]...)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, h.runClock(), full, getenv, &out, &errOut)
	return out.String(), err
}

// history is what the audited requests were.
type history struct {
	chain, legacy, expired string
}

// makeHistory runs a two-stage approval, a legacy denial with a refused
// click, and a schema 1.0 request expired on arrival.
func (h *harness) makeHistory() history {
	h.t.Helper()
	hist := history{chain: h.approveChain()}
	hist.legacy = h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(hist.legacy, 2)
	h.click("U0MALLORY", "C0COMPLIANCE", messageIn(h.t, msgs, "C0COMPLIANCE").TS, "approve", hist.legacy)
	h.waitFor("Mallory told", func() bool { return len(h.ephemeralsFor("U0MALLORY")) == 1 })
	h.click("U0CARL", "C0COMPLIANCE", messageIn(h.t, msgs, "C0COMPLIANCE").TS, "deny", hist.legacy)
	if r := h.do(http.MethodGet, "/v1/approvals/"+hist.legacy+"?wait=30", nil, auth()); r.answer.Status != "denied" {
		h.t.Fatalf("legacy request: %s", r.body)
	}

	expired, fields := intaketest.V1Body(intaketest.V1{ExpiresAt: time.Now().Add(-time.Minute)})
	hist.expired = fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", expired, auth()); r.answer.Status != "expired" {
		h.t.Fatalf("expired request: %s", r.body)
	}
	// The audit log names requests by approvebot's ids.
	hist.chain, hist.expired = h.storeID(hist.chain), h.storeID(hist.expired)
	return hist
}

// approveChain has Jane and Sam approve the two stages of a request.
func (h *harness) approveChain() string {
	h.t.Helper()
	body, fields := chainBody("")
	id := fields["approval_request_id"].(string)
	if r := h.do(http.MethodPost, "/v1/approvals", body, auth("Prefer", "respond-async")); r.status != http.StatusAccepted {
		h.t.Fatalf("submit: %d %s", r.status, r.body)
	}
	first := h.waitMessages(id, 1)[0]
	h.click("U0JANE", "C0TREASURY", first.TS, "approve", id)
	second := h.messageAt(id, "C0SECURITY")
	h.waitPosted(id, 2)
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", id)
	if r := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth()); !r.answer.Approved {
		h.t.Fatalf("chain request: %s", r.body)
	}
	return id
}

// records parses JSON lines of audit records and checks that each digest
// recomputes.
func records(t *testing.T, out string) []store.Record {
	t.Helper()
	var recs []store.Record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec store.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("export line is not a record: %v: %s", err, line)
		}
		if d, err := store.RecordDigest(rec); err != nil || d != rec.Digest {
			t.Errorf("record %d: digest %s, content hashes to %s", rec.Seq, rec.Digest, d)
		}
		recs = append(recs, rec)
	}
	return recs
}

func types(recs []store.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

// checkStoryRecords checks the chain request's audit records: ADR-0030's
// entry and resolution fields, digests that recompute.
func checkStoryRecords(t *testing.T, id string, recs []store.Record) {
	t.Helper()
	want := []string{"approval_requested", "message_posted", "approval_chain_entry", "stage_opened",
		"message_posted", "approval_chain_entry", "approval_resolved"}
	got := slices.DeleteFunc(types(recs), func(s string) bool { return s == "message_updated" })
	if !slices.Equal(got, want) {
		t.Errorf("records of %s: %v, want %v", id, got, want)
	}
	prev := ""
	for _, rec := range recs {
		if rec.RequestID != id {
			t.Errorf("record %d is about %s, not %s", rec.Seq, rec.RequestID, id)
		}
		switch rec.Type {
		case approvebot.EventEntry:
			var d struct {
				Entry map[string]any `json:"entry"`
			}
			_ = json.Unmarshal(rec.Detail, &d)
			for _, k := range adrEntryKeys {
				if _, ok := d.Entry[k]; !ok {
					t.Errorf("entry record %d lacks ADR-0030's %s: %s", rec.Seq, k, rec.Detail)
				}
			}
			var e approvebot.Entry
			raw, _ := json.Marshal(d.Entry)
			_ = json.Unmarshal(raw, &e)
			if policy.EntryDigest(e) != e.EntryDigest || e.PreviousEntryDigest != prev {
				t.Errorf("entry record %d: digest or link does not recompute: %s", rec.Seq, rec.Detail)
			}
			prev = e.EntryDigest
		case approvebot.EventResolved:
			var d map[string]json.RawMessage
			_ = json.Unmarshal(rec.Detail, &d)
			var res map[string]any
			_ = json.Unmarshal(d["resolution"], &res)
			for _, k := range []string{"approval_resolution_id", "outcome", "final_entry_digest", "resolved_at"} {
				if _, ok := res[k]; !ok {
					t.Errorf("resolution record %d lacks %s: %s", rec.Seq, k, rec.Detail)
				}
			}
			for _, k := range []string{"action_digest", "policy_version", "approval_chain_version"} {
				if _, ok := d[k]; !ok {
					t.Errorf("resolution record %d lacks %s: %s", rec.Seq, k, rec.Detail)
				}
			}
			if res["outcome"] != "allow" || res["final_entry_digest"] != prev {
				t.Errorf("resolution record %d: %s", rec.Seq, rec.Detail)
			}
		}
	}
}

func TestAuditCommandsWhileRunningAndStopped(t *testing.T) {
	t.Parallel()
	h := newAuditHarness(t)
	h.start()
	hist := h.makeHistory()

	type outputs struct{ verify, export, all, show, legacy string }
	collect := func(when string) outputs {
		var o outputs
		var err error
		if o.verify, err = h.cli("audit", "verify"); err != nil || !strings.Contains(o.verify, "audit trail intact") {
			t.Fatalf("%s: audit verify: %v\n%s", when, err, o.verify)
		}
		if o.export, err = h.cli("audit", "export", "--request", hist.chain); err != nil {
			t.Fatalf("%s: audit export: %v", when, err)
		}
		checkStoryRecords(t, hist.chain, records(t, o.export))
		if o.all, err = h.cli("audit", "export"); err != nil {
			t.Fatalf("%s: audit export: %v", when, err)
		}
		all := records(t, o.all)
		prev := ""
		for i, rec := range all {
			if rec.Seq != uint64(i+1) || rec.Prev != prev {
				t.Fatalf("%s: record %d does not link to the one before: %+v", when, i+1, rec)
			}
			prev = rec.Digest
		}
		for _, id := range []string{hist.chain, hist.legacy, hist.expired} {
			if !slices.ContainsFunc(all, func(r store.Record) bool { return r.RequestID == id && r.Type == approvebot.EventResolved }) {
				t.Errorf("%s: no resolution recorded for %s", when, id)
			}
		}
		if !slices.ContainsFunc(all, func(r store.Record) bool {
			return r.RequestID == hist.legacy && r.Type == approvebot.EventRefused && strings.Contains(string(r.Detail), `"not_an_approver"`)
		}) {
			t.Errorf("%s: Mallory's refused click is not in the audit log", when)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if out, err := h.cli("audit", "export", "--since", future); err != nil || out != "" {
			t.Errorf("%s: export --since an hour ahead: %v %q", when, err, out)
		}
		if out, err := h.cli("audit", "export", "--until", future, "--request", hist.expired); err != nil ||
			!slices.Equal(types(records(t, out)), []string{"approval_requested", "approval_resolved"}) {
			t.Errorf("%s: export --until --request %s: %v %q", when, hist.expired, err, out)
		}
		if _, err := h.cli("audit", "export", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--since") {
			t.Errorf("%s: a bad --since: %v", when, err)
		}
		if o.show, err = h.cli("audit", "show", hist.chain); err != nil {
			t.Fatalf("%s: audit show: %v", when, err)
		}
		for _, s := range []string{"request " + hist.chain, "status:   approved", "sam@company.com", "approval_chain_entry",
			"C0SECURITY (stage 2): posted", "approval_resolved"} {
			if !strings.Contains(o.show, s) {
				t.Errorf("%s: audit show lacks %q:\n%s", when, s, o.show)
			}
		}
		if o.legacy, err = h.cli("audit", "show", hist.legacy); err != nil || !strings.Contains(o.legacy, "legacy schema") ||
			!strings.Contains(o.legacy, "Denied by carl@company.com") || !strings.Contains(o.legacy, "click_refused") {
			t.Errorf("%s: audit show %s: %v\n%s", when, hist.legacy, err, o.legacy)
		}
		if _, err := h.cli("audit", "show", "ar_"+strings.Repeat("0", 32)); err == nil {
			t.Errorf("%s: audit show of an unknown request succeeded", when)
		}
		return o
	}

	running := collect("server running")
	// With the server up the file is locked: the commands ask the admin
	// API, so a wrong admin token is refused by the server.
	wrong := func(k string) (string, bool) {
		if k == "ADMIN_TOKEN" {
			return "wrong-admin-token-0123456789", true
		}
		return h.getenv(k)
	}
	if _, err := h.cliEnv(wrong, "audit", "verify"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("audit verify with a wrong admin token while running: %v", err)
	}

	// Legacy requests run as a one-stage chain with ADR-0030 entries.
	s := h.story(hist.legacy)
	if len(s.Request.Chain.Stages) != 1 {
		t.Errorf("legacy request's chain: %+v", s.Request.Chain)
	}
	h.stop()

	stopped := collect("server stopped")
	if running.export != stopped.export || running.all != stopped.all || running.show != stopped.show || running.verify != stopped.verify {
		t.Errorf("the commands print differently from the file and from the running server")
	}
}

// tamper changes the stored value at key in bucket with bbolt directly, as
// someone with the file could, and returns a function that puts it back.
func tamper(t *testing.T, path, bucket string, key []byte, change func(v []byte) []byte) (restore func()) {
	t.Helper()
	var old []byte
	update := func(fn func(v []byte) []byte) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucket))
			v := b.Get(key)
			if v == nil {
				return fmt.Errorf("no %q in bucket %s", key, bucket)
			}
			if old == nil {
				old = slices.Clone(v)
			}
			return b.Put(key, fn(slices.Clone(v)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	update(change)
	return func() { update(func([]byte) []byte { return old }) }
}

// changeByte flips the case of the byte at i if it is a letter, or its low
// bit otherwise: a one-byte change.
func changeByte(v []byte, i int) []byte {
	c := v[i]
	if c|0x20 >= 'a' && c|0x20 <= 'z' {
		v[i] = c ^ 0x20
	} else {
		v[i] = c ^ 0x01
	}
	return v
}

// auditSeq finds the sequence number of the first record of type typ about id.
func auditSeq(t *testing.T, path, typ, id string) uint64 {
	t.Helper()
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var seq uint64
	err = st.Audit(0, func(rec store.Record, _ []byte) error {
		if seq == 0 && rec.Type == typ && rec.RequestID == id {
			seq = rec.Seq
		}
		return nil
	})
	if err != nil || seq == 0 {
		t.Fatalf("no %s record for %s: %v", typ, id, err)
	}
	return seq
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func TestAuditVerifyNamesTheTamperedEntry(t *testing.T) {
	t.Parallel()
	h := newAuditHarness(t)
	h.start()
	hist := h.makeHistory()
	h.stop()
	path := filepath.Join(h.dir, "approvebot.db")
	verify := func() (string, error) {
		t.Helper()
		out, err := h.cli("audit", "verify")
		if err != nil && exitCode(err) != 1 {
			t.Errorf("audit verify failed with exit code %d", exitCode(err))
		}
		return out, err
	}
	if out, err := verify(); err != nil {
		t.Fatalf("untouched store: %v\n%s", err, out)
	}

	// One byte of Jane's identity in the audit record of her vote.
	seq := auditSeq(t, path, approvebot.EventEntry, hist.chain)
	restore := tamper(t, path, "audit", seqKey(seq), func(v []byte) []byte {
		return changeByte(v, bytes.Index(v, []byte("jane@company.com")))
	})
	out, err := verify()
	if err == nil || !strings.Contains(out, fmt.Sprintf("BROKEN at audit record %d: digest does not match", seq)) {
		t.Fatalf("tampered audit record %d: %v\n%s", seq, err, out)
	}
	restore()
	if out, err := verify(); err != nil {
		t.Fatalf("after restoring the byte: %v\n%s", err, out)
	}

	// One byte of the same identity in the request's stored chain entry
	// (in its state record).
	restore = tamper(t, path, "request_state", []byte(hist.chain), func(v []byte) []byte {
		return changeByte(v, bytes.Index(v, []byte(`"approver_identity":"jane@company.com"`))+len(`"approver_identity":"`))
	})
	out, err = verify()
	if err == nil || !strings.Contains(out, "BROKEN at request "+hist.chain+": chain entry 1") {
		t.Fatalf("tampered chain entry: %v\n%s", err, out)
	}
	restore()

	// A changed link: the second record's prev.
	restore = tamper(t, path, "audit", seqKey(2), func(v []byte) []byte {
		return changeByte(v, bytes.Index(v, []byte(`"prev":"sha256:`))+len(`"prev":"sha256:`))
	})
	if out, err := verify(); err == nil || !strings.Contains(out, "BROKEN at audit record 2: link") {
		t.Fatalf("tampered link: %v\n%s", err, out)
	}
	restore()
	if out, err := verify(); err != nil {
		t.Fatalf("after restoring: %v\n%s", err, out)
	}
}

// TestAuditAnyChangedByteIsFound changes, one at a time, every byte of an
// audit record and every byte of what a stored request says was asked,
// voted and decided: each change must be reported at that record or request.
func TestAuditAnyChangedByteIsFound(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("changes every byte of a record")
	}
	h := newAuditHarness(t)
	h.start()
	id := h.storeID(h.approveChain())
	h.stop()
	path := filepath.Join(h.dir, "approvebot.db")
	// The race detector makes each verification several times slower and
	// finds nothing in this single goroutine: there, every few bytes do.
	stride := 1
	if raceEnabled() {
		stride = 4
	}

	// sweep stores, for each i, original with byte i changed, and asks
	// verification where the trail breaks; then it puts original back.
	sweep := func(bucket string, key, original []byte, from, to int, found func(*store.Break) bool) (missed []int) {
		for i := from; i < to; i += stride {
			changed := changeByte(slices.Clone(original), i)
			setValue(t, path, bucket, key, changed)
			st, err := store.Open(path, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := bot.VerifyAudit(st)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !found(rep.Break) {
				missed = append(missed, i)
				if len(missed) <= 3 {
					t.Errorf("%s %s: byte %d (%q in …%s…) changed: verify says %v", bucket, key, i, original[i], around(original, i), rep.Break)
				}
			}
		}
		setValue(t, path, bucket, key, original)
		return missed
	}

	seq := auditSeq(t, path, approvebot.EventResolved, id)
	record := getValue(t, path, "audit", seqKey(seq))
	if missed := sweep("audit", seqKey(seq), record, 0, len(record), func(b *store.Break) bool {
		return b != nil && b.Seq == seq && b.RequestID == ""
	}); len(missed) > 0 {
		t.Errorf("%d changed bytes of audit record %d went unnoticed", len(missed), seq)
	}

	// A request is two records: what it was created with, and its state.
	for bucket, keys := range map[string][]string{
		"requests":      {"id", "caller", "digest", "body_digest", "fields", "chain"},
		"request_state": {"deadline", "status", "entries", "resolution", "receipt"},
	} {
		req := getValue(t, path, bucket, []byte(id))
		var parts map[string]json.RawMessage
		if err := json.Unmarshal(req, &parts); err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			at := bytes.Index(req, []byte(`"`+key+`":`))
			end := at + len(`"`+key+`":`) + len(parts[key])
			if at < 0 || len(parts[key]) == 0 {
				t.Fatalf("stored request has no %s in %s", key, bucket)
			}
			if missed := sweep(bucket, []byte(id), req, at, end, func(b *store.Break) bool {
				return b != nil && b.RequestID == id
			}); len(missed) > 0 {
				t.Errorf("%d changed bytes of the request's %s went unnoticed", len(missed), key)
			}
		}
	}
	if out, err := h.cli("audit", "verify"); err != nil {
		t.Fatalf("after putting every byte back: %v\n%s", err, out)
	}
}

func getValue(t *testing.T, path, bucket string, key []byte) []byte {
	t.Helper()
	var v []byte
	tamper(t, path, bucket, key, func(old []byte) []byte { v = old; return old })
	return v
}

// setValue stores v at key in bucket with bbolt directly.
func setValue(t *testing.T, path, bucket string, key, v []byte) {
	t.Helper()
	tamper(t, path, bucket, key, func([]byte) []byte { return v })
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.ContainsFunc(bi.Settings, func(s debug.BuildSetting) bool { return s.Key == "-race" && s.Value == "true" })
}

func around(v []byte, i int) string {
	return string(v[max(0, i-20):min(len(v), i+20)])
}

// TestAuditWhileRunningNeedsAFixedPort: with listen on port 0 the commands
// cannot find the server that holds the file, and say what to change.
func TestAuditWhileRunningNeedsAFixedPort(t *testing.T) {
	t.Parallel()
	h := newChainHarness(t)
	h.start()
	if _, err := h.cli("audit", "verify"); err == nil || !strings.Contains(err.Error(), `listen "127.0.0.1:0" names no fixed port`) {
		t.Fatalf("audit verify while running on port 0: %v", err)
	}
	h.stop()
	if out, err := h.cli("audit", "verify"); err != nil {
		t.Fatalf("audit verify once stopped: %v\n%s", err, out)
	}
}
