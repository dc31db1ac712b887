package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/fakewait"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// pager is a platform of the tests' own, built with the service beside the
// real ones as platforms.go builds those: a section (pager.secret, which
// rotates on reload, and pager.desk, which needs a restart), sides that
// list channels and users, a callback route where its clicks land, an admin
// route, and, when line is set, a connection of its own (bot.Runner) that
// ends when the test sends on line.
type pager struct {
	line chan error

	changes fakewait.Changes
	mu      sync.Mutex
	posts   []pagerPost
	secrets []string // the secret started with, then each reloaded one
	closed  bool
}

type pagerPost struct {
	channel string
	msg     approvebot.Message
	ref     approvebot.MessageRef
}

type pagerSection struct{ Secret, Desk string }

var (
	_ bot.Plugin         = (*pager)(nil)
	_ bot.RestartChecker = (*pager)(nil)
	_ bot.StartLogger    = (*pager)(nil)
	_ bot.Running        = (*pagerRunning)(nil)
	_ bot.AdminRouter    = (*pagerRunning)(nil)
	_ bot.Runner         = pagerLine{}
	_ bot.Platform       = (*pagerRunning)(nil)
)

func (*pager) Name() string { return "pager" }

func (*pager) ParseSection(r *confnode.Reader, n *yaml.Node, _ policy.File) any {
	o := r.Object(n, "pager", "secret", "desk")
	return &pagerSection{Secret: r.Str(o, "secret", confnode.Required), Desk: r.Str(o, "desk", confnode.Optional)}
}

func (*pager) ParseSide(r *confnode.Reader, n *yaml.Node, at string, _ any, _ policy.File) (approvebot.Side, bool) {
	o := r.Object(n, at, "channels", "users")
	if o == nil {
		return approvebot.Side{}, false
	}
	return approvebot.Side{Channels: r.List(o, "channels"), Users: r.List(o, "users")}, true
}

func (*pager) Member(side approvebot.Side, a approvebot.Approver) bool {
	return slices.Contains(side.Users, a.UserID)
}

func (*pager) Deciders(side approvebot.Side) ([]string, bool) { return side.Users, false }
func (*pager) DescribeSection(any) string                     { return "pager" }
func (*pager) DescribeSide(s approvebot.Side) string          { return strings.Join(s.Channels, ", ") }

func (p *pager) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	sc, _ := cfg.Section("pager").(*pagerSection)
	if sc == nil {
		return nil, nil
	}
	p.mu.Lock()
	p.secrets = append(p.secrets, sc.Secret)
	p.mu.Unlock()
	r := &pagerRunning{p: p}
	if p.line != nil {
		return pagerLine{r}, nil
	}
	return r, nil
}

func (p *pager) StartLog(r bot.Running) []slog.Attr {
	_, line := r.(pagerLine)
	return []slog.Attr{slog.Bool("pager_line", line)}
}

func (*pager) RestartOnly(cur, next *policy.Config) (keys, notes []string) {
	a, _ := cur.Section("pager").(*pagerSection)
	b, _ := next.Section("pager").(*pagerSection)
	switch {
	case (a == nil) != (b == nil):
		return []string{"pager"}, nil
	case a != nil && a.Desk != b.Desk:
		return []string{"pager (other than its secret)"}, nil
	case a != nil && a.Secret != b.Secret:
		return nil, []string{"pager.secret changed"}
	}
	return nil, nil
}

// secret is the one clicks must carry now.
func (p *pager) secret() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.secrets[len(p.secrets)-1]
}

// firstPost waits for the pager's first post.
func (p *pager) firstPost(t *testing.T, logs fmt.Stringer) pagerPost {
	t.Helper()
	var got pagerPost
	waitOn(t, &p.changes, "the pager's post", logs, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.posts) == 0 {
			return false
		}
		got = p.posts[0]
		return true
	})
	return got
}

// pagerRunning is the pager's running side and the engine's platform.
type pagerRunning struct{ p *pager }

func (r *pagerRunning) Platform() bot.Platform { return r }
func (r *pagerRunning) Name() string           { return "pager" }

func (r *pagerRunning) Post(_ context.Context, channel string, msg approvebot.Message) (approvebot.MessageRef, error) {
	r.p.mu.Lock()
	ref := approvebot.MessageRef{Channel: channel, ID: strconv.Itoa(len(r.p.posts) + 1)}
	r.p.posts = append(r.p.posts, pagerPost{channel: channel, msg: msg, ref: ref})
	r.p.mu.Unlock()
	r.p.changes.Notify()
	return ref, nil
}

func (r *pagerRunning) Update(context.Context, approvebot.MessageRef, approvebot.Message) error {
	return nil
}

func (r *pagerRunning) Identify(_ context.Context, who approvebot.Approver, _ approvebot.MessageRef, _ []string) (approvebot.Approver, error) {
	who.Email = who.UserID + "@pager.example"
	return who, nil
}

// pagerClick is what the pager's desk posts when someone decides.
type pagerClick struct {
	RequestID, Channel, ID, User, Decision string
}

func (r *pagerRunning) Routes(e *bot.Engine) bot.Routes {
	return bot.Routes{Callbacks: map[string]http.Handler{
		"POST /pager/clicks": http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Header.Get("X-Pager-Secret") != r.p.secret() {
				jsonhttp.Write(w, http.StatusUnauthorized, map[string]string{"error": "wrong secret"})
				return
			}
			var c pagerClick
			if err := json.NewDecoder(req.Body).Decode(&c); err != nil {
				jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": "unreadable click"})
				return
			}
			res := e.Click(req.Context(), approvebot.Ballot{
				Platform: "pager",
				Ref:      approvebot.MessageRef{Channel: c.Channel, ID: c.ID},
				Approver: approvebot.Approver{Platform: "pager", Workspace: "desk", UserID: c.User, Name: c.User},
				Decision: c.Decision, Assurance: "pager-secret",
			}, c.RequestID)
			jsonhttp.Write(w, http.StatusOK, map[string]any{"counted": res.Counted, "decided": res.Decided, "message": res.Message})
		}),
	}}
}

func (r *pagerRunning) AdminRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /admin/pager/posts": func(w http.ResponseWriter, _ *http.Request) {
			r.p.mu.Lock()
			n := len(r.p.posts)
			r.p.mu.Unlock()
			jsonhttp.Write(w, http.StatusOK, map[string]int{"posts": n})
		},
	}
}

func (r *pagerRunning) Reload(next *policy.Config) {
	sc := next.Section("pager").(*pagerSection)
	r.p.mu.Lock()
	r.p.secrets = append(r.p.secrets, sc.Secret)
	r.p.mu.Unlock()
}

func (r *pagerRunning) Close() {
	r.p.mu.Lock()
	r.p.closed = true
	r.p.mu.Unlock()
}

// pagerLine is the pager with its own connection.
type pagerLine struct{ *pagerRunning }

func (l pagerLine) Run(ctx context.Context, _ *bot.Engine) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-l.p.line:
		return err
	}
}

func (pagerLine) Connection() string { return "the pager line" }

const pagerConfig = configHead + configOperations + `pager:
  secret: first-secret
  desk: front
approvers:
  desk:
    pager:
      channels: [P0DESK]
      users: [ann]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [desk]
    timeout: 5m
`

// startWith starts the service as serve does, built with plugins.
func (h *harness) startWith(plugins bot.Plugins) {
	h.t.Helper()
	cfg, err := policy.Load(h.config, h.getenv, plugins.Platforms())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.logs = &syncBuffer{}
	rl := &reloader{path: h.config, getenv: h.getenv}
	svc, err := buildWith(ctx, cfg, plugins, newLogger(h.logs, slog.LevelInfo), rl, h.runClock(), nil)
	if err != nil {
		cancel()
		h.t.Fatalf("build: %v", err)
	}
	h.url = svc.scheme + "://" + svc.listener.Addr().String()
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- svc.serve(ctx) }()
	h.t.Cleanup(h.stop)
}

// startLine is the "approvebot started" log line.
func (h *harness) startLine() map[string]any {
	h.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "approvebot started" {
			return line
		}
	}
	h.t.Fatalf("no startup line\nlogs:\n%s", h.logs)
	return nil
}

func (h *harness) pagerClick(secret string, c pagerClick) response {
	h.t.Helper()
	body, _ := json.Marshal(c)
	return h.do(http.MethodPost, "/pager/clicks", body, map[string]string{"X-Pager-Secret": secret})
}

// A platform is its package and one entry in the list the service is built
// with: serve starts it, posts and takes clicks through it, guards its
// callback, serves its admin route behind the token, reloads its secret
// (and refuses what needs a restart, by its own word), logs it at start and
// closes it at the end, naming it nowhere.
func TestPlatformPlugin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, pagerConfig)
	p := &pager{}
	h.startWith(append(platforms(), p))

	line := h.startLine()
	for key, want := range map[string]bool{"slack": true, "slack_socket_mode": false, "teams": false, "web": false, "pager": true, "pager_line": false} {
		if got, ok := line[key].(bool); !ok || got != want {
			t.Errorf("startup line: %s is %v, want %v\n%v", key, line[key], want, line)
		}
	}

	held := h.submit(legacyBody("approve-large-transfer", "desk"), auth())
	post := p.firstPost(t, h.logs)
	if post.channel != "P0DESK" {
		t.Fatalf("posted in %q, want P0DESK", post.channel)
	}
	id := post.msg.RequestID
	h.waitPosted(id, 1)

	approve := pagerClick{RequestID: id, Channel: post.ref.Channel, ID: post.ref.ID, User: "ann", Decision: approvebot.Allow}
	if r := h.pagerClick("wrong-secret", approve); r.status != http.StatusUnauthorized {
		t.Fatalf("click with a wrong secret: %d %s", r.status, r.body)
	}
	// The service, not the platform, bounds a callback's body.
	huge := h.do(http.MethodPost, "/pager/clicks", make([]byte, maxCallbackBody+1), map[string]string{"X-Pager-Secret": "first-secret"})
	if huge.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized callback: %d, want 413", huge.status)
	}

	if r := h.do(http.MethodGet, "/admin/pager/posts", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("admin route without the token: %d", r.status)
	}
	if r := h.do(http.MethodGet, "/admin/pager/posts", nil, map[string]string{"Authorization": "Bearer " + adminToken}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"posts":1`) {
		t.Fatalf("admin route: %d %s", r.status, r.body)
	}

	// A restart-only change, as the platform names it, is refused whole.
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() response {
		return h.do(http.MethodPost, "/admin/reload", nil, map[string]string{"Authorization": "Bearer " + adminToken})
	}
	write(strings.Replace(pagerConfig, "desk: front", "desk: back", 1))
	if r := reload(); r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "pager (other than its secret) changed: restart approvebot") {
		t.Fatalf("restart-only reload: %d %s", r.status, r.body)
	}
	write(strings.Replace(pagerConfig, "secret: first-secret", "secret: second-secret", 1))
	if r := reload(); r.status != http.StatusOK || !strings.Contains(string(r.body), "pager.secret changed") {
		t.Fatalf("reload: %d %s", r.status, r.body)
	}
	if r := h.pagerClick("first-secret", approve); r.status != http.StatusUnauthorized {
		t.Fatalf("click with the rotated-out secret: %d %s", r.status, r.body)
	}
	if r := h.pagerClick("second-secret", approve); r.status != http.StatusOK || !strings.Contains(string(r.body), `"decided":true`) {
		t.Fatalf("click: %d %s", r.status, r.body)
	}
	got := h.await(held)
	if !got.answer.Approved || got.answer.Status != "approved" {
		t.Fatalf("agent got %s", got.body)
	}

	h.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		t.Error("the pager was not closed")
	}
	if want := []string{"first-secret", "second-secret"}; !slices.Equal(p.secrets, want) {
		t.Errorf("secrets %v, want %v", p.secrets, want)
	}
}

// A platform's own connection ending stops the service with its error, as
// the Slack socket's does.
func TestPlatformPluginConnectionLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, pagerConfig)
	p := &pager{line: make(chan error)}
	h.startWith(append(platforms(), p))
	if got := h.startLine()["pager_line"]; got != true {
		t.Fatalf("startup line: pager_line is %v", got)
	}
	cut := errors.New("the desk hung up")
	p.line <- cut
	var err error
	select {
	case err = <-h.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the service did not stop\nlogs:\n%s", h.logs)
	}
	h.cancel = nil
	if !errors.Is(err, cut) {
		t.Fatalf("service ended with %v, want %v", err, cut)
	}
	if !strings.Contains(h.logs.String(), `"msg":"stopping: the pager line is gone"`) {
		t.Fatalf("no line saying the connection is gone\nlogs:\n%s", h.logs)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		t.Error("the pager was not closed")
	}
}

// Two platforms cannot take one route.
func TestPlatformPluginRouteTaken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, pagerConfig)
	cfg, err := policy.Load(h.config, h.getenv, append(platforms(), &pager{}).Platforms())
	if err != nil {
		t.Fatal(err)
	}
	twice := &pager{}
	_, err = buildWith(context.Background(), cfg, append(platforms(), twice, &pagerTwin{twice}), slog.New(slog.DiscardHandler), nil, bot.SystemClock{}, nil)
	if err == nil || !strings.Contains(err.Error(), "two platforms serve POST /pager/clicks") {
		t.Fatalf("build with a route taken twice: %v", err)
	}
	if !twice.closed {
		t.Error("a platform started before the failure was not closed")
	}
}

// pagerTwin is a second platform that serves the pager's route.
type pagerTwin struct{ *pager }

func (pagerTwin) Name() string { return "twin" }

func (t pagerTwin) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	return t.pager.Start(cfg, env)
}

// A platform cannot take one of the service's own routes, nor one of the
// admin API's: the start fails and says which.
func TestPlatformPluginReservedRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, pagerConfig)
	cfg, err := policy.Load(h.config, h.getenv, append(platforms(), &pager{}).Platforms())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		greedy pagerGreedy
		want   string
	}{
		{pagerGreedy{pager: &pager{}, callback: "GET /metrics"}, "route GET /metrics"},
		{pagerGreedy{pager: &pager{}, callback: "POST /v1/approvals"}, "route POST /v1/approvals"},
		{pagerGreedy{pager: &pager{}, admin: "GET /admin/audit"}, "route GET /admin/audit is one of the admin API's own"},
	} {
		_, err := buildWith(context.Background(), cfg, append(platforms(), tt.greedy), slog.New(slog.DiscardHandler), nil, bot.SystemClock{}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("build with a platform claiming %q%q: %v", tt.greedy.callback, tt.greedy.admin, err)
		}
		if !tt.greedy.closed {
			t.Errorf("the platform claiming %q%q was not closed", tt.greedy.callback, tt.greedy.admin)
		}
	}
}

// pagerGreedy is the pager with one more callback or admin route, of a
// pattern the service keeps for itself.
type pagerGreedy struct {
	*pager
	callback, admin string
}

type greedyRunning struct {
	*pagerRunning
	g pagerGreedy
}

func (g pagerGreedy) Start(cfg *policy.Config, env bot.Env) (bot.Running, error) {
	r, err := g.pager.Start(cfg, env)
	if err != nil || r == nil {
		return r, err
	}
	return greedyRunning{r.(*pagerRunning), g}, nil
}

func (r greedyRunning) Routes(e *bot.Engine) bot.Routes {
	routes := r.pagerRunning.Routes(e)
	if r.g.callback != "" {
		routes.Callbacks[r.g.callback] = http.NotFoundHandler()
	}
	return routes
}

func (r greedyRunning) AdminRoutes() map[string]http.HandlerFunc {
	routes := r.pagerRunning.AdminRoutes()
	if r.g.admin != "" {
		routes[r.g.admin] = http.NotFound
	}
	return routes
}
