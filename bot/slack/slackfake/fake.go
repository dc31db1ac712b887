// Package slackfake is a loopback stand-in for Slack: its Web API, its
// Socket Mode connection, and the signed interactions and events it sends
// an app. It speaks the wire format slack-go uses (form-encoded or JSON
// bodies in, {"ok":...} JSON out), checks the bot token, enforces the Block
// Kit limits that make real Slack refuse a message (a benchmark may turn
// that off: SetBlockChecks), and keeps the messages it was sent so tests can
// assert what a person in the channel would see.
// It signs interaction payloads the way Slack does, so the adapter's click
// handler can be driven end to end. It needs no *testing.T: benchmarks and
// a standalone demo binary use it too.
package slackfake

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/approvebot/approvebot/bot/fakewait"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/internal/jsonlex"
)

// TeamID is the workspace the fake reports from auth.test.
const TeamID = "T0FAKETEAM"

// BotUserID is the bot's own user id, as auth.test reports it.
const BotUserID = "U0FAKEBOT"

// tsBase is the first message timestamp's seconds; later ones grow from it.
const tsBase = 1700000000

// maxBody caps request bodies, as a guard against a runaway client.
const maxBody = 4 << 20

// Call is one request the fake received.
type Call struct {
	Method string    // e.g. "chat.postMessage"
	Error  string    // the Slack error answered, or "" when ok
	Status int       // the HTTP status answered
	At     time.Time // when the call arrived
	params *params   // nil when they could not be read
}

// Form returns the call's parameters, whether sent as a form, a query or
// JSON; nil when they could not be read. With block checks off, a message
// call's are decoded here, the first time any of them is read (see
// SetBlockChecks).
func (c Call) Form() url.Values {
	if c.params == nil {
		return nil
	}
	return c.params.all()
}

// Message is a posted message as it now stands.
type Message struct {
	Channel    string
	TS         string
	Text       string
	Blocks     json.RawMessage
	Updates    int
	Actionable bool // it has an actions block: buttons are showing
}

// message is a posted message as the fake keeps it. With block checks off,
// its blocks may still be in the parameters they came in, to be decoded the
// first time someone reads them: then blocksIn holds those parameters, and
// Blocks and Actionable are unset.
type message struct {
	Message
	blocksIn *params
}

// setBlocks records the blocks a post or an update sent.
func (m *message) setBlocks(b sentBlocks) {
	m.Blocks, m.Actionable, m.blocksIn = b.raw, b.actionable, b.in
}

// read returns the message as it stands. It is called on a copy taken
// under f.mu, outside it: decoding blocks still in their parameters takes
// the time it takes without holding up the fake.
func (m message) read() Message {
	out := m.Message
	if m.blocksIn != nil {
		out.Blocks, out.Actionable = m.blocksIn.takenBlocks()
		return out
	}
	out.Blocks = slices.Clone(m.Blocks)
	return out
}

// Ephemeral is a message shown to one user only.
type Ephemeral struct {
	Channel string
	User    string
	Text    string
}

type user struct {
	ID, Name, Email string
	Team            string // "" means the fake's own workspace
	NoTeam          bool   // users.info names no team_id at all
	Enterprise      string // Enterprise Grid organisation, reported as enterprise_user
	Deleted, Bot    bool
}

type failRule struct {
	mode    Failure
	left    int       // with FailNext: how many more calls fail
	until   time.Time // with FailFor: fail until then
	channel string    // with FailChannel: only calls for this channel fail
}

// Fake is a running fake Slack Web API. It is safe for concurrent use.
type Fake struct {
	srv      *httptest.Server
	botToken string
	done     chan struct{}
	closeMu  sync.Once
	calls    chan Call
	// noBlockChecks is set by SetBlockChecks(false).
	noBlockChecks atomic.Bool

	mu         sync.Mutex
	seq        int64
	messages   map[string]*message // by channel + "\x00" + ts
	replies    []Reply
	posts      map[string]int
	ephemerals []Ephemeral
	users      map[string]*user
	groups     map[string][]string
	channels   map[string]*channel
	scopes     []string
	socket     *socketMode // nil until EnableSocketMode
	fails      map[string][]*failRule
	counts     map[string]int
	enterprise string // auth.test's enterprise_id
	changes    fakewait.Changes
	triggers   map[string]*trigger
	views      map[string]*View
	homes      map[string]*Home
	viewOrder  []string
}

// SetBotToken rotates the bot token: calls with the old one are refused
// (invalid_auth) from now on.
func (f *Fake) SetBotToken(token string) {
	f.mu.Lock()
	f.botToken = token
	f.mu.Unlock()
}

// SetBlockChecks turns the Block Kit checks of message blocks on or off.
// They are on from New, and every test keeps them on: that is how a test
// learns that real Slack would refuse what approvebot renders. Only the
// benchmark turns them off. It runs the fake in its own process on the cores
// the server under measurement uses, and decoding every message's blocks to
// check them is most of the fake's work per post; each post checked steals
// that much from the server and makes it look slower than it is.
//
// With checks off, chat.postMessage, chat.update and chat.postEphemeral take
// their blocks as sent and record them byte for byte; a message is
// Actionable when its blocks, as compact JSON spells them, hold a block of
// type actions. Sent as a form, such a call's parameters are not decoded
// as it arrives: the few its answer depends on (token, channel, text, ts,
// thread_ts, user) are taken out of the body, the rest is decoded from it,
// once, the first time anything reads it (Messages, Message, a Call's
// Form). Everything else stays as with checks on: the endpoints, the token
// check, the parameters' values and the bodies refused, the answers, the
// text checks, the failures planned, the calls delivered and the counts.
func (f *Fake) SetBlockChecks(on bool) { f.noBlockChecks.Store(!on) }

func (f *Fake) currentBotToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.botToken
}

// New starts a fake that accepts botToken. Close it when done.
func New(botToken string) *Fake {
	f := &Fake{
		botToken: botToken,
		done:     make(chan struct{}),
		calls:    make(chan Call, 4096),
		messages: map[string]*message{},
		posts:    map[string]int{},
		users:    map[string]*user{},
		groups:   map[string][]string{},
		channels: map[string]*channel{},
		scopes:   slices.Clone(DefaultScopes),
		fails:    map[string][]*failRule{},
		counts:   map[string]int{},
		triggers: map[string]*trigger{},
		views:    map[string]*View{},
		homes:    map[string]*Home{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the API base URL, ending in "/", for slack-go's OptionAPIURL.
func (f *Fake) URL() string { return f.srv.URL + "/api/" }

// Close releases hanging requests and stops the server.
func (f *Fake) Close() {
	f.closeMu.Do(func() {
		close(f.done)
		for _, c := range f.openConns() {
			c.ws.Close()
		}
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
}

// AddUser adds (or replaces) a workspace member.
func (f *Fake) AddUser(id, name, email string) {
	f.mu.Lock()
	f.users[id] = &user{ID: id, Name: name, Email: email}
	f.mu.Unlock()
}

// AddExternalUser adds a member of another organisation's workspace, as
// Slack Connect shows them in a shared channel: users.info reports their own
// team_id.
func (f *Fake) AddExternalUser(id, name, email, team string) {
	f.mu.Lock()
	f.users[id] = &user{ID: id, Name: name, Email: email, Team: team}
	f.mu.Unlock()
}

// AddUserWithoutTeam adds a user for whom users.info reports no team_id.
func (f *Fake) AddUserWithoutTeam(id, name, email string) {
	f.mu.Lock()
	f.users[id] = &user{ID: id, Name: name, Email: email, NoTeam: true}
	f.mu.Unlock()
}

// AddGridUser adds a member of an Enterprise Grid organisation: users.info
// reports team (the fake's own workspace when "") and enterprise_user with
// the organisation's id.
func (f *Fake) AddGridUser(id, name, email, team, enterprise string) {
	f.mu.Lock()
	f.users[id] = &user{ID: id, Name: name, Email: email, Team: team, Enterprise: enterprise}
	f.mu.Unlock()
}

// SetEnterprise makes auth.test report the bot's workspace as part of an
// Enterprise Grid organisation.
func (f *Fake) SetEnterprise(id string) {
	f.mu.Lock()
	f.enterprise = id
	f.mu.Unlock()
}

// AddBot adds a bot user: users.info reports is_bot.
func (f *Fake) AddBot(id, name string) {
	f.mu.Lock()
	f.users[id] = &user{ID: id, Name: name, Bot: true}
	f.mu.Unlock()
}

// DeleteUser marks a user deactivated, as Slack does: users.info still
// answers, with deleted true.
func (f *Fake) DeleteUser(id string) {
	f.mu.Lock()
	if u, ok := f.users[id]; ok {
		u.Deleted = true
	}
	f.mu.Unlock()
}

// AddUsergroup sets a user group's members.
func (f *Fake) AddUsergroup(id string, members ...string) {
	f.mu.Lock()
	f.groups[id] = slices.Clone(members)
	f.mu.Unlock()
}

// DefaultScopes are the bot token scopes the fake reports from auth.test
// (in the X-OAuth-Scopes header, as Slack does) until SetScopes changes them.
var DefaultScopes = []string{"chat:write", "users:read", "users:read.email", "usergroups:read", "channels:read", "groups:read", "im:write"}

// SetScopes sets the scopes the bot token reports having.
func (f *Fake) SetScopes(scopes ...string) {
	f.mu.Lock()
	f.scopes = slices.Clone(scopes)
	f.mu.Unlock()
}

type channel struct {
	ID, Name string
	Private  bool
	Member   bool // the bot is in it
}

// AddChannel declares a channel and whether the bot is a member. Channels
// never declared are treated as existing with the bot in them, so tests that
// only post need not declare any. A declared channel the bot is not in
// refuses posts with not_in_channel, as Slack does.
func (f *Fake) AddChannel(id, name string, private, member bool) {
	f.mu.Lock()
	f.channels[id] = &channel{ID: id, Name: name, Private: private, Member: member}
	f.mu.Unlock()
}

// RemoveChannel makes a channel unknown: conversations.info and posts to it
// answer channel_not_found.
func (f *Fake) RemoveChannel(id string) {
	f.mu.Lock()
	f.channels[id] = nil
	f.mu.Unlock()
}

// Messages returns every posted message, oldest first.
func (f *Fake) Messages() []Message {
	f.mu.Lock()
	kept := make([]message, 0, len(f.messages))
	for _, m := range f.messages {
		kept = append(kept, *m)
	}
	f.mu.Unlock()
	out := make([]Message, len(kept))
	for i, m := range kept {
		out[i] = m.read()
	}
	sort.Slice(out, func(i, j int) bool { return tsLess(out[i].TS, out[j].TS) })
	return out
}

// Message returns the message at channel and ts.
func (f *Fake) Message(channel, ts string) (Message, bool) {
	f.mu.Lock()
	m, ok := f.messages[channel+"\x00"+ts]
	var kept message
	if ok {
		kept = *m
	}
	f.mu.Unlock()
	if !ok {
		return Message{}, false
	}
	return kept.read(), true
}

// Posts counts the chat.postMessage calls that succeeded in channel.
func (f *Fake) Posts(channel string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts[channel]
}

// Ephemerals returns the ephemeral messages sent, oldest first.
func (f *Fake) Ephemerals() []Ephemeral {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ephemerals)
}

// CallCount counts the requests received for method, failed ones included.
func (f *Fake) CallCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

// Calls delivers every request received, in order. The channel is buffered;
// when nobody reads it and it fills, further calls are not delivered (the
// fake never blocks on it), but CallCount and WaitFor still see them.
func (f *Fake) Calls() <-chan Call { return f.calls }

// WaitFor blocks until cond reports true or ctx ends. cond is evaluated after
// each change to the fake's state (a call received, a message posted...), so
// it may call the fake's other methods.
func (f *Fake) WaitFor(ctx context.Context, cond func() bool) error {
	if err := f.changes.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("slackfake: %w", err)
	}
	return nil
}

// FailNext makes the next n calls to method fail with mode.
func (f *Fake) FailNext(method string, n int, mode Failure) {
	f.mu.Lock()
	f.fails[method] = append(f.fails[method], &failRule{mode: mode, left: n})
	f.mu.Unlock()
}

// FailFor makes every call to method fail with mode for d.
func (f *Fake) FailFor(method string, d time.Duration, mode Failure) {
	f.mu.Lock()
	f.fails[method] = append(f.fails[method], &failRule{mode: mode, until: time.Now().Add(d)})
	f.mu.Unlock()
}

// FailChannel makes every call to method for channel fail with mode for d;
// calls for other channels go through.
func (f *Fake) FailChannel(method, channel string, d time.Duration, mode Failure) {
	f.mu.Lock()
	f.fails[method] = append(f.fails[method], &failRule{mode: mode, until: time.Now().Add(d), channel: channel})
	f.mu.Unlock()
}

// Heal drops every failure still planned for method, so an outage can end at
// a moment a test chooses.
func (f *Fake) Heal(method string) {
	f.mu.Lock()
	delete(f.fails, method)
	f.mu.Unlock()
}

// notifyLocked wakes WaitFor callers; f.mu must be held.
func (f *Fake) notifyLocked() { f.changes.Notify() }

// takeFailure returns the failure planned for this call to method for
// channel, if any: the first rule still in force that applies to it. Spent
// rules are dropped.
func (f *Fake) takeFailureLocked(method, channel string) Failure {
	now := time.Now()
	var kept []*failRule
	var out Failure
	for _, r := range f.fails[method] {
		if r.until.IsZero() && r.left <= 0 || !r.until.IsZero() && !now.Before(r.until) {
			continue
		}
		if out == nil && (r.channel == "" || r.channel == channel) {
			out = r.mode
			if r.until.IsZero() {
				r.left--
				if r.left == 0 {
					continue
				}
			}
		}
		kept = append(kept, r)
	}
	f.fails[method] = kept
	return out
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/link/" {
		f.serveSocket(w, r)
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if method == "apps.connections.open" {
		f.openConnection(w, r)
		return
	}
	if !ok || method == "" {
		http.NotFound(w, r)
		return
	}
	at := time.Now()
	p, err := f.readParams(r, method)
	if err != nil {
		f.finish(w, Call{Method: method, Status: http.StatusOK, Error: "invalid_form_data", At: at}, nil)
		return
	}
	call := Call{Method: method, params: p, Status: http.StatusOK, At: at}

	f.mu.Lock()
	f.counts[method]++
	failure := f.takeFailureLocked(method, p.Get("channel"))
	f.notifyLocked()
	f.mu.Unlock()

	if failure != nil {
		call.Status, call.Error = failure.apply(f, w, r)
		f.record(call)
		return
	}

	token := p.Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = h
	}
	switch {
	case token == "":
		call.Error = "not_authed"
		f.finish(w, call, nil)
		return
	case token != f.currentBotToken():
		call.Error = "invalid_auth"
		f.finish(w, call, nil)
		return
	}

	// The message calls read p as it came, scanned or decoded; every other
	// call's params were decoded as they arrived.
	var resp map[string]any
	switch method {
	case "auth.test":
		f.mu.Lock()
		w.Header().Set("X-OAuth-Scopes", strings.Join(f.scopes, ","))
		f.mu.Unlock()
		resp = map[string]any{"url": "https://fake.slack.com/", "team": "Fake", "user": "approvebot",
			"team_id": TeamID, "user_id": BotUserID, "bot_id": "B0FAKEBOT"}
		f.mu.Lock()
		if f.enterprise != "" {
			resp["enterprise_id"] = f.enterprise
		}
		f.mu.Unlock()
	case "chat.postMessage":
		var a posted
		a, call.Error = f.postMessage(p)
		f.finishPosted(w, call, a)
		return
	case "chat.update":
		var a posted
		a, call.Error = f.update(p)
		f.finishPosted(w, call, a)
		return
	case "chat.postEphemeral":
		resp, call.Error = f.postEphemeral(p)
	case "users.info":
		resp, call.Error = f.userInfo(p.all())
	case "conversations.info":
		resp, call.Error = f.conversationInfo(p.all())
	case "conversations.open":
		resp, call.Error = f.openConversation(p.all())
	case "users.lookupByEmail":
		resp, call.Error = f.lookupByEmail(p.all())
	case "views.open":
		resp, call.Error = f.viewsOpen(p.all())
	case "views.update":
		resp, call.Error = f.viewsUpdate(p.all())
	case "views.publish":
		resp, call.Error = f.viewsPublish(p.all())
	case "usergroups.users.list":
		resp, call.Error = f.usergroupMembers(p.all())
	default:
		call.Error = "unknown_method"
	}
	f.finish(w, call, resp)
}

// finishPosted answers a message call with a, or with its error, and
// records the call.
func (f *Fake) finishPosted(w http.ResponseWriter, call Call, a posted) {
	if call.Error != "" {
		f.finish(w, call, nil)
		return
	}
	jsonhttp.WriteEncoded(w, call.Status, a.appendJSON(make([]byte, 0, 256)))
	f.record(call)
}

// finish answers with Slack's envelope and records the call.
func (f *Fake) finish(w http.ResponseWriter, call Call, resp map[string]any) {
	if resp == nil {
		resp = map[string]any{}
	}
	resp["ok"] = call.Error == ""
	if call.Error != "" {
		resp = map[string]any{"ok": false, "error": call.Error}
	}
	jsonhttp.Write(w, call.Status, resp)
	f.record(call)
}

func (f *Fake) record(call Call) {
	select {
	case f.calls <- call:
	default:
	}
	f.mu.Lock()
	f.notifyLocked()
	f.mu.Unlock()
}

// readParams gathers a call's parameters. With block checks off, a message
// call's form body is scanned rather than decoded (see params).
func (f *Fake) readParams(r *http.Request, method string) (*params, error) {
	if f.noBlockChecks.Load() && scanMethods[method] && scannable(r) {
		return readScanned(r)
	}
	v, err := decodeParams(r)
	if err != nil {
		return nil, err
	}
	return decodedParams(v), nil
}

// decodeParams gathers a call's parameters from the query and a form or JSON
// body. JSON values that are not strings (blocks, booleans) are kept as
// their JSON text, which is how a form would carry them.
func decodeParams(r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		return r.Form, nil
	}
	form := r.URL.Query()
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return nil, err
	}
	for k, raw := range body {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			form.Set(k, s)
			continue
		}
		form.Set(k, string(raw))
	}
	return form, nil
}

// sentBlocks are a message call's blocks parameter as a post or an update
// records them: checked, or taken as sent, or still in the parameters they
// came in (in), to be decoded when first read.
type sentBlocks struct {
	sent       bool // the parameter was sent, and not empty
	raw        json.RawMessage
	actionable bool
	in         *params
}

// blocksOf returns a message call's blocks, checked unless SetBlockChecks
// turned that off. The error is Slack's code.
func (f *Fake) blocksOf(p *params) (sentBlocks, string) {
	if p.lazy {
		if !p.blocksSent {
			return sentBlocks{}, ""
		}
		return sentBlocks{sent: true, in: p}, ""
	}
	raw := p.Get("blocks")
	blocks, actionable, errCode := f.checkBlocks(raw)
	if errCode != "" {
		return sentBlocks{}, errCode
	}
	return sentBlocks{sent: raw != "", raw: blocks, actionable: actionable}, ""
}

func (f *Fake) postMessage(p *params) (posted, string) {
	channel := p.Get("channel")
	if channel == "" {
		return posted{}, "channel_not_found"
	}
	f.mu.Lock()
	ch, declared := f.channels[channel]
	f.mu.Unlock()
	switch {
	case declared && ch == nil:
		return posted{}, "channel_not_found"
	case declared && !ch.Member:
		return posted{}, "not_in_channel"
	}
	text := p.Get("text")
	if parent := p.Get("thread_ts"); parent != "" {
		return f.reply(channel, parent, text)
	}
	blocks, errCode := f.blocksOf(p)
	if errCode != "" {
		return posted{}, errCode
	}
	if strings.TrimSpace(text) == "" {
		return posted{}, "no_text"
	}
	if utf8.RuneCountInString(text) > 40000 {
		return posted{}, "msg_too_long"
	}
	m := &message{Message: Message{Channel: channel, Text: text}}
	m.setBlocks(blocks)
	f.mu.Lock()
	f.seq++
	m.TS = formatTS(f.seq)
	f.messages[channel+"\x00"+m.TS] = m
	f.posts[channel]++
	f.mu.Unlock()
	return posted{channel: channel, ts: m.TS, text: text}, ""
}

// Reply is a message posted in the thread of another.
type Reply struct {
	Channel, ThreadTS, TS, Text string
}

// reply records a thread reply. Replies are kept apart from Messages and
// Posts, which count what stands in the channel itself.
func (f *Fake) reply(channel, parent, text string) (posted, string) {
	if strings.TrimSpace(text) == "" {
		return posted{}, "no_text"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.messages[channel+"\x00"+parent]; !ok {
		return posted{}, "thread_not_found"
	}
	f.seq++
	ts := formatTS(f.seq)
	f.replies = append(f.replies, Reply{Channel: channel, ThreadTS: parent, TS: ts, Text: text})
	return posted{channel: channel, ts: ts, threadTS: parent, text: text}, ""
}

// Replies lists the replies posted in the thread of the message at
// (channel, ts), oldest first.
func (f *Fake) Replies(channel, ts string) []Reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Reply
	for _, r := range f.replies {
		if r.Channel == channel && r.ThreadTS == ts {
			out = append(out, r)
		}
	}
	return out
}

func (f *Fake) update(p *params) (posted, string) {
	channel, ts, text := p.Get("channel"), p.Get("ts"), p.Get("text")
	blocks, errCode := f.blocksOf(p)
	if errCode != "" {
		return posted{}, errCode
	}
	if text == "" && !blocks.sent {
		return posted{}, "no_text"
	}
	if utf8.RuneCountInString(text) > 40000 {
		return posted{}, "msg_too_long"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[channel+"\x00"+ts]
	if !ok {
		return posted{}, "message_not_found"
	}
	if text != "" {
		m.Text = text
	}
	// Slack keeps the blocks when none are sent; "[]" clears them.
	if blocks.sent {
		m.setBlocks(blocks)
	}
	m.Updates++
	return posted{update: true, channel: channel, ts: ts, text: m.Text}, ""
}

// posted is Slack's answer to a message posted, posted in a thread
// (threadTS set) or updated, written byte for byte as encoding/json writes
// the map of it (keys in order), without building that map.
type posted struct {
	update                      bool
	channel, ts, threadTS, text string
}

// appendJSON appends the answer, "ok" included.
func (a posted) appendJSON(b []byte) []byte {
	b = append(b, `{"channel":`...)
	b = jsonlex.AppendString(b, a.channel)
	if a.update {
		b = append(b, `,"ok":true,"text":`...)
		b = jsonlex.AppendString(b, a.text)
		b = append(b, `,"ts":`...)
		b = jsonlex.AppendString(b, a.ts)
		return append(b, '}')
	}
	b = append(b, `,"message":{"bot_id":"B0FAKEBOT","text":`...)
	b = jsonlex.AppendString(b, a.text)
	if a.threadTS != "" {
		b = append(b, `,"thread_ts":`...)
		b = jsonlex.AppendString(b, a.threadTS)
	}
	b = append(b, `,"ts":`...)
	b = jsonlex.AppendString(b, a.ts)
	b = append(b, `,"type":"message"},"ok":true,"ts":`...)
	b = jsonlex.AppendString(b, a.ts)
	return append(b, '}')
}

func (f *Fake) postEphemeral(p *params) (map[string]any, string) {
	channel, userID, text := p.Get("channel"), p.Get("user"), p.Get("text")
	if channel == "" {
		return nil, "channel_not_found"
	}
	if userID == "" {
		return nil, "user_not_found"
	}
	blocks, errCode := f.blocksOf(p)
	if errCode != "" {
		return nil, errCode
	}
	if strings.TrimSpace(text) == "" && !blocks.sent {
		return nil, "no_text"
	}
	f.mu.Lock()
	f.seq++
	ts := formatTS(f.seq)
	f.ephemerals = append(f.ephemerals, Ephemeral{Channel: channel, User: userID, Text: text})
	f.mu.Unlock()
	return map[string]any{"message_ts": ts}, ""
}

func (f *Fake) userInfo(form url.Values) (map[string]any, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[form.Get("user")]
	if !ok {
		return nil, "user_not_found"
	}
	return map[string]any{"user": u.json()}, ""
}

// conversationInfo answers conversations.info. Like Slack, it needs
// channels:read for public channels and groups:read for private ones, and a
// private channel the bot is not in does not exist for it.
func (f *Fake) conversationInfo(form url.Values) (map[string]any, string) {
	id := form.Get("channel")
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, declared := f.channels[id]
	if !declared {
		ch = &channel{ID: id, Name: strings.ToLower(id), Member: true}
	}
	if ch == nil || id == "" || (ch.Private && !ch.Member) {
		return nil, "channel_not_found"
	}
	need := "channels:read"
	if ch.Private {
		need = "groups:read"
	}
	if !slices.Contains(f.scopes, need) {
		return map[string]any{"needed": need, "provided": strings.Join(f.scopes, ",")}, "missing_scope"
	}
	return map[string]any{"channel": map[string]any{
		"id": ch.ID, "name": ch.Name, "is_channel": !ch.Private, "is_group": ch.Private,
		"is_private": ch.Private, "is_member": ch.Member, "is_archived": false,
	}}, ""
}

// DMChannel is the direct conversation the fake opens with a user.
func DMChannel(user string) string { return "D" + strings.TrimPrefix(user, "U") }

// openConversation answers conversations.open for one user, as Slack does
// for the bot's direct messages (scope im:write).
func (f *Fake) openConversation(form url.Values) (map[string]any, string) {
	users := strings.Split(form.Get("users"), ",")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.scopes, "im:write") {
		return nil, "missing_scope"
	}
	if len(users) != 1 || users[0] == "" {
		return nil, "not_enough_users"
	}
	if u, ok := f.users[users[0]]; !ok || u.Deleted {
		return nil, "user_not_found"
	}
	return map[string]any{"channel": map[string]any{"id": DMChannel(users[0]), "is_im": true}}, ""
}

func (f *Fake) lookupByEmail(form url.Values) (map[string]any, string) {
	email := form.Get("email")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if email != "" && strings.EqualFold(u.Email, email) && !u.Deleted {
			return map[string]any{"user": u.json()}, ""
		}
	}
	return nil, "users_not_found"
}

func (f *Fake) usergroupMembers(form url.Values) (map[string]any, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	members, ok := f.groups[form.Get("usergroup")]
	if !ok {
		return nil, "no_such_subteam"
	}
	return map[string]any{"users": slices.Clone(members)}, ""
}

func (u *user) json() map[string]any {
	m := map[string]any{
		"id": u.ID, "team_id": cmp.Or(u.Team, TeamID), "name": u.Name, "deleted": u.Deleted, "is_bot": u.Bot,
		"real_name": u.Name,
		"profile":   map[string]any{"email": u.Email, "real_name": u.Name, "display_name": u.Name},
	}
	if u.NoTeam {
		delete(m, "team_id")
	}
	if u.Enterprise != "" {
		m["enterprise_user"] = map[string]any{"id": u.ID, "enterprise_id": u.Enterprise, "enterprise_name": "Fake Org"}
	}
	return m
}

// formatTS makes Slack-shaped, strictly increasing message timestamps.
func formatTS(seq int64) string {
	return fmt.Sprintf("%d.%06d", tsBase+seq/1_000_000, seq%1_000_000)
}

func tsLess(a, b string) bool {
	as, af, _ := strings.Cut(a, ".")
	bs, bf, _ := strings.Cut(b, ".")
	ai, _ := strconv.ParseInt(as, 10, 64)
	bi, _ := strconv.ParseInt(bs, 10, 64)
	if ai != bi {
		return ai < bi
	}
	return af < bf
}
