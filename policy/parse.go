package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot/policy/confnode"
)

// Defaults the file may leave out. Each platform's are its package's.
const (
	DefaultStorePath      = "approvebot.db"
	DefaultIssuer         = "approvebot"
	DefaultSigningKeyName = "approvebot-signing.key"

	// MaxTimeout bounds every timeout in the file: a request nobody answers
	// within a day is better denied and asked again than left hanging.
	MaxTimeout = confnode.MaxDuration
	// MinSecretLength is the shortest caller or admin token accepted.
	MinSecretLength = 16
)

// MinStoreSize is the smallest store.max_size accepted: below it a handful of
// requests would fill the file.
const MinStoreSize = 1 << 20

// Load reads and parses the configuration file at path, with the sections
// of platforms. Errors name the file.
func Load(path string, getenv func(string) (string, bool), platforms Platforms) (*Config, error) {
	return load(path, getenv, platforms, false)
}

// load reads the file at path and parses it, reading secret files named
// relative to it from beside it.
func load(path string, getenv func(string) (string, bool), platforms Platforms, demo bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	dir := filepath.Dir(path)
	readFile := func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return os.ReadFile(name)
	}
	cfg, err := parseAs(data, getenv, readFile, platforms, demo)
	if err != nil {
		var ce *confnode.Error
		if errors.As(err, &ce) {
			ce.File = path
			return nil, ce
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads a configuration file's contents, expands ${VAR} references in
// its values through getenv, and checks every key. It reports every problem
// it finds, one per line, each with the line it stands on.
//
// Parse reads no file: *_file secret keys are refused; Load reads them.
// The server always calls Load; Parse is for tests and fuzz targets,
// which check configuration text without files around it.
func Parse(data []byte, getenv func(string) (string, bool), platforms Platforms) (*Config, error) {
	return parseAs(data, getenv, nil, platforms, false)
}

// LoadDemo is Load for approvebot demo: approvers may have web sides without
// a web section, since the demo's own sign-in (loopback only) takes the
// identity provider's place, and no chat platform is required.
func LoadDemo(path string, getenv func(string) (string, bool), platforms Platforms) (*Config, error) {
	return load(path, getenv, platforms, true)
}

// ParseDemo is Parse for approvebot demo (see LoadDemo).
func ParseDemo(data []byte, getenv func(string) (string, bool), platforms Platforms) (*Config, error) {
	return parseAs(data, getenv, nil, platforms, true)
}

// emptyConfig is the problem of a file with nothing in it.
const emptyConfig = "the configuration is empty: it needs at least callers, approvers and a slack or teams section (see examples/approvebot.yaml)"

func parseAs(data []byte, getenv func(string) (string, bool), readFile func(string) ([]byte, error), platforms Platforms, demo bool) (*Config, error) {
	root, err := confnode.Decode(data, emptyConfig)
	if err != nil {
		return nil, err
	}
	p := &parser{Reader: confnode.NewReader(getenv, readFile), platforms: platforms, demo: demo}
	p.CheckNodes(root)
	if p.Failed() {
		return nil, p.Err()
	}
	cfg := p.config(root)
	if p.Failed() {
		return nil, p.Err()
	}
	return cfg, nil
}

// parser reads the sections of approvebot.yaml through a confnode.Reader,
// which holds every problem found.
type parser struct {
	*confnode.Reader
	platforms Platforms
	// demo reads the file for approvebot demo, whose own sign-in stands in
	// for the web section.
	demo bool
	// later are checks that need the whole file read (a caller's
	// may_request names groups and chains defined further down).
	later []func(*Config)
}

func (p *parser) config(root *yaml.Node) *Config {
	keys := append([]string{"listen", "store", "callers", "signing", "admin", "delivery", "approvers", "routes", "chains", "shutdown_grace", "public_url", "tls", "audit", "server"}, p.platforms.Names()...)
	top := p.Object(root, "", keys...)
	if top == nil {
		return nil
	}
	cfg := &Config{Platforms: p.platforms, Sections: map[string]any{}}

	cfg.Listen = p.Str(top, "listen", confnode.Optional)
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	} else if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || port == "" {
		p.Add(top.Val["listen"].Line, "listen must be host:port, e.g. 127.0.0.1:8080")
	}

	cfg.PublicURL = p.HTTPURL(top, "public_url", "")

	tlsSection := p.Object(top.Val["tls"], "tls", "cert_file", "key_file")
	cfg.TLS.CertFile = p.Str(tlsSection, "cert_file", confnode.Optional)
	cfg.TLS.KeyFile = p.Str(tlsSection, "key_file", confnode.Optional)
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		p.Add(tlsSection.Line(), "tls needs both cert_file and key_file (or neither, to serve plain HTTP behind a proxy)")
	}

	store := p.Object(top.Val["store"], "store", "path", "max_size", "retention")
	cfg.Store.Path = p.Str(store, "path", confnode.Optional)
	if cfg.Store.Path == "" {
		cfg.Store.Path = DefaultStorePath
	}
	cfg.Store.MaxSize = p.Size(store, "max_size", MinStoreSize)
	cfg.Store.Retention = p.retention(store, "retention")

	cfg.ShutdownGrace = p.Duration(top, "shutdown_grace", DefaultShutdownGrace, true)
	if cfg.ShutdownGrace > 10*time.Minute {
		p.Add(top.Val["shutdown_grace"].Line, "shutdown_grace may be at most 10m, not %s", cfg.ShutdownGrace)
	}

	p.server(top, cfg)
	p.callers(top, cfg)

	p.sections(top, cfg)

	signing := p.Object(top.Val["signing"], "signing", "key_file", "issuer")
	cfg.Signing.KeyFile = p.Str(signing, "key_file", confnode.Optional)
	if cfg.Signing.KeyFile == "" {
		cfg.Signing.KeyFile = filepath.Join(filepath.Dir(cfg.Store.Path), DefaultSigningKeyName)
	}
	cfg.Signing.Issuer = p.Str(signing, "issuer", confnode.Optional)
	if cfg.Signing.Issuer == "" {
		cfg.Signing.Issuer = DefaultIssuer
	}

	admin := p.Object(top.Val["admin"], "admin", "token", "token_file")
	cfg.Admin.Token = p.Secret(admin, "token", 0)
	if cfg.Admin.Token != "" && len(cfg.Admin.Token) < MinSecretLength {
		p.Add(admin.LineOf("token"), "admin.token: weak token: %d characters, want at least %d (e.g. openssl rand -hex 32)", len(cfg.Admin.Token), MinSecretLength)
	}
	for _, c := range cfg.Callers {
		if cfg.Admin.Token != "" && c.TokenSHA256 == sha256.Sum256([]byte(cfg.Admin.Token)) {
			p.Add(admin.LineOf("token"), "admin.token is also caller %q's token: give the operator a token of its own", c.Name)
		}
	}

	delivery := p.Object(top.Val["delivery"], "delivery", "timeout")
	cfg.Delivery.Timeout = p.Duration(delivery, "timeout", DefaultDeliveryTimeout, false)

	p.audit(top, cfg)

	p.approvers(top, cfg)
	var refs []groupRef
	refs = append(refs, p.chains(top, cfg)...)
	refs = append(refs, p.routes(top, cfg)...)
	for _, r := range refs {
		p.checkGroups(cfg, r)
	}
	for _, check := range p.later {
		check(cfg)
	}
	p.checkCallerRoutes(cfg)
	return cfg
}
