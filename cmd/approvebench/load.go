package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// bench is one run's shared state.
type bench struct {
	ctx  context.Context
	bin  string
	work string
	logf func(format string, args ...any)
	rep  *report

	clientOnce sync.Once
	hc         *http.Client
	errMu      sync.Mutex
}

func (b *bench) client() *http.Client {
	b.clientOnce.Do(func() {
		// The longest a held request waits here is its route's timeout (1 h);
		// no benchmark holds one that long.
		b.hc = &http.Client{Transport: newTransport(), Timeout: 30 * time.Minute}
	})
	return b.hc
}

func (b *bench) close() {
	if b.hc != nil {
		b.hc.CloseIdleConnections()
	}
}

// fail records an error for the report; the run goes on, so one bad request
// does not hide the rest of the figures.
func (b *bench) fail(format string, args ...any) {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if len(b.rep.Errors) < 50 {
		b.rep.Errors = append(b.rep.Errors, fmt.Sprintf(format, args...))
	}
	b.rep.ErrorCount++
}

// body is an AGT legacy request, byte for byte as its Python client posts
// it. The action carries a marker so the benchmark can find the request's
// Slack message again.
func body(marker string) []byte {
	b, _ := intaketest.LegacyBody(intaketest.Legacy{
		RuleName:   ruleName,
		PolicyName: "bench-policy",
		AgentID:    callerName,
		Action:     marker,
		Approvers:  []string{groupName},
	})
	return b
}

type agentAnswer struct {
	Approved          bool   `json:"approved"`
	Status            string `json:"status"`
	ApprovalRequestID string `json:"approval_request_id"`
	Error             string `json:"error"`
}

// bodies builds the bodies of requests tag-0 … tag-(n-1) before any clock
// starts: building them the way AGT's Python client writes them is slow, and
// the benchmark shares its cores with the server.
func bodies(tag string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = body(fmt.Sprintf("bench-%s-%d", tag, i))
	}
	return out
}

// submit posts one request. async asks for 202 + Location at once; without
// it the call is held until the request is decided. wrote, when set, is
// called once the request is on the wire.
func (b *bench) submit(ctx context.Context, s *server, body []byte, async bool, wrote func()) (int, agentAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/approvals", bytes.NewReader(body))
	if err != nil {
		return 0, agentAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+callerToken)
	if async {
		req.Header.Set("Prefer", "respond-async")
	}
	if wrote != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
		}))
	}
	resp, err := b.client().Do(req)
	if err != nil {
		return 0, agentAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, agentAnswer{}, err
	}
	var a agentAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("answer is not JSON: %q", clip(raw))
	}
	return resp.StatusCode, a, nil
}

// intakeResult is one intake measurement.
type intakeResult struct {
	Concurrency int
	Requests    int
	Errors      int
	Accepted    float64 // requests/s answered 202 (committed)
	Posted      float64 // requests/s answered and posted to Slack
	AcceptP50   time.Duration
	AcceptP99   time.Duration
	// CPUPerReq is the server's CPU time (user + system) per request, from
	// the first submission until the last post was recorded.
	CPUPerReq time.Duration
	// BenchCPUPerReq is the same for this process: the agents and the fake
	// Slack, which share the machine with the server.
	BenchCPUPerReq time.Duration
}

// intake submits n asynchronous requests from conc agents at once and times
// them until every one is committed (202) and posted to the fake.
func (b *bench) intake(s *server, tag string, n, conc int) (intakeResult, error) {
	res := intakeResult{Concurrency: conc, Requests: n}
	all := bodies(tag, n)
	before := s.fake.Posts(channel)
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	cpu0, self0 := s.cpu(), selfCPU()
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
				t0 := time.Now()
				code, a, err := b.submit(ctx, s, all[i], true, nil)
				cancel()
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil || code != http.StatusAccepted || a.Status != "pending" {
					errs.Add(1)
					b.fail("intake c=%d: request %d: HTTP %d %v %s", conc, i, code, err, a.Error)
				}
			}
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	res.Errors = int(errs.Load())
	want := before + n - res.Errors
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	if err := s.fake.WaitFor(ctx, func() bool { return s.fake.Posts(channel) >= want }); err != nil {
		return res, fmt.Errorf("%d of %d requests posted to Slack: %w", s.fake.Posts(channel)-before, n-res.Errors, err)
	}
	posted := time.Since(start)
	b.settle(s)
	res.CPUPerReq = (s.cpu() - cpu0) / time.Duration(n)
	res.BenchCPUPerReq = (selfCPU() - self0) / time.Duration(n)
	res.Accepted = float64(n) / accepted.Seconds()
	res.Posted = float64(n) / posted.Seconds()
	lats := slices.Concat(lat...)
	res.AcceptP50, res.AcceptP99 = percentile(lats, 50), percentile(lats, 99)
	return res, nil
}

// heldSet is many agents, each holding a connection for its answer.
type heldSet struct {
	tag     string
	answers []chan heldAnswer
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type heldAnswer struct {
	at   time.Time
	code int
	a    agentAnswer
	err  error
}

// hold opens n held requests, at most 256 being sent at any moment (so the
// listen backlog never overflows), and returns once all are on the wire.
func (b *bench) hold(s *server, tag string, n int) *heldSet {
	ctx, cancel := context.WithCancel(b.ctx)
	h := &heldSet{tag: tag, answers: make([]chan heldAnswer, n), cancel: cancel}
	all := bodies(tag, n)
	sem := make(chan struct{}, 256)
	for i := range n {
		h.answers[i] = make(chan heldAnswer, 1)
		sem <- struct{}{}
		var once sync.Once
		release := func() { once.Do(func() { <-sem }) }
		h.wg.Go(func() {
			code, a, err := b.submit(ctx, s, all[i], false, release)
			release()
			h.answers[i] <- heldAnswer{at: time.Now(), code: code, a: a, err: err}
		})
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	return h
}

// release hangs up every agent still waiting and waits for them.
func (h *heldSet) release() {
	h.cancel()
	h.wg.Wait()
}

// finished counts held requests that already have an answer: before any
// click, each is an error (nothing decided them).
func (h *heldSet) early() []heldAnswer {
	var out []heldAnswer
	for _, ch := range h.answers {
		select {
		case a := <-ch:
			out = append(out, a)
			ch <- a
		default:
		}
	}
	return out
}

// posted is a request's Slack message: what a click needs.
type posted struct {
	id, channel, ts string
}

var (
	reRequestID = regexp.MustCompile(`ar_[0-9a-f]{32}`)
	reMarker    = regexp.MustCompile(`bench-[a-z0-9]+-[0-9]+`)
)

// messages indexes the fake's messages by the marker of the request each shows.
func messages(f *slackfake.Fake) map[string]posted {
	out := map[string]posted{}
	for _, m := range f.Messages() {
		id := reRequestID.Find(m.Blocks)
		mk := reMarker.Find(m.Blocks)
		if id == nil || mk == nil {
			continue
		}
		out[string(mk)] = posted{id: string(id), channel: m.Channel, ts: m.TS}
	}
	return out
}

// waitPosts waits until the fake holds at least want posts in the channel.
func (b *bench) waitPosts(s *server, want int) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	if err := s.fake.WaitFor(ctx, func() bool { return s.fake.Posts(channel) >= want }); err != nil {
		return fmt.Errorf("%d of %d messages posted: %w", s.fake.Posts(channel), want, err)
	}
	return nil
}

// click sends a signed Approve click, as Slack does.
func (b *bench) click(s *server, p posted) error {
	payload := slackfake.BlockActionPayload(slackfake.Click{
		UserID: approverID, UserName: "bench-approver", Channel: p.channel, MessageTS: p.ts,
		ActionID: "approve", Value: p.id,
	})
	raw, header := slackfake.SignInteraction(signingSecret, payload, time.Now())
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/slack/interactions", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("click: HTTP %s", resp.Status)
	}
	return nil
}

// decisionResult is the click-to-answer latency over a sample.
type decisionResult struct {
	Pending int // requests pending when the sample started
	Samples int
	Errors  int
	P50     time.Duration
	P99     time.Duration
	Max     time.Duration
	// AckP50 is how long Slack's side waits for the click's 200: the
	// signature is checked and the click queued, not yet decided.
	AckP50 time.Duration
}

// decide approves k of the held requests one after another and times each
// from the moment the signed click is sent to the moment its agent has read
// the answer. Between clicks it lets the decision's own chat work (the
// message update and the clicker's private reply) finish, as it would
// between two people's clicks.
func (b *bench) decide(s *server, h *heldSet, k, pending int) (decisionResult, error) {
	res := decisionResult{Pending: pending}
	idx := messages(s.fake)
	var lat, acks []time.Duration
	for i := 0; i < k && i < len(h.answers); i++ {
		marker := fmt.Sprintf("bench-%s-%d", h.tag, i)
		p, ok := idx[marker]
		if !ok {
			return res, fmt.Errorf("no Slack message for %s", marker)
		}
		updates, ephemerals := s.fake.CallCount("chat.update"), s.fake.CallCount("chat.postEphemeral")
		t0 := time.Now()
		if err := b.click(s, p); err != nil {
			res.Errors++
			b.fail("decide %s: %v", p.id, err)
			continue
		}
		acks = append(acks, time.Since(t0))
		select {
		case a := <-h.answers[i]:
			h.answers[i] <- a
			switch {
			case a.err != nil:
				res.Errors++
				b.fail("held %s: %v", p.id, a.err)
			case a.code != http.StatusOK || !a.a.Approved || a.a.ApprovalRequestID != p.id:
				res.Errors++
				b.fail("held %s: HTTP %d %+v", p.id, a.code, a.a)
			default:
				lat = append(lat, a.at.Sub(t0))
			}
		case <-time.After(30 * time.Second):
			res.Errors++
			b.fail("held %s: no answer 30 s after the click", p.id)
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := s.fake.WaitFor(ctx, func() bool {
			return s.fake.CallCount("chat.update") > updates && s.fake.CallCount("chat.postEphemeral") > ephemerals
		})
		cancel()
		if err != nil {
			b.fail("after deciding %s: message update or private reply missing: %v", p.id, err)
		}
		// Let the commit that records the update land too: people click
		// seconds apart, not back to back.
		time.Sleep(5 * time.Millisecond)
	}
	res.Samples = len(lat)
	res.P50, res.P99, res.Max = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	res.AckP50 = percentile(acks, 50)
	return res, nil
}

// roundTrips times n sequential GET /healthz: the cost of any HTTP exchange
// with the server on this machine, under the same load, for comparison.
func (b *bench) roundTrips(s *server, n int) (p50, p99 time.Duration) {
	var lat []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/healthz", nil)
		t0 := time.Now()
		resp, err := b.client().Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				lat = append(lat, time.Since(t0))
			}
		}
		cancel()
		time.Sleep(time.Millisecond)
	}
	return percentile(lat, 50), percentile(lat, 99)
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
