// Package teams owns everything of approvebot that speaks Microsoft Teams:
// its config section and approver groups' teams sides (config.go), who of
// them may decide, checking that an inbound activity really comes from
// Teams, remembering where the bot is installed, rendering a request as an
// Adaptive Card, posting and updating that card through the Bot Connector,
// turning a click into a ballot for the engine, and building the Teams app
// package. Bot Framework types stop here.
package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/ttlcache"
	"github.com/approvebot/approvebot/store"
)

// Name is the platform's name in destinations, ballots and approver groups'
// sides.
const Name = "teams"

// Defaults for Config.
const (
	DefaultOpenIDMetadataURL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
	defaultHTTPTimeout       = 15 * time.Second
	// DefaultChannelInterval spaces new threads in one channel. Teams
	// allows a bot about 7 sends a second per thread and 50 requests a
	// second per app and tenant (platforms.md B6); 200 ms keeps a burst of
	// requests for one channel well inside that.
	DefaultChannelInterval = 200 * time.Millisecond
)

// Config is the Azure Bot registration and what the adapter needs around it.
type Config struct {
	// AppID, AppPassword and TenantID identify the single-tenant Azure Bot.
	// All are required: msbotbuilder-go treats an empty AppID as "no
	// authentication", and we never want a way to turn checks off.
	AppID, AppPassword, TenantID string
	// OpenIDMetadataURL is where the Bot Framework publishes its signing
	// keys. Default DefaultOpenIDMetadataURL.
	OpenIDMetadataURL string
	// TokenURL is the Entra token endpoint for outbound calls. Default
	// https://login.microsoftonline.com/<TenantID>/oauth2/v2.0/token.
	TokenURL string
	// HTTPClient makes every outbound call. Default: 15 s timeout.
	HTTPClient *http.Client
	// ChannelInterval is the least time between two new threads in one
	// channel. Zero (or less) means no pause; the configuration's teams
	// section sets DefaultChannelInterval.
	ChannelInterval time.Duration
	// Conversations persists where the bot is installed, keyed by Teams
	// channel id: the store's data of the platform (Platform.DataName).
	Conversations store.KV
	Logger        *slog.Logger
	// Clock is the adapter's time: activity tokens' validity, signing
	// keys' age, cached members and the bot token's expiry. Nil means the
	// wall clock.
	Clock bot.Clock
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (c *Config) checkAndSetDefaults() error {
	if c.AppID == "" {
		return errors.New("teams: app_id is required (the Azure Bot's Microsoft App ID)")
	}
	if !guidPattern.MatchString(c.AppID) {
		return fmt.Errorf("teams: app_id %q is not a GUID like 00000000-0000-0000-0000-000000000000", c.AppID)
	}
	if c.AppPassword == "" {
		return errors.New("teams: app_password is required (a client secret of the Azure Bot's app registration)")
	}
	if c.TenantID == "" {
		return errors.New("teams: tenant_id is required (the Entra directory id of the single-tenant bot)")
	}
	if !guidPattern.MatchString(c.TenantID) {
		return fmt.Errorf("teams: tenant_id %q is not a GUID like 00000000-0000-0000-0000-000000000000", c.TenantID)
	}
	if c.Conversations == nil {
		return errors.New("teams: a conversation store is required")
	}
	if c.OpenIDMetadataURL == "" {
		c.OpenIDMetadataURL = DefaultOpenIDMetadataURL
	}
	if err := checkHTTPURL(c.OpenIDMetadataURL); err != nil {
		return fmt.Errorf("teams: openid_metadata_url: %w", err)
	}
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL(c.TenantID)
	}
	if err := checkHTTPURL(c.TokenURL); err != nil {
		return fmt.Errorf("teams: token_url: %w", err)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = bot.SystemClock{}
	}
	c.ChannelInterval = max(c.ChannelInterval, 0)
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute https URL", s)
	}
	return nil
}

// Teams is the adapter. Build it with New.
type Teams struct {
	cfg       Config
	log       *slog.Logger
	validator *tokenValidator
	tokens    *botToken
	members   *ttlcache.Cache[string, teamsMember]

	// refMu serializes read-modify-write of stored conversation references.
	refMu sync.Mutex

	// trusted holds service URLs seen in authenticated activities this run;
	// stored references add the ones seen before. The bot token goes nowhere else.
	trustMu sync.Mutex
	trusted map[string]bool
}

var (
	_ bot.Platform = (*Teams)(nil)
	_ bot.Paced    = (*Teams)(nil)
)

// New checks cfg and builds the adapter. It makes no network call.
func New(cfg Config) (*Teams, error) {
	if err := cfg.checkAndSetDefaults(); err != nil {
		return nil, err
	}
	t := &Teams{
		cfg:     cfg,
		log:     slog.New(bot.LogRequests(cfg.Logger.Handler())).With("platform", Name),
		members: ttlcache.New[string, teamsMember](memberCacheTTL, cfg.Clock.Now),
		trusted: make(map[string]bool),
	}
	t.validator = newTokenValidator(cfg.AppID, cfg.OpenIDMetadataURL, cfg.HTTPClient, cfg.Clock.Now, t.log)
	t.tokens = newBotToken(cfg, t.log)
	return t, nil
}

// SetAppPassword makes the next bot token request use password (a rotated
// client secret, on reload); the token fetched with the old one is dropped.
func (t *Teams) SetAppPassword(password string) { t.tokens.setSecret(password) }

// Name is the platform name used in destinations and ballots.
func (t *Teams) Name() string { return Name }

// Check tells whether the adapter can work: the Bot Framework's signing keys
// can be loaded (cached up to 24 h) and a bot token obtained (cached until
// shortly before it expires). Meant for /readyz.
func (t *Teams) Check(ctx context.Context) error {
	if err := t.validator.ready(ctx); err != nil {
		return fmt.Errorf("teams: signing keys: %w", err)
	}
	if _, err := t.tokens.token(); err != nil {
		return fmt.Errorf("teams: bot token: %w", err)
	}
	return nil
}

// Channel is a Teams channel the bot can post to, as learned from Teams.
type Channel struct {
	TeamID      string    `json:"team_id,omitempty"`
	TeamName    string    `json:"team_name,omitempty"`
	ChannelID   string    `json:"channel_id"`
	ChannelName string    `json:"channel_name,omitempty"`
	ServiceURL  string    `json:"service_url"`
	TenantID    string    `json:"tenant_id"`
	BotID       string    `json:"bot_id,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Channels lists every stored channel, sorted by team then channel name.
func (t *Teams) Channels() ([]Channel, error) {
	all, err := t.cfg.Conversations.List()
	if err != nil {
		return nil, fmt.Errorf("list teams conversations: %w", err)
	}
	out := make([]Channel, 0, len(all))
	for key, data := range all {
		var ch Channel
		if err := json.Unmarshal(data, &ch); err != nil {
			t.log.Warn("skipping unreadable conversation reference", "key", key, "err", err)
			continue
		}
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.TeamName != b.TeamName {
			return a.TeamName < b.TeamName
		}
		if a.TeamID != b.TeamID {
			return a.TeamID < b.TeamID
		}
		if a.ChannelName != b.ChannelName {
			return a.ChannelName < b.ChannelName
		}
		return a.ChannelID < b.ChannelID
	})
	return out, nil
}

func (t *Teams) channel(id string) (*Channel, error) {
	data, err := t.cfg.Conversations.Get(id)
	if err != nil {
		return nil, fmt.Errorf("read conversation reference %s: %w", id, err)
	}
	if data == nil {
		return nil, nil
	}
	var ch Channel
	if err := json.Unmarshal(data, &ch); err != nil {
		return nil, fmt.Errorf("conversation reference %s is unreadable: %w", id, err)
	}
	return &ch, nil
}

// upsertChannel stores what an authenticated activity taught about a
// channel, keeping names learned earlier when this activity lacks them
// (message activities carry the channel id but not its name).
func (t *Teams) upsertChannel(ch Channel) error {
	ch.TeamName, ch.ChannelName = cleanName(ch.TeamName), cleanName(ch.ChannelName)
	t.refMu.Lock()
	defer t.refMu.Unlock()
	old, err := t.channel(ch.ChannelID)
	if err != nil {
		t.log.Warn("overwriting unreadable conversation reference", "channel", ch.ChannelID, "err", err)
	}
	if old != nil {
		if ch.TeamName == "" {
			ch.TeamName = old.TeamName
		}
		if ch.ChannelName == "" {
			ch.ChannelName = old.ChannelName
		}
		if ch.TeamID == "" {
			ch.TeamID = old.TeamID
		}
		if ch.BotID == "" {
			ch.BotID = old.BotID
		}
	}
	data, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	return t.cfg.Conversations.Put(ch.ChannelID, data)
}

// forgetTeam deletes every stored channel of a team the bot left.
func (t *Teams) forgetTeam(teamID string) error {
	t.refMu.Lock()
	defer t.refMu.Unlock()
	all, err := t.cfg.Conversations.List()
	if err != nil {
		return err
	}
	var errs []error
	for key, data := range all {
		var ch Channel
		if json.Unmarshal(data, &ch) != nil {
			continue
		}
		if ch.TeamID == teamID || key == teamID {
			errs = append(errs, t.cfg.Conversations.Delete(key))
		}
	}
	return errors.Join(errs...)
}

func (t *Teams) forgetChannel(channelID string) error {
	t.refMu.Lock()
	defer t.refMu.Unlock()
	return t.cfg.Conversations.Delete(channelID)
}

func normalizeServiceURL(s string) string { return strings.TrimRight(s, "/") }

func (t *Teams) trust(serviceURL string) {
	t.trustMu.Lock()
	t.trusted[normalizeServiceURL(serviceURL)] = true
	t.trustMu.Unlock()
}

// isTrusted reports whether serviceURL was learned from an authenticated
// activity, now or in an earlier run (then it is in a stored reference).
func (t *Teams) isTrusted(serviceURL string) bool {
	n := normalizeServiceURL(serviceURL)
	if n == "" {
		return false
	}
	t.trustMu.Lock()
	ok := t.trusted[n]
	t.trustMu.Unlock()
	if ok {
		return true
	}
	all, err := t.cfg.Conversations.List()
	if err != nil {
		t.log.Warn("cannot read conversation references to check a service URL", "err", err)
		return false
	}
	for _, data := range all {
		var ch Channel
		if json.Unmarshal(data, &ch) == nil && normalizeServiceURL(ch.ServiceURL) == n {
			t.trust(n)
			return true
		}
	}
	return false
}

// PostInterval is the least time between two new threads in one channel
// (cfg.ChannelInterval). The engine's pacer keeps to it.
func (t *Teams) PostInterval(string) time.Duration { return t.cfg.ChannelInterval }

// tenantServiceURL is the Bot Connector address of the bot's tenant, as
// Teams sent it with the team installations stored: personal conversations
// are created there.
func (t *Teams) tenantServiceURL() (string, error) {
	chans, err := t.Channels()
	if err != nil {
		return "", &approvebot.DeliveryError{Reason: "conversation store", Err: err}
	}
	for _, ch := range chans {
		if strings.EqualFold(ch.TenantID, t.cfg.TenantID) && ch.ServiceURL != "" {
			return ch.ServiceURL, nil
		}
	}
	return "", &approvebot.DeliveryError{Permanent: true,
		Reason: "approvebot knows no Bot Connector address for the tenant yet: add the app to a team first"}
}
