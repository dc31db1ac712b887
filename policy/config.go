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
	TLS     TLSConfig
	Store   StoreConfig
	Callers []Caller
	// Platforms are those the file was read with; Sections holds, by
	// platform name, each section the file has, as the platform read it
	// (Section).
	Platforms Platforms
	Sections  map[string]any
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

// Section returns the named platform's section as it read it, or nil when
// the file has none.
func (c *Config) Section(platform string) any { return c.Sections[platform] }

// SectionCopy returns a copy of cfg's section of platform, which the
// platform's ParseSection returned as a *T, or nil when the file has none:
// what the platform's package hands the wiring, free to fill in.
func SectionCopy[T any](cfg *Config, platform string) *T {
	c, ok := cfg.Section(platform).(*T)
	if !ok {
		return nil
	}
	cp := *c
	return &cp
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
