package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot/store"
)

// TestMain lets the test binary be the floor server, with the store or
// without, when the benchmark under test starts itself as one (floor.go).
func TestMain(m *testing.M) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if child, err := floorChild(ctx); child {
		if err != nil {
			os.Stderr.WriteString("floor server: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmallRunWritesReport runs the whole benchmark with tiny numbers: the
// real binary, the fake Slack, every part. It checks the report is complete
// and the run had no errors; it asserts no figure, since figures depend on
// the machine.
func TestSmallRunWritesReport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the approvebot binary")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{
		"-quick", "-out", out, "-dir", filepath.Join(dir, "work"),
		"-requests", "50", "-held", "100", "-clicks", "10", "-baseline", "50",
		"-restart", "1000/100", "-growth", "20,200", "-growth-requests", "50",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s\nreport:\n%s", err, stderr.String(), stdout.String())
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written, stdout.Bytes()) {
		t.Error("the file written differs from the report printed")
	}
	report := string(written)
	for _, want := range []string{
		"## Machine", "| Cores | ", "| Store filesystem | ",
		"## Summary",
		"| 1 | Intake at concurrency 256",
		"| 1 | The same for HTTP alone", "**HTTP alone.**", "**HTTP and the store.**",
		"| 2 | Resident memory per held request (100 held)",
		"| 2 | Errors while holding | 0 |",
		"| 2 | File descriptors with 100 held",
		"| 3 | Decision latency p99, 100 pending",
		"| 4 | Start to ready, 1,000 requests of which 100 pending",
		"| 5 | Intake, 20 → 200 pending",
		"| 5 | Decision p99, 20 → 200 pending",
		"Errors during the run: 0.",
		"## 1. Intake", "## 2. Held requests", "## 3. Decision latency", "## 4. Restart", "## 5. Cost growth",
		"| 6 | Pacing, 100 requests over 20 channels", "| 6 | Pacing, idle channel's post during the burst",
		"## 6. Pacing", "| spread | 100 | 20 | 100 |", "| burst | 12 | 1 | 13 |",
		"channel_interval: 0s",
		"| H | Agent requests and clicks during the attack that failed | 0 of ", "## Hostile connections",
		"bbolt's consistency check of the whole file at open",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "## Errors", "%!"} {
		if strings.Contains(report, bad) {
			t.Errorf("report contains %q:\n%s", bad, report)
		}
	}
	// The floor with the store created every request it answered (200 to
	// warm up, then the 50 measured), each under an id of its own.
	st, err := store.Open(filepath.Join(dir, "work", "floor-store", "store.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requests != 250 {
		t.Errorf("the floor's store holds %d requests, want 250", stats.Requests)
	}
	// Every intake level and growth step has its row, with a rate.
	for _, row := range []string{`\| 1 \| 50 \| [0-9,]+ \| [0-9,]+ \|`, `\| 16 \| 50 \|`, `\| 256 \| 50 \|`, `\| 20 \| [0-9,]+ \|`, `\| 200 \| [0-9,]+ \|`} {
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("report lacks a row matching %s", row)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-restart", "10/20"},
		{"-restart", "x"},
		{"-growth", "1,a"},
		{"-concurrency", "0"},
		{"-only", "intake,nonsense"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("run %q: want an error", args)
		}
	}
}
