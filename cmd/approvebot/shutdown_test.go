package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot/store"
)

// withGrace sets shutdown_grace in the base configuration.
func withGrace(grace string) string {
	return "shutdown_grace: " + grace + "\n" + baseConfig
}

// On SIGTERM, new requests are refused but clicks still land: a request held
// at that moment is decided during the grace period, its messages are
// updated before the process exits, and the store is closed.
func TestSIGTERMLetsHeldRequestsBeDecided(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	h := newHarness(t, withGrace("60s"))
	c := h.spawn(bin)
	held := h.submit(requestNamed("transfer at shutdown"), auth("Idempotency-Key", "shutdown-1"))
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "readiness to fail", func() bool {
		r, err := h.tryDo(http.MethodGet, "/readyz", nil, nil)
		return err == nil && r.status == http.StatusServiceUnavailable
	})
	refused := h.do(http.MethodPost, "/v1/approvals", requestNamed("transfer after SIGTERM"), auth())
	if refused.status != http.StatusServiceUnavailable || refused.header.Get("Retry-After") == "" ||
		refused.answer.Approved || !strings.Contains(refused.answer.Error, "approvebot is restarting and takes no new requests") {
		t.Fatalf("new request during shutdown: %d %v %s", refused.status, refused.header, refused.body)
	}
	// Still clickable: the held request is decided and answered.
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	if got := h.await(held); got.status != http.StatusOK || !got.answer.Approved || got.answer.ApprovalRequestID != id {
		t.Fatalf("held caller got %d %s", got.status, got.body)
	}
	select {
	case <-c.exited:
	case <-time.After(50 * time.Second):
		t.Fatalf("approvebot still running after its last held request was answered\nlogs:\n%s", c.logs)
	}
	if c.err != nil {
		t.Fatalf("exit after SIGTERM: %v\nlogs:\n%s", c.err, c.logs)
	}
	c.checkRaces()
	// The log was written out before the process exited: every line whole,
	// the last one the line serve logs as it returns.
	lines := strings.Split(strings.TrimSpace(c.logs.String()), "\n")
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line not whole: %s", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `"msg":"stopped"`) {
		t.Errorf("the log ends with %s, want the line saying approvebot stopped", last)
	}

	// The outbox was flushed before exit: both copies say approved.
	for _, m := range h.messages(id) {
		if m.Actionable || !strings.Contains(string(m.Blocks), "Approved by Jane Doe") || m.Updates != 1 {
			t.Errorf("message in %s after shutdown: actionable %v, %d updates: %s", m.Channel, m.Actionable, m.Updates, m.Blocks)
		}
	}
	if n := len(h.slack.Messages()); n != 2 {
		t.Errorf("%d messages: the refused request was posted", n)
	}
	// The store was closed: another process may open it for writing at once.
	st, err := store.Open(filepath.Join(h.dir, "approvebot.db"), store.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store after shutdown: %v", err)
	}
	defer st.Close()
	if s, _ := st.Stats(); s.Outbox != 0 || s.Requests != 1 || s.Pending != 0 {
		t.Errorf("store after shutdown: %+v", s)
	}
}

// A request nobody decides during the grace period is answered "still
// pending" when it ends; after the restart, the retry with the same
// Idempotency-Key attaches to it and gets its decision.
func TestGraceEndsThenRetryReattaches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withGrace("1s"))
	h.start()
	body := requestNamed("transfer across a restart")
	held := h.submit(body, auth("Idempotency-Key", "restart-1"))
	msgs := h.waitMessagesIn(2)
	id := requestIDOf(t, msgs[0])
	poll := make(chan response, 1)
	go func() {
		r, err := h.tryDo(http.MethodGet, "/v1/approvals/"+id+"?wait=120", nil, auth())
		if err != nil {
			r = response{status: -1, body: []byte(err.Error())}
		}
		poll <- r
	}()

	stopped := make(chan struct{})
	go func() {
		h.stop()
		close(stopped)
	}()
	for what, ch := range map[string]<-chan response{"held caller": held, "poller": poll} {
		got := h.await(ch)
		if got.status != http.StatusOK || got.answer.Approved || got.answer.Status != "pending" || got.answer.ApprovalRequestID != id ||
			!strings.Contains(got.answer.Reason, "still pending") {
			t.Fatalf("%s at the end of the grace period got %d %s", what, got.status, got.body)
		}
	}
	select {
	case <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("approvebot did not stop")
	}

	h.start()
	again := h.submit(body, auth("Idempotency-Key", "restart-1"))
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	got := h.await(again)
	if got.status != http.StatusOK || !got.answer.Approved || got.answer.ApprovalRequestID != id {
		t.Fatalf("retry after the restart got %d %s", got.status, got.body)
	}
	if n := len(h.slack.Messages()); n != 2 {
		t.Errorf("%d messages after the restart, want the 2 from before", n)
	}
}

// After a stop, nothing of approvebot is left running in the process: no
// worker, timer callback, waiter or click handler.
func TestNoGoroutineOutlivesStop(t *testing.T) {
	before := approvebotGoroutines()
	h := newHarness(t, withGrace("1s"))
	h.start()
	held := h.submit(requestNamed("left held at the stop"), auth())
	id := h.pendingID(requestNamed("decided"))
	msgs := h.waitMessages(id, 2)
	h.click("U0JANE", "C0TREASURY", messageIn(t, msgs, "C0TREASURY").TS, "approve", id)
	h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, auth())
	h.waitFor("held request posted", func() bool { return len(h.slack.Messages()) == 4 })
	h.stop()
	if got := h.await(held); got.answer.Status != "pending" {
		t.Fatalf("held caller at the stop got %s", got.body)
	}
	left := approvebotGoroutines()
	for deadline := time.Now().Add(20 * time.Second); len(left) > len(before) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		left = approvebotGoroutines()
	}
	if len(left) > len(before) {
		t.Fatalf("goroutines left after the stop:\n%s", strings.Join(left, "\n\n"))
	}
}

// approvebotGoroutines lists the stacks of running goroutines that are in
// approvebot's code, leaving out the tests' own and the fakes'.
func approvebotGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/approvebot/approvebot/") ||
			strings.Contains(g, "testing.tRunner") || strings.Contains(g, "slackfake") || strings.Contains(g, "teamsfake") ||
			strings.Contains(g, "approvebotGoroutines") {
			continue
		}
		out = append(out, g)
	}
	return out
}
