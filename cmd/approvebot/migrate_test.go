package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
)

// Upgrading: a store file written by the previous release (the first, at
// schema version 1: store/testdata/v1-release.db.gz, made by that release's
// own server against the fake Slack, as store/testdata/v1-release.json
// says) is migrated at start, and what was pending in it is decided as
// anything else; a file from a newer approvebot is refused, saying what to do.

type v1Release struct {
	MadeAt  time.Time         `json:"made_at"`
	Decided map[string]string `json:"decided"`
	Pending map[string]string `json:"pending"`
	Body    string            `json:"pending_v1_body"`
}

// releaseConfig is the config the previous release's file was made with.
func releaseConfig() string {
	cfg := strings.ReplaceAll(chainConfig, "timeout: 5m", "timeout: 24h")
	return strings.Replace(cfg, "  payments:\n    version: \"7\"\n", "  payments:\n    version: \"7\"\n    timeout: 24h\n", 1)
}

// installV1Release puts the previous release's file where the harness's
// store goes and returns what it holds.
func installV1Release(t *testing.T, h *harness) v1Release {
	t.Helper()
	raw, err := os.ReadFile("../../store/testdata/v1-release.json")
	if err != nil {
		t.Fatal(err)
	}
	var rel v1Release
	if err := json.Unmarshal(raw, &rel); err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile("../../store/testdata/v1-release.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	db, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.storeFile(), db, 0o600); err != nil {
		t.Fatal(err)
	}
	return rel
}

func schemaOf(t *testing.T, path string) uint32 {
	t.Helper()
	v := getValue(t, path, "meta", []byte("schema_version"))
	if len(v) != 4 {
		t.Fatalf("schema_version %x", v)
	}
	return binary.BigEndian.Uint32(v)
}

func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	putValue(t, path, "meta", []byte("schema_version"), binary.BigEndian.AppendUint32(nil, v))
}

// destinationTS is where the request's message in channel is, as the store
// recorded it.
func (h *harness) destinationTS(id, channel string) string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/admin/requests/"+url.PathEscape(id), nil, map[string]string{"Authorization": "Bearer " + adminToken})
	var story struct {
		Request struct {
			Destinations []struct {
				Channel string `json:"channel"`
				Ref     struct {
					ID string `json:"id"`
				} `json:"ref"`
			} `json:"destinations"`
		} `json:"request"`
	}
	if err := json.Unmarshal(r.body, &story); err != nil {
		h.t.Fatalf("story of %s: %s", id, r.body)
	}
	for _, d := range story.Request.Destinations {
		if d.Channel == channel && d.Ref.ID != "" {
			return d.Ref.ID
		}
	}
	h.t.Fatalf("request %s has no message in %s: %s", id, channel, r.body)
	return ""
}

func TestPreviousReleaseFileIsMigrated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, releaseConfig())
	h.slack.AddUser("U0SAM", "Sam Security", "sam@company.com")
	rel := installV1Release(t, h)
	// The file's pending requests wait a day from when it was made.
	h.clock = bot.NewManualClock(rel.MadeAt.Add(time.Minute))

	// Read-only commands read the old layout as it is, and leave it so.
	if out, err := h.verify(); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("verify of the previous release's file: %v\n%s", err, out)
	}
	if v := schemaOf(t, h.storeFile()); v != 1 {
		t.Fatalf("the previous release's file is at schema version %d, want 1", v)
	}

	h.start()
	// What was decided reads as before.
	for _, id := range []string{rel.Decided["chain_approved"], rel.Decided["legacy_denied"], rel.Decided["v1_expired"]} {
		if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.status != http.StatusOK || r.answer.Status == "pending" {
			t.Errorf("decided request %s: %d %s", id, r.status, r.body)
		}
	}
	// The pending legacy request's idempotency key still names it (this
	// body differs from the one sent then: its requested_at is now).
	legacy := rel.Pending["legacy"]
	if r := h.do(http.MethodPost, "/v1/approvals", legacyBody("approve-large-transfer"),
		auth("Idempotency-Key", "idem-v1-release", "Prefer", "respond-async")); r.status != http.StatusConflict || !bytes.Contains(r.body, []byte(legacy)) {
		t.Errorf("reuse of the idempotency key: %d %s, want a conflict naming request %s", r.status, r.body, legacy)
	}
	h.click("U0JANE", "C0TREASURY", h.destinationTS(legacy, "C0TREASURY"), "approve", legacy)
	if r := h.do(http.MethodGet, "/v1/approvals/"+legacy+"?wait=30", nil, auth()); r.answer.Status != "approved" {
		t.Fatalf("pending legacy request after the upgrade: %s", r.body)
	}

	// The pending schema 1.0 request is the caller's under the agent's id
	// (the migration put it in the per-caller index), a retry attaches to
	// it, and its two stages are decided.
	v1 := rel.Pending["v1"]
	if r := h.do(http.MethodPost, "/v1/approvals", []byte(rel.Body), auth("Prefer", "respond-async")); r.answer.ApprovalRequestID != v1 || r.answer.Status != "pending" {
		t.Fatalf("retry of the pending 1.0 request: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/"+v1, nil, map[string]string{"Authorization": "Bearer other-agent-token-0123456789"}); r.status != http.StatusNotFound {
		t.Errorf("another caller sees the 1.0 request: %d %s", r.status, r.body)
	}
	h.click("U0JANE", "C0TREASURY", h.destinationTS(v1, "C0TREASURY"), "approve", v1)
	second := h.messageAt(v1, "C0SECURITY")
	h.waitPosted(v1, 2)
	h.click("U0SAM", "C0SECURITY", second.TS, "approve", v1)
	a := v1Of(t, h.do(http.MethodGet, "/v1/approvals/"+v1+"?wait=30", nil, auth()))
	if !a.Approved || len(a.ChainEntries) != 2 || a.IdentityAssertion == "" {
		t.Fatalf("pending 1.0 request after the upgrade: %+v", a)
	}
	h.stop()

	if v := schemaOf(t, h.storeFile()); v != 3 {
		t.Errorf("after the upgrade the file is at schema version %d, want 3", v)
	}
	// Migration 1 → 2 indexed the previous release's schema 1.0 requests
	// under their caller.
	for _, id := range []string{rel.Pending["v1"], rel.Decided["chain_approved"], rel.Decided["v1_expired"]} {
		if got := getValue(t, h.storeFile(), "agent_request_ids", []byte("payments-agent\x00"+id)); string(got) != id {
			t.Errorf("agent_request_ids[payments-agent, %s] = %q", id, got)
		}
	}
	if out, err := h.verify(); err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("verify after the upgrade: %v\n%s", err, out)
	}
}

func TestNewerStoreIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, releaseConfig())
	installV1Release(t, h)
	setSchema(t, h.storeFile(), 4)
	before, err := os.ReadFile(h.storeFile())
	if err != nil {
		t.Fatal(err)
	}
	want := "store schema version 4 is newer than this approvebot's (3): it was written by a newer approvebot; " +
		"run that newer version (upgrade approvebot), or, to go back to this version, restore the backup taken before the upgrade"
	var out, errOut bytes.Buffer
	err = run(context.Background(), h.runClock(), []string{"serve", "--config", h.config}, h.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("serve on a newer file: %v", err)
	}
	if _, err := h.cli("audit", "verify"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("audit verify on a newer file: %v", err)
	}
	if _, err := h.command("compact"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("compact on a newer file: %v", err)
	}
	after, err := os.ReadFile(h.storeFile())
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("refusing the file changed it")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "approvebot.db.compact")); err == nil {
		t.Errorf("compact left a copy behind")
	}
}
