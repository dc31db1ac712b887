package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// helpText is returned by a command asked for -h or --help: run prints it to
// stdout and exits 0, as help asked for is not a mistake.
type helpText string

func (h helpText) Error() string { return "help requested" }

// synopsis is each flag set's usage line, after "approvebot <name> ".
var synopsis = map[string]string{
	"serve":          "--config FILE\n\nRun the service until SIGTERM or SIGINT.",
	"demo":           "[--config FILE] [--listen 127.0.0.1:8080]\n\nTry approvebot: the web inbox on loopback with a demo sign-in and a demo agent;\nno credentials or configuration needed. Ctrl-C stops it.",
	"check":          "--config FILE\n\nValidate the config, warn about what would fail at start, and print a summary.",
	"doctor":         "--config FILE [--public-url URL]\n\nCheck that the setup works: store, signing key, Slack and Teams credentials, channels, people.",
	"audit verify":   "--config FILE\n\nRecompute every digest and link of the audit trail; exit 1 and name the first break.",
	"audit export":   "--config FILE [--request ID] [--since T] [--until T | --before T]\n\nWrite audit records as JSON lines.",
	"compact":        "--config FILE\n\nWith the service stopped: apply store.retention, then shrink the store file to its\nlive data (copied into a new file, checked, renamed over the store).",
	"audit show":     "--config FILE ID\n\nPrint one request's story.",
	"teams channels": "--config FILE\n\nList the Teams channels the bot knows.",
	"teams package":  "--app-id ID [--out FILE] [--privacy-url URL] [--terms-url URL]\n\nBuild the Teams app package (zip).",
	"backup":         "--config FILE --out FILE\n\nWrite a consistent copy of the store file: from the running service through the\nadmin API when it holds the file, else from the file itself.",
	"agt chain":      "--config FILE --chain ID\n\nPrint the AGT approval chain (JSON) that accepts approvebot's answers for a chain.",
	"reload":         "--config FILE\n\nMake the running service re-read its config (as SIGHUP does); say why when it keeps the old one.",
	"version":        "\n\nPrint the module version, the VCS revision and the Go version it was built with.",
}

// groupHelp is the usage of commands that only hold subcommands.
var groupHelp = map[string]string{
	"audit": `Usage:
  approvebot audit verify --config FILE
  approvebot audit export --config FILE [--request ID] [--since T] [--until T | --before T]
  approvebot audit show --config FILE ID

Run "approvebot audit SUBCOMMAND -h" for a subcommand's flags.
`,
	"agt": `Usage:
  approvebot agt chain --config FILE --chain ID

Run "approvebot agt chain -h" for its flags.
`,
	"teams": `Usage:
  approvebot teams channels --config FILE
  approvebot teams package --app-id ID [--out FILE] [--privacy-url URL] [--terms-url URL]

Run "approvebot teams SUBCOMMAND -h" for a subcommand's flags.
`,
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// parseFlags parses args into fs. Help asked for comes back as helpText (the
// usage, for stdout); a mistake prints the usage to stderr and comes back as
// a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: approvebot %s %s\n", fs.Name(), synopsisOf(fs.Name()))
		var flags bytes.Buffer
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(&buf)
		if flags.Len() > 0 {
			fmt.Fprintf(fs.Output(), "\nFlags:\n%s", flags.String())
		}
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return helpText(buf.String())
	}
	if err != nil {
		io.Copy(stderr, &buf)
		return usageError(err.Error())
	}
	return nil
}

func synopsisOf(name string) string {
	if s, ok := synopsis[name]; ok {
		return s
	}
	return "[flags]"
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("version", flag.ContinueOnError), args, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// versionLine says what this binary is, from the build information the Go
// toolchain records: the module version ("(devel)" for a build of a source
// tree without a tag), and the VCS revision, its time and whether the tree
// had uncommitted changes.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "approvebot (no build information) " + runtime.Version()
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var parts []string
	if rev != "" {
		parts = append(parts, "revision "+rev)
	}
	if at != "" {
		parts = append(parts, at)
	}
	if modified == "true" {
		parts = append(parts, "modified")
	}
	line := "approvebot " + v
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	return line + " " + info.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}
