package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/store"
)

// crashClick is one button press of the crash test and what became of it.
type crashClick struct {
	id, user, channel, action string
	ts                        string // the message clicked
	authorised                bool
	run                       int // the approvebot process it was sent to
	sent                      bool
	status                    int // HTTP status of Slack's delivery; 0 when it failed
}

func (c *crashClick) decision() string {
	if c.action == "approve" {
		return approvebot.Allow
	}
	return approvebot.Deny
}

// auditedClick is what the audit log says about one click.
type auditedClick struct {
	requestID, decision string
	counted             bool
	entryDigest         string
	records             int
}

// TestCrashMidBurstLosesNothing runs the real binary, opens 200 requests
// (100 held, 100 async), kills it with SIGKILL in the middle of a burst of
// clicks, starts it again on the same file and checks that nothing was lost
// or doubled:
//
//   - every request exists exactly once, and its Idempotency-Key still finds it;
//   - a click is in the audit log if its clicker was told the outcome (the
//     ephemeral reply is sent only after the commit), and always when it was
//     sent to the second process; a click may be missing only if it was
//     acknowledged to Slack by the killed process and not yet committed: Slack
//     wants an answer within 3 s, so clicks are acknowledged before they are
//     decided, and the clicker, who got no reply, clicks again;
//   - no click is recorded twice, and none is recorded that was not sent;
//   - every request has exactly one resolution, every approval or denial
//     matches an audited, authorised click, and every answer an agent received
//     before the kill is still the answer after it;
//   - requests whose deadline passed while approvebot was down are timed out
//     at start and their messages updated;
//   - messages that could not be posted before the kill are posted after it,
//     and no message is posted twice;
//   - reattached held callers and async pollers get the decisions.
func TestCrashMidBurstLosesNothing(t *testing.T) {
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	bin := buildBinary(t)
	phase("built")
	h := newHarness(t, baseConfig)
	h.env["DELIVERY_TIMEOUT"] = "10m" // posts that fail before the kill must still be owed after it
	okUsers := h.addUsers("U0OK", 600)
	h.slack.AddUsergroup("S0COMPLIANCE", append([]string{"U0CARL"}, okUsers...)...)
	badUsers := h.addUsers("U0NO", 300)
	nextOK, nextBad := 0, 0
	ok := func() string { nextOK++; return okUsers[nextOK-1] }
	bad := func() string { nextBad++; return badUsers[nextBad-1] }

	const (
		nHeld, nAsync, nShort, nUnposted = 100, 80, 10, 10
		// shortWait must outlast the burst before the kill, which takes
		// 2-5 s on a quiet 2-core machine and over 8 s on a loaded one.
		shortWait = 20 * time.Second
	)
	first := h.spawn(bin)

	// 100 held requests, each with its Idempotency-Key, and 80 async ones.
	heldKey := func(i int) string { return fmt.Sprintf("crash-held-%03d", i) }
	heldBodies := make([][]byte, nHeld)
	heldFirst := make([]<-chan response, nHeld)
	for i := range nHeld {
		heldBodies[i] = requestNamed(fmt.Sprintf("transfer held-%03d", i))
		heldFirst[i] = h.submit(heldBodies[i], auth("Idempotency-Key", heldKey(i)))
	}
	isAsync := map[string]bool{}
	for i := range nAsync {
		isAsync[h.pendingID(requestNamed(fmt.Sprintf("transfer async-%03d", i)))] = true
	}
	h.waitFor("every request posted", func() bool {
		return h.slack.Posts("C0TREASURY")+h.slack.Posts("C0COMPLIANCE") >= 2*(nHeld+nAsync)
	})
	normal := requestIDs(t, h.slack.Messages())
	if len(normal) != nHeld+nAsync {
		t.Fatalf("%d requests on Slack, want %d", len(normal), nHeld+nAsync)
	}
	h.waitRecordedPosts(2 * len(normal))

	phase("180 requests open and posted")

	// 10 async requests that will time out while approvebot is down.
	shortStart := time.Now()
	var shortIDs []string
	for i := range nShort {
		id := h.pendingID(requestNamed(fmt.Sprintf("transfer short-%03d", i)), "Prefer", fmt.Sprintf("wait=%d", int(shortWait.Seconds())))
		shortIDs = append(shortIDs, id)
		isAsync[id] = true
	}
	for _, id := range shortIDs {
		h.waitMessages(id, 2)
	}

	// 10 async requests that Slack refuses to show until after the kill.
	h.slack.FailFor("chat.postMessage", time.Hour, slackfake.Status(http.StatusInternalServerError))
	postsBefore := h.slack.CallCount("chat.postMessage")
	var unpostedIDs []string
	for i := range nUnposted {
		id := h.pendingID(requestNamed(fmt.Sprintf("transfer unposted-%03d", i)))
		unpostedIDs = append(unpostedIDs, id)
		isAsync[id] = true
	}
	h.waitFor("every unposted destination tried", func() bool {
		return h.slack.CallCount("chat.postMessage") >= postsBefore+2*nUnposted
	})

	phase("short and unposted requests open")

	// The burst: decisive, refused and racing clicks, shuffled.
	var clicks []*crashClick
	add := func(id, user, channel, action string, authorised bool) {
		clicks = append(clicks, &crashClick{id: id, user: user, channel: channel, action: action, authorised: authorised, run: 1})
	}
	for k, id := range normal {
		switch k % 4 {
		case 0:
			add(id, ok(), "C0COMPLIANCE", "approve", true)
		case 1:
			add(id, ok(), "C0COMPLIANCE", "deny", true)
		case 2:
			add(id, bad(), "C0TREASURY", "approve", false)
			add(id, ok(), "C0COMPLIANCE", "approve", true)
		case 3: // two approvers race; one decides
			add(id, ok(), "C0COMPLIANCE", "approve", true)
			add(id, ok(), "C0COMPLIANCE", "deny", true)
		}
	}
	for _, id := range shortIDs {
		add(id, bad(), "C0COMPLIANCE", "approve", false)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(clicks), func(i, j int) { clicks[i], clicks[j] = clicks[j], clicks[i] })
	ts := func(id, channel string) string {
		for _, m := range h.messages(id) {
			if m.Channel == channel {
				return m.TS
			}
		}
		t.Fatalf("no message for %s in %s", id, channel)
		return ""
	}
	for _, c := range clicks {
		c.ts = ts(c.id, c.channel)
	}

	var acked atomic.Int32
	var killed atomic.Bool
	var killedAt time.Time
	var killOnce sync.Once
	work := make(chan *crashClick)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for c := range work {
				if killed.Load() {
					continue
				}
				c.sent = true
				status, err := h.tryClick(c.user, c.channel, c.ts, c.action, c.id)
				if err != nil {
					continue
				}
				c.status = status
				if status == http.StatusOK && int(acked.Add(1)) == len(clicks)/2 {
					killOnce.Do(func() {
						killed.Store(true)
						first.kill()
						killedAt = time.Now()
					})
				}
			}
		})
	}
	for _, c := range clicks {
		work <- c
	}
	close(work)
	wg.Wait()
	if !killed.Load() {
		t.Fatalf("the burst ended before the kill: %d of %d clicks acknowledged", acked.Load(), len(clicks))
	}
	if killedAt.After(shortStart.Add(shortWait)) {
		t.Fatalf("the short requests' deadline passed before the kill; raise shortWait")
	}
	phase("killed")
	h.slack.Heal("chat.postMessage")

	// What the first process answered its held callers before it died.
	answeredFirst := map[string]response{}
	for _, ch := range heldFirst {
		if r := h.await(ch); r.status == http.StatusOK {
			answeredFirst[r.answer.ApprovalRequestID] = r
		}
	}

	// Down until the short requests' deadline has passed. The binary runs
	// in processes of its own, on the wall clock: no test clock reaches
	// them, so this one wait is real.
	time.Sleep(time.Until(shortStart.Add(shortWait + 500*time.Millisecond)))
	second := h.spawn(bin)
	restartedAt := time.Now()
	phase("restarted")

	// Every held caller retries with its Idempotency-Key; every async
	// caller polls.
	heldSecond := make([]<-chan response, nHeld)
	for i := range nHeld {
		heldSecond[i] = h.submit(heldBodies[i], auth("Idempotency-Key", heldKey(i)))
	}
	polls := map[string]<-chan response{}
	for id := range isAsync {
		ch := make(chan response, 1)
		polls[id] = ch
		go func() {
			r, err := h.tryDo(http.MethodGet, "/v1/approvals/"+id+"?wait=120", nil, auth())
			if err != nil {
				r = response{status: -1, body: []byte(err.Error())}
			}
			ch <- r
		}()
	}

	// Messages never posted are posted now, once.
	for _, id := range unpostedIDs {
		h.waitMessages(id, 2)
	}
	// Whatever is still pending (bar the expired ones) is decided now.
	var late []*crashClick
	for _, id := range append(append([]string{}, normal...), unpostedIDs...) {
		if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status == string(approvebot.StatusPending) {
			c := &crashClick{id: id, user: ok(), channel: "C0COMPLIANCE", action: "approve", authorised: true, run: 2, sent: true}
			c.ts = ts(c.id, c.channel)
			late = append(late, c)
		}
	}
	clicks = append(clicks, late...)
	var lateWG sync.WaitGroup
	for _, c := range late {
		lateWG.Go(func() {
			status, err := h.tryClick(c.user, c.channel, c.ts, c.action, c.id)
			if err != nil || status != http.StatusOK {
				t.Errorf("click after restart: %d %v", status, err)
			}
			c.status = status
		})
	}
	lateWG.Wait()

	heldIDs := map[string]int{}
	answers := map[string]response{}
	for i, ch := range heldSecond {
		r := h.await(ch)
		if r.status != http.StatusOK || !approvebot.Status(r.answer.Status).Final() {
			t.Fatalf("held caller %d reattached and got %d %s", i, r.status, r.body)
		}
		if j, dup := heldIDs[r.answer.ApprovalRequestID]; dup {
			t.Fatalf("held callers %d and %d reattached to the same request", j, i)
		}
		heldIDs[r.answer.ApprovalRequestID] = i
		answers[r.answer.ApprovalRequestID] = r
	}
	for id, ch := range polls {
		r := h.await(ch)
		if r.status != http.StatusOK || !approvebot.Status(r.answer.Status).Final() || r.answer.ApprovalRequestID != id {
			t.Fatalf("poll of %s got %d %s", id, r.status, r.body)
		}
		answers[id] = r
	}
	for _, c := range clicks {
		if c.run == 2 {
			h.waitFor("reply to "+c.user, func() bool { return len(h.ephemeralsFor(c.user)) > 0 })
		}
	}
	phase("every caller answered")
	// A graceful stop flushes every update still owed.
	second.terminate()
	phase("stopped")

	st := h.openStopped()
	rep, err := bot.VerifyAudit(st)
	if err != nil || rep.Break != nil {
		t.Fatalf("audit verify after the crash: %v %+v", err, rep.Break)
	}
	stats, _ := st.Stats()
	if stats.Requests != nHeld+nAsync+nShort+nUnposted || stats.Pending != 0 || stats.Outbox != 0 {
		t.Errorf("store holds %+v: want %d requests, none pending, no outbox job", stats, nHeld+nAsync+nShort+nUnposted)
	}

	// Every request exists exactly once.
	requests := map[string]*approvebot.Request{}
	byAction := map[string]int{}
	err = st.Each(func(r *approvebot.Request) error {
		requests[r.ID] = r
		byAction[r.Fields.Action]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for action, n := range byAction {
		if n != 1 {
			t.Errorf("%q stored %d times", action, n)
		}
	}
	for id, i := range heldIDs {
		if r := requests[id]; r == nil || r.IdempotencyKey != heldKey(i) || r.Fields.Action != fmt.Sprintf("transfer held-%03d", i) {
			t.Errorf("held caller %d reattached to %s, which is not its request", i, id)
		}
	}

	// The audit log, click by click.
	audited := map[string]*auditedClick{} // by clicker: each click has its own
	resolved := map[string]int{}
	entryDigests := map[string]bool{}
	err = st.Audit(0, func(rec store.Record, _ []byte) error {
		var d struct {
			Approver approvebot.Approver `json:"approver"`
			Decision string              `json:"decision"`
			Entry    struct {
				Decision    string `json:"decision"`
				EntryDigest string `json:"entry_digest"`
			} `json:"entry"`
		}
		switch rec.Type {
		case approvebot.EventResolved:
			resolved[rec.RequestID]++
			return nil
		case approvebot.EventEntry, approvebot.EventRefused:
		default:
			return nil
		}
		if err := json.Unmarshal(rec.Detail, &d); err != nil {
			return err
		}
		a := audited[d.Approver.UserID]
		if a == nil {
			a = &auditedClick{requestID: rec.RequestID}
			audited[d.Approver.UserID] = a
		}
		a.records++
		if rec.Type == approvebot.EventEntry {
			a.counted, a.decision, a.entryDigest = true, d.Entry.Decision, d.Entry.EntryDigest
			entryDigests[d.Entry.EntryDigest] = true
		} else {
			a.decision = d.Decision
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clickBy := map[string]*crashClick{}
	lost, unacked, told := 0, 0, 0
	for _, c := range clicks {
		clickBy[c.user] = c
		a := audited[c.user]
		replied := len(h.ephemeralsFor(c.user)) > 0
		switch {
		case a == nil && replied:
			t.Errorf("click by %s on %s: its clicker was told the outcome, but it is not in the audit log", c.user, c.id)
		case a == nil && c.run == 2:
			t.Errorf("click by %s on %s, sent after the restart, is not in the audit log", c.user, c.id)
		case a == nil && c.status == http.StatusOK:
			lost++ // acknowledged by the killed process, never committed
		case a == nil:
		case a.records != 1:
			t.Errorf("click by %s recorded %d times", c.user, a.records)
		case a.requestID != c.id || a.decision != c.decision():
			t.Errorf("click by %s (%s on %s) audited as %s on %s", c.user, c.action, c.id, a.decision, a.requestID)
		case a.counted && !c.authorised:
			t.Errorf("unauthorised click by %s was counted", c.user)
		}
		if replied {
			told++
		}
		if a != nil && c.status != http.StatusOK {
			unacked++ // committed, though the acknowledgement never reached Slack
		}
	}
	for user := range audited {
		if clickBy[user] == nil {
			t.Errorf("audit log holds a click by %s, who never clicked", user)
		}
	}

	// One resolution per request, matching an audited, authorised click.
	shortSet := map[string]bool{}
	for _, id := range shortIDs {
		shortSet[id] = true
	}
	for id, r := range requests {
		if resolved[id] != 1 || r.Resolution == nil {
			t.Errorf("request %s: %d resolution records, status %s", id, resolved[id], r.Status)
			continue
		}
		switch {
		case shortSet[id]:
			if r.Status != approvebot.StatusTimedOut || r.Resolution.ResolvedAt.Before(killedAt) {
				t.Errorf("short request %s: %s at %s, want timed out after the kill (%s)", id, r.Status, r.Resolution.ResolvedAt, killedAt)
			}
		case r.Status == approvebot.StatusApproved || r.Status == approvebot.StatusDenied:
			if len(r.Entries) != 1 {
				t.Errorf("request %s: %d entries, want the one that decided it", id, len(r.Entries))
				continue
			}
			e := r.Entries[0]
			c := clickBy[e.Approver.UserID]
			if c == nil || c.id != id || !c.authorised || c.decision() != e.Decision || !entryDigests[e.EntryDigest] {
				t.Errorf("request %s decided by %s (%s), which matches no audited authorised click", id, e.Approver.UserID, e.Decision)
			}
		default:
			t.Errorf("request %s ended %s: %s", id, r.Status, r.Resolution.Reason)
		}
		if a, ok := answers[id]; ok && (a.answer.Status != string(r.Status) || a.answer.Approver != r.Resolution.Approver) {
			t.Errorf("request %s: caller got %s by %s after the restart, store says %s by %s", id, a.answer.Status, a.answer.Approver, r.Status, r.Resolution.Approver)
		}
		if a, ok := answeredFirst[id]; ok && (a.answer.Status != string(r.Status) || a.answer.Approver != r.Resolution.Approver) {
			t.Errorf("request %s: caller got %s by %s before the kill, store now says %s", id, a.answer.Status, a.answer.Approver, r.Status)
		}
	}

	// Every message posted once, recorded, and showing the outcome.
	perChannel := map[string]int{}
	for _, m := range h.slack.Messages() {
		id := requestIDPattern.FindString(string(m.Blocks))
		perChannel[id+" "+m.Channel]++
		if m.Actionable {
			t.Errorf("message for %s in %s still shows buttons after the stop", id, m.Channel)
		}
		if r := requests[id]; r != nil && shortSet[id] && !strings.Contains(string(m.Blocks), "Expired") {
			t.Errorf("message for %s (expired while down) in %s does not say so", id, m.Channel)
		}
	}
	for id, r := range requests {
		for _, d := range r.Destinations {
			if n := perChannel[id+" "+d.Channel]; n != 1 || d.State != approvebot.DeliveryPosted {
				t.Errorf("request %s: %d messages in %s, destination %s", id, n, d.Channel, d.State)
				continue
			}
			if m, ok := h.slack.Message(d.Channel, d.Ref.ID); !ok || !strings.Contains(string(m.Blocks), id) {
				t.Errorf("request %s: stored reference %s in %s finds no message of it", id, d.Ref.ID, d.Channel)
			}
		}
	}
	total := 2 * len(requests)
	if got := h.slack.Posts("C0TREASURY") + h.slack.Posts("C0COMPLIANCE"); got != total {
		t.Errorf("%d successful chat.postMessage calls for %d requests × 2 channels", got, len(requests))
	}

	runs := map[int]int{}
	for _, c := range clicks {
		if c.sent {
			runs[c.run]++
		}
	}
	var reconciled struct {
		Pending int `json:"pending"`
		Expired int `json:"expired_while_down"`
		Outbox  int `json:"outbox"`
	}
	for _, line := range strings.Split(second.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"reconciled"`) {
			_ = json.Unmarshal([]byte(line), &reconciled)
		}
	}
	if reconciled.Expired != nShort {
		t.Errorf("the restart expired %d requests, want the %d whose deadline passed while it was down", reconciled.Expired, nShort)
	}
	t.Logf("at restart: %d pending, %d expired while down, %d chat side effects owed", reconciled.Pending, reconciled.Expired, reconciled.Outbox)
	t.Logf("clicks sent: %d before the kill (%d acknowledged), %d after; told the outcome: %d; acknowledged but lost to the kill: %d; committed but unacknowledged: %d; held callers answered before the kill: %d; down for %s",
		runs[1], acked.Load(), runs[2], told, lost, unacked, len(answeredFirst), restartedAt.Sub(killedAt).Round(time.Millisecond))
}
