package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/approvebot/approvebot/store"
)

// freshServer starts a server on an empty store in a directory of its own.
func (b *bench) freshServer(name string) (*server, error) {
	dir, err := b.newDir(name)
	if err != nil {
		return nil, err
	}
	return b.startServer(dir, nil)
}

func (b *bench) newDir(name string) (string, error) {
	dir := filepath.Join(b.work, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// intakeRuns measures intake at each concurrency on one fresh server.
func (b *bench) intakeRuns() error {
	s, err := b.freshServer("intake")
	if err != nil {
		return err
	}
	defer s.kill()
	// Warm up: open connections, fill caches, grow the heap a little.
	if _, err := b.intake(s, "warm", 200, 16); err != nil {
		return err
	}
	b.settle(s)
	for _, c := range b.rep.Sizes.Levels {
		n := b.rep.Sizes.Intake[c]
		b.logf("intake: %d requests at concurrency %d", n, c)
		res, err := b.intake(s, fmt.Sprintf("c%d", c), n, c)
		if err != nil {
			return err
		}
		b.logf("intake: c=%d accepted %.0f/s, posted %.0f/s, CPU per request: server %v, benchmark %v", c, res.Accepted, res.Posted, res.CPUPerReq, res.BenchCPUPerReq)
		b.rep.Intake = append(b.rep.Intake, res)
		b.settle(s)
	}
	if err := b.stop(s); err != nil {
		return err
	}
	return b.floorRun()
}

// heldResult is what holding many requests costs.
type heldResult struct {
	Held             int
	Errors           int
	RSSBefore        int64
	RSSAfter         int64
	FDsBefore        int
	FDsAfter         int
	GoroutinesBefore float64 // -1 when the server exports no metrics
	GoroutinesAfter  float64
	// From the Go runtime, through /metrics (-1 without): goroutine stacks
	// and heap in use (live objects and garbage not yet collected).
	StackBefore, StackAfter float64
	HeapBefore, HeapAfter   float64
	OpenTook                time.Duration
	Decision                decisionResult
	// RTTP50 and RTTP99 time GET /healthz with everything still held: one
	// HTTP round trip on this machine under the same load.
	RTTP50, RTTP99 time.Duration
}

// heldRun holds many requests at once on a fresh server, measures its memory
// and descriptors, then times clicks against them.
func (b *bench) heldRun() error {
	s, err := b.freshServer("held")
	if err != nil {
		return err
	}
	defer s.kill()
	n := b.rep.Sizes.Held
	res := heldResult{Held: n}
	// One request end to end first, so that the baseline includes what
	// serving any request at all brings in (connections to Slack, caches).
	if _, err := b.intake(s, "warm", 16, 4); err != nil {
		return err
	}
	b.settle(s)
	time.Sleep(time.Second)
	if res.RSSBefore, err = s.rss(); err != nil {
		return err
	}
	if res.FDsBefore, err = s.fds(); err != nil {
		return err
	}
	res.GoroutinesBefore = b.metric(s, "go_goroutines")
	res.StackBefore = b.metric(s, "go_memstats_stack_inuse_bytes")
	res.HeapBefore = b.metric(s, "go_memstats_heap_inuse_bytes")
	posts := s.fake.Posts(channel)

	b.logf("held: opening %d held requests", n)
	start := time.Now()
	h := b.hold(s, "held", n)
	defer h.release()
	if err := b.waitPosts(s, posts+n); err != nil {
		return err
	}
	res.OpenTook = time.Since(start)
	b.settle(s)
	time.Sleep(time.Second)
	for _, a := range h.early() {
		res.Errors++
		b.fail("held request answered before any decision: HTTP %d %v %+v", a.code, a.err, a.a)
	}
	if res.RSSAfter, err = s.rss(); err != nil {
		return err
	}
	if res.FDsAfter, err = s.fds(); err != nil {
		return err
	}
	res.GoroutinesAfter = b.metric(s, "go_goroutines")
	res.StackAfter = b.metric(s, "go_memstats_stack_inuse_bytes")
	res.HeapAfter = b.metric(s, "go_memstats_heap_inuse_bytes")
	b.logf("held: %d held, RSS %d → %d MiB (stacks %.0f MiB, heap %.0f MiB), fds %d → %d, goroutines %.0f → %.0f", n, res.RSSBefore>>20, res.RSSAfter>>20,
		res.StackAfter/(1<<20), res.HeapAfter/(1<<20), res.FDsBefore, res.FDsAfter, res.GoroutinesBefore, res.GoroutinesAfter)

	k := min(b.rep.Sizes.Clicks, n)
	b.logf("decision: %d clicks with %d pending", k, n)
	if res.Decision, err = b.decide(s, h, k, n); err != nil {
		return err
	}
	b.logf("decision: p50 %v p99 %v (click acknowledged: p50 %v)", res.Decision.P50, res.Decision.P99, res.Decision.AckP50)
	res.RTTP50, res.RTTP99 = b.roundTrips(s, 300)
	b.logf("decision: GET /healthz round trip p50 %v p99 %v", res.RTTP50, res.RTTP99)
	b.rep.Held = res
	h.release()
	return b.stop(s)
}

// restartResult is the time from exec to ready on a large store.
type restartResult struct {
	Total, Pending int
	FileBytes      int64
	PrefillTook    time.Duration
	Runs           []time.Duration
	PendingSeen    float64 // the server's pending gauge once ready; -1 without metrics
	// CheckTook is what bbolt's consistency check adds to opening the
	// store; OpenTook is the open without it.
	CheckTook, OpenTook time.Duration
}

func (b *bench) restartRuns() error {
	dir, err := b.newDir("restart")
	if err != nil {
		return err
	}
	total, pending := b.rep.Sizes.RestartTotal, b.rep.Sizes.RestartPending
	b.logf("restart: writing a store of %d requests, %d pending", total, pending)
	res := restartResult{Total: total, Pending: pending}
	start := time.Now()
	if err := prefill(dir, total, pending); err != nil {
		return err
	}
	res.PrefillTook = time.Since(start)
	path := filepath.Join(dir, "approvebot.db")
	if fi, err := os.Stat(path); err == nil {
		res.FileBytes = fi.Size()
	}
	// What the consistency check at open costs: the same open without it.
	for _, skip := range []bool{false, true} {
		t0 := time.Now()
		st, err := store.Open(path, store.Options{ReadOnly: true, SkipCheck: skip})
		if err != nil {
			return err
		}
		took := time.Since(t0)
		st.Close()
		if skip {
			res.OpenTook, res.CheckTook = took, res.CheckTook-took
		} else {
			res.CheckTook = took
		}
	}
	for i := range b.rep.Sizes.RestartRuns {
		s, err := b.startServer(dir, nil)
		if err != nil {
			return err
		}
		res.Runs = append(res.Runs, s.ready)
		if i == 0 {
			res.PendingSeen = b.metric(s, "approvebot_pending_requests")
		}
		b.logf("restart: ready after %v", s.ready)
		if err := b.stop(s); err != nil {
			return err
		}
	}
	b.rep.Restart = res
	return nil
}

// growthResult is intake and decision latency with many requests pending.
type growthResult struct {
	Pending  int
	Intake   intakeResult
	Decision decisionResult
	RSS      int64
}

func (b *bench) growthRuns() error {
	for _, n := range b.rep.Sizes.Growth {
		dir, err := b.newDir(fmt.Sprintf("growth-%d", n))
		if err != nil {
			return err
		}
		b.logf("growth: writing %d pending requests", n)
		if err := prefill(dir, n, n); err != nil {
			return err
		}
		if err := b.growthStep(dir, n); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) growthStep(dir string, n int) error {
	s, err := b.startServer(dir, nil)
	if err != nil {
		return err
	}
	defer s.kill()
	res := growthResult{Pending: n}
	if _, err := b.intake(s, "warm", 200, 16); err != nil {
		return err
	}
	b.settle(s)

	k := b.rep.Sizes.GrowthClicks
	posts := s.fake.Posts(channel)
	h := b.hold(s, fmt.Sprintf("g%d", n), k)
	defer h.release()
	if err := b.waitPosts(s, posts+k); err != nil {
		return err
	}
	b.settle(s)
	res.Decision, err = b.decide(s, h, k, n+200+k)
	if err != nil {
		return err
	}
	h.release()
	b.settle(s)

	m := b.rep.Sizes.GrowthRequests
	res.Intake, err = b.intake(s, fmt.Sprintf("gi%d", n), m, 256)
	if err != nil {
		return err
	}
	if res.RSS, err = s.rss(); err != nil {
		return err
	}
	b.logf("growth: %d pending: intake %.0f/s posted, decision p50 %v p99 %v", n, res.Intake.Posted, res.Decision.P50, res.Decision.P99)
	b.rep.Growth = append(b.rep.Growth, res)
	b.settle(s)
	return b.stop(s)
}

// median of ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
