// Package teamsfake is a loopback stand-in for the parts of Microsoft's Bot
// Framework that approvebot's Teams adapter talks to: the OpenID metadata and
// signing keys, the Entra token endpoint and the Bot Connector. It also signs
// inbound activities the way the Bot Framework does, with switches to break
// each check. Tests anywhere in approvebot can use it; it speaks the real
// wire format and records what the adapter sent.
package teamsfake

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/approvebot/approvebot/bot/fakewait"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	jose "github.com/go-jose/go-jose/v4"
)

// Identities the fake uses unless told otherwise.
const (
	DefaultAppID       = "11111111-2222-3333-4444-555555555555"
	DefaultAppPassword = "fake-app-password"
	DefaultTenantID    = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	Issuer             = "https://api.botframework.com"
	keyID              = "fake-key-1"
	unendorsedKeyID    = "fake-key-unendorsed"
	serviceURLPath     = "/amer/"
)

// Sent is one activity the adapter sent to the Bot Connector.
type Sent struct {
	Method         string
	ConversationID string // the thread (POST: as created)
	ActivityID     string
	ChannelID      string          // POST: channelData.channel.id ("" in a personal conversation)
	User           string          // a personal conversation's member (its Entra object id or 29: id)
	TenantID       string          // POST: channelData.tenant.id
	Card           json.RawMessage // the first attachment's content
	Body           json.RawMessage // the whole request body
	Token          string          // the bearer token used
	At             time.Time       // when it arrived
}

// User is a Teams user the member lookup knows.
type User struct {
	AadObjectID, Name, Email string
	UPN                      string // userPrincipalName; "" means the email
	Role                     string // userRole; "" means "user", "-" leaves it out
	Tenant                   string // tenantId; "" means the fake's
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// Fake is the running fake. Build it with New; it stops with the test.
type Fake struct {
	AppID, AppPassword, TenantID string

	srv           *httptest.Server
	key           *rsa.PrivateKey
	unendorsedKey *rsa.PrivateKey
	strangerKey   *rsa.PrivateKey

	mu            sync.Mutex
	changes       fakewait.Changes
	posted        []Sent
	updated       []Sent
	replies       []Reply
	tokenRequests int
	jwksRequests  int
	tokenStatus   int
	tokenLife     time.Duration
	tokens        map[string]bool
	failures      []failure
	users         map[string]User
	teams         map[string][]channel
	requests      map[string]int
	nextID        int
	// personal maps a user the app is installed for (personal scope) to
	// their 1:1 conversation with the bot, once created.
	personal map[string]string
}

// channel is one entry of a team's channel list.
type channel struct {
	ID   string
	Name string // "" for General, which Teams lists without a name
}

// testKeys are made once per process: 2048-bit RSA keys take a while to
// generate (longer under -race), and fakes never change them.
var testKeys = sync.OnceValues(func() ([3]*rsa.PrivateKey, error) {
	var keys [3]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return keys, err
		}
		keys[i] = k
	}
	return keys, nil
})

// TB is the part of testing.TB the fake needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// New starts the fake on a loopback port.
func New(t TB) *Fake {
	t.Helper()
	f := &Fake{
		AppID: DefaultAppID, AppPassword: DefaultAppPassword, TenantID: DefaultTenantID,
		tokens:    make(map[string]bool),
		users:     make(map[string]User),
		teams:     make(map[string][]channel),
		requests:  make(map[string]int),
		personal:  make(map[string]string),
		tokenLife: time.Hour,
	}
	keys, err := testKeys()
	if err != nil {
		t.Fatalf("teamsfake: generate keys: %v", err)
	}
	f.key, f.unendorsedKey, f.strangerKey = keys[0], keys[1], keys[2]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/.well-known/openidconfiguration", f.serveMetadata)
	mux.HandleFunc("GET /v1/.well-known/keys", f.serveKeys)
	mux.HandleFunc("POST /oauth2/v2.0/token", f.serveToken)
	mux.HandleFunc("POST "+serviceURLPath+"v3/conversations", f.serveCreate)
	mux.HandleFunc("PUT "+serviceURLPath+"v3/conversations/{conv}/activities/{id}", f.serveUpdate)
	mux.HandleFunc("POST "+serviceURLPath+"v3/conversations/{conv}/activities", f.serveActivity)
	mux.HandleFunc("GET "+serviceURLPath+"v3/conversations/{conv}/members/{user}", f.serveMember)
	mux.HandleFunc("GET "+serviceURLPath+"v3/teams/{team}/conversations", f.serveTeamChannels)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ReadHeaderTimeout = 5 * time.Second
	f.srv.Config.WriteTimeout = 30 * time.Second
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// URLs of the fake's endpoints.
func (f *Fake) MetadataURL() string { return f.srv.URL + "/v1/.well-known/openidconfiguration" }
func (f *Fake) TokenURL() string    { return f.srv.URL + "/oauth2/v2.0/token" }
func (f *Fake) ServiceURL() string  { return f.srv.URL + serviceURLPath }

// Client is an HTTP client for the fake, with a timeout.
func (f *Fake) Client() *http.Client {
	c := f.srv.Client()
	c.Timeout = 10 * time.Second
	return c
}

// notifyLocked wakes WaitFor callers; f.mu must be held.
func (f *Fake) notifyLocked() { f.changes.Notify() }

func (f *Fake) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	jsonhttp.Write(w, http.StatusOK, map[string]any{
		"issuer":                                Issuer,
		"authorization_endpoint":                "https://invalid.botframework.com/v1/.well-known/authorize",
		"jwks_uri":                              f.srv.URL + "/v1/.well-known/keys",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
	})
}

func (f *Fake) serveKeys(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	f.jwksRequests++
	f.mu.Unlock()
	keys := []any{
		jwkJSON(&f.key.PublicKey, keyID, []string{"msteams", "webchat"}),
		jwkJSON(&f.unendorsedKey.PublicKey, unendorsedKeyID, []string{"webchat"}),
	}
	jsonhttp.Write(w, http.StatusOK, map[string]any{"keys": keys})
}

func jwkJSON(pub *rsa.PublicKey, kid string, endorsements []string) map[string]any {
	data, err := jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig", Algorithm: "RS256"}.MarshalJSON()
	if err != nil {
		panic(err) // an RSA public key always marshals
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["endorsements"] = endorsements
	return m
}

// RevokeTokens makes every bot token handed out so far invalid, as
// revoking the secret they were obtained with does.
func (f *Fake) RevokeTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
}

// SetAppPassword rotates the app's client secret: token requests with the
// old one are refused from now on.
func (f *Fake) SetAppPassword(password string) {
	f.mu.Lock()
	f.AppPassword = password
	f.mu.Unlock()
}

// SetTokenFailure makes the token endpoint answer status (0: work again).
func (f *Fake) SetTokenFailure(status int) {
	f.mu.Lock()
	f.tokenStatus = status
	f.mu.Unlock()
}

// TokenRequests counts successful and failed token requests.
func (f *Fake) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests
}

// JWKSRequests counts downloads of the signing keys.
func (f *Fake) JWKSRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jwksRequests
}

func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenRequests++
	status, life, password := f.tokenStatus, f.tokenLife, f.AppPassword
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if status != 0 {
		jsonhttp.Write(w, status, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "https://api.botframework.com/.default" {
		jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if id != f.AppID || subtle.ConstantTimeCompare([]byte(secret), []byte(password)) != 1 {
		jsonhttp.Write(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	f.mu.Lock()
	f.nextID++
	tok := fmt.Sprintf("fake-bot-token-%d", f.nextID)
	f.tokens[tok] = true
	f.mu.Unlock()
	jsonhttp.Write(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(life / time.Second), "ext_expires_in": int(life / time.Second), "access_token": tok,
	})
}

// FailNext makes the next n Bot Connector calls fail with status; a 429
// carries Retry-After when retryAfter is positive.
func (f *Fake) FailNext(n, status int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, failure{status: status, retryAfter: retryAfter})
	}
}

// connectorGate checks the bearer token and applies FailNext. It returns
// the token, or "" when it has answered already.
func (f *Fake) connectorGate(w http.ResponseWriter, r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	f.requests[requestKind(r)]++
	valid := ok && f.tokens[tok]
	var fail *failure
	if valid && len(f.failures) > 0 {
		fail = &f.failures[0]
		f.failures = f.failures[1:]
	}
	f.mu.Unlock()
	if !valid {
		jsonhttp.Write(w, http.StatusUnauthorized, errorBody("Unauthorized", "invalid bot token"))
		return ""
	}
	if fail != nil {
		if fail.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(fail.retryAfter/time.Second)))
		}
		code := map[int]string{
			http.StatusTooManyRequests: "TooManyRequests", http.StatusForbidden: "BotNotInConversationRoster",
			http.StatusNotFound: "ConversationNotFound", http.StatusBadRequest: "BadArgument",
		}[fail.status]
		if code == "" {
			code = "ServiceError"
		}
		jsonhttp.Write(w, fail.status, errorBody(code, "injected failure"))
		return ""
	}
	return tok
}

// Kinds of Bot Connector request, for Requests.
const (
	KindCreate   = "create"   // POST /v3/conversations: a new thread with a card
	KindUpdate   = "update"   // PUT /v3/conversations/{id}/activities/{id}
	KindMember   = "member"   // GET /v3/conversations/{id}/members/{user}
	KindChannels = "channels" // GET /v3/teams/{id}/conversations
	KindReply    = "reply"    // POST /v3/conversations/{id}/activities: a reply in a thread, or a card in a personal conversation
)

func requestKind(r *http.Request) string {
	switch {
	case r.Method == http.MethodPost && r.PathValue("conv") != "":
		return KindReply
	case r.Method == http.MethodPost:
		return KindCreate
	case r.Method == http.MethodPut:
		return KindUpdate
	case r.PathValue("team") != "":
		return KindChannels
	default:
		return KindMember
	}
}

// Requests counts the Bot Connector requests of one kind that arrived,
// including those answered with an injected failure.
func (f *Fake) Requests(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[kind]
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

type wireActivity struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Attachments []struct {
		ContentType string          `json:"contentType"`
		Content     json.RawMessage `json:"content"`
	} `json:"attachments"`
}

func (a wireActivity) card() (json.RawMessage, error) {
	if a.Type != "message" {
		return nil, fmt.Errorf("activity type %q, want message", a.Type)
	}
	if len(a.Attachments) != 1 || a.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
		return nil, fmt.Errorf("want exactly one Adaptive Card attachment")
	}
	return a.Attachments[0].Content, nil
}

func (f *Fake) serveCreate(w http.ResponseWriter, r *http.Request) {
	tok := f.connectorGate(w, r)
	if tok == "" {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var p struct {
		IsGroup     bool                  `json:"isGroup"`
		Bot         struct{ ID string }   `json:"bot"`
		Members     []struct{ ID string } `json:"members"`
		TenantID    string                `json:"tenantId"`
		ChannelData struct {
			Channel struct{ ID string } `json:"channel"`
			Tenant  struct{ ID string } `json:"tenant"`
		} `json:"channelData"`
		Activity wireActivity `json:"activity"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", err.Error()))
		return
	}
	if !p.IsGroup {
		f.createPersonal(w, p.Bot.ID, p.TenantID, p.Members)
		return
	}
	card, err := p.Activity.card()
	switch {
	case err != nil:
	case !p.IsGroup || p.Bot.ID != "28:"+f.AppID:
		err = fmt.Errorf("want isGroup and bot 28:<app id>")
	case p.ChannelData.Channel.ID == "" || p.ChannelData.Tenant.ID != f.TenantID || p.TenantID != f.TenantID:
		err = fmt.Errorf("want channelData.channel.id and our tenant")
	}
	if err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", err.Error()))
		return
	}
	f.mu.Lock()
	f.nextID++
	aid := strconv.Itoa(1700000000000 + f.nextID)
	conv := p.ChannelData.Channel.ID + ";messageid=" + aid
	f.posted = append(f.posted, Sent{Method: http.MethodPost, ConversationID: conv, ActivityID: aid,
		ChannelID: p.ChannelData.Channel.ID, TenantID: p.TenantID, Card: card, Body: body, Token: tok, At: time.Now()})
	f.notifyLocked()
	f.mu.Unlock()
	jsonhttp.Write(w, http.StatusCreated, map[string]string{"id": conv, "activityId": aid, "serviceUrl": f.ServiceURL()})
}

func (f *Fake) serveUpdate(w http.ResponseWriter, r *http.Request) {
	tok := f.connectorGate(w, r)
	if tok == "" {
		return
	}
	conv, id := r.PathValue("conv"), r.PathValue("id")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var a wireActivity
	if err := json.Unmarshal(body, &a); err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", err.Error()))
		return
	}
	card, err := a.card()
	if err == nil && a.ID != id {
		err = fmt.Errorf("activity id %q differs from the URL's %q", a.ID, id)
	}
	if err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", err.Error()))
		return
	}
	f.mu.Lock()
	known := false
	for _, p := range f.posted {
		known = known || (p.ConversationID == conv && p.ActivityID == id)
	}
	if known {
		f.updated = append(f.updated, Sent{Method: http.MethodPut, ConversationID: conv, ActivityID: id, Card: card, Body: body, Token: tok, At: time.Now()})
		f.notifyLocked()
	}
	f.mu.Unlock()
	if !known {
		jsonhttp.Write(w, http.StatusNotFound, errorBody("ActivityNotFoundInConversation", "no such activity"))
		return
	}
	jsonhttp.Write(w, http.StatusOK, map[string]string{"id": id})
}

// Reply is a text message the adapter posted in a card's thread.
type Reply struct {
	ConversationID string // "<channel>;messageid=<card's activity id>"
	Text           string
	Mentions       []Mention
}

// Mention is one mention entity of a reply.
type Mention struct {
	Text, ID, Name string
}

func (f *Fake) serveReply(w http.ResponseWriter, r *http.Request) {
	if f.connectorGate(w, r) == "" {
		return
	}
	conv := r.PathValue("conv")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var a struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		Entities []struct {
			Type      string `json:"type"`
			Text      string `json:"text"`
			Mentioned struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"mentioned"`
		} `json:"entities"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Type != "message" || strings.TrimSpace(a.Text) == "" {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", "want a message activity with text"))
		return
	}
	rep := Reply{ConversationID: conv, Text: a.Text}
	for _, e := range a.Entities {
		if e.Type != "mention" || e.Mentioned.ID == "" || !strings.Contains(a.Text, e.Text) {
			jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", "a mention entity must name someone and appear in the text"))
			return
		}
		rep.Mentions = append(rep.Mentions, Mention{Text: e.Text, ID: e.Mentioned.ID, Name: e.Mentioned.Name})
	}
	f.mu.Lock()
	known := false
	for _, p := range f.posted {
		known = known || p.ConversationID == conv
	}
	if known {
		f.nextID++
		f.replies = append(f.replies, rep)
		f.notifyLocked()
	}
	id := strconv.Itoa(1700000000000 + f.nextID)
	f.mu.Unlock()
	if !known {
		jsonhttp.Write(w, http.StatusNotFound, errorBody("ConversationNotFound", "no such thread"))
		return
	}
	jsonhttp.Write(w, http.StatusCreated, map[string]string{"id": id})
}

// Replies lists the replies posted in the thread of conversation conv.
func (f *Fake) Replies(conv string) []Reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Reply
	for _, r := range f.replies {
		if r.ConversationID == conv {
			out = append(out, r)
		}
	}
	return out
}

// AddUser makes the member lookup know a user.
func (f *Fake) AddUser(aadObjectID, name, email string) {
	f.mu.Lock()
	f.users[aadObjectID] = User{AadObjectID: aadObjectID, Name: name, Email: email}
	f.mu.Unlock()
}

// AddMember makes the member lookup know a user as u describes them: an
// empty UPN is the email, an empty Role "user" ("-" leaves userRole out),
// an empty Tenant the fake's.
func (f *Fake) AddMember(u User) {
	f.mu.Lock()
	f.users[u.AadObjectID] = u
	f.mu.Unlock()
}

// MemberLookups counts member lookups that reached the fake.
func (f *Fake) MemberLookups() int { return f.Requests(KindMember) }

// AddChannel adds a channel to a team's channel list, as Teams lists it
// for GET /v3/teams/{teamId}/conversations. Every team also has its General
// channel, whose id is the team id.
func (f *Fake) AddChannel(teamID, channelID, name string) {
	f.mu.Lock()
	f.teams[teamID] = append(f.teams[teamID], channel{ID: channelID, Name: name})
	f.mu.Unlock()
}

// serveTeamChannels lists a team's channels: General first (id = team id,
// name null, as Teams sends it), then those added with AddChannel.
func (f *Fake) serveTeamChannels(w http.ResponseWriter, r *http.Request) {
	if f.connectorGate(w, r) == "" {
		return
	}
	team := r.PathValue("team")
	f.mu.Lock()
	chans := append([]channel(nil), f.teams[team]...)
	f.mu.Unlock()
	list := []map[string]any{{"id": team, "name": nil}}
	for _, c := range chans {
		list = append(list, map[string]any{"id": c.ID, "name": c.Name})
	}
	jsonhttp.Write(w, http.StatusOK, map[string]any{"conversations": list})
}

func (f *Fake) serveMember(w http.ResponseWriter, r *http.Request) {
	if f.connectorGate(w, r) == "" {
		return
	}
	f.mu.Lock()
	u, ok := f.users[r.PathValue("user")]
	f.mu.Unlock()
	if !ok {
		jsonhttp.Write(w, http.StatusNotFound, errorBody("MemberNotFoundInConversation", "no such member"))
		return
	}
	m := map[string]string{
		"id": "29:" + u.AadObjectID, "name": u.Name, "aadObjectId": u.AadObjectID, "objectId": u.AadObjectID,
		"email": u.Email, "userPrincipalName": cmp.Or(u.UPN, u.Email), "tenantId": cmp.Or(u.Tenant, f.TenantID),
		"userRole": cmp.Or(u.Role, "user"),
	}
	if u.Role == "-" {
		delete(m, "userRole")
	}
	jsonhttp.Write(w, http.StatusOK, m)
}

// Posted returns the new threads created so far.
func (f *Fake) Posted() []Sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Sent(nil), f.posted...)
}

// Updated returns the activity updates so far.
func (f *Fake) Updated() []Sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Sent(nil), f.updated...)
}

// WaitPosted waits until at least n threads were created.
func (f *Fake) WaitPosted(ctx context.Context, n int) ([]Sent, error) {
	return f.wait(ctx, func() []Sent { return f.posted }, n)
}

// WaitUpdated waits until at least n updates arrived.
func (f *Fake) WaitUpdated(ctx context.Context, n int) ([]Sent, error) {
	return f.wait(ctx, func() []Sent { return f.updated }, n)
}

// WaitFor waits until cond holds, checking it after every post or update.
// cond may call the fake's getters.
func (f *Fake) WaitFor(ctx context.Context, cond func() bool) error {
	if err := f.changes.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("teamsfake: %w", err)
	}
	return nil
}

func (f *Fake) wait(ctx context.Context, list func() []Sent, n int) ([]Sent, error) {
	for {
		f.mu.Lock()
		ch := f.changes.Next()
		l := list()
		if len(l) >= n {
			out := append([]Sent(nil), l...)
			f.mu.Unlock()
			return out, nil
		}
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("teamsfake: waited for %d, have %d: %w", n, len(l), ctx.Err())
		}
	}
}

// InstallPersonal installs the app for a user in the personal scope: the
// Bot Connector then lets the bot start a 1:1 conversation with them.
func (f *Fake) InstallPersonal(aadObjectID string) {
	f.mu.Lock()
	if _, ok := f.personal[aadObjectID]; !ok {
		f.personal[aadObjectID] = ""
	}
	f.mu.Unlock()
}

// PersonalConversation is the id of the user's 1:1 conversation with the
// bot, "" until the bot created it.
func (f *Fake) PersonalConversation(aadObjectID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.personal[aadObjectID]
}

// createPersonal answers POST /v3/conversations for a 1:1 conversation:
// one member, by Entra object id or 29: id, the app installed for them
// (else 403, as Teams refuses a user who has not installed the app). The
// same user gets the same conversation id each time.
func (f *Fake) createPersonal(w http.ResponseWriter, bot, tenant string, members []struct{ ID string }) {
	if bot != "28:"+f.AppID || tenant != f.TenantID || len(members) != 1 {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", "want bot 28:<app id>, our tenant and exactly one member"))
		return
	}
	user := strings.TrimPrefix(strings.TrimPrefix(members[0].ID, "29:"), "per-bot-")
	f.mu.Lock()
	conv, ok := f.personal[user]
	if ok && conv == "" {
		f.nextID++
		conv = fmt.Sprintf("a:personal-%d-%s", f.nextID, user)
		f.personal[user] = conv
	}
	f.mu.Unlock()
	if !ok {
		jsonhttp.Write(w, http.StatusForbidden, errorBody("Forbidden", "Bot is not installed in user's personal scope"))
		return
	}
	jsonhttp.Write(w, http.StatusCreated, map[string]string{"id": conv})
}

// serveActivity takes an activity sent into a conversation: a card into a
// personal conversation the bot created, or else a reply in a thread.
func (f *Fake) serveActivity(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	var a wireActivity
	_ = json.Unmarshal(body, &a)
	conv := r.PathValue("conv")
	f.mu.Lock()
	personal := false
	for _, c := range f.personal {
		personal = personal || c != "" && c == conv
	}
	f.mu.Unlock()
	if personal && len(a.Attachments) > 0 {
		f.serveSend(w, r)
		return
	}
	f.serveReply(w, r)
}

// serveSend takes a card sent into a personal conversation the bot created.
func (f *Fake) serveSend(w http.ResponseWriter, r *http.Request) {
	tok := f.connectorGate(w, r)
	if tok == "" {
		return
	}
	conv := r.PathValue("conv")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var a wireActivity
	err := json.Unmarshal(body, &a)
	var card json.RawMessage
	if err == nil {
		card, err = a.card()
	}
	if err != nil {
		jsonhttp.Write(w, http.StatusBadRequest, errorBody("BadArgument", err.Error()))
		return
	}
	f.mu.Lock()
	user := ""
	for u, c := range f.personal {
		if c != "" && c == conv {
			user = u
		}
	}
	if user == "" {
		f.mu.Unlock()
		jsonhttp.Write(w, http.StatusNotFound, errorBody("ConversationNotFound", "no such conversation"))
		return
	}
	f.nextID++
	aid := strconv.Itoa(1700000000000 + f.nextID)
	f.posted = append(f.posted, Sent{Method: http.MethodPost, ConversationID: conv, ActivityID: aid, User: user,
		TenantID: f.TenantID, Card: card, Body: body, Token: tok, At: time.Now()})
	f.notifyLocked()
	f.mu.Unlock()
	jsonhttp.Write(w, http.StatusCreated, map[string]string{"id": aid})
}
