package teams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/infracloudio/msbotbuilder-go/schema"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The Bot Connector is called with our own small REST client rather than
// msbotbuilder-go's: its client keeps the token in an unlocked cache,
// panics when the token endpoint is unreachable, ignores contexts, has no
// timeout, drops error bodies and never returns the id of a sent activity,
// which we need to update the card later.

const (
	botFrameworkScope  = "https://api.botframework.com/.default"
	tokenEarlyRefresh  = 5 * time.Minute
	tokenDefaultExpiry = 30 * time.Minute // when the endpoint names no expiry
	// maxAnswerBody bounds what is read of a Bot Connector answer; a team's
	// channel list is the largest we ask for.
	maxAnswerBody  = 1 << 20
	memberCacheTTL = 5 * time.Minute
)

// botToken hands out the bot's client-credentials token. oauth2's
// ReuseTokenSource caches it, refreshes it before expiry and lets only one
// caller fetch at a time; Config.Clock additionally decides expiry so tests
// can move time forward.
type botToken struct {
	now    func() time.Time
	source *stampedSource
	fetch  oauth2.TokenSource

	mu      sync.Mutex
	reuse   oauth2.TokenSource
	expires time.Time // on Config.Clock
}

func newBotToken(cfg Config, log *slog.Logger) *botToken {
	cc := &clientcredentials.Config{
		ClientID:     cfg.AppID,
		ClientSecret: cfg.AppPassword,
		TokenURL:     cfg.TokenURL,
		Scopes:       []string{botFrameworkScope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, cfg.HTTPClient)
	b := &botToken{now: cfg.Clock.Now}
	b.source = &stampedSource{b: b, ctx: ctx, log: log}
	b.source.cc.Store(cc)
	b.fetch = b.source
	b.reuse = oauth2.ReuseTokenSourceWithExpiry(nil, b.fetch, tokenEarlyRefresh)
	return b
}

// setSecret makes the next token request use secret, and drops the cached
// token so that a rotated (perhaps revoked) secret's token is not reused.
func (b *botToken) setSecret(secret string) {
	cc := *b.source.cc.Load()
	if cc.ClientSecret == secret {
		return
	}
	cc.ClientSecret = secret
	b.source.cc.Store(&cc)
	b.mu.Lock()
	b.reuse = oauth2.ReuseTokenSourceWithExpiry(nil, b.fetch, tokenEarlyRefresh)
	b.expires = time.Time{}
	b.mu.Unlock()
}

// stampedSource fetches a new token on every call (cc.TokenSource would
// cache on its own clock) and notes when it expires on ours.
type stampedSource struct {
	b   *botToken
	cc  atomic.Pointer[clientcredentials.Config] // setSecret replaces it
	ctx context.Context                          // carries the HTTP client; the client has the timeout
	log *slog.Logger
}

func (s *stampedSource) Token() (*oauth2.Token, error) {
	tok, err := s.cc.Load().Token(s.ctx)
	if err != nil {
		s.log.Warn("bot token request failed", "err", err)
		return nil, err
	}
	if tok.AccessToken == "" {
		return nil, errors.New("token endpoint returned no access_token")
	}
	// oauth2 stamps and judges Expiry on the wall clock: the token's life
	// is read off it, and carried over to ours below.
	life := tokenDefaultExpiry
	if !tok.Expiry.IsZero() {
		life = time.Until(tok.Expiry)
	} else {
		// A token without expiry would be reused forever.
		tok.Expiry = time.Now().Add(life)
	}
	s.b.mu.Lock()
	s.b.expires = s.b.now().Add(life)
	s.b.mu.Unlock()
	return tok, nil
}

func (b *botToken) token() (string, error) {
	b.mu.Lock()
	if !b.expires.IsZero() && !b.now().Before(b.expires.Add(-tokenEarlyRefresh)) {
		// Expired on our clock while oauth2's (the real one) still trusts
		// it: start a fresh cache.
		b.reuse = oauth2.ReuseTokenSourceWithExpiry(nil, b.fetch, tokenEarlyRefresh)
		b.expires = time.Time{}
	}
	src := b.reuse
	b.mu.Unlock()
	tok, err := src.Token()
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// tokenError maps a failed token request onto a delivery error: bad
// credentials will not heal by retrying; anything else may.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		switch re.Response.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			code := re.ErrorCode
			if code == "" {
				code = "HTTP " + strconv.Itoa(re.Response.StatusCode)
			}
			return &approvebot.DeliveryError{Permanent: true, Reason: "bot token refused: " + code + " (check app_id, app_password, tenant_id)", Err: err}
		}
	}
	return &approvebot.DeliveryError{Reason: "bot token unavailable", Err: err}
}

// escapeID escapes a conversation or activity id for a URL path: Teams ids
// contain ':', '@' and ';', which must all be escaped.
func escapeID(id string) string {
	return strings.ReplaceAll(url.QueryEscape(id), "+", "%20")
}

// call sends one Bot Connector request and decodes a JSON answer into out.
func (t *Teams) call(ctx context.Context, method, serviceURL, path string, in, out any) error {
	if !t.isTrusted(serviceURL) {
		// The token is a credential: only Connector URLs Teams itself sent
		// us in an authenticated activity may receive it.
		return &approvebot.DeliveryError{Permanent: true, Reason: fmt.Sprintf("service URL %q was not learned from Teams", serviceURL)}
	}
	tok, err := t.tokens.token()
	if err != nil {
		return tokenError(err)
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return &approvebot.DeliveryError{Permanent: true, Reason: "encode activity", Err: err}
		}
		body = bytes.NewReader(data)
	}
	u := normalizeServiceURL(serviceURL) + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return &approvebot.DeliveryError{Permanent: true, Reason: "bad service URL", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		return &approvebot.DeliveryError{Reason: "network error", Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return &approvebot.DeliveryError{Reason: "network error", Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		derr := connectorError(resp, data, t.cfg.Clock.Now())
		t.log.Warn("bot connector call failed", "method", method, "path", path, "status", resp.StatusCode,
			"reason", derr.Reason, "operation_id", resp.Header.Get("X-Correlating-OperationId"))
		return derr
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &approvebot.DeliveryError{Permanent: true, Reason: "unreadable Bot Connector answer", Err: err}
		}
	}
	return nil
}

// connectorError follows platforms.md B6: retry 412, 429, 502, 503, 504
// (429 after Retry-After); everything else fails for good.
func connectorError(resp *http.Response, body []byte, now time.Time) *approvebot.DeliveryError {
	var e schema.ErrorResponse
	_ = json.Unmarshal(body, &e) // error bodies are optional
	reason := "HTTP " + strconv.Itoa(resp.StatusCode)
	if code := e.Error.Code; code != "" && len(code) < 100 {
		reason += " " + code
	}
	if resp.StatusCode == http.StatusForbidden && e.Error.Code == "BotNotInConversationRoster" {
		// Retrying cannot help until someone adds the app again; Teams
		// then sends an installationUpdate, which stores the team anew.
		reason += ": the bot is no longer in this team; add the app to the team again"
	}
	derr := &approvebot.DeliveryError{Reason: reason}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		derr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	case http.StatusPreconditionFailed, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		derr.Permanent = true
	}
	return derr
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// The wire shapes we send. schema.Activity and schema.ConversationParameters
// cannot be sent as they are: their time and struct fields are values, so
// omitempty never drops them and every call would carry year-1 timestamps
// and empty accounts.
type outActivity struct {
	Type        string              `json:"type"`
	ID          string              `json:"id,omitempty"`
	Attachments []schema.Attachment `json:"attachments"`
}

type conversationParameters struct {
	IsGroup     bool                  `json:"isGroup"`
	Bot         schema.ChannelAccount `json:"bot"`
	TenantID    string                `json:"tenantId"`
	Activity    outActivity           `json:"activity"`
	ChannelData channelDataOut        `json:"channelData"`
}

type channelDataOut struct {
	Channel idOnly `json:"channel"`
	Tenant  idOnly `json:"tenant"`
}

type idOnly struct {
	ID string `json:"id"`
}

func cardAttachment(msg approvebot.Message) ([]schema.Attachment, bool, error) {
	card, err := RenderCard(msg)
	if err != nil {
		return nil, false, err
	}
	return []schema.Attachment{{ContentType: cardContentType, Content: json.RawMessage(card.JSON)}}, card.Partial, nil
}

// Post starts a new thread in a channel with the request's card.
func (t *Teams) Post(ctx context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error) {
	if user, ok := strings.CutPrefix(channel, approvebot.DirectMessage); ok {
		return t.postPersonal(ctx, channel, user, msg)
	}
	ch, err := t.channel(channel)
	if err != nil {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Reason: "conversation store", Err: err}
	}
	if ch == nil {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true,
			Reason: fmt.Sprintf("the bot was never added to the team of channel %s: install the app in that team", channel)}
	}
	att, partial, err := cardAttachment(msg)
	if err != nil {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true, Reason: "render card", Err: err}
	}
	// The card goes without text: text plus attachment is split into two
	// messages and the answer then carries no activity id (platforms.md B3).
	params := conversationParameters{
		IsGroup:     true,
		Bot:         schema.ChannelAccount{ID: "28:" + t.cfg.AppID},
		TenantID:    ch.TenantID,
		Activity:    outActivity{Type: string(schema.Message), Attachments: att},
		ChannelData: channelDataOut{Channel: idOnly{ch.ChannelID}, Tenant: idOnly{ch.TenantID}},
	}
	var res schema.ConversationResourceResponse
	if err := t.call(ctx, http.MethodPost, ch.ServiceURL, "/v3/conversations", params, &res); err != nil {
		return approvebot.MessageRef{}, err
	}
	if res.ID == "" || res.ActivityID == "" {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true,
			Reason: "Bot Connector created the thread but returned no conversation or activity id"}
	}
	t.log.InfoContext(ctx, "posted card", "channel", channel, "conversation", res.ID, "activity", res.ActivityID)
	return approvebot.MessageRef{Channel: channel, Conversation: res.ID, ID: res.ActivityID, ServiceURL: ch.ServiceURL, Partial: partial}, nil
}

// Update replaces the card at ref with msg.
func (t *Teams) Update(ctx context.Context, ref approvebot.MessageRef, msg approvebot.Message) error {
	if ref.Conversation == "" || ref.ID == "" || ref.ServiceURL == "" {
		return &approvebot.DeliveryError{Permanent: true, Reason: "message reference lacks conversation, activity id or service URL"}
	}
	att, _, err := cardAttachment(msg)
	if err != nil {
		return &approvebot.DeliveryError{Permanent: true, Reason: "render card", Err: err}
	}
	act := outActivity{Type: string(schema.Message), ID: ref.ID, Attachments: att}
	path := "/v3/conversations/" + escapeID(ref.Conversation) + "/activities/" + escapeID(ref.ID)
	if err := t.call(ctx, http.MethodPut, ref.ServiceURL, path, act, nil); err != nil {
		return err
	}
	t.log.InfoContext(ctx, "updated card", "channel", ref.Channel, "activity", ref.ID)
	return nil
}

// Identify completes who from the Bot Connector's member lookup: email, UPN
// (both kept, as they may differ), role and name. Teams has no user groups
// here, so Usergroups stays empty. It fails closed: without an answer from
// the lookup the role is unknown (the clicker may be a guest), so the click
// is refused as unverified; an account that is neither a member nor a guest
// (anonymous), or of another tenant, is ineligible.
func (t *Teams) Identify(ctx context.Context, who approvebot.Approver, ref approvebot.MessageRef, _ []string) (approvebot.Approver, error) {
	who.Usergroups = nil
	if who.UserID == "" {
		return who, errors.New("teams: the clicker has no AAD object id")
	}
	key := who.Workspace + "/" + who.UserID
	m, ok := t.members.Get(key)
	if !ok {
		conv := ref.Conversation
		if ch, err := t.channel(ref.Channel); err == nil && ch != nil && ch.TeamID != "" {
			// The team roster answers for every channel of the team.
			conv = ch.TeamID
		}
		if conv == "" || ref.ServiceURL == "" {
			return who, errors.New("teams: cannot look up the clicker: the message reference lacks a conversation")
		}
		path := "/v3/conversations/" + escapeID(conv) + "/members/" + escapeID(who.UserID)
		if err := t.call(ctx, http.MethodGet, ref.ServiceURL, path, nil, &m); err != nil {
			return who, fmt.Errorf("teams member lookup of %s: %w", who.UserID, err)
		}
		if oid := m.objectID(); oid != "" && !strings.EqualFold(oid, who.UserID) {
			return who, fmt.Errorf("teams member lookup of %s returned someone else (%s)", who.UserID, oid)
		}
		t.members.Put(key, m)
	}
	if m.TenantID != "" && !strings.EqualFold(m.TenantID, who.Workspace) {
		return who, fmt.Errorf("teams user %s belongs to tenant %s: %w", who.UserID, m.TenantID, approvebot.ErrIneligible)
	}
	role := strings.ToLower(m.UserRole)
	if role != approvebot.RoleMember && role != approvebot.RoleGuest {
		return who, fmt.Errorf("teams user %s has role %q; only members and guests may approve: %w", who.UserID, m.UserRole, approvebot.ErrIneligible)
	}
	return fillMember(who, m, role), nil
}

// teamsMember is the Bot Connector's TeamsChannelAccount.
type teamsMember struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	AadObjectID       string `json:"aadObjectId"`
	ObjectID          string `json:"objectId"`
	Email             string `json:"email"`
	UserPrincipalName string `json:"userPrincipalName"`
	TenantID          string `json:"tenantId"`
	UserRole          string `json:"userRole"`
}

func (m teamsMember) objectID() string {
	if m.AadObjectID != "" {
		return m.AadObjectID
	}
	return m.ObjectID
}

// fillMember keeps the email and the UPN apart: an approver may be listed
// by either, and decisions name the UPN.
func fillMember(who approvebot.Approver, m teamsMember, role string) approvebot.Approver {
	who.Email = m.Email
	who.UPN = m.UserPrincipalName
	who.Role = role
	if who.Name == "" {
		who.Name = m.Name
	}
	return who
}

// personalParameters start a 1:1 conversation between the bot and one user.
type personalParameters struct {
	IsGroup     bool                    `json:"isGroup"`
	Bot         schema.ChannelAccount   `json:"bot"`
	Members     []schema.ChannelAccount `json:"members"`
	TenantID    string                  `json:"tenantId"`
	ChannelData struct {
		Tenant idOnly `json:"tenant"`
	} `json:"channelData"`
}

// postPersonal shows msg in the bot's personal conversation with user (an
// Entra object id or a 29:... id): it creates (or, as Teams answers with
// the same id each time, finds) the 1:1 conversation, then sends the card
// there. A user the app is not installed for is refused by the Bot
// Connector; that fails this destination for good, saying so.
func (t *Teams) postPersonal(ctx context.Context, channel, user string, msg approvebot.Message) (approvebot.MessageRef, error) {
	if !guidPattern.MatchString(user) && !strings.HasPrefix(user, "29:") {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true,
			Reason: fmt.Sprintf("Teams starts a personal conversation only with an Entra object id: list %s's object id in teams.users", user)}
	}
	serviceURL, err := t.tenantServiceURL()
	if err != nil {
		return approvebot.MessageRef{}, err
	}
	att, partial, err := cardAttachment(msg)
	if err != nil {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true, Reason: "render card", Err: err}
	}
	params := personalParameters{
		Bot:      schema.ChannelAccount{ID: "28:" + t.cfg.AppID},
		Members:  []schema.ChannelAccount{{ID: user}},
		TenantID: t.cfg.TenantID,
	}
	params.ChannelData.Tenant = idOnly{t.cfg.TenantID}
	var conv schema.ConversationResourceResponse
	if err := t.call(ctx, http.MethodPost, serviceURL, "/v3/conversations", params, &conv); err != nil {
		var de *approvebot.DeliveryError
		if errors.As(err, &de) && (strings.HasPrefix(de.Reason, "HTTP 403") || strings.HasPrefix(de.Reason, "HTTP 404")) {
			de.Permanent = true
			de.Reason = fmt.Sprintf("%s: the app is not installed for Teams user %s: install it for them (personal scope, or from the Teams admin center)",
				strings.SplitN(de.Reason, ":", 2)[0], user)
		}
		return approvebot.MessageRef{}, err
	}
	if conv.ID == "" {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true, Reason: "Bot Connector created the personal conversation but returned no id"}
	}
	var sent schema.ResourceResponse
	act := outActivity{Type: string(schema.Message), Attachments: att}
	if err := t.call(ctx, http.MethodPost, serviceURL, "/v3/conversations/"+escapeID(conv.ID)+"/activities", act, &sent); err != nil {
		return approvebot.MessageRef{}, err
	}
	if sent.ID == "" {
		return approvebot.MessageRef{}, &approvebot.DeliveryError{Permanent: true, Reason: "Bot Connector sent the card but returned no activity id"}
	}
	t.log.InfoContext(ctx, "posted card in a personal conversation", "user", user, "conversation", conv.ID, "activity", sent.ID)
	return approvebot.MessageRef{Channel: channel, Conversation: conv.ID, ID: sent.ID, ServiceURL: serviceURL, Partial: partial}, nil
}
