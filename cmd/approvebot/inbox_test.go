package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/bot/web/oidcfake"
	"github.com/approvebot/approvebot/signing"
)

// inboxConfig is the end-to-end config with the web inbox: treasury-ops
// decides on Slack (Jane) and in the inbox (jane@company.com, and a
// subject); security decides in the inbox only, by a groups claim value.
var inboxConfig = strings.Replace(configHead, "listen: 127.0.0.1:0", "listen: ${LISTEN}\npublic_url: http://${LISTEN}", 1) + configOperations + `web:
  issuer: ${OIDC_ISSUER}
  client_id: approvebot-test
  client_secret: ${OIDC_SECRET}
  groups_claim: groups
approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
    web:
      users: [jane@company.com, sub:robot-approver-1]
  security:
    web:
      groups: [sec-approvers]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops]
    timeout: 5m
  - match: {rule_name: security-review}
    approvers: [security]
    timeout: 5m
`

const oidcSecret = "oidc-client-secret-0123456789"

// inboxHarness starts approvebot with the inbox, signing in through a
// loopback OpenID provider.
func inboxHarness(t *testing.T) (*harness, *oidcfake.Provider) {
	t.Helper()
	op := oidcfake.New("approvebot-test", oidcSecret)
	t.Cleanup(op.Close)
	h := newHarness(t, inboxConfig)
	h.env["LISTEN"] = freePort(t)
	h.env["OIDC_ISSUER"] = op.URL()
	h.env["OIDC_SECRET"] = oidcSecret
	h.start()
	return h, op
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// browser is an HTTP client with its own cookies, as one browser is.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

type page struct {
	status int
	url    string
	body   string
}

func (b *browser) get(u string) page {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL.String(), string(body)}
}

func (b *browser) post(u string, form url.Values, header ...string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL.String(), string(body)}
}

// waitFor waits until cond holds, re-checking whenever the inbox's event
// stream says a request changed.
func (b *browser) waitFor(h *harness, what string, cond func() bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/inbox/events", nil)
	c := *b.c
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.t.Fatalf("event stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	for !cond() {
		for {
			if !events.Scan() {
				b.t.Fatalf("waiting for %s: the event stream ended (%v)\nlogs:\n%s", what, ctx.Err(), h.logs)
			}
			if strings.HasPrefix(events.Text(), "data: ") {
				break
			}
		}
	}
}

// signedIn reports whether the inbox takes b as signed in (it does not
// send b to sign in).
func (b *browser) signedIn(h *harness) bool {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/inbox/", nil)
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// signIn signs u in through the provider and returns the inbox page.
func signIn(t *testing.T, h *harness, op *oidcfake.Provider, u oidcfake.User) (*browser, page) {
	t.Helper()
	op.SignIn(u)
	b := newBrowser(t)
	p := b.get(h.url + "/inbox/login")
	if p.status != http.StatusOK || !strings.HasSuffix(p.url, "/inbox/") {
		t.Fatalf("sign-in as %s: %d at %s:\n%s\nlogs:\n%s", u.Email, p.status, p.url, p.body, h.logs)
	}
	return b, p
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form token on the page:\n%s", p.body)
	}
	return m[1]
}

// An approver signs in with the identity provider, finds the request in the
// inbox with its bound facts and the agent's context, denies it with a
// reason, and the agent's answer carries that reason and an assertion that
// says the approver was authenticated by OIDC.
func TestInboxSignInAndDeny(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	b, _ := signIn(t, h, op, oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true, Name: "Jane Doe"})

	body := []byte(`{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":[],"requested_at":"` +
		time.Now().UTC().Format("2006-01-02T15:04:05.000000") + `+00:00","context":{"amount":"25000 EUR","note":"<script>alert(1)</script>"}}`)
	held := h.submit(body, auth())
	var id string
	b.waitFor(h, "the request in the inbox", func() bool {
		p := b.get(h.url + "/inbox/")
		m := regexp.MustCompile(`/inbox/r/(ar_[0-9a-f]+)`).FindStringSubmatch(p.body)
		if m != nil {
			id = m[1]
		}
		return m != nil && strings.Contains(b.get(h.url+"/inbox/r/"+m[1]).body, `id="deny"`)
	})
	p := b.get(h.url + "/inbox/r/" + id)
	for _, want := range []string{"approve-large-transfer", "payments-agent", "25000 EUR", "&lt;script&gt;alert(1)&lt;/script&gt;", `id="deny"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("request page lacks %q:\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, "<script>alert(1)") {
		t.Errorf("the agent's context reached the page as markup")
	}
	if got := p.body; !strings.Contains(got, "From the agent, not verified") {
		t.Errorf("the agent's context is not marked as the agent's")
	}
	// The Slack message links to the page.
	if m := h.waitMessages(id, 1); len(m) != 1 || !strings.Contains(string(m[0].Blocks), `\u003c`+h.url+"/inbox/r/"+id+`|Open in approvebot\u003e`) {
		t.Errorf("the Slack message does not link to the inbox: %v", m)
	}
	d := b.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"deny"}, "reason": {"IBAN does not match the invoice"}})
	if d.status != http.StatusOK || !strings.Contains(d.body, "You denied this request.") {
		t.Fatalf("deny: %d\n%s", d.status, d.body)
	}
	a := h.await(held).answer
	if a.Approved || a.Approver != "jane@company.com" || !strings.Contains(a.Reason, "IBAN does not match the invoice") {
		t.Fatalf("answer: %+v", a)
	}
	jwks := h.do(http.MethodGet, "/.well-known/jwks.json", nil, nil).body
	claims, err := signing.Verify(jwks, a.IdentityAssertion, "approvebot-test", time.Now())
	if err != nil {
		t.Fatalf("assertion: %v", err)
	}
	if claims["identity_assurance"] != web.Assurance || claims["decision"] != "deny" || claims["sub"] != "jane@company.com" {
		t.Fatalf("assertion claims: %v", claims)
	}
	// The decided request's page tells the outcome and the audit story.
	p = b.get(h.url + "/inbox/r/" + id)
	for _, want := range []string{"Denied by Jane Doe", "approval_chain_entry", "deny for treasury-ops (oidc)", "IBAN does not match the invoice"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("decided page lacks %q:\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, `id="approve"`) {
		t.Errorf("a decided request still offers buttons")
	}
}

// A subject listed as sub:<sub> signs in without a verified email, and a
// groups claim value makes someone an approver of a group.
func TestInboxSubjectAndGroupsClaim(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	held := h.submit(legacyBody("security-review"), auth())
	sec, _ := signIn(t, h, op, oidcfake.User{Sub: "u-sam", Email: "sam@company.com", EmailVerified: true, Groups: []string{"staff", "sec-approvers"}})
	robot, _ := signIn(t, h, op, oidcfake.User{Sub: "robot-approver-1", Email: "robot@company.com", EmailVerified: false})
	var id string
	sec.waitFor(h, "the request in sam's inbox", func() bool {
		m := regexp.MustCompile(`/inbox/r/(ar_[0-9a-f]+)`).FindStringSubmatch(sec.get(h.url + "/inbox/").body)
		if m != nil {
			id = m[1]
		}
		return m != nil && strings.Contains(sec.get(h.url+"/inbox/r/"+m[1]).body, `id="approve"`)
	})
	if p := robot.get(h.url + "/inbox/r/" + id); strings.Contains(p.body, `id="approve"`) || !strings.Contains(p.body, "not an approver for security") {
		t.Errorf("the treasury subject may decide security's request:\n%s", p.body)
	}
	p := sec.get(h.url + "/inbox/r/" + id)
	if d := sec.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"approve"}}); d.status != http.StatusOK {
		t.Fatalf("approve: %d\n%s", d.status, d.body)
	}
	if a := h.await(held).answer; !a.Approved || a.Approver != "sam@company.com" {
		t.Fatalf("answer: %+v", a)
	}
}

// A signed-in person who may not approve sees the request without buttons,
// and a form post without the session's token, or from another site, is
// refused: the request stays pending.
func TestInboxUnauthorisedAndForged(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	id := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitPosted(id, 2)
	mallory, _ := signIn(t, h, op, oidcfake.User{Sub: "u-mal", Email: "mallory@company.com", EmailVerified: true})
	if p := mallory.get(h.url + "/inbox/"); strings.Contains(p.body, id) {
		t.Errorf("mallory's inbox lists the request")
	}
	p := mallory.get(h.url + "/inbox/r/" + id)
	if strings.Contains(p.body, `id="approve"`) || strings.Contains(p.body, `id="deny"`) || !strings.Contains(p.body, "not an approver") {
		t.Fatalf("mallory is offered buttons:\n%s", p.body)
	}
	if d := mallory.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"approve"}}); d.status != http.StatusForbidden || !strings.Contains(d.body, "not an approver") {
		t.Fatalf("mallory's approval: %d\n%s", d.status, d.body)
	}

	jane, _ := signIn(t, h, op, oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true})
	jp := jane.get(h.url + "/inbox/r/" + id)
	if d := jane.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"decision": {"approve"}}); d.status != http.StatusForbidden || !strings.Contains(d.body, "did not come from this session") {
		t.Fatalf("post without the form token: %d\n%s", d.status, d.body)
	}
	if d := jane.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"approve"}}); d.status != http.StatusForbidden {
		t.Fatalf("post with another session's token: %d\n%s", d.status, d.body)
	}
	if d := jane.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, jp)}, "decision": {"approve"}}, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); d.status != http.StatusForbidden || !strings.Contains(d.body, "another site") {
		t.Fatalf("cross-site post: %d\n%s", d.status, d.body)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status != "pending" {
		t.Fatalf("request after refused posts: %s", r.body)
	}
	h.waitLogged("form token missing or wrong", 1)
	h.waitLogged("cross-origin request refused", 1)
	resp, err := jane.c.Get(h.url + "/inbox/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
}

// Every way a sign-in can be wrong is refused with a page that says so and
// a log line: the provider's token for another issuer or audience, an
// expired token, an unverified email, a nonce or state that is not the
// login's, and a code used twice.
func TestInboxSignInRefused(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	user := oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true}
	cases := []struct {
		name   string
		tweak  oidcfake.Tweaks
		user   oidcfake.User
		page   string
		logged string
	}{
		{"wrong issuer", oidcfake.Tweaks{Issuer: "https://evil.example"}, user, "ID token is not valid here", "ID token not valid"},
		{"wrong audience", oidcfake.Tweaks{Audience: "another-client"}, user, "ID token is not valid here", "ID token not valid"},
		{"expired", oidcfake.Tweaks{Expired: true}, user, "it has expired", "ID token not valid"},
		{"nonce", oidcfake.Tweaks{Nonce: "not-the-login-nonce"}, user, "nonce mismatch", "nonce mismatch"},
		{"unverified email", oidcfake.Tweaks{}, oidcfake.User{Sub: "u-x", Email: "jane@company.com", EmailVerified: false}, "has not verified your email", "email not verified"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op.Tweak(c.tweak)
			op.SignIn(c.user)
			b := newBrowser(t)
			p := b.get(h.url + "/inbox/login")
			if p.status != http.StatusForbidden || !strings.Contains(p.body, c.page) {
				t.Fatalf("%d at %s:\n%s", p.status, p.url, p.body)
			}
			h.waitLogged("sign-in refused: "+c.logged, 1)
			if b.signedIn(h) {
				t.Fatalf("signed in after a refusal")
			}
		})
	}
	op.Tweak(oidcfake.Tweaks{})
	op.SignIn(user)

	// The provider's answer is held back to be tampered with or replayed.
	capture := func(b *browser) *url.URL {
		t.Helper()
		b.c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path == "/inbox/callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}
		defer func() { b.c.CheckRedirect = nil }()
		resp, err := b.c.Get(h.url + "/inbox/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || u.Path != "/inbox/callback" {
			t.Fatalf("no redirect to the callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return u
	}
	t.Run("state mismatch", func(t *testing.T) {
		b := newBrowser(t)
		u := capture(b)
		q := u.Query()
		q.Set("state", "forged-state")
		u.RawQuery = q.Encode()
		if p := b.get(u.String()); p.status != http.StatusForbidden || !strings.Contains(p.body, "state mismatch") {
			t.Fatalf("%d:\n%s", p.status, p.body)
		}
	})
	t.Run("replayed code", func(t *testing.T) {
		b := newBrowser(t)
		first := capture(b)
		if p := b.get(first.String()); !strings.HasSuffix(p.url, "/inbox/") || p.status != http.StatusOK {
			t.Fatalf("first use: %d at %s\n%s", p.status, p.url, p.body)
		}
		// The same answer again: its login is over.
		if p := b.get(first.String()); p.status != http.StatusForbidden || !strings.Contains(p.body, "already used") {
			t.Fatalf("replay of the callback: %d\n%s", p.status, p.body)
		}
		// The old code under a new login's state: the provider refuses it.
		second := capture(b)
		q := second.Query()
		q.Set("code", first.Query().Get("code"))
		second.RawQuery = q.Encode()
		if p := b.get(second.String()); p.status != http.StatusForbidden || !strings.Contains(p.body, "did not accept the sign-in code") {
			t.Fatalf("replayed code: %d\n%s", p.status, p.body)
		}
		if !strings.Contains(strings.Join(op.Refused, ";"), "code already used") {
			t.Fatalf("the provider did not see a replay: %v", op.Refused)
		}
	})
}

// serve never offers the demo sign-in, whatever its file says; and the
// inbox refuses to offer it anywhere but on loopback.
func TestServeHasNoDemoSignIn(t *testing.T) {
	t.Parallel()
	h, _ := inboxHarness(t)
	b := newBrowser(t)
	if p := b.post(h.url+"/inbox/demo-login", url.Values{"person": {"0"}}); p.status != http.StatusNotFound {
		t.Fatalf("serve answered the demo sign-in: %d\n%s", p.status, p.body)
	}
	if b.signedIn(h) {
		t.Fatalf("signed in by the demo sign-in under serve")
	}
	for _, listen := range []string{"0.0.0.0:8080", "10.1.2.3:8080", ":8080", "[::]:8080"} {
		if _, err := web.New(web.Config{Demo: demoPeople, Listen: listen}); err == nil {
			t.Errorf("the demo sign-in was allowed on %s", listen)
		}
	}
	if _, err := web.New(web.Config{Demo: demoPeople, Listen: "127.0.0.1:8080"}); err != nil {
		t.Errorf("loopback demo refused: %v", err)
	}
	if err := run(context.Background(), bot.SystemClock{}, []string{"demo", "--listen", "0.0.0.0:0"}, h.getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Errorf("demo on a public address: %v", err)
	}
}

// A group with web users keeps its request open in the inbox when its chat
// channel cannot be posted to: the page says where it was not shown, and
// the request is decided there.
func TestInboxKeepsRequestWhenChatFails(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	h.slack.RemoveChannel("C0TREASURY")
	b, _ := signIn(t, h, op, oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true, Name: "Jane Doe"})
	held := h.submit(legacyBody("approve-large-transfer"), auth())
	var id string
	b.waitFor(h, "the request in the inbox, with Slack's failure", func() bool {
		m := regexp.MustCompile(`/inbox/r/(ar_[0-9a-f]+)`).FindStringSubmatch(b.get(h.url + "/inbox/").body)
		if m == nil {
			return false
		}
		id = m[1]
		p := b.get(h.url + "/inbox/r/" + id)
		return strings.Contains(p.body, `id="approve"`) && strings.Contains(p.body, "Not delivered to slack C0TREASURY (channel_not_found")
	})
	p := b.get(h.url + "/inbox/r/" + id)
	if d := b.post(h.url+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"approve"}}); d.status != http.StatusOK {
		t.Fatalf("approve: %d\n%s", d.status, d.body)
	}
	if a := h.await(held).answer; !a.Approved || a.Status != "approved" || a.Approver != "jane@company.com" ||
		!strings.Contains(a.Reason, "(in the web inbox; not delivered to slack C0TREASURY)") {
		t.Fatalf("answer: %+v", a)
	}
}

// doctor checks the inbox's identity provider answers at its issuer.
func TestDoctorChecksIdentityProvider(t *testing.T) {
	t.Parallel()
	h, op := inboxHarness(t)
	var out strings.Builder
	_ = run(context.Background(), bot.SystemClock{}, []string{"doctor", "--config", h.config}, h.getenv, &out, io.Discard)
	if !strings.Contains(out.String(), "ok    web inbox: identity provider "+op.URL()+" answers; register the redirect URL "+h.url+"/inbox/callback") {
		t.Fatalf("doctor:\n%s", out.String())
	}
	op.Close()
	out.Reset()
	if err := run(context.Background(), bot.SystemClock{}, []string{"doctor", "--config", h.config}, h.getenv, &out, io.Discard); err == nil || !strings.Contains(out.String(), "FAIL  web inbox: identity provider "+op.URL()) {
		t.Fatalf("doctor with the provider down: %v\n%s", err, out.String())
	}
}
