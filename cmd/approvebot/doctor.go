package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/manifests"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
	"github.com/coreos/go-oidc/v3/oidc"
)

// doctorTimeout bounds each outside call doctor makes, so one unreachable
// platform cannot hang the whole checklist.
const doctorTimeout = 15 * time.Second

// finding is one line of doctor's checklist.
type finding struct {
	ok   bool
	warn bool // ok, but worth a look
	what string
	fix  string // what to do about a failure (or a warning)
}

// checklist gathers findings in the order they were made.
type checklist struct{ items []finding }

func (c *checklist) pass(format string, args ...any) {
	c.items = append(c.items, finding{ok: true, what: fmt.Sprintf(format, args...)})
}

func (c *checklist) warn(fix, format string, args ...any) {
	c.items = append(c.items, finding{ok: true, warn: true, what: fmt.Sprintf(format, args...), fix: fix})
}

func (c *checklist) fail(fix, format string, args ...any) {
	c.items = append(c.items, finding{what: fmt.Sprintf(format, args...), fix: fix})
}

func (c *checklist) failed() int {
	n := 0
	for _, f := range c.items {
		if !f.ok {
			n++
		}
	}
	return n
}

func (c *checklist) print(w io.Writer) {
	for _, f := range c.items {
		mark := "ok  "
		switch {
		case !f.ok:
			mark = "FAIL"
		case f.warn:
			mark = "warn"
		}
		// Channel names, users' details and platform errors come from
		// outside: escaped for the terminal like every other command.
		fmt.Fprintf(w, "%s  %s\n", mark, display.Terminal(f.what))
		if f.fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", display.Terminal(f.fix))
		}
	}
}

// cmdDoctor checks that the configured setup can work: the store, the
// signing key, each platform's credentials, scopes, channels and listed
// people, and the public URL. It changes nothing, and exits non-zero when any
// check fails.
func cmdDoctor(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	publicURL := fs.String("public-url", "", "the address Slack, Teams and agents reach approvebot at (default: public_url from the config)")
	cfg, _, err := loadConfig(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	if *publicURL == "" {
		*publicURL = cfg.PublicURL
	}
	c := &checklist{}
	c.pass("config %s is valid", fs.Lookup("config").Value.String())
	st := doctorStore(c, cfg)
	if st != nil {
		defer st.Close()
	}
	doctorSigningKey(c, cfg)
	if cfg.TLS.CertFile != "" {
		doctorTLS(c, cfg, clock.Now())
	}
	doctorCheckpoints(c, cfg)
	if slack.ConfigOf(cfg) != nil {
		doctorSlack(ctx, c, cfg)
	}
	if teams.ConfigOf(cfg) != nil {
		doctorTeams(ctx, c, cfg, st)
	}
	if web.ConfigOf(cfg) != nil {
		doctorWeb(ctx, c, cfg)
	}
	if *publicURL != "" {
		doctorPublicURL(ctx, c, *publicURL)
	}
	c.print(stdout)
	if n := c.failed(); n > 0 {
		fmt.Fprintf(stdout, "%d of %d checks failed\n", n, len(c.items))
		return fmt.Errorf("doctor: %d of %d checks failed", n, len(c.items))
	}
	fmt.Fprintf(stdout, "all %d checks passed\n", len(c.items))
	return nil
}

// doctorStore checks the store file and returns it opened read-only when no
// server holds it, for the checks that read it.
func doctorStore(c *checklist, cfg *policy.Config) *store.Bolt {
	path := cfg.Store.Path
	dir := filepath.Dir(path)
	if err := dirWritable(dir); err != nil {
		c.fail(fmt.Sprintf("create %s and make it writable by the user approvebot runs as", dir), "store directory %s: %v", dir, err)
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		c.pass("store %s does not exist yet; it will be created at the first start (%s is writable)", path, dir)
		return nil
	}
	if err != nil {
		c.fail("check the path and its permissions", "store %s: %v", path, err)
		return nil
	}
	if !fi.Mode().IsRegular() {
		c.fail("store.path must name a file", "store %s is not a regular file", path)
		return nil
	}
	if fi.Mode().Perm()&0o022 != 0 {
		c.fail("chmod 600 "+path, "store %s has mode %04o: group or others may write it", path, fi.Mode().Perm())
		return nil // store.Open refuses it for the same reason
	}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err != nil {
		c.fail("make the file readable and writable by the user approvebot runs as", "store %s cannot be written: %v", path, err)
	} else {
		f.Close()
	}
	st, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if err != nil {
		if strings.Contains(err.Error(), "locked by another process") {
			c.pass("store %s is held by a running approvebot (it checked the file when it started)", path)
			return nil
		}
		c.fail("restore the file from a backup, or move it aside to start empty", "store: %v", err)
		return nil
	}
	if err := st.Check(); err != nil {
		c.fail("the file is damaged: restore it from a backup", "store %s is not consistent: %v", path, err)
		st.Close()
		return nil
	}
	c.pass("store %s is readable and consistent", path)
	return st
}

// dirWritable tells whether a file can be created in dir, by creating one.
func dirWritable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	f, err := os.CreateTemp(dir, ".approvebot-doctor-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func doctorSigningKey(c *checklist, cfg *policy.Config) {
	path := cfg.Signing.KeyFile
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		dir := filepath.Dir(path)
		if err := dirWritable(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.fail(fmt.Sprintf("make %s writable by the user approvebot runs as, or create the key there", dir), "signing key %s does not exist and cannot be created: %v", path, err)
			return
		}
		c.pass("signing key %s does not exist yet; it will be created (mode 0600) at the first start", path)
		return
	}
	if _, err := signing.LoadKey(path); err != nil {
		c.fail("the key must be a PEM PKCS#8 Ed25519 key readable only by approvebot's user (chmod 600)", "%v", err)
		return
	}
	c.pass("signing key %s is readable and private", path)
}

// doctorTLS checks that the certificate and key load and are in date at now.
func doctorTLS(c *checklist, cfg *policy.Config, now time.Time) {
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		c.fail("tls.cert_file must be a PEM certificate chain and tls.key_file its PEM private key", "tls: %v", err)
		return
	}
	left := cert.Leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		c.fail("renew the certificate; approvebot picks up the new files without a restart", "tls: the certificate expired on %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < 14*24*time.Hour:
		c.warn("renew the certificate; approvebot picks up the new files without a restart", "tls: the certificate expires on %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		c.pass("tls: certificate for %s valid until %s", strings.Join(cert.Leaf.DNSNames, ", "), cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// doctorCheckpoints checks that the audit checkpoints have somewhere to go,
// and that a checkpoint file can be appended to, away from the store.
func doctorCheckpoints(c *checklist, cfg *policy.Config) {
	a := cfg.Audit
	switch {
	case a.CheckpointFile == "" && !a.CheckpointLog:
		c.warn("set audit.checkpoints.file to a file on another volume, or audit.checkpoints.log: true",
			"no audit checkpoints: records cut off the end of the store, or an older copy of it, would pass audit verify")
		return
	case a.CheckpointFile == "":
		c.pass("audit checkpoints go to the log (keep the \"audit checkpoint\" lines where the store's host cannot rewrite them)")
		return
	}
	path, dir := a.CheckpointFile, filepath.Dir(a.CheckpointFile)
	if err := dirWritable(dir); err != nil {
		c.fail(fmt.Sprintf("create %s, on another volume than the store, writable by the user approvebot runs as", dir), "audit checkpoint directory %s: %v", dir, err)
		return
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			c.fail("audit.checkpoints.file must name a file", "audit checkpoint file %s is not a regular file", path)
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			c.fail("make the file writable by the user approvebot runs as", "audit checkpoint file %s cannot be appended to: %v", path, err)
			return
		}
		f.Close()
	}
	if sameFileSystem(dir, filepath.Dir(cfg.Store.Path)) {
		c.warn("put audit.checkpoints.file on another volume, one the store's writers cannot reach",
			"audit checkpoint file %s is on the same file system as the store", path)
		return
	}
	c.pass("audit checkpoints go to %s, on another file system than the store", path)
}

// doctorSlack checks the bot token, its scopes, the bot's membership of
// every configured channel, and every listed person and user group.
func doctorSlack(ctx context.Context, c *checklist, cfg *policy.Config) {
	sc := slack.ConfigOf(cfg)
	api := slack.NewInspector(sc.BotToken, sc.APIURL, &http.Client{Timeout: doctorTimeout})
	actx, cancel := context.WithTimeout(ctx, doctorTimeout)
	scopes, team, err := api.AuthTest(actx)
	cancel()
	if err != nil {
		c.fail("copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page into slack.bot_token", "slack: bot token: %v", err)
		return
	}
	c.pass("slack: bot token is valid (workspace %s)", team)
	if scopes == nil {
		c.warn("check the app's scopes by hand against manifests/slack/manifest.yaml", "slack: Slack did not list the token's scopes")
	} else if missing := missingScopes(scopes, usesSlackDMs(cfg)); len(missing) > 0 {
		c.fail("add "+strings.Join(missing, ", ")+" under OAuth & Permissions > Bot Token Scopes (or re-apply manifests/slack/manifest.yaml), then reinstall the app", "slack: the bot token lacks scopes %s", strings.Join(missing, ", "))
	} else {
		c.pass("slack: the bot token has every scope approvebot needs")
	}

	channels, users, usergroups := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for name, g := range cfg.Approvers {
		s, ok := g.Side(slack.Name)
		if !ok {
			continue
		}
		for _, ch := range s.Channels {
			channels[ch] = append(channels[ch], name)
		}
		for _, u := range s.Users {
			users[u] = append(users[u], name)
		}
		for _, ug := range s.Groups {
			usergroups[ug] = append(usergroups[ug], name)
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(channels)) {
		groups := strings.Join(channels[ch], ", ")
		if strings.HasPrefix(ch, "D") {
			c.pass("slack: channel %s (%s) is a direct message; membership is not checked", ch, groups)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
		info, err := api.Channel(cctx, ch)
		cancel()
		switch {
		case err != nil && slack.ErrorCode(err) == "channel_not_found":
			c.fail("check the channel id (channel details > About, at the bottom); for a private channel, invite the bot first: /invite @approvebot", "slack: channel %s (%s) does not exist or the bot cannot see it", ch, groups)
		case err != nil && slack.ErrorCode(err) == "missing_scope":
			c.fail("add channels:read and groups:read to the bot's scopes and reinstall the app", "slack: cannot check channel %s (%s): the token lacks the scope to read channels", ch, groups)
		case err != nil:
			c.fail("check that Slack is reachable from here", "slack: channel %s (%s): %v", ch, groups, err)
		case !info.Member:
			c.fail(fmt.Sprintf("in Slack, open #%s and run /invite @approvebot", info.Name), "slack: the bot is not a member of channel %s #%s (%s)", ch, info.Name, groups)
		case info.Archived:
			c.fail("unarchive the channel or configure another one", "slack: channel %s #%s (%s) is archived", ch, info.Name, groups)
		default:
			c.pass("slack: the bot is a member of channel %s #%s (%s)", ch, info.Name, groups)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		groups := strings.Join(users[u], ", ")
		cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
		user, err := api.Person(cctx, u)
		cancel()
		switch {
		case err != nil && (slack.ErrorCode(err) == "users_not_found" || slack.ErrorCode(err) == "user_not_found"):
			c.fail("check the spelling, or list the person by Slack user id (profile > ... > Copy member ID)", "slack: approver %s (%s) is not a member of the workspace", u, groups)
		case err != nil:
			c.fail("check that Slack is reachable from here and the token has users:read and users:read.email", "slack: approver %s (%s): %v", u, groups, err)
		case user.Deleted:
			c.fail("remove the person from the group or list someone else", "slack: approver %s (%s) is deactivated", u, groups)
		case user.Bot:
			c.fail("list people, not bots", "slack: approver %s (%s) is a bot", u, groups)
		default:
			c.pass("slack: approver %s (%s) resolves to %s", u, groups, user.UserID)
		}
	}
	for _, ug := range slices.Sorted(maps.Keys(usergroups)) {
		groups := strings.Join(usergroups[ug], ", ")
		cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
		members, err := api.UsergroupMembers(cctx, ug)
		cancel()
		switch {
		case err != nil && slack.ErrorCode(err) == "no_such_subteam":
			c.fail("check the user group id (it starts with S; find it in the group's page URL)", "slack: user group %s (%s) does not exist", ug, groups)
		case err != nil:
			c.fail("check that Slack is reachable from here and the token has usergroups:read", "slack: user group %s (%s): %v", ug, groups, err)
		case len(members) == 0:
			c.fail("add people to the user group, or list approvers another way", "slack: user group %s (%s) has no members, so nobody can approve through it", ug, groups)
		default:
			c.pass("slack: user group %s (%s) has %d members", ug, groups, len(members))
		}
	}
}

// requiredSlackScopes reads the bot scopes from the embedded app manifest,
// so the manifest stays the one list of what approvebot needs.
func requiredSlackScopes() []string {
	var m struct {
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
	}
	if err := yaml.Unmarshal(manifests.SlackManifest, &m); err != nil {
		panic("embedded Slack manifest: " + err.Error()) // a build defect, caught by the tests
	}
	return m.OAuth.Scopes.Bot
}

// missingScopes lists the manifest's scopes the token lacks. im:write is
// needed only where a group has approvers messaged directly, so an app
// installed before direct messages existed is not failed for it.
func missingScopes(have []string, dms bool) []string {
	var missing []string
	for _, s := range requiredSlackScopes() {
		if s == "im:write" && !dms {
			continue
		}
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func usesSlackDMs(cfg *policy.Config) bool {
	for _, g := range cfg.Approvers {
		if g.Sides[slack.Name].DM {
			return true
		}
	}
	return false
}

// doctorTeams checks that the bot can authenticate and that approvebot has
// learned every configured channel (the app is installed in its team).
func doctorTeams(ctx context.Context, c *checklist, cfg *policy.Config, st *store.Bolt) {
	tc := teams.ConfigOf(cfg)
	var conv bot.KV = emptyConversations{}
	if st != nil {
		conv = st.PlatformData(teams.Name)
	}
	t, err := teams.New(teams.Config{
		AppID: tc.AppID, AppPassword: tc.AppPassword, TenantID: tc.TenantID,
		OpenIDMetadataURL: tc.OpenIDMetadataURL, TokenURL: tc.TokenURL,
		HTTPClient: &http.Client{Timeout: doctorTimeout}, Conversations: conv,
	})
	if err != nil {
		c.fail("fix the teams section of the config", "teams: %v", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	err = t.Check(cctx)
	cancel()
	if err != nil {
		c.fail("check teams.app_id, teams.app_password (a current client secret of the app registration) and teams.tenant_id, and that login.microsoftonline.com and login.botframework.com are reachable", "%v", err)
	} else {
		c.pass("teams: the Bot Framework's signing keys load and a bot token was obtained")
	}

	var known []teams.Channel
	err = nil
	switch {
	case st != nil:
		known, err = t.Channels()
	default:
		if _, serr := os.Stat(cfg.Store.Path); errors.Is(serr, os.ErrNotExist) {
			break // never started: nothing is installed yet
		}
		var b *backend
		if b, err = openBackend(cfg); err == nil {
			defer b.close()
			err = b.getJSON(ctx, "/admin/teams/channels", &known)
		}
	}
	if err != nil {
		c.fail("start approvebot (or set admin.token so doctor can ask the running one)", "teams: cannot read the channels approvebot knows: %v", err)
		return
	}
	byID := map[string]teams.Channel{}
	for _, k := range known {
		byID[k.ChannelID] = k
	}
	channels := map[string][]string{}
	for name, g := range cfg.Approvers {
		if s, ok := g.Side(teams.Name); ok {
			for _, ch := range s.Channels {
				channels[ch] = append(channels[ch], name)
			}
		}
	}
	for _, ch := range slices.Sorted(maps.Keys(channels)) {
		groups := strings.Join(channels[ch], ", ")
		if k, ok := byID[ch]; ok {
			c.pass("teams: the app is installed where channel %s is (team %s) (%s)", ch, cmpOr(k.TeamName, k.TeamID), groups)
			continue
		}
		c.fail("add the app to the team that holds this channel (build it with approvebot teams package), with approvebot running so it learns the team's channels; approvebot teams channels lists what it knows", "teams: channel %s (%s) is unknown to approvebot: the app is not installed in its team", ch, groups)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// emptyConversations stands in for the store when it cannot be read: the
// adapter needs one to be built, and doctor's checks read channels elsewhere.
type emptyConversations struct{}

func (emptyConversations) Put(string, []byte) error         { return errors.New("read only") }
func (emptyConversations) Get(string) ([]byte, error)       { return nil, nil }
func (emptyConversations) List() (map[string][]byte, error) { return map[string][]byte{}, nil }
func (emptyConversations) Delete(string) error              { return errors.New("read only") }

// doctorPublicURL checks that approvebot answers at its public address, as
// Slack, Teams and agents will reach it.
func doctorPublicURL(ctx context.Context, c *checklist, base string) {
	u := strings.TrimSuffix(base, "/") + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.fail("public_url must be an https:// URL", "public URL %s: %v", base, err)
		return
	}
	resp, err := (&http.Client{Timeout: doctorTimeout}).Do(req)
	if err != nil {
		c.fail("check DNS, the TLS proxy in front of approvebot and that approvebot is running", "public URL %s does not answer: %v", u, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.fail("check that the proxy forwards to approvebot's listen address", "public URL %s answered HTTP %d, want 200", u, resp.StatusCode)
		return
	}
	if !strings.HasPrefix(base, "https://") {
		c.warn("Slack and Teams only call https:// addresses: put a TLS-terminating proxy in front", "public URL %s answers, but not over https", base)
		return
	}
	c.pass("public URL %s answers", u)
}

// doctorWeb checks that the web inbox's identity provider publishes its
// discovery document at the configured issuer.
func doctorWeb(ctx context.Context, c *checklist, cfg *policy.Config) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wc := web.ConfigOf(cfg)
	if _, err := oidc.NewProvider(ctx, wc.Issuer); err != nil {
		c.fail("check web.issuer: it must be the provider's issuer exactly (its /.well-known/openid-configuration names it)",
			"web inbox: identity provider %s: %v", wc.Issuer, err)
		return
	}
	c.pass("web inbox: identity provider %s answers; register the redirect URL %s with it", wc.Issuer, wc.RedirectURL)
}
