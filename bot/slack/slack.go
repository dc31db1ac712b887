// Package slack owns everything of approvebot that speaks Slack: its config
// section and approver groups' slack sides (config.go), who of them may
// decide, rendering a request as a Block Kit message, posting and updating
// it through Slack's Web API, saying who a clicker is (email, user groups),
// and receiving signed clicks and events (over HTTP or Socket Mode), handed
// to the engine as ballots. Slack SDK types stay inside this package; the
// engine sees only approvebot types.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/ttlcache"
	goslack "github.com/slack-go/slack"
)

// Name is the platform's name in destinations, ballots and approver groups'
// sides, and its section's key in approvebot.yaml.
const Name = "slack"

// Defaults for Config.
const (
	DefaultAPIURL          = "https://slack.com/api/"
	DefaultChannelInterval = time.Second
	DefaultCacheTTL        = 2 * time.Minute
	DefaultHTTPTimeout     = 10 * time.Second
)

// Config configures the adapter.
type Config struct {
	BotToken      string // xoxb-...; never logged
	SigningSecret string // verifies interactivity requests; never logged
	// AppToken (xapp-..., never logged) turns on Socket Mode: RunSocketMode
	// receives clicks over a websocket it opens, and SigningSecret may be
	// empty, as no request comes in over HTTP.
	AppToken string
	// APIURL is the Web API base, ending in "/". Empty means Slack's.
	APIURL string
	// ChannelInterval is the least time between two chat.postMessage calls
	// to one channel (Slack allows about one a second per channel). Zero
	// (or less) means no pause at all; the configuration's slack section
	// defaults it to DefaultChannelInterval.
	ChannelInterval time.Duration
	// CacheTTL is how long users.info and usergroups.users.list answers are
	// reused. Zero means DefaultCacheTTL; a negative value disables caching.
	CacheTTL time.Duration
	// HTTPClient calls Slack. Nil means a client with DefaultHTTPTimeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Clock is the adapter's time: signatures' age, Home viewers and Socket
	// Mode's memory of envelopes. Nil means the wall clock.
	Clock bot.Clock
	// Workers and Queue size the pool that processes clicks after they are
	// acknowledged. Zero means 16 workers and 1024 queued clicks.
	Workers, Queue int
}

// Slack is the Slack adapter. It is safe for concurrent use.
type Slack struct {
	// client calls Slack's Web API; SetBotToken swaps it for one with a
	// rotated token.
	client atomic.Pointer[goslack.Client]
	socket socketConfig
	// sock is Socket Mode's state, made on first use.
	socketOnce sync.Once
	sock       *socketState
	// secret verifies interactions; SetSigningSecret rotates it.
	secret   atomic.Pointer[string]
	interval time.Duration
	log      *slog.Logger
	clock    bot.Clock

	teamMu       sync.Mutex
	teamID       string
	enterpriseID string

	users  *ttlcache.Cache[string, userInfo]
	groups *ttlcache.Cache[string, []string]

	pool clickPool
	home home
}

type userInfo struct {
	name, email      string
	team, enterprise string
	deleted, isBot   bool
}

var (
	_ bot.Platform = (*Slack)(nil)
	_ bot.Paced    = (*Slack)(nil)
)

// New checks cfg and builds the adapter, starting the workers that process
// clicks (Close stops them). It makes no network call; Check does.
func New(cfg Config) (*Slack, error) {
	if cfg.BotToken == "" {
		return nil, errors.New("slack: bot_token is empty: set the Slack app's bot token (xoxb-...)")
	}
	if cfg.SigningSecret == "" && cfg.AppToken == "" {
		return nil, errors.New("slack: signing_secret is empty: set the Slack app's signing secret")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if apiURL[len(apiURL)-1] != '/' {
		apiURL += "/"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		// The outbox and the click workers call Slack concurrently; the
		// default transport keeps only 2 idle connections per host, so most
		// calls would open (and TLS-handshake) a new connection and leave
		// the old one in TIME_WAIT.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Timeout: DefaultHTTPTimeout, Transport: tr}
	}
	interval := max(cfg.ChannelInterval, 0)
	ttl := cfg.CacheTTL
	switch {
	case ttl == 0:
		ttl = DefaultCacheTTL
	case ttl < 0:
		ttl = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	clock := cfg.Clock
	if clock == nil {
		clock = bot.SystemClock{}
	}
	workers, queue := cfg.Workers, cfg.Queue
	if workers <= 0 {
		workers = 16
	}
	if queue <= 0 {
		queue = 1024
	}
	s := &Slack{
		socket:   socketConfig{appToken: cfg.AppToken, botToken: cfg.BotToken, apiURL: apiURL, hc: hc},
		interval: interval,
		log:      slog.New(bot.LogRequests(log.Handler())).With("platform", Name),
		clock:    clock,
		users:    ttlcache.New[string, userInfo](ttl, clock.Now),
		groups:   ttlcache.New[string, []string](ttl, clock.Now),
	}
	s.SetSigningSecret(cfg.SigningSecret)
	s.SetBotToken(cfg.BotToken)
	s.pool.init(workers, queue, s.log)
	return s, nil
}

// SetBotToken makes the Web API calls from now on use token (a rotated bot
// token, on reload). Calls already under way finish with the old one.
func (s *Slack) SetBotToken(token string) {
	// No OptionRetry: a retried chat.postMessage can post a second card.
	// The engine's outbox decides about retries from the DeliveryError.
	s.client.Store(goslack.New(token, goslack.OptionAPIURL(s.socket.apiURL), goslack.OptionHTTPClient(s.socket.hc)))
}

// api is the Web API client with the current bot token.
func (s *Slack) api() *goslack.Client { return s.client.Load() }

// SetSigningSecret makes secret the one interactions must be signed with,
// from the next interaction on (a rotated secret, on reload).
func (s *Slack) SetSigningSecret(secret string) { s.secret.Store(&secret) }

// Name is "slack".
func (s *Slack) Name() string { return Name }

// Check calls auth.test, proving the token works, and remembers the
// workspace it belongs to.
func (s *Slack) Check(ctx context.Context) error {
	resp, err := s.api().AuthTestContext(ctx)
	if err != nil {
		return fmt.Errorf("slack auth.test: %w", deliveryError(err))
	}
	s.teamMu.Lock()
	s.teamID = resp.TeamID
	s.enterpriseID = resp.EnterpriseID
	s.teamMu.Unlock()
	return nil
}

// TeamID is the workspace the token belongs to, once Check succeeded.
func (s *Slack) TeamID() string {
	s.teamMu.Lock()
	defer s.teamMu.Unlock()
	return s.teamID
}

// Post shows msg in channel. Errors are *approvebot.DeliveryError.
func (s *Slack) Post(ctx context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error) {
	if channel == "" {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true, Reason: "empty channel id"}
	}
	if person, ok := strings.CutPrefix(channel, approvebot.DirectMessage); ok {
		im, err := s.openDM(ctx, person)
		if err != nil {
			s.log.WarnContext(ctx, "slack direct message not opened", "user", person, "reason", deliveryError(err).Reason)
			return approvebot.MessageRef{}, err
		}
		channel = im
	}
	out := Render(msg)
	ch, ts, err := s.api().PostMessageContext(ctx, channel,
		goslack.MsgOptionText(out.Text, false), goslack.MsgOptionDisableMarkdown(), s.blocks("chat.postMessage", out.Blocks))
	if err != nil {
		de := deliveryError(err)
		s.log.WarnContext(ctx, "slack post failed", "channel", channel, "reason", de.Reason)
		return approvebot.MessageRef{}, de
	}
	return approvebot.MessageRef{Channel: ch, ID: ts, Partial: out.Partial}, nil
}

// openDM returns the id of the bot's direct conversation with person (a
// user id, or an email looked up first), opening it if needed. Slack answers
// conversations.open with the same D... id every time, so nothing is kept.
func (s *Slack) openDM(ctx context.Context, person string) (string, error) {
	user := person
	if strings.Contains(person, "@") {
		u, err := s.api().GetUserByEmailContext(ctx, person)
		if err != nil {
			de := deliveryError(err)
			if de.Reason == "users_not_found" {
				de.Permanent, de.Reason = true, "no Slack user with email "+person
			}
			return "", de
		}
		user = u.ID
	}
	ch, _, _, err := s.api().OpenConversationContext(ctx, &goslack.OpenConversationParameters{Users: []string{user}})
	if err != nil {
		de := deliveryError(err)
		if de.Reason == "missing_scope" {
			de.Permanent, de.Reason = true, "missing_scope: direct messages need the im:write scope (reinstall the app from the manifest)"
		}
		return "", de
	}
	return ch.ID, nil
}

// Update replaces the message at ref with msg. Errors are
// *approvebot.DeliveryError.
func (s *Slack) Update(ctx context.Context, ref approvebot.MessageRef, msg approvebot.Message) error {
	if ref.Channel == "" || ref.ID == "" {
		return &approvebot.DeliveryError{Permanent: true, Reason: "message reference lacks channel or ts"}
	}
	out := Render(msg)
	// An empty list still sends blocks=[] (either way blocks goes), so
	// stale buttons can never survive an update.
	_, _, _, err := s.api().UpdateMessageContext(ctx, ref.Channel, ref.ID,
		goslack.MsgOptionText(out.Text, false), goslack.MsgOptionDisableMarkdown(), s.blocks("chat.update", out.Blocks))
	if err != nil {
		de := deliveryError(err)
		s.log.WarnContext(ctx, "slack update failed", "channel", ref.Channel, "ts", ref.ID, "reason", de.Reason)
		return de
	}
	return nil
}

// blocks is the option that sends blocks as the blocks form value of a call
// to method (chat.postMessage or chat.update), [] when there are none.
//
// slack-go's MsgOptionBlocks has the library marshal the blocks by
// reflection when it builds the form, which was a large share of the CPU
// posting costs. So the blocks are written by appendBlocks and set as the
// form value through UnsafeMsgOptionEndpoint, which does only two things
// (slack-go v0.35.0, chat.go): it sets the form value, and it sets the
// endpoint, to the very one PostMessageContext or UpdateMessageContext set
// before applying our options (the client's API URL + method). The "unsafe"
// is that the library no longer checks the form value; tests pin the bytes
// to what json.Marshal writes (TestBlocksJSONMatchesSlackGo, FuzzBlocksJSON)
// and the end-to-end tests read the blocks back from the fake. Blocks the
// writer does not know go through MsgOptionBlocks, as before.
func (s *Slack) blocks(method string, blocks []goslack.Block) goslack.MsgOption {
	b, ok := appendBlocks(make([]byte, 0, 4096), blocks)
	if !ok {
		return goslack.MsgOptionBlocks(blocks...)
	}
	value := string(b)
	return goslack.UnsafeMsgOptionEndpoint(s.socket.apiURL+method, func(v url.Values) { v.Set("blocks", value) })
}

// PostInterval is the least time between two posts to one channel: Slack
// takes about one chat.postMessage a second per channel. The engine's pacer
// keeps to it.
func (s *Slack) PostInterval(string) time.Duration { return s.interval }

// Identify completes who from users.info and usergroups.users.list. It fails
// (so the click is refused) when Slack cannot say, or when the user is
// deactivated or a bot.
func (s *Slack) Identify(ctx context.Context, who approvebot.Approver, _ approvebot.MessageRef, usergroups []string) (approvebot.Approver, error) {
	if who.Platform != Name {
		return who, fmt.Errorf("slack identify: approver platform is %q, want %q", who.Platform, Name)
	}
	if who.UserID == "" {
		return who, errors.New("slack identify: approver has no user id")
	}
	if s.TeamID() == "" {
		if err := s.Check(ctx); err != nil {
			return who, err
		}
	}
	u, err := s.userInfo(ctx, who.UserID)
	if err != nil {
		return who, fmt.Errorf("slack users.info %s: %w", who.UserID, err)
	}
	if u.deleted {
		return who, fmt.Errorf("slack user %s is deactivated: %w", who.UserID, approvebot.ErrIneligible)
	}
	if u.isBot {
		return who, fmt.Errorf("slack user %s is a bot: %w", who.UserID, approvebot.ErrIneligible)
	}
	// A member of another organisation (Slack Connect shares channels
	// across companies) may not decide for ours, whatever their email says;
	// nor may an account Slack names no workspace for.
	if u.team == "" {
		return who, fmt.Errorf("slack users.info names no team_id for user %s: %w", who.UserID, approvebot.ErrIneligible)
	}
	if !s.sameOrganisation(u) {
		return who, fmt.Errorf("slack user %s belongs to another workspace (%s): %w", who.UserID, u.team, approvebot.ErrIneligible)
	}
	// The person is keyed on what Slack's directory says, never on the
	// click's team.id, which differs from one workspace of an Enterprise
	// Grid organisation to another for the same (org-wide) user id.
	who.Workspace = u.team
	if u.enterprise != "" {
		who.Workspace = u.enterprise
	}
	who.Email = u.email
	if u.name != "" {
		who.Name = u.name
	}
	who.Usergroups = nil
	seen := map[string]bool{}
	for _, g := range usergroups {
		if g == "" || seen[g] {
			continue
		}
		seen[g] = true
		members, err := s.groupMembers(ctx, g)
		if err != nil {
			return who, fmt.Errorf("slack usergroups.users.list %s: %w", g, err)
		}
		if slices.Contains(members, who.UserID) {
			who.Usergroups = append(who.Usergroups, g)
		}
	}
	return who, nil
}

// sameOrganisation reports whether u is of the workspace (or Enterprise Grid
// organisation) the bot token belongs to. Until Check has run the workspace
// is unknown, and Identify runs it first; u.team is never empty here.
func (s *Slack) sameOrganisation(u userInfo) bool {
	s.teamMu.Lock()
	team, enterprise := s.teamID, s.enterpriseID
	s.teamMu.Unlock()
	if u.team == team {
		return true
	}
	// On Enterprise Grid, users.info may name the organisation as the
	// user's team_id.
	return enterprise != "" && (u.enterprise == enterprise || u.team == enterprise)
}

func (s *Slack) userInfo(ctx context.Context, id string) (userInfo, error) {
	if u, ok := s.users.Get(id); ok {
		return u, nil
	}
	resp, err := s.api().GetUserInfoContext(ctx, id)
	if err != nil {
		return userInfo{}, deliveryError(err)
	}
	u := userInfo{email: resp.Profile.Email, deleted: resp.Deleted, isBot: resp.IsBot,
		team: resp.TeamID, enterprise: resp.Enterprise.EnterpriseID}
	for _, n := range []string{resp.Profile.RealName, resp.RealName, resp.Profile.DisplayName, resp.Name} {
		if n != "" {
			u.name = n
			break
		}
	}
	s.users.Put(id, u)
	return u, nil
}

func (s *Slack) groupMembers(ctx context.Context, id string) ([]string, error) {
	if m, ok := s.groups.Get(id); ok {
		return m, nil
	}
	members, err := s.api().GetUserGroupMembersContext(ctx, id)
	if err != nil {
		return nil, deliveryError(err)
	}
	s.groups.Put(id, members)
	return members, nil
}

// Slack error codes worth retrying: Slack's side failed, not our request.
var retryableSlackErrors = map[string]bool{
	"ratelimited":         true,
	"internal_error":      true,
	"fatal_error":         true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// What an operator should do about a permanent Slack error.
var slackErrorHints = map[string]string{
	"channel_not_found":   "invite the bot to the channel",
	"not_in_channel":      "invite the bot to the channel",
	"is_archived":         "the channel is archived",
	"invalid_auth":        "check the Slack bot token",
	"not_authed":          "check the Slack bot token",
	"account_inactive":    "the Slack bot token belongs to a deactivated account",
	"token_revoked":       "the Slack bot token was revoked",
	"missing_scope":       "add the missing OAuth scope to the Slack app",
	"invalid_blocks":      "Slack rejected the message layout",
	"msg_too_long":        "the message is too long for Slack",
	"msg_blocks_too_long": "the message is too long for Slack",
	"message_not_found":   "the message was deleted",
	"cant_update_message": "the message cannot be updated",
	"edit_window_closed":  "the message can no longer be edited",
}

// deliveryError classifies a Slack call failure for the outbox.
func deliveryError(err error) *approvebot.DeliveryError {
	var de *approvebot.DeliveryError
	if errors.As(err, &de) {
		return de
	}
	var rl *goslack.RateLimitedError
	if errors.As(err, &rl) {
		return &approvebot.DeliveryError{RetryAfter: rl.RetryAfter, Reason: "ratelimited", Err: err}
	}
	var sc goslack.StatusCodeError
	if errors.As(err, &sc) {
		return &approvebot.DeliveryError{
			Permanent: sc.Code < 500 && sc.Code != http.StatusTooManyRequests && sc.Code != http.StatusRequestTimeout,
			Reason:    fmt.Sprintf("HTTP %d", sc.Code),
			Err:       err,
		}
	}
	var se goslack.SlackErrorResponse
	if errors.As(err, &se) {
		reason := se.Err
		if hint := slackErrorHints[se.Err]; hint != "" {
			reason += ": " + hint
		}
		if se.Err == "missing_scope" && se.Needed != "" {
			reason += " (" + se.Needed + ")"
		}
		return &approvebot.DeliveryError{Permanent: !retryableSlackErrors[se.Err], Reason: reason, Err: err}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &approvebot.DeliveryError{Reason: "timeout", Err: err}
	case errors.Is(err, context.Canceled):
		return &approvebot.DeliveryError{Reason: "canceled", Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return &approvebot.DeliveryError{Reason: "timeout", Err: err}
		}
		return &approvebot.DeliveryError{Reason: "network error", Err: err}
	}
	// An answer that is not Slack's JSON (a proxy's error page, a cut
	// connection): Slack may or may not have acted; the outbox may try again.
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &approvebot.DeliveryError{Reason: "unreadable response from Slack", Err: err}
	}
	return &approvebot.DeliveryError{Permanent: true, Reason: "slack call failed", Err: err}
}
