// Command approvebot runs the approval service and its operator commands.
// main only calls run, so tests start the whole program in-process with
// their own arguments, environment, streams and clock.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/approvebot/approvebot/bot"
)

// gcPercent is the collector's target (GOGC) when the environment sets
// none: the heap may grow to three times what is live between collections,
// where Go's default of 100 lets it grow to twice. approvebot's live heap is
// small (requests live in the store's memory map, not on the heap), so at
// 100 it collects often, and a decision that meets a collection waits for
// the collector's share of the two cores. Measured in approvebench on the
// 2-core machine (BENCHMARKS.md): decision p99 with 10,000 agents held went
// from 8.9 ms to 4.5-5.9 ms, and resident memory per held agent from 17 to
// 25-27 KiB. GOGC, when set, is the operator's and is kept.
const gcPercent = 200

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, bot.SystemClock{}, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "approvebot:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `approvebot puts a human between an AI agent and its riskiest actions.

Usage:
  approvebot demo [--config FILE]        try it: the web inbox on 127.0.0.1 with a demo
                                          sign-in and a demo agent; no credentials needed
  approvebot serve  --config FILE         run the service
  approvebot check  --config FILE         validate the config and print a summary
  approvebot reload --config FILE        make the running service re-read its config
                                          (as SIGHUP does); says why when it keeps the old one
  approvebot doctor --config FILE [--public-url URL]
                                          check the setup works: store, signing key,
                                          Slack and Teams credentials, channels, people
  approvebot audit verify --config FILE [--checkpoints FILE] [--receipts FILE] [--jwks FILE]
                                          recompute every digest and link of the audit trail,
                                          and check it holds what checkpoints and receipts vouch for
  approvebot audit export --config FILE [--request ID] [--since T] [--until T | --before T]
                                          write audit records as JSON lines
  approvebot audit show --config FILE ID  print one request's story
  approvebot compact --config FILE        with the service stopped: apply store.retention and
                                          shrink the store file to its live data
  approvebot teams channels --config FILE list the Teams channels the bot knows
  approvebot teams package --app-id ID --out FILE
                                          build the Teams app package (zip)
  approvebot agt chain --config FILE --chain ID
                                          print the AGT approval chain (JSON) that
                                          accepts approvebot's answers for a chain
  approvebot backup --config FILE --out FILE
                                          write a consistent copy of the store file
  approvebot version                      print the version and VCS revision

Every command takes -h or --help.

The audit and teams channels commands read the store file directly when the
service is stopped, and ask the running service (admin API, admin.token) when
it holds the file.
`

// run is the whole program. clock is its only source of time: every
// deadline, reminder, retry, pacing pause, expiry check and timestamp is read
// from it or armed on it, so tests move time instead of sleeping. Only
// network timeouts (sockets, HTTP clients) run on the wall clock.
func run(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	err := command(ctx, clock, args, getenv, stdout, stderr)
	if h, ok := err.(helpText); ok {
		fmt.Fprint(stdout, string(h))
		return nil
	}
	return err
}

// command runs the command args names.
func command(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, clock, args[1:], getenv, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, clock, args[1:], getenv, stdout, stderr)
	case "check":
		return cmdCheck(args[1:], getenv, stdout, stderr)
	case "reload":
		return cmdReload(ctx, args[1:], getenv, stdout, stderr)
	case "doctor":
		return cmdDoctor(ctx, clock, args[1:], getenv, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], getenv, stdout, stderr)
	case "compact":
		return cmdCompact(ctx, clock, args[1:], getenv, stdout, stderr)
	case "teams":
		return cmdTeams(ctx, args[1:], getenv, stdout, stderr)
	case "agt":
		return cmdAgt(ctx, args[1:], getenv, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// exitCode: 2 for usage errors, 1 for everything else.
func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}
