package bot

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
	"github.com/approvebot/approvebot/store"
	"go.yaml.in/yaml/v3"
)

// Callers' tokens in testPolicy.
const (
	agentToken   = "agent-token-0123456789"
	otherToken   = "other-token-0123456789"
	limitedToken = "limited-token-0123456789"
)

// testPolicy is the configuration of every test in this package, parsed
// from the file's text as approvebot reads it. The one place tests build a
// configuration: when its schema changes, this is what changes.
//
// Routes by rule_name: "one" asks ops (any one of Ann, Ben or a member of
// S0OPS), "two" asks two of ops, "staged" asks ops and then sec (Sam),
// "both" asks ops and sec at once. Schema 1.0 requests name the chain
// high-risk-tools (ops). The caller "limited" may send one request an hour.
func testPolicy(t testing.TB) *policy.Config {
	t.Helper()
	const yaml = `
callers:
  - name: agent
    token: ` + agentToken + `
    rate: 100000/s
    burst: 100000
  - name: other
    token: ` + otherToken + `
  - name: limited
    token: ` + limitedToken + `
    rate: 1/h
    burst: 1
chat: {}
delivery:
  timeout: 30s
approvers:
  ops:
    chat: {channels: [C0OPS], users: [U0ANN, U0BEN], usergroups: [S0OPS]}
  sec:
    chat: {channels: [C0SEC], users: [U0SAM]}
routes:
  - match: {rule_name: one}
    approvers: [ops]
    timeout: 5m
  - match: {rule_name: two}
    approvers: [ops]
    quorum: 2
    timeout: 5m
  - match: {rule_name: both}
    approvers: [ops, sec]
    timeout: 5m
  - match: {rule_name: staged}
    chain: staged
chains:
  staged:
    version: "1"
    timeout: 5m
    stages:
      - approvers: [ops]
      - approvers: [sec]
  high-risk-tools:
    version: "3"
    timeout: 5m
    stages:
      - approvers: [ops]
`
	cfg, err := policy.Parse([]byte(yaml), nil, policy.Platforms{chatRules{}})
	if err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	return cfg
}

// chat is the recording platform's name.
const chat = "chat"

// chatRules is the recording platform's part in the rules, as a chat
// platform's: a section without keys, and sides listing channels, users
// (by id) and user groups.
type chatRules struct{}

func (chatRules) Name() string { return chat }

func (chatRules) ParseSection(r *confnode.Reader, n *yaml.Node, _ policy.File) any {
	if r.Object(n, chat) == nil {
		return nil
	}
	return struct{}{}
}

func (chatRules) ParseSide(r *confnode.Reader, n *yaml.Node, at string, _ any, _ policy.File) (approvebot.Side, bool) {
	o := r.Object(n, at, "channels", "users", "usergroups")
	if o == nil {
		return approvebot.Side{}, false
	}
	return approvebot.Side{Channels: r.List(o, "channels"), Users: r.List(o, "users"), Groups: r.List(o, "usergroups")}, true
}

func (chatRules) Member(side approvebot.Side, a approvebot.Approver) bool {
	return slices.Contains(side.Users, a.UserID) || slices.ContainsFunc(side.Groups, func(g string) bool { return slices.Contains(a.Usergroups, g) })
}

func (chatRules) Deciders(side approvebot.Side) ([]string, bool) {
	return side.Users, len(side.Groups) > 0
}

func (chatRules) DescribeSection(any) string { return chat }

func (chatRules) DescribeSide(side approvebot.Side) string { return strings.Join(side.Channels, ", ") }

// rig is an engine as approvebot runs it, on a bbolt file in the test's
// directory, a recording Slack and a clock the test moves.
type rig struct {
	t      *testing.T
	clock  *watchedClock
	store  *store.Bolt
	slack  *recorder
	engine *Engine
	logs   syncBuffer // the engine's log, shown when the test fails

	submitted int
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "approvebot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rg := &rig{t: t, clock: newWatchedClock(time.Now().UTC().Truncate(time.Second)), store: st, slack: newRecorder(chat)}
	rg.slack.addUser("U0ANN", "Ann", "ann@example.com")
	rg.slack.addUser("U0BEN", "Ben", "ben@example.com")
	rg.slack.addUser("U0CAT", "Cat", "cat@example.com")
	rg.slack.addUser("U0SAM", "Sam", "sam@example.com")
	rg.slack.addUser("U0EVE", "Eve", "eve@example.com")
	rg.slack.addUsergroup("S0OPS", "U0CAT")
	rg.engine, err = New(Config{
		Policy:    testPolicy(t),
		Store:     st,
		Platforms: []Platform{rg.slack},
		Clock:     rg.clock,
		Logger:    slog.New(slog.NewTextHandler(&rg.logs, nil)),
		Workers:   4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rg.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rg.engine.Drain(ctx)
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("engine log:\n%s", rg.logs.String())
		}
	})
	return rg
}

// submit opens a legacy request for rule as caller agent, each one a
// request of its own (an identical one would attach to the first).
func (rg *rig) submit(rule string) *approvebot.Request {
	rg.t.Helper()
	rg.submitted++
	body, _ := intaketest.LegacyBody(intaketest.Legacy{RuleName: rule, Approvers: []string{}, RequestedAt: rg.clock.Now(),
		Context: intaketest.Object{{Key: "n", Value: rg.submitted}}})
	return rg.submitBody(body, SubmitOptions{Caller: "agent"})
}

func (rg *rig) submitBody(body []byte, o SubmitOptions) *approvebot.Request {
	rg.t.Helper()
	sub, err := intake.Parse(body)
	if err != nil {
		rg.t.Fatalf("parse body: %v", err)
	}
	r, err := rg.engine.Submit(context.Background(), sub, o)
	if err != nil {
		rg.t.Fatalf("submit: %v", err)
	}
	return r
}

// posted submits a request for rule and waits until its first stage's n
// messages are posted and recorded, so a click on them can count.
func (rg *rig) posted(rule string, n int) *approvebot.Request {
	rg.t.Helper()
	r := rg.submit(rule)
	rg.waitRecorded(r.ID, n)
	return r
}

// waitRecorded waits until the store has n of the request's messages posted.
func (rg *rig) waitRecorded(id string, n int) *approvebot.Request {
	rg.t.Helper()
	var r *approvebot.Request
	rg.slack.waitFor(rg.t, "recorded posts", func() bool {
		got, err := rg.store.Get(id)
		if err != nil {
			rg.t.Fatal(err)
		}
		r = got
		k := 0
		for _, d := range r.Destinations {
			if d.State == approvebot.DeliveryPosted {
				k++
			}
		}
		return k >= n
	})
	return r
}

// click is user clicking decision on the request's message in channel.
func (rg *rig) click(id, channel, user, decision string) ClickResult {
	rg.t.Helper()
	r, err := rg.store.Get(id)
	if err != nil {
		rg.t.Fatal(err)
	}
	var ref approvebot.MessageRef
	for _, d := range r.Destinations {
		if d.Channel == channel && d.State == approvebot.DeliveryPosted {
			ref = d.Ref
		}
	}
	if ref.ID == "" {
		rg.t.Fatalf("no message of %s posted in %s: %+v", id, channel, r.Destinations)
	}
	return rg.engine.Click(context.Background(), approvebot.Ballot{
		Platform: chat, Ref: ref, Decision: decision, Assurance: "test",
		Approver: approvebot.Approver{Platform: chat, UserID: user},
	}, id)
}

// final waits until the request is final and returns it as stored.
func (rg *rig) final(id string) *approvebot.Request {
	rg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := rg.engine.Wait(ctx, id)
	if err != nil {
		rg.t.Fatalf("wait for %s: %v", id, err)
	}
	return r
}

// waitOutbox waits until the outbox owes nothing: every job run to its
// end, none waiting to retry. Jobs are owed from the commit that makes
// them, so after a Submit, Click or Cancel has returned this waits for
// what it changed to reach chat.
func (rg *rig) waitOutbox() {
	rg.t.Helper()
	o := rg.engine.outbox
	timedOut := false
	failsafe := time.AfterFunc(20*time.Second, func() {
		o.mu.Lock()
		timedOut = true
		o.idle.Broadcast()
		o.mu.Unlock()
	})
	defer failsafe.Stop()
	o.mu.Lock()
	for len(o.jobs) > 0 && !timedOut {
		o.idle.Wait()
	}
	n := len(o.jobs)
	o.mu.Unlock()
	if timedOut {
		rg.t.Fatalf("the outbox still owes %d jobs", n)
	}
}

// watchedClock is a ManualClock a test can wait on: it tells when a timer
// is armed, so a test moves time only once the engine has scheduled what
// it means to trigger.
type watchedClock struct {
	*ManualClock
	mu      sync.Mutex
	changed chan struct{}
}

func newWatchedClock(t time.Time) *watchedClock {
	return &watchedClock{ManualClock: NewManualClock(t), changed: make(chan struct{})}
}

func (c *watchedClock) AfterFunc(d time.Duration, f func()) Timer {
	t := c.ManualClock.AfterFunc(d, f)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return t
}

// waitTimers waits until n timers are armed.
func (c *watchedClock) waitTimers(t testing.TB, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.Timers() >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %d timers: %d armed", n, c.Timers())
		}
	}
}
