package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/approvebot/approvebot/policy/confnode"
	"go.yaml.in/yaml/v3"
)

// Defaults the file may leave out.
const (
	DefaultStorePath         = "approvebot.db"
	DefaultSlackAPIURL       = "https://slack.com/api/"
	DefaultChannelInterval   = time.Second
	DefaultOpenIDMetadataURL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
	DefaultIssuer            = "approvebot"
	DefaultSigningKeyName    = "approvebot-signing.key"

	// MaxTimeout bounds every timeout in the file: a request nobody answers
	// within a day is better denied and asked again than left hanging.
	MaxTimeout = confnode.MaxDuration
	// MinSecretLength is the shortest caller or admin token accepted.
	MinSecretLength = 16
)

// MinStoreSize is the smallest store.max_size accepted: below it a handful of
// requests would fill the file.
const MinStoreSize = 1 << 20

// DefaultTokenURL is where Teams credentials are exchanged for a token in a
// single-tenant bot registration.
func DefaultTokenURL(tenantID string) string {
	return "https://login.microsoftonline.com/" + url.PathEscape(tenantID) + "/oauth2/v2.0/token"
}

// Load reads and parses the configuration file at path. Errors name the file.
func Load(path string, getenv func(string) (string, bool)) (*Config, error) {
	return load(path, getenv, false)
}

// load reads the file at path and parses it, reading secret files named
// relative to it from beside it.
func load(path string, getenv func(string) (string, bool), demo bool) (*Config, error) {
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
	cfg, err := parseAs(data, getenv, readFile, demo)
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
func Parse(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	return parse(data, getenv, nil)
}

func parse(data []byte, getenv func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	return parseAs(data, getenv, readFile, false)
}

// LoadDemo is Load for approvebot demo: approvers may have web sides without
// a web section, since the demo's own sign-in (loopback only) takes the
// identity provider's place, and no chat platform is required.
func LoadDemo(path string, getenv func(string) (string, bool)) (*Config, error) {
	return load(path, getenv, true)
}

// ParseDemo is Parse for approvebot demo (see LoadDemo).
func ParseDemo(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	return parseAs(data, getenv, nil, true)
}

// emptyConfig is the problem of a file with nothing in it.
const emptyConfig = "the configuration is empty: it needs at least callers, approvers and a slack or teams section (see examples/approvebot.yaml)"

func parseAs(data []byte, getenv func(string) (string, bool), readFile func(string) ([]byte, error), demo bool) (*Config, error) {
	root, err := confnode.Decode(data, emptyConfig)
	if err != nil {
		return nil, err
	}
	p := &parser{Reader: confnode.NewReader(getenv, readFile), demo: demo}
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
	// demo reads the file for approvebot demo, whose own sign-in stands in
	// for the web section.
	demo bool
	// later are checks that need the whole file read (a caller's
	// may_request names groups and chains defined further down).
	later []func(*Config)
}

func (p *parser) config(root *yaml.Node) *Config {
	top := p.Object(root, "", "listen", "store", "callers", "slack", "teams", "signing", "admin", "delivery", "approvers", "routes", "chains", "shutdown_grace", "public_url", "tls", "audit", "server", "web")
	if top == nil {
		return nil
	}
	cfg := &Config{}

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

	if top.Has("slack") {
		o := p.Object(top.Val["slack"], "slack", "bot_token", "bot_token_file", "signing_secret", "signing_secret_file", "api_url", "channel_interval", "socket_mode", "app_token", "app_token_file")
		sc := &SlackConfig{
			BotToken:        p.Secret(o, "bot_token", 1),
			SocketMode:      p.Bool(o, "socket_mode"),
			APIURL:          p.HTTPURL(o, "api_url", DefaultSlackAPIURL),
			ChannelInterval: p.Duration(o, "channel_interval", DefaultChannelInterval, true),
		}
		if sc.BotToken != "" && !strings.HasPrefix(sc.BotToken, "xoxb-") {
			p.Add(o.Val["bot_token"].Line, "slack.bot_token must be the app's bot token (it starts with xoxb-)")
		}
		// In Socket Mode clicks arrive over a websocket that approvebot
		// opens with the app-level token, so there is no signed request to
		// verify and the signing secret is optional; over HTTP it is what
		// authenticates every click.
		if sc.SocketMode {
			sc.AppToken = p.Secret(o, "app_token", 1)
			sc.SigningSecret = p.Secret(o, "signing_secret", 0)
			if sc.AppToken != "" && !strings.HasPrefix(sc.AppToken, "xapp-") {
				p.Add(o.Val["app_token"].Line, "slack.app_token must be an app-level token (it starts with xapp-; Basic Information > App-Level Tokens, scope connections:write)")
			}
		} else {
			sc.SigningSecret = p.Secret(o, "signing_secret", 1)
			if o != nil && o.Has("app_token") {
				p.Add(o.Val["app_token"].Line, "slack.app_token is only used with slack.socket_mode: true; set socket_mode or remove app_token")
			}
		}
		if sc.ChannelInterval > time.Minute {
			p.Add(o.Val["channel_interval"].Line, "slack.channel_interval may be at most 1m")
		}
		if !strings.HasSuffix(sc.APIURL, "/") {
			sc.APIURL += "/"
		}
		cfg.Slack = sc
	}
	if top.Has("teams") {
		o := p.Object(top.Val["teams"], "teams", "app_id", "app_password", "app_password_file", "tenant_id", "openid_metadata_url", "token_url")
		tc := &TeamsConfig{
			AppID:       p.Str(o, "app_id", confnode.Required),
			AppPassword: p.Secret(o, "app_password", 1),
			TenantID:    p.Str(o, "tenant_id", confnode.Required),
		}
		for key, v := range map[string]string{"app_id": tc.AppID, "tenant_id": tc.TenantID} {
			if v != "" && !guid.MatchString(v) {
				p.Add(o.Val[key].Line, "teams.%s must be a GUID such as 00000000-0000-0000-0000-000000000000 (see the Azure Bot registration)", key)
			}
		}
		tc.OpenIDMetadataURL = p.HTTPURL(o, "openid_metadata_url", DefaultOpenIDMetadataURL)
		tc.TokenURL = p.HTTPURL(o, "token_url", DefaultTokenURL(tc.TenantID))
		cfg.Teams = tc
	}
	p.web(top, cfg)
	if cfg.Slack == nil && cfg.Teams == nil && cfg.Web == nil && !p.demo {
		p.Add(top.Line(), "neither slack, teams nor web is configured: add at least one of the three sections")
	}

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
