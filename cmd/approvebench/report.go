package main

import (
	"fmt"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Command    string
	Quick      bool
	Sizes      sizes
	Started    time.Time
	Took       time.Duration
	Machine    machine
	Limits     fileLimits
	LoadBefore string // load averages when the run started
	LoadAfter  string
	Baseline   baselineResult
	Intake     []intakeResult
	Held       heldResult
	Restart    restartResult
	Growth     []growthResult
	Errors     []string
	ErrorCount int
}

// Targets, from the requirement.
const (
	targetIntake       = 2000.0               // requests/s at concurrency 256 on two cores
	targetHeldBytes    = 40 << 10             // resident bytes per held request
	targetDecisionBase = 5 * time.Millisecond // p99, plus one commit
	targetRestart      = time.Second
	flatTolerance      = 0.25 // "flat": within 25 % of the smallest store's figure
	flatLatencySlack   = time.Millisecond
)

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func (r *report) intakeAt(c int) (intakeResult, bool) {
	for _, in := range r.Intake {
		if in.Concurrency == c {
			return in, true
		}
	}
	return intakeResult{}, false
}

// decisionTarget is 5 ms plus the median bbolt commit measured in this run.
func (r *report) decisionTarget() time.Duration {
	return targetDecisionBase + r.Baseline.CommitP50
}

// flat reports whether intake and decision latency hold steady from the
// smallest to the largest pending count.
func (r *report) flat() (intake, latency bool, ok bool) {
	if len(r.Growth) < 2 {
		return false, false, false
	}
	lo, hi := r.Growth[0], r.Growth[len(r.Growth)-1]
	intake = hi.Intake.Posted >= (1-flatTolerance)*lo.Intake.Posted
	latency = float64(hi.Decision.P99) <= (1+flatTolerance)*float64(lo.Decision.P99)+float64(flatLatencySlack)
	return intake, latency, true
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	p("# approvebot benchmarks\n\n")
	p("Measured with the real `approvebot` binary, run as a child process against an in-process\n")
	p("loopback fake of Slack's Web API (`bot/slack/slackfake`) that answers at once, and driven\n")
	p("over HTTP the way agents and Slack drive it. The bbolt store syncs every commit (`fsync`),\n")
	p("as in production. The benchmark, the fake and the server share the machine's cores.\n\n")
	if r.Quick {
		p("> **Smoke run (`-quick`)**: numbers are small and not comparable with the targets.\n\n")
	}
	p("Command: `%s` (took %s, %s).\n\n", r.Command, r.Took.Round(time.Second), r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s |\n", m.CPU)
	p("| Cores | %d |\n", m.Cores)
	p("| Memory | %.1f GiB |\n", m.MemoryGiB)
	p("| Kernel | %s |\n", m.Kernel)
	p("| Store filesystem | %s |\n", m.Filesystem)
	p("| Go | %s |\n", m.GoVersion)
	p("| Load average (1, 5, 15 min) at start / end | %s / %s |\n", r.LoadBefore, r.LoadAfter)
	p("| Open files (`RLIMIT_NOFILE`) | soft %d raised to %d (hard %d) by the benchmark; the server inherits it |\n\n",
		r.Limits.SoftBefore, r.Limits.Soft, r.Limits.Hard)

	p("## Summary\n\n")
	p("| # | Measure | Result | Target | Verdict |\n|---|---|---|---|---|\n")
	if in, ok := r.intakeAt(256); ok {
		p("| 1 | Intake at concurrency 256 (committed with fsync and posted to Slack) | %s req/s (%s× one-transaction-per-request bbolt, %s× bbolt group commit) | ≥ %s req/s and above one-transaction-per-request bbolt (%s tx/s) | %s |\n",
			num(in.Posted), ratio(in.Posted, r.Baseline.Serial), ratio(in.Posted, r.Baseline.Group), num(targetIntake), num(r.Baseline.Serial),
			verdict(in.Posted >= targetIntake && in.Posted > r.Baseline.Serial && in.Errors == 0))
	}
	h := r.Held
	if h.Held > 0 {
		per := float64(h.RSSAfter-h.RSSBefore) / float64(h.Held)
		p("| 2 | Resident memory per held request (%s held) | %.1f KiB | < 40 KiB | %s |\n", num(float64(h.Held)), per/1024, verdict(per < targetHeldBytes))
		p("| 2 | Errors while holding | %d | 0 | %s |\n", h.Errors, verdict(h.Errors == 0))
		p("| 2 | File descriptors with %s held | %d (%.2f per held request) | below the open-file limit (%d) | %s |\n",
			num(float64(h.Held)), h.FDsAfter, float64(h.FDsAfter-h.FDsBefore)/float64(h.Held), r.Limits.Soft, verdict(uint64(h.FDsAfter) < r.Limits.Soft))
		d := h.Decision
		p("| 3 | Decision latency p99 (p50), %s pending | %s (%s) | < 5 ms + one commit (%s) = %s | %s |\n",
			num(float64(d.Pending)), ms(d.P99), ms(d.P50), ms(r.Baseline.CommitP50), ms(r.decisionTarget()),
			verdict(d.Samples > 0 && d.Errors == 0 && d.P99 < r.decisionTarget()))
	}
	if len(r.Restart.Runs) > 0 {
		p("| 4 | Start to ready, %s requests of which %s pending | %s (median of %d) | < 1 s | %s |\n",
			num(float64(r.Restart.Total)), num(float64(r.Restart.Pending)), ms(median(r.Restart.Runs)), len(r.Restart.Runs),
			verdict(median(r.Restart.Runs) < targetRestart))
	}
	if in, lat, ok := r.flat(); ok {
		lo, hi := r.Growth[0], r.Growth[len(r.Growth)-1]
		p("| 5 | Intake, %s → %s pending | %s → %s req/s | flat (within %.0f %%) | %s |\n",
			num(float64(lo.Pending)), num(float64(hi.Pending)), num(lo.Intake.Posted), num(hi.Intake.Posted), flatTolerance*100, verdict(in))
		p("| 5 | Decision p99, %s → %s pending | %s → %s | flat (within %.0f %% + 1 ms) | %s |\n",
			num(float64(lo.Pending)), num(float64(hi.Pending)), ms(lo.Decision.P99), ms(hi.Decision.P99), flatTolerance*100, verdict(lat))
	}
	p("\nErrors during the run: %d.\n\n", r.ErrorCount)

	p("## 1. Intake\n\n")
	p("Agents submit with `Prefer: respond-async` (so a request does not wait for a decision), each from\n")
	p("its own keep-alive connection. *Accepted* counts `202` answers: the request is committed (fsync)\n")
	p("when approvebot answers. *Posted* stops the clock when the fake Slack holds every request's\n")
	p("message. Each request is one commit to create it and one to record its message.\n\n")
	p("| Concurrency | Requests | Accepted req/s | Posted req/s | × serial bbolt | × group-commit bbolt | Accept p50 | Accept p99 | Server CPU per request | Errors |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, in := range r.Intake {
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", in.Concurrency, num(float64(in.Requests)), num(in.Accepted), num(in.Posted),
			ratio(in.Posted, r.Baseline.Serial), ratio(in.Posted, r.Baseline.Group), ms(in.AcceptP50), ms(in.AcceptP99), ms(in.CPUPerReq), in.Errors)
	}
	p("\n*Server CPU per request* is the server's user + system time (from `/proc/<pid>/stat`) over the run,\n")
	p("divided by the requests: what one request costs whatever else runs on the machine.\n")
	bl := r.Baseline
	p("\nThe machine's limit, measured in the same run in the same directory, with values of %d bytes\n", bl.ValueBytes)
	p("(one stored request):\n\n")
	p("| Limit | Rate |\n|---|---:|\n")
	p("| bbolt, one write transaction per request, one writer (fsync each) | %s tx/s |\n", num(bl.Serial))
	p("| bbolt group commit (`DB.Batch`, %d writers, up to 512 per commit, 1 ms gather) | %s writes/s |\n", groupWriters, num(bl.Group))
	p("| approvebot's store alone (`store.Create`, %d writers: group commit + JSON + audit chain) | %s req/s |\n", groupWriters, num(bl.StoreCreate))
	p("| One bbolt commit (fsync), p50 / p99 | %s / %s |\n\n", ms(bl.CommitP50), ms(bl.CommitP99))

	if h.Held > 0 {
		p("## 2. Held requests\n\n")
		p("%s agents each hold a connection open (`POST /v1/approvals` without `Prefer: respond-async`)\n", num(float64(h.Held)))
		p("until a decision. They were opened in %s (at most 256 being sent at once) and all posted to Slack.\n", h.OpenTook.Round(time.Millisecond))
		p("Resident memory is the server's `VmRSS` from `/proc/<pid>/status`, after it settled, before and\n")
		p("after; descriptors are the entries of `/proc/<pid>/fd`.\n\n")
		p("| | Before | With %s held | Per held request |\n|---|---:|---:|---:|\n", num(float64(h.Held)))
		p("| Resident memory | %.1f MiB | %.1f MiB | %.1f KiB |\n", mib(h.RSSBefore), mib(h.RSSAfter), float64(h.RSSAfter-h.RSSBefore)/float64(h.Held)/1024)
		p("| File descriptors | %d | %d | %.2f |\n", h.FDsBefore, h.FDsAfter, float64(h.FDsAfter-h.FDsBefore)/float64(h.Held))
		if h.GoroutinesAfter >= 0 && h.GoroutinesBefore >= 0 {
			p("| Goroutines (`/metrics`) | %.0f | %.0f | %.2f |\n", h.GoroutinesBefore, h.GoroutinesAfter, (h.GoroutinesAfter-h.GoroutinesBefore)/float64(h.Held))
		}
		if h.StackAfter >= 0 && h.StackBefore >= 0 {
			p("| of which goroutine stacks (`go_memstats_stack_inuse_bytes`) | %.1f MiB | %.1f MiB | %.1f KiB |\n", h.StackBefore/(1<<20), h.StackAfter/(1<<20), (h.StackAfter-h.StackBefore)/float64(h.Held)/1024)
		}
		if h.HeapAfter >= 0 && h.HeapBefore >= 0 {
			p("| of which heap in use, live and not yet collected (`go_memstats_heap_inuse_bytes`) | %.1f MiB | %.1f MiB | %.1f KiB |\n", h.HeapBefore/(1<<20), h.HeapAfter/(1<<20), (h.HeapAfter-h.HeapBefore)/float64(h.Held)/1024)
		}
		p("| Errors | | %d | |\n\n", h.Errors)
		p("Each held agent needs one descriptor in the server (and one in the agent's process). Run the\n")
		p("server with `ulimit -n` above the number of agents it may hold plus a few hundred (the store,\n")
		p("listeners, connections to Slack and Teams); systemd: `LimitNOFILE=`. Here the limit was %d.\n\n", r.Limits.Soft)

		d := h.Decision
		p("## 3. Decision latency\n\n")
		p("With %s requests pending (held as above), %d of them are approved one after another by a\n", num(float64(d.Pending)), d.Samples)
		p("signed Slack click (`POST /slack/interactions`). Each is timed from the moment the click is\n")
		p("sent to the moment its agent has read its answer: signature check, the vote committed (fsync),\n")
		p("the held connection answered. Between clicks, the decision's own chat work (message update and\n")
		p("the clicker's private reply) is let finish.\n\n")
		p("| p50 | p99 | max | one bbolt commit p50 | target p99 | errors |\n|---:|---:|---:|---:|---:|---:|\n")
		p("| %s | %s | %s | %s | %s | %d |\n\n", ms(d.P50), ms(d.P99), ms(d.Max), ms(bl.CommitP50), ms(r.decisionTarget()), d.Errors)
	}

	if rs := r.Restart; len(rs.Runs) > 0 {
		p("## 4. Restart\n\n")
		p("A store of %s requests (%s pending, deadlines a day away; the rest timed out), %.1f MiB,\n",
			num(float64(rs.Total)), num(float64(rs.Pending)), mib(rs.FileBytes))
		p("written through the store API in %s. Time from starting the binary to the first `200` from\n", rs.PrefillTook.Round(time.Millisecond))
		p("`/readyz` (which opens the store, re-arms every pending deadline, queues owed chat work and\n")
		p("checks Slack's `auth.test`). The file is in the page cache, as after a restart in place.\n\n")
		p("| Run | Ready after |\n|---:|---:|\n")
		for i, d := range rs.Runs {
			p("| %d | %s |\n", i+1, ms(d))
		}
		if rs.PendingSeen >= 0 {
			p("\nPending requests the server reported once ready: %.0f.\n", rs.PendingSeen)
		}
		p("\n")
	}

	if len(r.Growth) > 0 {
		p("## 5. Cost growth\n\n")
		p("A fresh server on a store already holding N pending requests. First %d held requests are\n", r.Sizes.GrowthClicks)
		p("decided one by one (decision latency), then %s requests are submitted at concurrency 256\n", num(float64(r.Sizes.GrowthRequests)))
		p("(intake, committed and posted).\n\n")
		p("| Pending | Intake posted req/s | Accepted req/s | Decision p50 | Decision p99 | Server RSS after |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, g := range r.Growth {
			p("| %s | %s | %s | %s | %s | %.0f MiB |\n", num(float64(g.Pending)), num(g.Intake.Posted), num(g.Intake.Accepted),
				ms(g.Decision.P50), ms(g.Decision.P99), mib(g.RSS))
		}
		p("\n")
	}

	p("## How it is measured\n\n")
	p("- Config: one caller, one approver group with one Slack channel and one approver, a 1 h route\n")
	p("  timeout, and `slack.channel_interval: 0s`. Real Slack accepts about one message per second per\n")
	p("  channel, and approvebot paces posts to match by default (1 s); with that pacing on, posting\n")
	p("  to one channel would be capped at 1 req/s and measure only Slack's limit, not approvebot.\n")
	p("- Bodies are AGT's legacy `WebhookApproval` JSON, byte for byte as its Python client sends them.\n")
	p("- The server logs (JSON, info level) to a file, as a service under systemd or a container runtime would.\n")
	p("- The benchmark raises its own `RLIMIT_NOFILE` to the hard limit with `setrlimit`; the server, its\n")
	p("  child, inherits it.\n")
	p("- No figure here is asserted by a test; `go test ./cmd/approvebench` only checks that a tiny run\n")
	p("  produces a well-formed report without errors.\n\n")
	p("%s\n", analysis)

	if len(r.Errors) > 0 {
		p("## Errors\n\n")
		for _, e := range r.Errors {
			p("- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
		if r.ErrorCount > len(r.Errors) {
			p("- ... and %d more\n", r.ErrorCount-len(r.Errors))
		}
	}
	return b.String()
}

// analysis says where the time goes and what is the machine's; it is kept
// with the harness so that each run's report carries it.
const analysis = `## Where the time goes

(to be written after profiling)
`

func num(f float64) string {
	n := int64(f + 0.5)
	s := fmt.Sprint(n)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// ratio is a/b to two places, or "-" when b was not measured.
func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
