package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/store"
)

// Faults of the platforms and of the disk, against the real program.

func TestSlackOutageThenRecovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.env["DELIVERY_TIMEOUT"] = "1m" // longer than the outage: keep retrying
	h.start()
	const n = 6
	h.slack.FailFor("chat.postMessage", 2*time.Second, slackfake.Status(http.StatusInternalServerError))

	var held []<-chan response
	var ids []string
	for i := range n / 2 {
		held = append(held, h.submit(requestNamed("outage held "+string(rune('a'+i))), auth()))
		ids = append(ids, h.pendingID(requestNamed("outage async "+string(rune('a'+i)))))
	}
	// Slack answers 500 for a while; the requests wait, still pending.
	h.waitFor("failed posts", func() bool { return h.slack.CallCount("chat.postMessage") >= 2*n })
	for _, id := range ids {
		if got := h.status(id); got.answer.Status != "pending" {
			t.Fatalf("during the outage: %s", got.body)
		}
	}
	// Then it recovers, and every request is shown once per channel.
	msgs := h.waitMessagesIn(2 * n)
	all := requestIDs(t, msgs)
	if len(all) != n {
		t.Fatalf("%d requests on Slack, want %d", len(all), n)
	}
	for _, id := range all {
		h.waitPosted(id, 2)
	}

	// Now chat.update fails for a while: decisions still reach the agents,
	// and the messages catch up after.
	h.slack.FailFor("chat.update", 2*time.Second, slackfake.Status(http.StatusServiceUnavailable))
	want := map[string]string{} // request id -> the status its click decides
	for i, id := range all {
		action := []string{"approve", "deny"}[i%2]
		want[id] = map[string]string{"approve": "approved", "deny": "denied"}[action]
		h.click("U0CARL", "C0COMPLIANCE", h.messageAt(id, "C0COMPLIANCE").TS, action, id)
	}
	for _, ch := range held {
		if got := h.await(ch); got.answer.Status != want[got.answer.ApprovalRequestID] {
			t.Fatalf("held caller got %s, want %s", got.body, want[got.answer.ApprovalRequestID])
		}
	}
	for _, id := range ids {
		if got := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth()); got.answer.Status != want[id] {
			t.Fatalf("poll got %s, want %s", got.body, want[id])
		}
	}
	h.waitFor("every message final", func() bool {
		for _, m := range h.slack.Messages() {
			if m.Actionable {
				return false
			}
		}
		return true
	})
	h.stop()
	if got := h.slack.Posts("C0TREASURY") + h.slack.Posts("C0COMPLIANCE"); got != 2*n {
		t.Errorf("%d messages posted for %d requests in 2 channels", got, n)
	}
	failedUpdates := h.slack.CallCount("chat.update") - 2*n
	for _, m := range h.slack.Messages() {
		if m.Updates != 1 {
			t.Errorf("message in %s updated %d times, want 1", m.Channel, m.Updates)
		}
	}
	if failedUpdates < 1 {
		t.Errorf("no chat.update failed during the update outage (%d calls)", h.slack.CallCount("chat.update"))
	}
	st := h.openStopped()
	if rep, err := bot.VerifyAudit(st); err != nil || rep.Break != nil {
		t.Fatalf("audit: %v %+v", err, rep.Break)
	}
	if s, _ := st.Stats(); s.Outbox != 0 {
		t.Errorf("%d outbox jobs left after the outage", s.Outbox)
	}
}

func TestSlackHangingChannelDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.env["DELIVERY_TIMEOUT"] = "2s" // shorter than the adapter's 10 s client timeout
	h.start()
	h.slack.FailChannel("chat.postMessage", "C0TREASURY", time.Hour, slackfake.Hang{})

	held := h.submit(requestNamed("transfer while treasury hangs"), auth())
	// The compliance copy is posted and usable while the treasury post hangs.
	h.waitFor("compliance copy", func() bool { return len(h.slack.Messages()) >= 1 })
	msg := h.slack.Messages()[0]
	id := requestIDOf(t, msg)
	h.waitPosted(id, 1)
	// So is a second request's, opened meanwhile.
	second := h.pendingID(requestNamed("second transfer while treasury hangs"))
	h.messageAt(second, "C0COMPLIANCE")
	h.waitPosted(second, 1)
	if n := h.slack.Posts("C0TREASURY"); n != 0 {
		t.Fatalf("%d posts to the hanging channel", n)
	}

	// The hung call times out; past delivery.timeout, the destination has
	// failed, and the surviving copy says so.
	h.waitFor("the compliance copy names the failed channel", func() bool {
		m, _ := h.slack.Message(msg.Channel, msg.TS)
		return strings.Contains(string(m.Blocks), "Not delivered to slack C0TREASURY")
	})
	r := h.requestOf(id)
	for _, d := range r.Destinations {
		if d.Channel == "C0TREASURY" && (d.State != approvebot.DeliveryFailed || d.Error == "") {
			t.Errorf("treasury destination %s %q, want failed with a reason", d.State, d.Error)
		}
	}
	if r.Status != approvebot.StatusPending {
		t.Fatalf("request %s after one channel failed; the other still shows it", r.Status)
	}
	h.click("U0CARL", "C0COMPLIANCE", msg.TS, "approve", id)
	if got := h.await(held); !got.answer.Approved {
		t.Fatalf("held caller got %s", got.body)
	}
	h.stop()
	if n := h.slack.Posts("C0TREASURY"); n != 0 {
		t.Errorf("%d posts reached the hanging channel", n)
	}
}

// withMaxSize adds store.max_size to the base configuration.
func withMaxSize(size string) string {
	return strings.Replace(baseConfig, "  path: ${DIR}/approvebot.db\n", "  path: ${DIR}/approvebot.db\n  max_size: "+size+"\n", 1)
}

func TestStoreFullRefusesRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withMaxSize("1MiB"))
	h.start()
	var accepted []string
	var refused response
	for i := 0; ; i++ {
		if i == 5000 {
			t.Fatal("5000 requests fit in 1 MiB: store.max_size has no effect")
		}
		r := h.do(http.MethodPost, "/v1/approvals", requestNamed("fill "+strings.Repeat("x", 1000)), auth("Prefer", "respond-async"))
		if r.status == http.StatusAccepted {
			accepted = append(accepted, r.answer.ApprovalRequestID)
			continue
		}
		refused = r
		break
	}
	t.Logf("%d requests accepted before the 1 MiB store was full", len(accepted))
	var body struct {
		Error    string `json:"error"`
		Code     string `json:"code"`
		Approved *bool  `json:"approved"`
	}
	_ = json.Unmarshal(refused.body, &body)
	if refused.status != http.StatusServiceUnavailable || body.Code != "unavailable" || body.Approved == nil || *body.Approved ||
		body.Error != "approvebot could not record the request: its storage is full; it was not approved" {
		t.Fatalf("full store answered %d %s", refused.status, refused.body)
	}
	h.stop()

	st := h.openStopped()
	if rep, err := bot.VerifyAudit(st); err != nil || rep.Break != nil {
		t.Fatalf("audit after filling the store: %v %+v", err, rep.Break)
	}
	stored := map[string]bool{}
	requested := 0
	_ = st.Each(func(r *approvebot.Request) error { stored[r.ID] = true; return nil })
	_ = st.Audit(0, func(rec store.Record, _ []byte) error {
		if rec.Type == approvebot.EventRequested {
			requested++
		}
		return nil
	})
	if len(stored) != len(accepted) || requested != len(accepted) {
		t.Errorf("%d requests and %d approval_requested records stored; %d were accepted (the refused one must leave nothing)", len(stored), requested, len(accepted))
	}
	for _, id := range accepted {
		if !stored[id] {
			t.Errorf("accepted request %s is not stored", id)
		}
	}
	perChannel := map[string]int{}
	for _, m := range h.slack.Messages() {
		perChannel[requestIDOf(t, m)+m.Channel]++
	}
	for k, n := range perChannel {
		if n != 1 {
			t.Errorf("%s posted %d times", k, n)
		}
	}
}

func TestServeRefusesUnusableStore(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	file := filepath.Join(h.dir, "plain-file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	junkDir := filepath.Join(h.dir, "junk")
	if err := os.MkdirAll(filepath.Join(junkDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junkDir, "approvebot.db"), []byte(strings.Repeat("junk", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	dirDir := filepath.Join(h.dir, "dbdir")
	if err := os.MkdirAll(filepath.Join(dirDir, "approvebot.db"), 0o700); err != nil {
		t.Fatal(err)
	}
	lockedDir := filepath.Join(h.dir, "locked")
	if err := os.Mkdir(lockedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	held, err := store.Open(filepath.Join(lockedDir, "approvebot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	cases := map[string]struct{ dir, want string }{
		"missing directory": {filepath.Join(h.dir, "missing"), "its directory " + filepath.Join(h.dir, "missing") + " does not exist"},
		"under a file":      {file, "a part of the path is a file, not a directory"},
		"not a store":       {junkDir, "it is not an approvebot store"},
		"a directory":       {dirDir, "it is a directory; store.path must name a file"},
		"in use":            {lockedDir, "the file is locked by another process (is another approvebot running on it?)"},
	}
	if os.Geteuid() != 0 { // root ignores file modes
		ro := filepath.Join(h.dir, "readonly")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cases["unwritable directory"] = struct{ dir, want string }{ro, "permission denied"}
	}
	for name, c := range cases {
		h.env["DIR"] = c.dir
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, bot.SystemClock{}, []string{"serve", "--config", h.config}, h.getenv, io.Discard, io.Discard)
		cancel()
		want := "store: open " + filepath.Join(c.dir, "approvebot.db") + ": " + c.want
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: serve returned %v\nwant it to start with %q", name, err, want)
		}
	}
}
