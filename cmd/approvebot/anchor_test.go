package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
	bolt "go.etcd.io/bbolt"
)

// Anchoring the audit log outside its file: signed checkpoints and the
// receipts agents keep find what a rewritten file hides from `audit verify`
// alone, records cut off its end and an older copy put back.

const anchorAudit = `audit:
  checkpoint_interval: 0s
  checkpoints:
    file: ${DIR}/other-volume/checkpoints.jsonl
    log: true
`

func newAnchorHarness(t *testing.T) *harness {
	h := newAuditHarness(t)
	if err := os.Mkdir(filepath.Join(h.dir, "other-volume"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.config, append(cfg, anchorAudit...), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) checkpointFile() string {
	return filepath.Join(h.dir, "other-volume", "checkpoints.jsonl")
}
func (h *harness) storeFile() string { return filepath.Join(h.dir, "approvebot.db") }

// checkpointLogLines are the "audit checkpoint" lines of the server's log.
func (h *harness) checkpointLogLines() string {
	var b strings.Builder
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"audit checkpoint"`) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// verify runs audit verify with extra flags and checks the exit code is 0
// or 1 (never a usage error).
func (h *harness) verify(flags ...string) (string, error) {
	h.t.Helper()
	out, err := h.cli(append([]string{"audit", "verify"}, flags...)...)
	if err != nil && exitCode(err) != 1 {
		h.t.Errorf("audit verify %v: exit code %d: %v", flags, exitCode(err), err)
	}
	return out, err
}

// cutLastRequest deletes request id and its audit records, which must be
// the last records of the log, and resets the head and the sequence to the
// record before them: what someone with write access to the file can do.
func cutLastRequest(t *testing.T, path, id string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		audit := tx.Bucket([]byte("audit"))
		var cut [][]byte
		var keep store.Record
		c := audit.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var rec store.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.RequestID != id {
				keep = rec
				break
			}
			cut = append(cut, bytes.Clone(k))
		}
		if len(cut) == 0 {
			return fmt.Errorf("the log does not end with records of %s", id)
		}
		for _, k := range cut {
			if err := audit.Delete(k); err != nil {
				return err
			}
		}
		// Any earlier record of the request would give the cut away.
		err := audit.ForEach(func(_, v []byte) error {
			if bytes.Contains(v, []byte(`"request_id":"`+id+`"`)) {
				return fmt.Errorf("%s has records before the end of the log", id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := audit.SetSequence(keep.Seq); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("audit_head"), []byte(keep.Digest)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("request_state")).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket([]byte("requests")).Delete([]byte(id))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditCheckpointsFindTruncationAndRollback(t *testing.T) {
	t.Parallel()
	h := newAnchorHarness(t)
	var receipts, logLines strings.Builder
	keep := func(r response) {
		t.Helper()
		var a answer
		if err := json.Unmarshal(r.body, &a); err != nil || a.IdentityAssertion == "" {
			t.Fatalf("a decided 1.0 request's answer carries no identity_assertion: %s", r.body)
		}
		receipts.Write(bytes.TrimSpace(r.body))
		receipts.WriteString("\n")
	}

	// Run 1: one approval; then a copy of the file is kept, as a backup
	// would be.
	h.start()
	first := h.approveChain()
	keep(h.status(first))
	h.stop()
	logLines.WriteString(h.checkpointLogLines())
	backup := readFile(t, h.storeFile())

	// Run 2: another approval and a legacy denial.
	h.start()
	keep(h.status(h.approveChain()))
	legacy := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(legacy, 2)
	h.click("U0CARL", "C0COMPLIANCE", messageIn(t, msgs, "C0COMPLIANCE").TS, "deny", legacy)
	denial := h.do(http.MethodGet, "/v1/approvals/"+legacy+"?wait=30", nil, auth())
	if denial.answer.Status != "denied" ||
		!bytes.Contains(denial.body, []byte(`"audit_seq":`)) || !bytes.Contains(denial.body, []byte(`"audit_head":"sha256:`)) {
		t.Fatalf("legacy denial carries no receipt: %s", denial.body)
	}
	// A legacy decision's assertion is made once too: a later poll gets
	// the same token.
	if again := h.status(legacy); again.answer.IdentityAssertion != denial.answer.IdentityAssertion {
		t.Errorf("legacy decision signed again on a later poll:\n%s\n%s", denial.body, again.body)
	}
	keep(denial)
	h.stop()
	logLines.WriteString(h.checkpointLogLines())

	// Run 3: a schema 1.0 request that expired on arrival is the last
	// thing in the log; its signed denial is the last receipt.
	h.start()
	expired, fields := intaketest.V1Body(intaketest.V1{ExpiresAt: time.Now().Add(-time.Minute)})
	last := fields["approval_request_id"].(string)
	r := h.do(http.MethodPost, "/v1/approvals", expired, auth())
	if r.answer.Status != "expired" {
		t.Fatalf("expired request: %s", r.body)
	}
	keep(r)
	last = h.storeID(last) // the store's key for the caller's id
	if strings.Contains(h.logs.String(), "does not hold the last audit checkpoint") ||
		!bytes.Contains(h.do(http.MethodGet, "/metrics", nil, nil).body, []byte("approvebot_audit_store_behind_checkpoint 0")) {
		t.Errorf("a restart on the untouched file is reported as behind:\n%s", h.logs)
	}
	receiptsFile := writeFile(t, filepath.Join(h.dir, "receipts.jsonl"), receipts.String())
	cp := h.checkpointFile()

	// While the server runs, through the admin API.
	if out, err := h.verify("--checkpoints", cp, "--receipts", receiptsFile); err != nil || !strings.Contains(out, "anchored: the log holds all") {
		t.Fatalf("running, untouched: %v\n%s", err, out)
	}
	h.stop()
	logLines.WriteString(h.checkpointLogLines())
	logsFile := writeFile(t, filepath.Join(h.dir, "checkpoint-log-lines.jsonl"), logLines.String())
	jwksFile := filepath.Join(h.dir, "jwks.json")
	key, err := signing.LoadKey(filepath.Join(h.dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, jwksFile, string(signing.NewSigner(key, testIssuer).JWKS()))

	for _, flags := range [][]string{{"--checkpoints", cp}, {"--checkpoints", logsFile}, {"--receipts", receiptsFile},
		{"--checkpoints", cp, "--receipts", receiptsFile, "--jwks", jwksFile}} {
		if out, err := h.verify(flags...); err != nil || !strings.Contains(out, "audit trail intact") || !strings.Contains(out, "anchored") {
			t.Fatalf("stopped, untouched, %v: %v\n%s", flags, err, out)
		}
	}
	lastSeq := auditSeq(t, h.storeFile(), approvebot.EventResolved, last)
	untouched := readFile(t, h.storeFile())

	// The attack: the last request and its records deleted, the head reset.
	cutLastRequest(t, h.storeFile(), last)
	if out, err := h.verify(); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("verify alone no longer passes the cut file (the limitation checkpoints lift): %v\n%s", err, out)
	}
	missing := fmt.Sprintf("BROKEN at audit record %d: missing: the log ends at record %d", lastSeq, lastSeq-2)
	for _, flags := range [][]string{{"--checkpoints", cp}, {"--checkpoints", logsFile}, {"--receipts", receiptsFile}} {
		if out, err := h.verify(flags...); err == nil || !strings.Contains(out, missing) {
			t.Errorf("cut file, %v: %v\n%s", flags, err, out)
		}
	}
	// And through a server running on the cut file, which says at start
	// that the file is behind its last checkpoint.
	h.start()
	if out, err := h.verify("--checkpoints", cp); err == nil || !strings.Contains(out, missing) {
		t.Errorf("cut file, running: %v\n%s", err, out)
	}
	h.waitLogged(`"msg":"the store does not hold the last audit checkpoint`, 1)
	if !strings.Contains(h.logs.String(), `"msg":"the store does not hold the last audit checkpoint`) ||
		!bytes.Contains(h.do(http.MethodGet, "/metrics", nil, nil).body, []byte("approvebot_audit_store_behind_checkpoint 1")) {
		t.Errorf("starting on the cut file is not reported:\n%s", h.logs)
	}
	h.stop()

	// An older copy of the file put back: it chains, but stops short.
	writeFile(t, h.storeFile(), string(backup))
	if out, err := h.verify(); err != nil {
		t.Fatalf("the backup does not verify on its own: %v\n%s", err, out)
	}
	if out, err := h.verify("--checkpoints", cp); err == nil || !strings.Contains(out, ": missing: the log ends at record") {
		t.Errorf("rolled back: %v\n%s", err, out)
	}
	if out, err := h.verify("--receipts", receiptsFile); err == nil || !strings.Contains(out, "BROKEN at audit record") {
		t.Errorf("rolled back, receipts: %v\n%s", err, out)
	}
	// ...and then run on, past where the checkpoints reach: the records at
	// their places are other records now.
	beforeFork := string(readFile(t, cp))
	h.start()
	h.approveChain()
	keep(h.status(h.approveChain()))
	h.stop()
	if out, err := h.verify("--checkpoints", cp); err == nil || !strings.Contains(out, "the log was rewritten or rolled back") {
		t.Errorf("rolled back and run on: %v\n%s", err, out)
	}

	// Forged checkpoints are refused, naming their line.
	// The checkpoint file now records both histories, and no file holds
	// both: the forged lines go beside the checkpoints of the untouched one.
	writeFile(t, h.storeFile(), string(untouched))
	lines := strings.Split(strings.TrimSpace(beforeFork), "\n")
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := signing.NewSigner(otherKey, testIssuer).SignCheckpoint(signing.Checkpoint{AuditSeq: lastSeq + 5, AuditHead: "sha256:00", At: time.Now()})
	var genuine struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &genuine); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(genuine.Checkpoint, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	claims["audit_seq"] = lastSeq + 5
	moved, _ := json.Marshal(claims)
	resigned := parts[0] + "." + base64.RawURLEncoding.EncodeToString(moved) + "." + parts[2]
	n := len(lines) + 1
	for name, tc := range map[string]struct{ line, want string }{
		"signed by another key":     {fmt.Sprintf(`{"checkpoint":%q}`, stranger), "checkpoint refused: no key"},
		"claims changed":            {fmt.Sprintf(`{"checkpoint":%q}`, resigned), "checkpoint refused: signature"},
		"fields beside the token":   {strings.Replace(lines[0], `"audit_seq":`, `"audit_seq":9`, 1), "differ from what the checkpoint signs"},
		"a decision, not a record":  {fmt.Sprintf(`{"checkpoint":%q}`, lastReceiptToken(t, receipts.String())), `token type "JWT"`},
		"not a checkpoint":          {"checkpoint at seq 12", "not a JSON object"},
		"a log line of another msg": {`{"msg":"request resolved","request_id":"ar_1"}`, `no "checkpoint" token`},
	} {
		forged := writeFile(t, filepath.Join(h.dir, "forged.jsonl"), strings.Join(lines, "\n")+"\n"+tc.line+"\n")
		out, err := h.verify("--checkpoints", forged)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("forged.jsonl line %d: ", n)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	if out, err := h.verify("--checkpoints", writeFile(t, filepath.Join(h.dir, "empty.jsonl"), "\n")); err == nil || !strings.Contains(err.Error(), "holds nothing") {
		t.Errorf("an empty checkpoint file: %v\n%s", err, out)
	}
	if out, err := h.verify("--checkpoints", writeFile(t, filepath.Join(h.dir, "before-fork.jsonl"), beforeFork)); err != nil {
		t.Errorf("the untouched file again: %v\n%s", err, out)
	}
	if out, err := h.verify("--checkpoints", cp); err == nil || !strings.Contains(out, "rewritten or rolled back") {
		t.Errorf("the untouched file against checkpoints of the other history: %v\n%s", err, out)
	}
}

func lastReceiptToken(t *testing.T, receipts string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(receipts), "\n")
	var a answer
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &a); err != nil {
		t.Fatal(err)
	}
	return a.IdentityAssertion
}

// TestCheckpointSinkFailure: a sink that cannot be written at start stops
// the start; one that fails later is logged and counted, and decisions go on.
func TestCheckpointSinkFailure(t *testing.T) {
	h := newAnchorHarness(t)
	if err := os.Remove(filepath.Join(h.dir, "other-volume")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, logs bytes.Buffer
	err := run(ctx, bot.SystemClock{}, []string{"serve", "--config", h.config}, h.getenv, &out, &logs)
	if err == nil || !strings.Contains(err.Error(), "audit checkpoints: audit checkpoint file "+h.checkpointFile()) {
		t.Fatalf("start with an unwritable checkpoint file: %v\n%s", err, logs.String())
	}

	if err := os.Mkdir(filepath.Join(h.dir, "other-volume"), 0o700); err != nil {
		t.Fatal(err)
	}
	h.start()
	// The file turns into something that cannot be appended to.
	if err := os.Remove(h.checkpointFile()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.checkpointFile(), 0o700); err != nil {
		t.Fatal(err)
	}
	id := h.approveChain()
	a := v1Of(t, h.status(id))
	if !a.Approved || a.IdentityAssertion == "" || a.AuditSeq == 0 {
		t.Fatalf("decision with a failing checkpoint sink: %+v", a)
	}
	failed := `approvebot_audit_checkpoints_total{result="failed",sink="file"}`
	deadline := time.Now().Add(time.Minute)
	for {
		m := h.do(http.MethodGet, "/metrics", nil, nil)
		if bytes.Contains(m.body, []byte(failed)) && bytes.Contains(m.body, []byte(`approvebot_audit_checkpoints_total{result="written",sink="log"}`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the metrics:\n%s", failed, m.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.waitLogged("audit checkpoint not written", 1)
	h.stop()
}

// rewriteFrom changes the first record of type typ and recomputes the
// chain from there on, the head, and the receipts stored with the requests,
// as someone who knows the format can: nothing in the file gives it away.
func rewriteFrom(t *testing.T, path, typ, old, new string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var from uint64
	err = db.Update(func(tx *bolt.Tx) error {
		audit := tx.Bucket([]byte("audit"))
		digests := map[uint64]string{}
		prev := ""
		c := audit.Cursor()
		var recs []store.Record
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rec store.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		for _, rec := range recs {
			if from == 0 && rec.Type == typ && bytes.Contains(rec.Detail, []byte(old)) {
				from = rec.Seq
				rec.Detail = bytes.Replace(rec.Detail, []byte(old), []byte(new), 1)
			}
			if from != 0 {
				rec.Prev = prev
				d, err := store.RecordDigest(rec)
				if err != nil {
					return err
				}
				rec.Digest = d
				v, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if err := audit.Put(seqKey(rec.Seq), v); err != nil {
					return err
				}
				digests[rec.Seq] = d
			}
			prev = rec.Digest
		}
		if from == 0 {
			return fmt.Errorf("no %s record with %q", typ, old)
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("audit_head"), []byte(prev)); err != nil {
			return err
		}
		// Receipts are in the requests' state records: the digest is
		// swapped in place, so each record keeps the form approvebot
		// writes.
		states := tx.Bucket([]byte("request_state"))
		changed := map[string][]byte{}
		err := states.ForEach(func(k, v []byte) error {
			var r approvebot.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Receipt != nil && digests[r.Receipt.AuditSeq] != "" {
				old := []byte(`"audit_head":"` + r.Receipt.AuditHead + `"`)
				changed[string(k)] = bytes.Replace(v, old, []byte(`"audit_head":"`+digests[r.Receipt.AuditSeq]+`"`), 1)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id, v := range changed {
			if err := states.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return from
}

// TestAuditCheckpointsFindACarefulRewrite: a record changed early in the
// log, every digest after it recomputed, passes audit verify; the
// checkpoints taken since do not match it any more.
func TestAuditCheckpointsFindACarefulRewrite(t *testing.T) {
	t.Parallel()
	h := newAnchorHarness(t)
	h.start()
	h.makeHistory()
	h.stop()
	if out, err := h.verify("--checkpoints", h.checkpointFile()); err != nil {
		t.Fatalf("untouched: %v\n%s", err, out)
	}
	seq := rewriteFrom(t, h.storeFile(), approvebot.EventPosted, `"C0TREASURY"`, `"C0ELSEWHERE"`)
	if out, err := h.verify(); err != nil {
		t.Fatalf("the careful rewrite no longer passes verify alone (the digests are unkeyed: it should): %v\n%s", err, out)
	}
	out, err := h.verify("--checkpoints", h.checkpointFile())
	if err == nil || !strings.Contains(out, "the log was rewritten or rolled back") {
		t.Fatalf("rewrite from record %d: %v\n%s", seq, err, out)
	}
	var at uint64
	if _, scanErr := fmt.Sscanf(out[strings.Index(out, "BROKEN at audit record "):], "BROKEN at audit record %d:", &at); scanErr != nil || at < seq {
		t.Errorf("the break is named at record %d, before the rewritten record %d: %v", at, seq, scanErr)
	}
}
