package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// backend is where operator commands read from: the store file when no
// server holds it, otherwise the running server's admin API.
type backend struct {
	store  *store.Bolt // set when the file could be opened
	server string      // base URL of the running server
	token  string
	client *http.Client
}

func openBackend(cfg *policy.Config) (*backend, error) {
	st, err := store.Open(cfg.Store.Path, store.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if err == nil {
		return &backend{store: st}, nil
	}
	if errors.Is(err, store.ErrNotStore) {
		// Empty, truncated or inconsistent: no server can be serving it.
		return nil, err
	}
	if _, statErr := os.Stat(cfg.Store.Path); statErr != nil {
		return nil, fmt.Errorf("store %s: %w", cfg.Store.Path, statErr)
	}
	b, aerr := adminBackend(cfg)
	if aerr != nil {
		return nil, fmt.Errorf("%v; %v", err, aerr)
	}
	return b, nil
}

// adminBackend is the running server's admin API, at the address the config
// names.
func adminBackend(cfg *policy.Config) (*backend, error) {
	if cfg.Admin.Token == "" {
		return nil, errors.New("set admin.token in the config so this command can ask the running server")
	}
	host, port, splitErr := net.SplitHostPort(cfg.Listen)
	if splitErr != nil {
		return nil, fmt.Errorf("listen %q: %w", cfg.Listen, splitErr)
	}
	if port == "0" {
		return nil, fmt.Errorf("the running server holds it, but listen %q names no fixed port to ask it on: set listen to the address it serves on", cfg.Listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	b := &backend{
		server: "http://" + net.JoinHostPort(host, port),
		token:  cfg.Admin.Token,
		client: &http.Client{Timeout: 5 * time.Minute},
	}
	if cfg.TLS.CertFile != "" {
		b.server = "https://" + net.JoinHostPort(host, port)
		b.client.Transport = &http.Transport{TLSClientConfig: pinnedTLS(cfg.TLS.CertFile)}
	}
	return b, nil
}

// pinnedTLS trusts exactly the certificate in certFile, the one the server
// serves: the operator commands dial the loopback address, which a real
// certificate (issued for a DNS name) does not name, and the file is the
// stronger proof anyway. It is read at each handshake, as the server reads
// it, so a renewal is followed.
func pinnedTLS(certFile string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below against the file instead of the
		// system's roots and the host name.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pair, err := os.ReadFile(certFile)
			if err != nil {
				return fmt.Errorf("read %s to check the server's certificate: %w", certFile, err)
			}
			block, _ := pem.Decode(pair)
			if block == nil || block.Type != "CERTIFICATE" {
				return fmt.Errorf("%s holds no PEM certificate", certFile)
			}
			if len(raw) == 0 || !bytes.Equal(raw[0], block.Bytes) {
				return fmt.Errorf("the server's certificate is not the one in %s", certFile)
			}
			return nil
		},
	}
}

// operatorBackend reads the config named on the command line and opens what
// an operator command reads from.
func operatorBackend(fs *flag.FlagSet, args []string, getenv func(string) (string, bool), stderr io.Writer) (*policy.Config, []string, *backend, error) {
	cfg, rest, err := loadConfig(fs, args, getenv, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := openBackend(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, rest, b, nil
}

func (b *backend) close() {
	if b.store != nil {
		b.store.Close()
	}
}

// get calls the admin API and returns the body, or an error naming the status.
func (b *backend) get(ctx context.Context, path string, q url.Values, w io.Writer) error {
	u := b.server + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		return fmt.Errorf("server answered %s: %s", resp.Status, e.Error)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// getJSON calls the admin API and decodes its JSON answer into v.
func (b *backend) getJSON(ctx context.Context, path string, v any) error {
	var buf bytes.Buffer
	if err := b.get(ctx, path, nil, &buf); err != nil {
		return err
	}
	return json.Unmarshal(buf.Bytes(), v)
}

func cmdAudit(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("audit needs a subcommand: verify, export or show")
	}
	if isHelp(args[0]) {
		return helpText(groupHelp["audit"])
	}
	sub := args[0]
	switch sub {
	case "verify", "export", "show":
	default:
		return usageError(fmt.Sprintf("unknown audit subcommand %q (want verify, export or show)", sub))
	}
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	request := fs.String("request", "", "export: only this request's records")
	since := fs.String("since", "", "export: records at or after this RFC 3339 time")
	until := fs.String("until", "", "export: records before this RFC 3339 time")
	before := fs.String("before", "", "export: records before this RFC 3339 time (what store.retention would remove first)")
	checkpoints := fs.String("checkpoints", "", "verify: a file of signed audit checkpoints (audit.checkpoints.file, or the \"audit checkpoint\" log lines)")
	receipts := fs.String("receipts", "", "verify: a file of decisions agents kept, one a line (answer JSON or identity_assertion token)")
	jwks := fs.String("jwks", "", "verify: the JWKS to check checkpoints and receipts with (default: the public half of signing.key_file)")
	cfg, rest, b, err := operatorBackend(fs, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	defer b.close()

	switch sub {
	case "verify":
		// The anchors are read before the log, so that a running server's
		// log can only have grown past them by the time it is read.
		anchors, err := readAnchors(cfg, *checkpoints, *receipts, *jwks)
		if err != nil {
			return err
		}
		var rep store.VerifyReport
		if b.store != nil {
			rep, err = bot.VerifyAudit(b.store)
		} else {
			err = b.getJSON(ctx, "/admin/audit/verify", &rep)
		}
		if err != nil {
			return err
		}
		if rep.Break != nil {
			fmt.Fprintf(stdout, "BROKEN at %s\n", display.Terminal(rep.Break.Error()))
			fmt.Fprintf(stdout, "checked %d audit records, %d requests, %d chain entries before the break\n", rep.Records, rep.Requests, rep.Entries)
			return errors.New("audit trail verification failed")
		}
		var seal *store.Head
		if rep.Seal != nil {
			// Records before the seal were removed by retention: the log is
			// proved from the seal on, and the seal only by its signature.
			keys, err := verifyKeys(cfg, *jwks)
			if err != nil {
				return fmt.Errorf("the audit log begins after a retention seal, whose signature must be checked: %w", err)
			}
			h, err := bot.VerifySeal(rep.Seal, keys, cfg.Signing.Issuer)
			if err != nil {
				fmt.Fprintf(stdout, "BROKEN at the retention seal: %v\n", err)
				return errors.New("audit trail verification failed: the retention seal the log begins after is not one approvebot signed")
			}
			seal = &h
		}
		fmt.Fprintf(stdout, "audit trail intact: %d records, %d requests, %d chain entries\nhead %s\n", rep.Records, rep.Requests, rep.Entries, rep.Head)
		if seal != nil {
			fmt.Fprintf(stdout, "begins after the signed retention seal of record %d (%s): the records up to it were removed by store.retention\n", seal.Seq, seal.Digest)
		}
		if anchors == nil {
			return nil
		}
		var arep store.AnchorReport
		if b.store != nil {
			arep, err = b.store.CheckAnchors(anchors)
		} else {
			arep, err = b.checkAnchors(ctx, seal, anchors)
		}
		if err != nil {
			return err
		}
		if arep.Break != nil {
			fmt.Fprintf(stdout, "BROKEN at %s\n", display.Terminal(arep.Break.Error()))
			return errors.New("audit trail verification failed: the log does not hold what its checkpoints or receipts vouch for")
		}
		if arep.BeforeSeal > 0 {
			fmt.Fprintf(stdout, "%d checkpoints and receipts vouch for records retention removed: check those against the records exported before removal\n", arep.BeforeSeal)
		}
		n := arep.Newest
		if n == nil {
			return nil
		}
		fmt.Fprintf(stdout, "anchored: the log holds all %d checkpoints and receipts; the newest, %s, vouches for record %d signed at %s, and the log reaches record %d\n",
			arep.Anchors, n.Source, n.Seq, n.At.UTC().Format(time.RFC3339), arep.Head.Seq)
		return nil
	case "export":
		if *until != "" && *before != "" {
			return usageError("--until and --before say the same: give one")
		}
		f := bot.AuditFilter{RequestID: *request}
		q := url.Values{}
		for _, p := range []struct {
			flag, val string
			dst       *time.Time
		}{{"since", *since, &f.Since}, {"until", *until, &f.Until}, {"before", *before, &f.Until}} {
			if p.val == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, p.val)
			if err != nil {
				return usageError(fmt.Sprintf("--%s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", p.flag))
			}
			*p.dst = t
			q.Set(strings.Replace(p.flag, "before", "until", 1), p.val)
		}
		if *request != "" {
			q.Set("request", *request)
		}
		out := stdout
		if isTerminal(stdout) {
			// JSON escapes control characters already, but not bidi or
			// zero-width ones; escaped here they stay valid JSON with the
			// same meaning. A pipe or file gets the records byte for byte.
			tw := &terminalWriter{w: stdout}
			defer tw.Flush()
			out = tw
		}
		if b.store == nil {
			return b.get(ctx, "/admin/audit", q, out)
		}
		if f.RequestID != "" {
			key, err := bot.ResolveRequestID(b.store, f.RequestID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				f.RequestID = key
			}
		}
		return b.store.Audit(0, func(rec store.Record, raw []byte) error {
			if !f.Match(rec) {
				return nil
			}
			_, err := fmt.Fprintf(out, "%s\n", raw)
			return err
		})
	case "show":
		if len(rest) != 1 {
			return usageError("audit show needs one request id")
		}
		var story bot.Story
		if b.store != nil {
			s, err := bot.RequestStory(b.store, rest[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no approval request %q", rest[0])
			}
			if err != nil {
				return err
			}
			story = *s
		} else if err := b.getJSON(ctx, "/admin/requests/"+url.PathEscape(rest[0]), &story); err != nil {
			return err
		}
		printStory(stdout, &story)
		return nil
	default:
		return usageError(fmt.Sprintf("unknown audit subcommand %q (want verify, export or show)", sub))
	}
}

// readAnchors reads and verifies the checkpoints and receipts named on the
// command line (nil when none was named).
func readAnchors(cfg *policy.Config, checkpoints, receipts, jwksFile string) ([]store.Anchor, error) {
	if checkpoints == "" && receipts == "" {
		if jwksFile != "" {
			return nil, usageError("--jwks checks --checkpoints or --receipts: name one of them")
		}
		return nil, nil
	}
	keys, err := verifyKeys(cfg, jwksFile)
	if err != nil {
		return nil, err
	}
	anchors := []store.Anchor{}
	for _, src := range []struct {
		flag, path string
		read       func(io.Reader, string, *signing.KeySet, string) ([]store.Anchor, error)
	}{{"checkpoints", checkpoints, bot.ReadCheckpoints}, {"receipts", receipts, bot.ReadReceipts}} {
		if src.path == "" {
			continue
		}
		f, err := os.Open(src.path)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", src.flag, err)
		}
		got, err := src.read(f, src.path, keys, cfg.Signing.Issuer)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("--%s %s holds nothing to check the log against", src.flag, src.path)
		}
		anchors = append(anchors, got...)
	}
	return anchors, nil
}

// verifyKeys is the public key signatures are checked with: from --jwks,
// or the public half of signing.key_file.
func verifyKeys(cfg *policy.Config, jwksFile string) (*signing.KeySet, error) {
	var jwks []byte
	if jwksFile != "" {
		var err error
		if jwks, err = os.ReadFile(jwksFile); err != nil {
			return nil, fmt.Errorf("--jwks: %w", err)
		}
	} else {
		key, err := signing.LoadKey(cfg.Signing.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("checking signatures needs the public key: %w (or give --jwks FILE, saved from /.well-known/jwks.json)", err)
		}
		jwks = signing.NewSigner(key, cfg.Signing.Issuer).JWKS()
	}
	keys, err := signing.ParseKeySet(jwks)
	if err != nil {
		return nil, fmt.Errorf("--jwks %s: %w", jwksFile, err)
	}
	return keys, nil
}

// checkAnchors holds anchors against the running server's log, read through
// the admin API's export.
func (b *backend) checkAnchors(ctx context.Context, seal *store.Head, anchors []store.Anchor) (store.AnchorReport, error) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() { pw.CloseWithError(b.get(ctx, "/admin/audit", nil, pw)) }()
	dec := json.NewDecoder(pr)
	kept, before := store.AfterSeal(seal, anchors)
	rep, err := store.CheckAnchors(kept, func(yield func(store.Head) error) error {
		if seal != nil {
			if err := yield(*seal); err != nil {
				return err
			}
		}
		for {
			var rec struct {
				Seq    uint64 `json:"seq"`
				Digest string `json:"digest"`
			}
			if err := dec.Decode(&rec); err == io.EOF {
				return nil
			} else if err != nil {
				return fmt.Errorf("read the audit log from the running server: %w", err)
			}
			if err := yield(store.Head{Seq: rec.Seq, Digest: rec.Digest}); err != nil {
				return err
			}
		}
	})
	rep.Anchors += before
	rep.BeforeSeal = before
	return rep, err
}

// printStory prints a request's story for an operator's terminal. Agent
// text (the action, the agent id, reasons, delivery errors) is shown with
// every control, bidi and zero-width character escaped, so an agent cannot
// move the cursor, retitle the window or reorder the line.
func printStory(out io.Writer, s *bot.Story) {
	var buf bytes.Buffer
	writeStory(&buf, s)
	_, _ = io.WriteString(out, display.Terminal(buf.String()))
}

func writeStory(w io.Writer, s *bot.Story) {
	r := s.Request
	fmt.Fprintf(w, "request %s (%s schema, caller %s)\n", r.ID, r.Schema, r.Caller)
	if r.PublicID() != r.ID {
		fmt.Fprintf(w, "  agent's approval_request_id: %q\n", r.PublicID())
	}
	fmt.Fprintf(w, "  what:     %s by agent %q\n", r.Title(), r.Fields.AgentID)
	fmt.Fprintf(w, "  opened:   %s\n  deadline: %s\n  status:   %s\n", r.CreatedAt.UTC().Format(time.RFC3339), r.Deadline.UTC().Format(time.RFC3339), r.Status)
	if r.Resolution != nil {
		fmt.Fprintf(w, "  decided:  %s by %s: %s\n", r.Resolution.ResolvedAt.UTC().Format(time.RFC3339), r.Resolution.Approver, r.Resolution.Reason)
	}
	for _, d := range r.Destinations {
		line := fmt.Sprintf("  shown:    %s %s (stage %d): %s", d.Platform, d.Channel, d.Stage+1, d.State)
		if d.Error != "" {
			line += " — " + d.Error
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "events:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, raw := range s.Events {
		var rec store.Record
		if json.Unmarshal(raw, &rec) != nil {
			continue
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", rec.Seq, rec.At, rec.Type, rec.Actor, compact(rec.Detail))
	}
	tw.Flush()
}

func compact(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func cmdTeams(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("teams needs a subcommand: channels or package")
	}
	if isHelp(args[0]) {
		return helpText(groupHelp["teams"])
	}
	switch args[0] {
	case "package":
		fs := flag.NewFlagSet("teams package", flag.ContinueOnError)
		appID := fs.String("app-id", "", "the Azure Bot's Microsoft App ID (a GUID)")
		out := fs.String("out", "approvebot-teams.zip", "where to write the package")
		privacy := fs.String("privacy-url", teams.DefaultPrivacyURL, "the app's privacy statement (https)")
		terms := fs.String("terms-url", teams.DefaultTermsURL, "the app's terms of use (https)")
		if err := parseFlags(fs, args[1:], stderr); err != nil {
			return err
		}
		if *appID == "" {
			return usageError("teams package needs --app-id")
		}
		pkg := teams.Package{AppID: *appID, PrivacyURL: *privacy, TermsURL: *terms}
		if err := pkg.Check(); err != nil {
			return usageError(err.Error())
		}
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if err := pkg.Write(f); err != nil {
			f.Close()
			os.Remove(*out)
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: upload it in Teams (Apps > Manage your apps > Upload an app) and add it to each approvers' team\n", *out)
		return nil
	case "channels":
		cfg, _, b, err := operatorBackend(flag.NewFlagSet("teams channels", flag.ContinueOnError), args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		defer b.close()
		var chans []teams.Channel
		if b.store != nil {
			chans, err = offlineChannels(cfg, b.store)
		} else {
			err = b.getJSON(ctx, "/admin/teams/channels", &chans)
		}
		if err != nil {
			return err
		}
		if len(chans) == 0 {
			fmt.Fprintln(stdout, "no Teams channels known yet: add the app to a team, then run this again")
			return nil
		}
		printChannels(stdout, chans)
		return nil
	default:
		return usageError(fmt.Sprintf("unknown teams subcommand %q (want channels or package)", args[0]))
	}
}

// offlineChannels reads the channels from the store file when the server is
// stopped.
func offlineChannels(cfg *policy.Config, st *store.Bolt) ([]teams.Channel, error) {
	tc := teams.ConfigOf(cfg)
	if tc == nil {
		return nil, errors.New("the config has no teams section")
	}
	tc.Conversations = st.PlatformData(bot.DataName(teams.Platform{}))
	t, err := teams.New(*tc)
	if err != nil {
		return nil, err
	}
	return t.Channels()
}

// printChannels lists channels; team and channel names come from Teams and
// are printed terminal-safe.
func printChannels(out io.Writer, chans []teams.Channel) {
	var w bytes.Buffer
	defer func() { _, _ = io.WriteString(out, display.Terminal(w.String())) }()
	tw := tabwriter.NewWriter(&w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tCHANNEL\tCHANNEL ID (for approvers.<group>.teams.channels)\tTENANT\tLAST SEEN")
	for _, c := range chans {
		team, name := c.TeamName, c.ChannelName
		if team == "" {
			team = c.TeamID
		}
		if name == "" {
			name = "General"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", team, name, c.ChannelID, c.TenantID, c.UpdatedAt.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// terminalWriter escapes what display.Terminal escapes, line by line (a line
// is held until its newline so an escape is never split across writes).
type terminalWriter struct {
	w       io.Writer
	pending []byte
}

func (t *terminalWriter) Write(p []byte) (int, error) {
	t.pending = append(t.pending, p...)
	if i := bytes.LastIndexByte(t.pending, '\n'); i >= 0 {
		if _, err := io.WriteString(t.w, display.Terminal(string(t.pending[:i+1]))); err != nil {
			return 0, err
		}
		t.pending = append(t.pending[:0], t.pending[i+1:]...)
	}
	return len(p), nil
}

// Flush writes what is left after the last newline.
func (t *terminalWriter) Flush() {
	if len(t.pending) > 0 {
		_, _ = io.WriteString(t.w, display.Terminal(string(t.pending)))
		t.pending = nil
	}
}
