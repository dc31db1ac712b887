package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
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

// checklist gathers findings in the order they were made; the platforms'
// checks (bot.Doctor) make theirs onto it too.
type checklist struct{ items []finding }

func (c *checklist) Pass(format string, args ...any) {
	c.items = append(c.items, finding{ok: true, what: fmt.Sprintf(format, args...)})
}

func (c *checklist) Warn(fix, format string, args ...any) {
	c.items = append(c.items, finding{ok: true, warn: true, what: fmt.Sprintf(format, args...), fix: fix})
}

func (c *checklist) Fail(fix, format string, args ...any) {
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
	c.Pass("config %s is valid", fs.Lookup("config").Value.String())
	st := doctorStore(c, cfg)
	if st != nil {
		defer st.Close()
	}
	doctorSigningKey(c, cfg)
	if cfg.TLS.CertFile != "" {
		doctorTLS(c, cfg, clock.Now())
	}
	doctorCheckpoints(c, cfg)
	doctorPlatforms(ctx, c, cfg, st)
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

// doctorPlatforms runs each platform's own checks (bot.Doctor), on its
// data in st when doctor could open the file, else through the running
// server's admin API.
func doctorPlatforms(ctx context.Context, c *checklist, cfg *policy.Config, st *store.Bolt) {
	env := bot.DoctorEnv{Timeout: doctorTimeout}
	if _, err := os.Stat(cfg.Store.Path); st == nil && !errors.Is(err, os.ErrNotExist) {
		env.AskRunning = func(ctx context.Context, path string, out any) error {
			b, err := openBackend(cfg)
			if err != nil {
				return err
			}
			defer b.close()
			return b.getJSON(ctx, path, out)
		}
	}
	for _, p := range platforms() {
		d, ok := p.(bot.Doctor)
		if !ok {
			continue
		}
		e := env
		if st != nil {
			e.Data = st.PlatformData(bot.DataName(p))
		}
		d.Doctor(ctx, cfg, e, c)
	}
}

// doctorStore checks the store file and returns it opened read-only when no
// server holds it, for the checks that read it.
func doctorStore(c *checklist, cfg *policy.Config) *store.Bolt {
	path := cfg.Store.Path
	dir := filepath.Dir(path)
	if err := dirWritable(dir); err != nil {
		c.Fail(fmt.Sprintf("create %s and make it writable by the user approvebot runs as", dir), "store directory %s: %v", dir, err)
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		c.Pass("store %s does not exist yet; it will be created at the first start (%s is writable)", path, dir)
		return nil
	}
	if err != nil {
		c.Fail("check the path and its permissions", "store %s: %v", path, err)
		return nil
	}
	if !fi.Mode().IsRegular() {
		c.Fail("store.path must name a file", "store %s is not a regular file", path)
		return nil
	}
	if fi.Mode().Perm()&0o022 != 0 {
		c.Fail("chmod 600 "+path, "store %s has mode %04o: group or others may write it", path, fi.Mode().Perm())
		return nil // store.Open refuses it for the same reason
	}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err != nil {
		c.Fail("make the file readable and writable by the user approvebot runs as", "store %s cannot be written: %v", path, err)
	} else {
		f.Close()
	}
	st, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if err != nil {
		if strings.Contains(err.Error(), "locked by another process") {
			c.Pass("store %s is held by a running approvebot (it checked the file when it started)", path)
			return nil
		}
		c.Fail("restore the file from a backup, or move it aside to start empty", "store: %v", err)
		return nil
	}
	if err := st.Check(); err != nil {
		c.Fail("the file is damaged: restore it from a backup", "store %s is not consistent: %v", path, err)
		st.Close()
		return nil
	}
	c.Pass("store %s is readable and consistent", path)
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
			c.Fail(fmt.Sprintf("make %s writable by the user approvebot runs as, or create the key there", dir), "signing key %s does not exist and cannot be created: %v", path, err)
			return
		}
		c.Pass("signing key %s does not exist yet; it will be created (mode 0600) at the first start", path)
		return
	}
	if _, err := signing.LoadKey(path); err != nil {
		c.Fail("the key must be a PEM PKCS#8 Ed25519 key readable only by approvebot's user (chmod 600)", "%v", err)
		return
	}
	c.Pass("signing key %s is readable and private", path)
}

// doctorTLS checks that the certificate and key load and are in date at now.
func doctorTLS(c *checklist, cfg *policy.Config, now time.Time) {
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		c.Fail("tls.cert_file must be a PEM certificate chain and tls.key_file its PEM private key", "tls: %v", err)
		return
	}
	left := cert.Leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		c.Fail("renew the certificate; approvebot picks up the new files without a restart", "tls: the certificate expired on %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < 14*24*time.Hour:
		c.Warn("renew the certificate; approvebot picks up the new files without a restart", "tls: the certificate expires on %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		c.Pass("tls: certificate for %s valid until %s", strings.Join(cert.Leaf.DNSNames, ", "), cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// doctorCheckpoints checks that the audit checkpoints have somewhere to go,
// and that a checkpoint file can be appended to, away from the store.
func doctorCheckpoints(c *checklist, cfg *policy.Config) {
	a := cfg.Audit
	switch {
	case a.CheckpointFile == "" && !a.CheckpointLog:
		c.Warn("set audit.checkpoints.file to a file on another volume, or audit.checkpoints.log: true",
			"no audit checkpoints: records cut off the end of the store, or an older copy of it, would pass audit verify")
		return
	case a.CheckpointFile == "":
		c.Pass("audit checkpoints go to the log (keep the \"audit checkpoint\" lines where the store's host cannot rewrite them)")
		return
	}
	path, dir := a.CheckpointFile, filepath.Dir(a.CheckpointFile)
	if err := dirWritable(dir); err != nil {
		c.Fail(fmt.Sprintf("create %s, on another volume than the store, writable by the user approvebot runs as", dir), "audit checkpoint directory %s: %v", dir, err)
		return
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			c.Fail("audit.checkpoints.file must name a file", "audit checkpoint file %s is not a regular file", path)
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			c.Fail("make the file writable by the user approvebot runs as", "audit checkpoint file %s cannot be appended to: %v", path, err)
			return
		}
		f.Close()
	}
	if sameFileSystem(dir, filepath.Dir(cfg.Store.Path)) {
		c.Warn("put audit.checkpoints.file on another volume, one the store's writers cannot reach",
			"audit checkpoint file %s is on the same file system as the store", path)
		return
	}
	c.Pass("audit checkpoints go to %s, on another file system than the store", path)
}

// doctorPublicURL checks that approvebot answers at its public address, as
// Slack, Teams and agents will reach it.
func doctorPublicURL(ctx context.Context, c *checklist, base string) {
	u := strings.TrimSuffix(base, "/") + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.Fail("public_url must be an https:// URL", "public URL %s: %v", base, err)
		return
	}
	resp, err := (&http.Client{Timeout: doctorTimeout}).Do(req)
	if err != nil {
		c.Fail("check DNS, the TLS proxy in front of approvebot and that approvebot is running", "public URL %s does not answer: %v", u, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Fail("check that the proxy forwards to approvebot's listen address", "public URL %s answered HTTP %d, want 200", u, resp.StatusCode)
		return
	}
	if !strings.HasPrefix(base, "https://") {
		c.Warn("Slack and Teams only call https:// addresses: put a TLS-terminating proxy in front", "public URL %s answers, but not over https", base)
		return
	}
	c.Pass("public URL %s answers", u)
}
