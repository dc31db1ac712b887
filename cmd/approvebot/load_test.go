package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
)

// TestThousandHeldRequestsEachAnsweredOnce holds 1,000 agents' connections
// at once and decides each request with one click: every caller gets exactly
// one answer, the one the store recorded, and every message is posted once
// and updated once. It checks correctness, not speed.
//
// It keeps about 2,000 sockets open in this process (both ends of each held
// connection). Go raises the soft open-file limit to the hard limit at
// start; where the hard limit is below 4096, raise it (ulimit -Hn) or run
// the tests with -short.
var loadRequests = 1000

// loadRequest names only the compliance group (no route matches its rule),
// so each request has one message: the test is about answers, and one
// message per request keeps it quick under the race detector.
func loadRequest(i int) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "approval_request", "rule_name": "load-test", "policy_name": "load",
		"agent_id": "payments-agent", "action": fmt.Sprintf("load %04d", i), "approvers": []string{"compliance"},
		"requested_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000") + "+00:00",
	})
	return b
}

func TestThousandHeldRequestsEachAnsweredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 1,000 connections")
	}
	// In parallel with the tests that mostly wait, it uses what they leave
	// of the processors.
	t.Parallel()
	n := loadRequests
	began := time.Now()
	h := newHarness(t, baseConfig)
	clickers := h.addUsers("U0LOAD", 100)
	h.slack.AddUsergroup("S0COMPLIANCE", append([]string{"U0CARL"}, clickers...)...)
	h.start()

	held := make([]<-chan response, n)
	for i := range n {
		held[i] = h.submit(loadRequest(i), auth())
	}
	// Posts counts cheaply; Messages copies every message on each change.
	h.waitFor("every request posted", func() bool { return h.slack.Posts("C0COMPLIANCE") >= n })
	ids := requestIDs(t, h.slack.Messages())
	if len(ids) != n {
		t.Fatalf("%d requests on Slack, want %d", len(ids), n)
	}
	h.waitRecordedPosts(n)
	t.Logf("%.1fs: %d requests held and posted", time.Since(began).Seconds(), n)

	// One click per request, 50 at a time; even ones approve, odd ones deny.
	want := map[string]string{}
	compliance := map[string]string{}
	for _, m := range h.slack.Messages() {
		if m.Channel == "C0COMPLIANCE" {
			compliance[requestIDOf(t, m)] = m.TS
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for i := range work {
				action := []string{"approve", "deny"}[i%2]
				status, err := h.tryClick(clickers[i%len(clickers)], "C0COMPLIANCE", compliance[ids[i]], action, ids[i])
				if err != nil || status != http.StatusOK {
					t.Errorf("click %d: %d %v", i, status, err)
				}
			}
		})
	}
	for i, id := range ids {
		want[id] = []string{"approved", "denied"}[i%2]
		work <- i
	}
	close(work)
	wg.Wait()

	answered := map[string]int{}
	for i, ch := range held {
		got := h.await(ch)
		id := got.answer.ApprovalRequestID
		if got.status != http.StatusOK || want[id] == "" || got.answer.Status != want[id] {
			t.Fatalf("caller %d got %d %s (want %s)", i, got.status, got.body, want[id])
		}
		answered[id]++
	}
	if len(answered) != n {
		t.Errorf("%d distinct requests answered, want %d", len(answered), n)
	}
	t.Logf("%.1fs: %d clicks sent, every caller answered", time.Since(began).Seconds(), n)
	h.waitFor("every clicker told", func() bool { return h.slack.CallCount("chat.postEphemeral") >= n })
	h.stop()
	t.Logf("%.1fs: stopped", time.Since(began).Seconds())

	for _, m := range h.slack.Messages() {
		if m.Actionable || m.Updates != 1 {
			t.Errorf("message in %s: actionable %v, updated %d times", m.Channel, m.Actionable, m.Updates)
		}
	}
	if got := h.slack.Posts("C0COMPLIANCE"); got != n || len(h.slack.Messages()) != n {
		t.Errorf("%d posts, %d messages for %d requests in one channel", got, len(h.slack.Messages()), n)
	}
	st := h.openStopped()
	if rep, err := bot.VerifyAudit(st); err != nil || rep.Break != nil {
		t.Fatalf("audit: %v %+v", err, rep.Break)
	}
	stats, _ := st.Stats()
	if stats.Requests != n || stats.Pending != 0 || stats.Outbox != 0 {
		t.Errorf("store: %+v", stats)
	}
	err := st.Each(func(r *approvebot.Request) error {
		if string(r.Status) != want[r.ID] || len(r.Entries) != 1 {
			t.Errorf("request %s: %s with %d entries, want %s with 1", r.ID, r.Status, len(r.Entries), want[r.ID])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
