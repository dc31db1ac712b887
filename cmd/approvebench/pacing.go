package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// The pacing benchmark runs approvebot at Slack's real pace, one post a
// second per channel, and checks that the pacer is the only thing between a
// request and its post: every channel drains as fast as its pace allows,
// and a post to an idle channel is not held up by a burst to another.
const (
	paceInterval   = time.Second
	paceRule       = "pace-rule"
	burstChannel   = "C0BURST"
	idleChannel    = "C0IDLE"
	targetPace     = 1.05 // worst post time against the pacing-limited schedule
	targetIdlePost = 1100 * time.Millisecond
)

func spreadChannel(i int) string { return fmt.Sprintf("C0PACE%02d", i) }
func spreadGroup(i int) string   { return fmt.Sprintf("pace-%02d", i) }

// pacingConfig has one group per channel: spread channels, the burst
// channel and the idle one. Requests name their group (no route matches
// them), so each has exactly one message.
func pacingConfig(dir, slackURL string, channels int) string {
	var groups strings.Builder
	add := func(group, channel string) {
		fmt.Fprintf(&groups, "  %s:\n    slack:\n      channels: [%s]\n      users: [%s]\n", group, channel, approverID)
	}
	for i := range channels {
		add(spreadGroup(i), spreadChannel(i))
	}
	add("pace-burst", burstChannel)
	add("pace-idle", idleChannel)
	text := strings.NewReplacer("{{DIR}}", dir, "{{SLACK}}", slackURL).Replace(configTemplate)
	text = strings.Replace(text, "channel_interval: 0s", "channel_interval: "+paceInterval.String(), 1)
	head, _, _ := strings.Cut(text, "approvers:\n")
	return head + "approvers:\n" + groups.String()
}

// paceScenario is one scenario's outcome.
type paceScenario struct {
	Name     string
	Requests int
	Channels int
	Posted   int
	Errors   int
	// Worst is the largest ratio, over every post after a channel's first,
	// of its time since that first post to the time the pacing-limited
	// schedule allows (each post one interval after the one before, and
	// never before its request was sent).
	Worst float64
	P99   float64 // the same ratio's 99th percentile
	// MinGap is the shortest time between two posts to one channel.
	MinGap time.Duration
	// Drain is from the first request sent to the last post.
	Drain time.Duration
	// Idle is, in the burst scenario, from the idle channel's request being
	// sent to its post.
	Idle time.Duration
}

type pacingResult struct {
	Interval  time.Duration
	Scenarios []paceScenario
}

type sentPost struct {
	channel string
	sent    time.Time
	posted  time.Time
}

// pacingRuns runs both scenarios, each on a fresh server.
func (b *bench) pacingRuns() error {
	b.rep.Pacing.Interval = paceInterval
	z := b.rep.Sizes
	spread, err := b.paceScenario("spread", func(i int) string { return spreadGroup(i % z.PaceChannels) }, z.PaceSpread, z.PaceChannels, "")
	if err != nil {
		return err
	}
	b.rep.Pacing.Scenarios = append(b.rep.Pacing.Scenarios, spread)
	burst, err := b.paceScenario("burst", func(int) string { return "pace-burst" }, z.PaceBurst, z.PaceChannels, "pace-idle")
	if err != nil {
		return err
	}
	b.rep.Pacing.Scenarios = append(b.rep.Pacing.Scenarios, burst)
	return nil
}

// paceScenario sends n requests (request i to group(i)) as fast as 16
// agents can, then, when idle is set, one request to that group, and times
// every post.
func (b *bench) paceScenario(name string, group func(int) string, n, channels int, idle string) (paceScenario, error) {
	res := paceScenario{Name: name, Requests: n}
	dir, err := b.newDir("pacing-" + name)
	if err != nil {
		return res, err
	}
	fake := newFake()
	cfg := filepath.Join(dir, "approvebot.yaml")
	if err := os.WriteFile(cfg, []byte(pacingConfig(dir, fake.URL(), channels)), 0o600); err != nil {
		return res, err
	}
	s, err := b.startServerConfig(dir, fake, cfg)
	if err != nil {
		return res, err
	}
	defer s.kill()

	total := n
	if idle != "" {
		total++
	}
	bodies := make([][]byte, total)
	groups := make([]string, total)
	for i := range total {
		groups[i] = group(i)
		if i == n {
			groups[i] = idle
		}
		bodies[i], _ = intaketest.LegacyBody(intaketest.Legacy{RuleName: paceRule, PolicyName: "pace", AgentID: callerName,
			Action: fmt.Sprintf("pace-%s-%05d", name, i), Approvers: []string{groups[i]}})
	}
	posts := make([]sentPost, total)
	var postsMu sync.Mutex
	got := 0
	done := make(chan struct{})
	// Every post as the fake received it, matched to its request by the
	// marker in its text.
	go func() {
		for {
			select {
			case c := <-fake.Calls():
				if c.Method != "chat.postMessage" || c.Error != "" {
					continue
				}
				form := c.Form()
				text := form.Get("blocks") + form.Get("text")
				i := strings.Index(text, "pace-"+name+"-")
				if i < 0 {
					continue
				}
				var k int
				if _, err := fmt.Sscanf(text[i+len("pace-"+name+"-"):], "%05d", &k); err != nil || k >= total {
					continue
				}
				postsMu.Lock()
				if posts[k].posted.IsZero() {
					posts[k].posted, posts[k].channel = c.At, form.Get("channel")
					got++
				}
				postsMu.Unlock()
			case <-done:
				return
			}
		}
	}()
	defer close(done)

	send := func(i int) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		defer cancel()
		t0 := time.Now()
		code, a, err := b.submit(ctx, s, bodies[i], true, nil)
		failed := err != nil || code != http.StatusAccepted || a.Status != "pending"
		postsMu.Lock()
		posts[i].sent = t0
		if failed {
			res.Errors++
		}
		postsMu.Unlock()
		if failed {
			b.fail("pacing %s: request %d: HTTP %d %v %s", name, i, code, err, a.Error)
		}
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				send(i)
			}
		})
	}
	wg.Wait()
	if idle != "" {
		send(n)
	}
	b.logf("pacing %s: %d requests sent in %v; waiting for every post", name, total, time.Since(start).Round(time.Millisecond))
	// The slowest channel needs one interval per post after its first.
	perChannel := map[string]int{}
	for _, g := range groups {
		perChannel[g]++
	}
	most := 0
	for _, c := range perChannel {
		most = max(most, c)
	}
	deadline := time.Now().Add(time.Duration(most)*paceInterval + 2*time.Minute)
	for {
		postsMu.Lock()
		all := got >= total-res.Errors
		postsMu.Unlock()
		if all {
			break
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			err = errors.New("timed out")
			break
		}
		// Polled: the fake notifies before the call reaches the
		// goroutine that counts it.
		time.Sleep(20 * time.Millisecond)
	}
	postsMu.Lock()
	res.Posted = got
	all := append([]sentPost(nil), posts...)
	postsMu.Unlock()
	if err != nil {
		return res, fmt.Errorf("pacing %s: %d of %d requests posted: %w", name, res.Posted, total, err)
	}
	res.Worst, res.P99, res.MinGap, res.Channels = paceFigures(all[:n])
	var last time.Time
	for _, p := range all {
		if p.posted.After(last) {
			last = p.posted
		}
	}
	res.Drain = last.Sub(start)
	if idle != "" {
		res.Idle = all[n].posted.Sub(all[n].sent)
	}
	b.logf("pacing %s: %d posts to %d channels; worst %.3f× the paced schedule (p99 %.3f×), shortest gap %v, idle post %v",
		name, res.Posted, res.Channels, res.Worst, res.P99, res.MinGap.Round(time.Millisecond), res.Idle.Round(time.Millisecond))
	return res, b.stop(s)
}

// paceFigures compares each channel's posts with the schedule its pace
// allows: the first post when it was made, each later one an interval after
// the one before or when its request was sent, whichever is later.
func paceFigures(posts []sentPost) (worst, p99 float64, minGap time.Duration, channels int) {
	by := map[string][]sentPost{}
	for _, p := range posts {
		if !p.posted.IsZero() {
			by[p.channel] = append(by[p.channel], p)
		}
	}
	minGap = -1
	var ratios []float64
	for _, ps := range by {
		sort.Slice(ps, func(i, j int) bool { return ps[i].posted.Before(ps[j].posted) })
		first := ps[0].posted
		ideal := first
		for k := 1; k < len(ps); k++ {
			ideal = ideal.Add(paceInterval)
			if ps[k].sent.After(ideal) {
				ideal = ps[k].sent
			}
			r := float64(ps[k].posted.Sub(first)) / float64(ideal.Sub(first))
			ratios = append(ratios, r)
			worst = max(worst, r)
			if g := ps[k].posted.Sub(ps[k-1].posted); minGap < 0 || g < minGap {
				minGap = g
			}
		}
	}
	sort.Float64s(ratios)
	if len(ratios) > 0 {
		p99 = ratios[min(len(ratios)-1, len(ratios)*99/100)]
	}
	return worst, p99, max(minGap, 0), len(by)
}

// startServerConfig is startServer with a configuration file of the
// caller's.
func (b *bench) startServerConfig(dir string, fake *slackfake.Fake, cfg string) (*server, error) {
	return b.startServerWith(dir, fake, func() (string, error) { return cfg, nil })
}
