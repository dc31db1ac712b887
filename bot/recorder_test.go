package bot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

// recorder is a chat platform for the engine's tests: it shows nothing,
// remembers every call made to it, and fails the calls it is told to. It
// stands where Slack or Teams would, at the engine's boundary.
type recorder struct {
	name string

	mu      sync.Mutex
	calls   []platformCall
	fails   map[string][]error // by method: the errors its next calls return, in order
	people  map[string]approvebot.Approver
	groups  map[string][]string // user group -> members' user ids
	posts   int
	pace    time.Duration // PostInterval
	changed chan struct{} // closed and replaced after every call
}

// platformCall is one call the engine made.
type platformCall struct {
	Method  string // "post", "update", "reply", "identify", "recorded"
	Channel string
	Ref     approvebot.MessageRef
	Msg     approvebot.Message
	Note    approvebot.Note
	Err     error // what the call returned
}

var (
	_ Platform     = (*recorder)(nil)
	_ Replier      = (*recorder)(nil)
	_ PostRecorder = (*recorder)(nil)
	_ Paced        = (*recorder)(nil)
)

func newRecorder(name string) *recorder {
	return &recorder{name: name, fails: map[string][]error{}, people: map[string]approvebot.Approver{},
		groups: map[string][]string{}, changed: make(chan struct{})}
}

// addUser makes a person Identify knows, with the email it reports.
func (p *recorder) addUser(id, name, email string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.people[id] = approvebot.Approver{Platform: p.name, Workspace: "T0TEST", UserID: id, Name: name, Email: email}
}

// addUsergroup makes members the user group's members.
func (p *recorder) addUsergroup(id string, members ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups[id] = members
}

// failNext makes the next calls to method return errs, one each.
func (p *recorder) failNext(method string, errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fails[method] = append(p.fails[method], errs...)
}

// The failures a platform reports, as adapters report them.
func retryable() error { return &approvebot.DeliveryError{Reason: "HTTP 503"} }
func permanent(reason string) error {
	return &approvebot.DeliveryError{Permanent: true, Reason: reason}
}
func rateLimited(after time.Duration) error {
	return &approvebot.DeliveryError{Reason: "ratelimited", RetryAfter: after}
}

// record notes a call and returns the failure queued for its method, if any.
func (p *recorder) record(c platformCall) (platformCall, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.fails[c.Method]; len(q) > 0 {
		c.Err, p.fails[c.Method] = q[0], q[1:]
	}
	if c.Method == "post" && c.Err == nil {
		p.posts++
		c.Ref = approvebot.MessageRef{Channel: c.Channel, ID: fmt.Sprintf("m%d", p.posts)}
	}
	p.calls = append(p.calls, c)
	close(p.changed)
	p.changed = make(chan struct{})
	return c, c.Err
}

func (p *recorder) Name() string { return p.name }

// setInterval paces posts to each channel, as Slack asks.
func (p *recorder) setInterval(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pace = d
}

func (p *recorder) PostInterval(channel string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pace
}

func (p *recorder) Post(ctx context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error) {
	c, err := p.record(platformCall{Method: "post", Channel: channel, Msg: msg})
	return c.Ref, err
}

func (p *recorder) Update(ctx context.Context, ref approvebot.MessageRef, msg approvebot.Message) error {
	_, err := p.record(platformCall{Method: "update", Channel: ref.Channel, Ref: ref, Msg: msg})
	return err
}

func (p *recorder) Reply(ctx context.Context, ref approvebot.MessageRef, note approvebot.Note, mention []approvebot.Group) error {
	_, err := p.record(platformCall{Method: "reply", Channel: ref.Channel, Ref: ref, Note: note})
	return err
}

func (p *recorder) Recorded(ref approvebot.MessageRef) {
	_, _ = p.record(platformCall{Method: "recorded", Channel: ref.Channel, Ref: ref})
}

// Identify knows the people added to it; anyone else is unknown, as a
// platform's directory would say.
func (p *recorder) Identify(ctx context.Context, who approvebot.Approver, ref approvebot.MessageRef, usergroups []string) (approvebot.Approver, error) {
	_, err := p.record(platformCall{Method: "identify", Channel: ref.Channel, Ref: ref})
	if err != nil {
		return approvebot.Approver{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.people[who.UserID]
	if !ok {
		return approvebot.Approver{}, fmt.Errorf("users.info %s: user_not_found", who.UserID)
	}
	for _, g := range usergroups {
		if slices.Contains(p.groups[g], a.UserID) {
			a.Usergroups = append(a.Usergroups, g)
		}
	}
	return a, nil
}

// callsOf lists the calls made to method so far (all calls for "").
func (p *recorder) callsOf(method string) []platformCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []platformCall
	for _, c := range p.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// waitFor blocks until cond holds, testing it after every call. A test
// whose condition never comes fails, rather than hangs, after 20 seconds.
func (p *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; calls: %+v", what, ctx.Err(), p.callsOf(""))
		}
	}
}

// waitCalls waits until method has been called n times, and returns those calls.
func (p *recorder) waitCalls(t testing.TB, method string, n int) []platformCall {
	t.Helper()
	var got []platformCall
	p.waitFor(t, fmt.Sprintf("%d %s calls", n, method), func() bool {
		got = p.callsOf(method)
		return len(got) >= n
	})
	return got
}
