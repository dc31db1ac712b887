// Package policy owns approvebot's rules: the configuration file, which
// approver groups a request routes to, and who may decide it. Everything here
// is pure: no I/O past reading the configuration file.
package policy

import (
	"time"

	"github.com/approvebot/approvebot"
)

// Defaults.
const (
	DefaultTimeout         = 290 * time.Second // below AGT's 300 s client default
	DefaultDeliveryTimeout = 60 * time.Second
	DefaultListen          = "127.0.0.1:8080"
	DefaultShutdownGrace   = 20 * time.Second // below Kubernetes' default 30 s termination grace
	// DefaultCheckpointInterval is audit.checkpoint_interval's default.
	DefaultCheckpointInterval = 5 * time.Minute
)

// Config is approvebot.yaml after parsing, expansion and validation.
type Config struct {
	Listen string
	// PublicURL is where Slack, Teams and agents reach approvebot from
	// outside (behind its TLS proxy); optional. doctor checks it answers.
	PublicURL string
	// TLS, when set, makes approvebot serve HTTPS itself.
	TLS       TLSConfig
	Store     StoreConfig
	Callers   []Caller
	Slack     *SlackConfig // nil when the file has no slack section
	Teams     *TeamsConfig // nil when the file has no teams section
	Web       *WebConfig   // nil when the file has no web section
	Signing   SigningConfig
	Admin     AdminConfig
	Delivery  DeliveryConfig
	Audit     AuditConfig
	Approvers map[string]approvebot.Group // by group name
	Routes    []Route
	Chains    map[string]ChainConfig // by chain id
	Server    ServerConfig

	// ShutdownGrace is how long, after SIGTERM, held requests keep waiting
	// for a decision before they are answered "still pending".
	ShutdownGrace time.Duration
}

// TLSConfig is the certificate approvebot serves HTTPS with; empty means
// plain HTTP (behind a TLS-terminating proxy).
type TLSConfig struct {
	CertFile string // PEM certificate chain; re-read when it changes
	KeyFile  string // PEM private key
}

// StoreConfig is the bbolt file.
type StoreConfig struct {
	Path string
	// MaxSize caps the file in bytes (0: no cap). When it is reached, new
	// requests are refused with 503 rather than half-recorded.
	MaxSize int64
	// Retention removes decided requests older than it, and the audit
	// records before them under a signed seal (0: keep everything).
	Retention time.Duration
}

// Defaults of a caller's limits.
const (
	DefaultCallerRate       = 10.0 // requests a second
	DefaultCallerBurst      = 20
	DefaultCallerMaxPending = 1000
)

// Caller is an agent allowed to submit requests.
type Caller struct {
	Name string
	// Token is the bearer token as configured; empty when the config gives
	// only its SHA-256 (token_sha256), so the file need not hold it.
	Token string
	// TokenSHA256 is SHA-256 of the token, what requests are checked against.
	TokenSHA256 [32]byte
	// MayRequest, when set, limits where the caller's requests may be
	// routed: approver group names and chain ids. A request routed to a
	// chain is allowed when the chain's id is listed; one routed to groups
	// when every one of them is. Nil means anywhere.
	MayRequest []string
	// Rate is how many requests a second the caller may send on average,
	// and Burst how many it may send at once (a token bucket). Past them
	// it is answered 429 before anything is read or written.
	Rate  float64
	Burst int
	// MaxPending caps the caller's requests open at once; past it, new
	// ones are answered 429 (retries of open ones still attach).
	MaxPending int
}

// SlackConfig is the Slack app's credentials.
type SlackConfig struct {
	BotToken      string
	SigningSecret string
	APIURL        string // "" means Slack's own; must end in "/" when set
	// SocketMode receives clicks over Slack's Socket Mode websocket, opened
	// with AppToken (xapp-...), instead of the interactivity request URL.
	SocketMode bool
	AppToken   string
	// ChannelInterval is the pause between two posts to one channel
	// (Slack allows about one message per second per channel).
	ChannelInterval time.Duration
}

// TeamsConfig is the Azure Bot registration (single tenant).
type TeamsConfig struct {
	AppID             string
	AppPassword       string
	TenantID          string
	OpenIDMetadataURL string // default: the Bot Framework's
	TokenURL          string // default: https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token
}

// WebConfig is the web inbox's sign-in: an OpenID Connect client of the
// organisation's identity provider (authorization code flow with PKCE).
type WebConfig struct {
	Issuer       string // the provider's issuer URL, as its discovery document names it
	ClientID     string
	ClientSecret string
	// RedirectURL is public_url + "/inbox/callback", registered with the
	// provider.
	RedirectURL string
	// GroupsClaim names the ID token claim listing the person's groups
	// ("" reads none): approvers.<group>.web.groups match its values.
	GroupsClaim string
}

// SigningConfig is the key approvebot signs decisions with.
type SigningConfig struct {
	KeyFile string // created with mode 0600 on first start if missing
	Issuer  string // the "iss" of signed decisions
}

// AdminConfig guards the operator endpoints (/admin/...).
type AdminConfig struct {
	Token string // "" disables the admin endpoints
}

// AuditConfig anchors the audit log outside the store file: signed
// checkpoints of its head, at every resolution and at an interval.
type AuditConfig struct {
	// CheckpointInterval adds a checkpoint this often (0: only at
	// resolutions, start and stop).
	CheckpointInterval time.Duration
	// CheckpointFile is appended to and fsynced, one JSON line per
	// checkpoint ("": none). It belongs on another volume than the store.
	CheckpointFile string
	// CheckpointLog writes each checkpoint as a log line too.
	CheckpointLog bool
}

// Checkpoints reports whether any checkpoint sink is configured.
func (a AuditConfig) Checkpoints() bool { return a.CheckpointFile != "" || a.CheckpointLog }

// DeliveryConfig bounds how long a destination is retried.
type DeliveryConfig struct {
	// Timeout is how long a post keeps being retried before the destination
	// counts as failed (never past the request's deadline).
	Timeout time.Duration
}

// Match selects requests. Empty fields match anything; values may be globs
// (path.Match syntax).
type Match struct {
	RuleName       string
	PolicyName     string
	Action         string
	AgentID        string
	ChainID        string // schema 1.0 approval_chain_id
	Operation      string
	TargetResource string
	Caller         string // the authenticated caller's configured name (either schema)
}

// Route overrides the approvers a matching request names.
type Route struct {
	Match     Match
	Approvers []string // group names
	Quorum    approvebot.Quorum
	Timeout   time.Duration // 0: DefaultTimeout
	Chain     string        // optional: route to this chain instead of Approvers
	Line      int           // where it stands in the file, for messages
	Reminders Reminders     // when set, instead of the chain's
	// Reason and ConfirmApprove, when set, replace the chain's.
	Reason         *approvebot.ReasonRule
	ConfirmApprove *bool
}

// Reminders are when a pending request's current approvers are reminded:
// After each of these (from when the request opened), and BeforeDeadline
// before its deadline.
type Reminders struct {
	After          []time.Duration
	BeforeDeadline time.Duration
	// Escalate widens a stage still undecided after each step's After to
	// its Approvers.
	Escalate []EscalationConfig
}

// EscalationConfig is one escalation step, by group name.
type EscalationConfig struct {
	After     time.Duration
	Approvers []string
}

func (r Reminders) set() bool { return len(r.After) > 0 || r.BeforeDeadline > 0 || len(r.Escalate) > 0 }

// ChainConfig is a versioned, ordered list of stages.
type ChainConfig struct {
	ID                 string
	Version            string
	Stages             []StageConfig
	SeparationOfDuties bool
	Timeout            time.Duration // 0: DefaultTimeout
	Reminders          Reminders
	Reason             approvebot.ReasonRule
	ConfirmApprove     bool
}

// StageConfig is one stage of a chain, by group name.
type StageConfig struct {
	Approvers []string
	Quorum    approvebot.Quorum
}
