// Command approvebench measures approvebot as it is deployed: it builds the
// real binary, runs it as a child process against an in-process loopback fake
// of Slack that answers at once, drives it over HTTP the way agents and Slack
// do, and reads its memory and file descriptors from /proc. It measures the
// machine's own limits in the same run, on the same disk, so every figure can
// be read against what the hardware allows. It prints a report and writes it
// to BENCHMARKS.md.
//
//	go run ./cmd/approvebench            # full run, writes BENCHMARKS.md
//	go run ./cmd/approvebench -quick     # smaller numbers, a smoke run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if child, err := floorChild(ctx); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "approvebench floor server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "approvebench:", err)
		os.Exit(1)
	}
}

// sizes are how much work each part of the benchmark does.
type sizes struct {
	Levels         []int       // intake concurrencies, in order
	Intake         map[int]int // concurrency → requests
	Held           int
	Clicks         int
	RestartTotal   int
	RestartPending int
	RestartRuns    int
	Growth         []int // pending requests already in the store
	GrowthRequests int   // intake requests at each growth step
	GrowthClicks   int
	Baseline       int // transactions in each bbolt baseline
	PaceSpread     int // requests spread over PaceChannels channels
	PaceChannels   int
	PaceBurst      int // requests to one channel, then one to an idle one
	Hostile        int // slow unauthenticated clients
	HostileFor     time.Duration
	HostileClicks  int // held requests decided during the attack
	HostileAgents  int // agent requests during the attack
}

func fullSizes() sizes {
	return sizes{
		Levels:         []int{1, 16, 256},
		Intake:         map[int]int{1: 1000, 16: 10000, 256: 20000},
		Held:           10000,
		Clicks:         1000,
		RestartTotal:   100000,
		RestartPending: 10000,
		RestartRuns:    3,
		Growth:         []int{1000, 10000, 50000},
		GrowthRequests: 10000,
		GrowthClicks:   1000, // a p99 of 1,000 samples is their 10th worst, not the 3rd of 300
		Baseline:       2000,
		PaceSpread:     1000,
		PaceChannels:   50,
		PaceBurst:      120,
		Hostile:        300,
		HostileFor:     30 * time.Second,
		HostileClicks:  50,
		HostileAgents:  300,
	}
}

func quickSizes() sizes {
	return sizes{
		Levels:         []int{1, 16, 256},
		Intake:         map[int]int{1: 100, 16: 500, 256: 1000},
		Held:           500,
		Clicks:         50,
		RestartTotal:   5000,
		RestartPending: 500,
		RestartRuns:    1,
		Growth:         []int{100, 1000},
		GrowthRequests: 500,
		GrowthClicks:   30,
		Baseline:       300,
		PaceSpread:     100,
		PaceChannels:   20,
		PaceBurst:      12,
		Hostile:        300,
		HostileFor:     10 * time.Second,
		HostileClicks:  10,
		HostileAgents:  100,
	}
}

// parts are the benchmark's parts, in the order they run.
var parts = []string{"baselines", "intake", "held", "restart", "growth", "pacing", "hostile"}

type options struct {
	sizes   sizes
	quick   bool
	out     string
	bin     string
	dir     string
	keep    bool
	only    map[string]bool // nil: every part
	command string          // as the report shows it
	stdout  io.Writer
	stderr  io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("approvebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smaller numbers, for a smoke run")
	out := fs.String("out", "BENCHMARKS.md", `where to write the report ("" writes none)`)
	bin := fs.String("bin", "", "approvebot binary to measure (default: build ./cmd/approvebot)")
	dir := fs.String("dir", "", "directory for stores and logs (default: a new temporary directory); its disk is the one measured")
	keep := fs.Bool("keep", false, "keep the work directory (stores, logs) afterwards")
	requests := fs.Int("requests", 0, "override: intake requests at every concurrency")
	held := fs.Int("held", 0, "override: held requests")
	clicks := fs.Int("clicks", 0, "override: clicks timed with requests held")
	restart := fs.String("restart", "", "override: TOTAL/PENDING requests in the restart store, e.g. 100000/10000")
	growth := fs.String("growth", "", "override: comma-separated pending counts for the cost-growth runs")
	growthRequests := fs.Int("growth-requests", 0, "override: intake requests at each growth step")
	baseline := fs.Int("baseline", 0, "override: transactions in each bbolt baseline")
	levels := fs.String("concurrency", "", "override: comma-separated intake concurrencies (default 1,16,256)")
	only := fs.String("only", "", "run only these parts, comma-separated: baselines,intake,held,restart,growth,pacing,hostile")
	cpuProfile := fs.String("cpuprofile", "", "write this process's CPU profile (agents and fake Slack) to the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := options{quick: *quick, out: *out, bin: *bin, dir: *dir, keep: *keep, stdout: stdout, stderr: stderr}
	if *only != "" {
		o.only = map[string]bool{}
		for _, part := range strings.Split(*only, ",") {
			part = strings.TrimSpace(part)
			if !slices.Contains(parts, part) {
				return fmt.Errorf("-only: unknown part %q; want some of %s", part, strings.Join(parts, ","))
			}
			o.only[part] = true
		}
	}
	o.sizes = fullSizes()
	if *quick {
		o.sizes = quickSizes()
	}
	if *levels != "" {
		o.sizes.Levels = nil
		for _, f := range strings.Split(*levels, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("-concurrency: want comma-separated positive counts, got %q", *levels)
			}
			o.sizes.Levels = append(o.sizes.Levels, n)
			if _, ok := o.sizes.Intake[n]; !ok {
				o.sizes.Intake[n] = o.sizes.Intake[256]
			}
		}
	}
	if *requests > 0 {
		for c := range o.sizes.Intake {
			o.sizes.Intake[c] = *requests
		}
	}
	if *held > 0 {
		o.sizes.Held = *held
	}
	if *clicks > 0 {
		o.sizes.Clicks = *clicks
		o.sizes.GrowthClicks = *clicks
	}
	if *restart != "" {
		total, pending, ok := strings.Cut(*restart, "/")
		t, err1 := strconv.Atoi(total)
		p, err2 := strconv.Atoi(pending)
		if !ok || err1 != nil || err2 != nil || t <= 0 || p < 0 || p > t {
			return fmt.Errorf("-restart: want TOTAL/PENDING with 0 <= PENDING <= TOTAL, got %q", *restart)
		}
		o.sizes.RestartTotal, o.sizes.RestartPending = t, p
	}
	if *growth != "" {
		o.sizes.Growth = nil
		for _, f := range strings.Split(*growth, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return fmt.Errorf("-growth: want comma-separated counts, got %q", *growth)
			}
			o.sizes.Growth = append(o.sizes.Growth, n)
		}
	}
	if *growthRequests > 0 {
		o.sizes.GrowthRequests = *growthRequests
	}
	if *baseline > 0 {
		o.sizes.Baseline = *baseline
	}
	o.command = "go run ./cmd/approvebench " + strings.Join(args, " ")
	if len(args) == 0 {
		o.command = "go run ./cmd/approvebench"
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := benchmark(ctx, o)
	if err != nil {
		return err
	}
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stderr, "approvebench: wrote %s\n", o.out)
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d errors during the run (see the report): first: %s", len(rep.Errors), rep.Errors[0])
	}
	return nil
}

// benchmark runs every part in order and gathers the report.
func benchmark(ctx context.Context, o options) (*report, error) {
	start := time.Now()
	work := o.dir
	if work == "" {
		d, err := os.MkdirTemp("", "approvebench-")
		if err != nil {
			return nil, err
		}
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if !o.keep && o.dir == "" {
		defer os.RemoveAll(work)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.stderr, "approvebench %6.1fs: %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	rep := &report{Command: o.command, Quick: o.quick, Sizes: o.sizes, Started: start}
	var err error
	rep.Limits, err = raiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("raise the open-file limit: %w", err)
	}
	rep.Machine = describeMachine(work)
	rep.LoadBefore = loadAverage()
	logf("load average %s", rep.LoadBefore)

	bin := o.bin
	if bin == "" {
		logf("building approvebot")
		bin, err = buildBinary(ctx, work)
		if err != nil {
			return nil, err
		}
	}
	b := &bench{ctx: ctx, bin: bin, work: work, logf: logf, rep: rep}
	defer b.close()

	steps := []struct {
		name string
		fn   func() error
	}{
		{"baselines", b.baselines},
		{"intake", b.intakeRuns},
		{"held", b.heldRun},
		{"restart", b.restartRuns},
		{"growth", b.growthRuns},
		{"pacing", b.pacingRuns},
		{"hostile", b.hostileRun},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if o.only != nil && !o.only[s.name] {
			continue
		}
		if err := s.fn(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	rep.Took = time.Since(start)
	rep.LoadAfter = loadAverage()
	return rep, nil
}
