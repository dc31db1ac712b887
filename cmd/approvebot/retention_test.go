package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	bolt "go.etcd.io/bbolt"
)

// Keeping the data: store.retention through the running server on a moved
// clock, the seal that lets audit verify prove what is left, exporting what
// goes first, and compacting the file offline.

// retentionConfig is chainConfig with store.retention: 1d, requests that
// may wait a day, a rule whose requests expire in a minute, and signed
// checkpoints in a file on "another volume".
func retentionConfig(port string) string {
	cfg := strings.Replace(chainConfig, "listen: 127.0.0.1:0", "listen: 127.0.0.1:"+port, 1)
	cfg = strings.Replace(cfg, "  path: ${DIR}/approvebot.db\n", "  path: ${DIR}/approvebot.db\n  retention: 1d\n", 1)
	cfg = strings.ReplaceAll(cfg, "timeout: 5m", "timeout: 24h")
	cfg = strings.Replace(cfg, "chains:\n", "  - match: {rule_name: quick-check}\n    approvers: [treasury-ops]\n    timeout: 1m\nchains:\n", 1)
	return cfg + anchorAudit
}

func newRetentionHarness(t *testing.T, clock *bot.ManualClock) *harness {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	h := newHarness(t, retentionConfig(port))
	h.slack.AddUser("U0SAM", "Sam Security", "sam@company.com")
	if err := os.Mkdir(filepath.Join(h.dir, "other-volume"), 0o700); err != nil {
		t.Fatal(err)
	}
	h.clock = clock
	return h
}

// decide has Jane (treasury) or Carl (compliance) decide a legacy request
// and waits for the answer.
func (h *harness) decide(id, action string) {
	h.t.Helper()
	msgs := h.waitMessages(id, 2)
	user, channel := "U0JANE", "C0TREASURY"
	if action == "deny" {
		user, channel = "U0CARL", "C0COMPLIANCE"
	}
	h.click(user, channel, messageIn(h.t, msgs, channel).TS, action, id)
	want := map[string]string{"approve": "approved", "deny": "denied"}[action]
	if r := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth()); r.answer.Status != want {
		h.t.Fatalf("request %s: %s", id, r.body)
	}
}

func (h *harness) adminStatus(id string) int {
	return h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken}).status
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestRetentionThroughTheServer(t *testing.T) {
	t.Parallel()
	t0 := time.Now().UTC()
	clock := bot.NewManualClock(t0)
	h := newRetentionHarness(t, clock)
	h.start()

	// Day 0: two decisions, and a burst of requests nobody answers, which
	// expire a minute later: all of it is old by day 1.
	approved := h.pendingID(legacyBody("approve-large-transfer"), "Idempotency-Key", "old-approval")
	h.decide(approved, "approve")
	denied := h.pendingID(legacyBody("approve-large-transfer"))
	h.decide(denied, "deny")
	var quick []string
	for range 40 {
		id := h.pendingID(legacyBody("quick-check"))
		quick = append(quick, id)
	}
	for _, id := range quick {
		h.waitPosted(id, 1)
	}
	clock.Advance(2 * time.Minute)
	for _, id := range quick {
		if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status != "timed_out" {
			t.Fatalf("quick request %s: %s", id, r.body)
		}
	}

	// Day 0, 20 h later: one request still pending, one decided.
	clock.Advance(20 * time.Hour)
	pending := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitMessages(pending, 2)
	recent := h.pendingID(legacyBody("approve-large-transfer"))
	h.decide(recent, "approve")

	// Export what the cutoff will remove, before it does.
	cutoff := t0.Add(25*time.Hour - 24*time.Hour + time.Minute) // day-1 pass at t0+25h removes what is older than t0+1h
	exported, err := h.cli("audit", "export", "--before", cutoff.Format(time.RFC3339))
	if err != nil {
		t.Fatalf("export --before: %v", err)
	}
	old := records(t, exported)
	if len(old) == 0 {
		t.Fatal("nothing exported")
	}
	for _, rec := range old {
		if rec.RequestID == pending || rec.RequestID == recent {
			t.Fatalf("export --before %s holds a record of a newer request: %+v", cutoff, rec)
		}
	}
	storeOld := map[string]bool{}
	for _, rec := range old {
		storeOld[rec.RequestID] = true
	}
	if !storeOld[h.storeID(approved)] || !storeOld[h.storeID(denied)] || !storeOld[h.storeID(quick[39])] {
		t.Fatalf("export --before misses records of the old requests")
	}
	before := fileSize(t, h.storeFile())

	// Day 1: the hourly pass removes the day-0 requests and nothing newer.
	clock.Advance(5*time.Hour - 2*time.Minute + time.Minute)
	h.waitLogged(`"msg":"retention removed decided requests"`, 1)
	metrics := h.do(http.MethodGet, "/metrics", nil, nil).body
	for _, m := range []string{`approvebot_retention_removed_total{kind="requests"} 42`, `approvebot_retention_passes_total{result="removed"} 1`} {
		if !bytes.Contains(metrics, []byte(m)) {
			t.Errorf("metrics lack %s", m)
		}
	}
	for _, id := range append([]string{approved, denied}, quick...) {
		if s := h.adminStatus(id); s != http.StatusNotFound {
			t.Fatalf("old request %s still there (%d)", id, s)
		}
	}
	for _, id := range []string{pending, recent} {
		if s := h.adminStatus(id); s != http.StatusOK {
			t.Fatalf("request %s removed (%d)", id, s)
		}
	}
	// The same idempotency key opens a new request now that the old one
	// is gone (its key went with it).
	again := h.pendingID(legacyBody("approve-large-transfer"), "Idempotency-Key", "old-approval")
	if again == approved {
		t.Fatalf("the removed request's idempotency key still answers")
	}
	// The kept log begins right after the exported records.
	all, err := h.cli("audit", "export")
	if err != nil {
		t.Fatal(err)
	}
	kept := records(t, all)
	last := old[len(old)-1]
	if kept[0].Seq != last.Seq+1 || kept[0].Prev != last.Digest {
		t.Fatalf("the log begins at %d (prev %s); the export ends at %d (%s)", kept[0].Seq, kept[0].Prev, last.Seq, last.Digest)
	}

	// The pending request is still decided as any other.
	h.decide(pending, "approve")

	// verify proves the rest from the seal, with the server up and with
	// checkpoints (the seal is a checkpoint line of the file too).
	out, err := h.verify()
	if err != nil || !strings.Contains(out, "begins after the signed retention seal of record "+strconv.FormatUint(last.Seq, 10)) {
		t.Fatalf("verify after retention: %v\n%s", err, out)
	}
	if out, err := h.verify("--checkpoints", h.checkpointFile()); err != nil || !strings.Contains(out, "anchored:") ||
		!strings.Contains(out, "vouch for records retention removed") {
		t.Fatalf("verify --checkpoints after retention: %v\n%s", err, out)
	}
	h.stop()
	if out, err := h.verify("--checkpoints", h.checkpointFile()); err != nil || !strings.Contains(out, "begins after the signed retention seal") {
		t.Fatalf("verify offline after retention: %v\n%s", err, out)
	}

	// Tampering with the seal is found, each way.
	seal := getValue(t, h.storeFile(), "meta", []byte("audit_seal"))
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
		want   string
	}{
		{"sealed digest changed", func(v []byte) []byte {
			return bytes.Replace(v, []byte(last.Digest), []byte(kept[1].Digest), 1)
		}, "link to the previous record does not match the digest the retention seal vouches for"},
		{"signature changed", func(v []byte) []byte {
			var l map[string]any
			json.Unmarshal(v, &l)
			tok := l["checkpoint"].(string)
			l["checkpoint"] = tok[:len(tok)-5] + strings.Repeat("A", 5)
			b, _ := json.Marshal(l)
			return b
		}, "BROKEN at the retention seal"},
		{"seal removed", nil, "no retention seal says why the records before it are gone"},
	} {
		var restore func()
		if tc.change == nil {
			deleteValue(t, h.storeFile(), "meta", []byte("audit_seal"))
			restore = func() { putValue(t, h.storeFile(), "meta", []byte("audit_seal"), seal) }
		} else {
			restore = tamper(t, h.storeFile(), "meta", []byte("audit_seal"), tc.change)
		}
		out, err := h.verify()
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: verify says %v\n%s", tc.name, err, out)
		}
		restore()
	}
	if out, err := h.verify(); err != nil {
		t.Fatalf("after restoring the seal: %v\n%s", err, out)
	}

	// compact offline: the file shrinks, what it holds stays.
	storyBefore, err := h.cli("audit", "show", pending)
	if err != nil {
		t.Fatal(err)
	}
	exportBefore, err := h.cli("audit", "export")
	if err != nil {
		t.Fatal(err)
	}
	out, err = h.command("compact")
	if err != nil || !strings.Contains(out, "compacted ") {
		t.Fatalf("compact: %v\n%s", err, out)
	}
	after := fileSize(t, h.storeFile())
	if after >= before {
		t.Errorf("compact left the file at %d bytes; it was %d before retention", after, before)
	}
	t.Logf("store file: %d bytes before retention, %d after compact", before, after)
	if fi, err := os.Stat(h.storeFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v, %v", fi.Mode(), err)
	}
	if out, err := h.verify("--checkpoints", h.checkpointFile()); err != nil {
		t.Fatalf("verify after compact: %v\n%s", err, out)
	}
	if storyAfter, err := h.cli("audit", "show", pending); err != nil || storyAfter != storyBefore {
		t.Errorf("the pending request's story changed in compaction: %v\n%s\nwas\n%s", err, storyAfter, storyBefore)
	}
	if exportAfter, err := h.cli("audit", "export"); err != nil || exportAfter != exportBefore {
		t.Errorf("the log changed in compaction: %v", err)
	}

	// The server starts on the compacted file and goes on.
	h.start()
	if r := h.do(http.MethodGet, "/v1/approvals/"+pending, nil, auth()); r.answer.Status != "approved" {
		t.Fatalf("after compact: %s", r.body)
	}
	// compact refuses while a server holds the file.
	if out, err := h.command("compact"); err == nil || !strings.Contains(err.Error(), "a running approvebot holds it") {
		t.Errorf("compact with the server up: %v\n%s", err, out)
	}
	h.decide(again, "approve")
	late := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitMessages(late, 2)
	h.stop()

	// Offline, three days on, compact applies retention itself: everything
	// decided goes, and late, still pending in the file although its
	// deadline passed while the service was down, stays.
	h.clock = bot.NewManualClock(t0.Add(96 * time.Hour))
	out, err = h.command("compact")
	if err != nil || !strings.Contains(out, "retention: removed 3 decided requests") {
		t.Fatalf("compact with retention due: %v\n%s", err, out)
	}
	for id, want := range map[string]bool{pending: false, recent: false, again: false, late: true} {
		if _, err := h.cli("audit", "show", id); (err == nil) != want {
			t.Errorf("after compact, request %s kept: %v, want %v", id, err == nil, want)
		}
	}
	if out, err := h.verify("--checkpoints", h.checkpointFile()); err != nil || !strings.Contains(out, "begins after the signed retention seal") {
		t.Fatalf("verify after offline retention: %v\n%s", err, out)
	}
	h.start()
	if r := h.do(http.MethodGet, "/v1/approvals/"+late, nil, auth()); r.answer.Status != "timed_out" {
		t.Errorf("the late request after restart: %s", r.body)
	}
}

// command runs a command that takes only --config, as the binary does.
func (h *harness) command(name string) (string, error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, h.runClock(), []string{name, "--config", h.config}, h.getenv, &out, &errOut)
	return out.String(), err
}

// deleteValue removes key from bucket with bbolt directly.
func deleteValue(t *testing.T, path, bucket string, key []byte) {
	t.Helper()
	updateBucket(t, path, bucket, func(b *bolt.Bucket) error { return b.Delete(key) })
}

// putValue stores v at key, whether or not there was one.
func putValue(t *testing.T, path, bucket string, key, v []byte) {
	t.Helper()
	updateBucket(t, path, bucket, func(b *bolt.Bucket) error { return b.Put(key, v) })
}

func updateBucket(t *testing.T, path, bucket string, fn func(*bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte(bucket))) }); err != nil {
		t.Fatal(err)
	}
}

func TestRetentionExportFlags(t *testing.T) {
	t.Parallel()
	h := newRetentionHarness(t, bot.NewManualClock(time.Now()))
	h.start()
	h.stop()
	if _, err := h.cli("audit", "export", "--before", "yesterday"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--before: want an RFC 3339 time") {
		t.Errorf("--before yesterday: %v", err)
	}
	if _, err := h.cli("audit", "export", "--before", "2026-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"); err == nil || exitCode(err) != 2 {
		t.Errorf("--before with --until: %v", err)
	}
}
