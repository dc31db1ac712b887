package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/web/oidcfake"
	"github.com/chromedp/chromedp"
)

// These tests drive Debian's chromium, headless, through chromedp. .ci/run
// installs chromium when it is missing; elsewhere they are skipped without it.

// chrome starts a fresh headless browser (its own profile) and returns a
// tab's context.
func chrome(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium; .ci/run does)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func must(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		fail(t, ctx, what, err)
	}
}

// value runs one action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		fail(t, ctx, what, err)
	}
	return v
}

func fail(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
}

// browserSignIn signs the browser in through the loopback provider.
func browserSignIn(t *testing.T, ctx context.Context, h *harness, op *oidcfake.Provider, u oidcfake.User) {
	t.Helper()
	op.SignIn(u)
	must(t, ctx, "sign in as "+u.Email,
		chromedp.Navigate(h.url+"/inbox/login"),
		chromedp.WaitVisible(chromedp.CSS("header form.who")))
	loc := value(t, ctx, "location", chromedp.Location())
	if !strings.HasSuffix(loc, "/inbox/") {
		t.Fatalf("signed in at %s", loc)
	}
}

// In a real browser: an approver signs in with the identity provider, the
// request appears in the open inbox by itself, she denies it with a
// reason, and the agent's answer carries it. A second browser's page of
// another request redraws itself when Jane approves that one from Slack. A
// phone-sized screenshot of the request page is saved and its bound facts
// are on screen, without sideways scrolling.
func TestBrowserInbox(t *testing.T) {
	h, op := inboxHarness(t)
	jane := oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true, Name: "Jane Doe"}
	a := chrome(t)
	browserSignIn(t, a, h, op, jane)

	held := h.submit([]byte(`{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":[],"requested_at":"`+
		time.Now().UTC().Format("2006-01-02T15:04:05.000000")+`+00:00","context":{"amount":"25000 EUR","to_account":"FR14 2004 1010"}}`), auth())
	must(t, a, "the request appears in the open inbox, then deny it with a reason",
		chromedp.WaitVisible(chromedp.CSS(`a[href^="/inbox/r/"]`)),
		chromedp.Click(chromedp.CSS(`a[href^="/inbox/r/"]`)),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.SendKeys(chromedp.ID("reason"), "Account not on the supplier list"),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.ID("outcome")),
	)
	ans := h.await(held).answer
	if ans.Approved || ans.Approver != "jane@company.com" || !strings.Contains(ans.Reason, "Account not on the supplier list") {
		t.Fatalf("answer: %+v", ans)
	}
	story := value(t, a, "read the story", chromedp.Text(chromedp.ID("story")))
	if !strings.Contains(story, "deny for treasury-ops (oidc)") {
		t.Errorf("story: %s", story)
	}

	// A second session watches a second request; Jane approves it on Slack.
	b := chrome(t)
	browserSignIn(t, b, h, op, jane)
	id := h.pendingID(legacyBody("approve-large-transfer"))
	msgs := h.waitMessages(id, 1)
	h.waitPosted(id, 2)
	must(t, b, "open the second request", chromedp.Navigate(h.url+"/inbox/r/"+id), chromedp.WaitVisible(chromedp.ID("approve")))
	if r := h.click("U0JANE", msgs[0].Channel, msgs[0].TS, "approve", id); r.status != http.StatusOK {
		t.Fatalf("slack click: %d %s", r.status, r.body)
	}
	must(t, b, "the page redraws itself with the outcome", chromedp.WaitVisible(chromedp.ID("outcome")))
	outcome := value(t, b, "outcome", chromedp.Text(chromedp.ID("outcome")))
	status := value(t, b, "status", chromedp.Text(chromedp.ID("status")))
	if !strings.Contains(outcome, "Approved by Jane Doe") || !strings.Contains(status, "approved") {
		t.Fatalf("redrawn page: %q / %q", outcome, status)
	}
	if value(t, b, "no buttons once decided", chromedp.Evaluate[bool](`document.querySelector("#approve") !== null`)) {
		t.Fatalf("the decided request still shows buttons")
	}

	// A phone: 390x844 CSS pixels at 2x.
	must(t, b, "phone-sized page",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("facts")))
	facts := value(t, b, "facts", chromedp.Text(chromedp.ID("facts")))
	overflow := value(t, b, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	shot := value(t, b, "screenshot", chromedp.CaptureScreenshot())
	file := filepath.Join(t.TempDir(), "request-mobile.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	if w := img.Bounds().Dx(); w != 780 {
		t.Errorf("screenshot is %d pixels wide, want 780 (390 at 2x)", w)
	}
	about := value(t, b, "about", chromedp.Text(chromedp.ID("about-facts")))
	if !strings.Contains(about, id) {
		t.Errorf("the phone page lacks the request id: %q", about)
	}
	for _, want := range []string{"approve-large-transfer", "payments-agent", "financial-approvals"} {
		if !strings.Contains(facts, want) {
			t.Errorf("bound facts on the phone lack %q: %q", want, facts)
		}
	}
	if overflow {
		t.Errorf("the phone page scrolls sideways")
	}
	t.Logf("phone screenshot: %s", file)
	if dir := os.Getenv("APPROVEBOT_SCREENSHOT_DIR"); dir != "" { // to look at it after the run
		_ = os.WriteFile(filepath.Join(dir, "request-mobile.png"), shot, 0o644)
	}
}

// In a real browser, someone signed in who may not approve sees no
// buttons; and a page on another site that posts a decision to the inbox
// (cookies and all) is refused.
func TestBrowserUnauthorisedAndForged(t *testing.T) {
	h, op := inboxHarness(t)
	id := h.pendingID(legacyBody("approve-large-transfer"))
	h.waitPosted(id, 2)
	m := chrome(t)
	browserSignIn(t, m, h, op, oidcfake.User{Sub: "u-mal", Email: "mallory@company.com", EmailVerified: true})
	must(t, m, "mallory opens the request",
		chromedp.Navigate(h.url+"/inbox/r/"+id),
		chromedp.WaitVisible(chromedp.ID("why")))
	why := value(t, m, "why", chromedp.Text(chromedp.ID("why")))
	buttons := value(t, m, "buttons", chromedp.Evaluate[bool](`document.querySelector("#approve, #deny, #decide") !== null`))
	if buttons || !strings.Contains(why, "not an approver") {
		t.Fatalf("mallory sees buttons=%v, %q", buttons, why)
	}

	j := chrome(t)
	browserSignIn(t, j, h, op, oidcfake.User{Sub: "u-jane", Email: "jane@company.com", EmailVerified: true})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/inbox/r/%s/decide"><input name="decision" value="approve"><input name="csrf" value="guess"></form><script>document.forms[0].submit()</script>`, h.url, id)
	}))
	defer evil.Close()
	must(t, j, "another site posts Jane's approval",
		chromedp.Navigate(evil.URL),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	refused := value(t, j, "refusal", chromedp.Text(chromedp.CSS(".error")))
	if !strings.Contains(refused, "another site") {
		t.Fatalf("forged post: %q", refused)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/"+id, nil, auth()); r.answer.Status != "pending" {
		t.Fatalf("after the forged post: %s", r.body)
	}
}

// approvebot demo, as a child process: sign in as Alice in the browser,
// approve the demo agent's transfer, and the agent prints the answer with
// its signature verified; Ctrl-C stops it cleanly.
func TestBrowserDemo(t *testing.T) {
	ctx := chrome(t)
	bin := buildBinary(t)
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir(), "GORACE=exitcode=66"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	next, lines := lineReader(t, out, logs)
	base := strings.TrimPrefix(next("address", func(l string) bool { return strings.HasPrefix(l, "approvebot listening on ") }), "approvebot listening on ")
	next("instructions", func(l string) bool { return strings.Contains(l, base+"/inbox/") })

	must(t, ctx, "sign in as Alice and approve the transfer",
		chromedp.Navigate(base+"/inbox/"),
		chromedp.WaitVisible(chromedp.ID("person-0")),
		chromedp.Click(chromedp.ID("person-0")),
		chromedp.WaitVisible(chromedp.Search(`//a[text()="transfer"]`)),
		chromedp.Click(chromedp.Search(`//a[text()="transfer"]`)),
		chromedp.WaitVisible(chromedp.ID("approve")),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("outcome")),
	)
	got := next("the transfer's answer", func(l string) bool { return strings.HasPrefix(l, "agent: transfer (legacy): ") })
	if !regexp.MustCompile(`APPROVED \(approved\) by alice@example.com: .*\[signature verified: decision allow, identity_assurance oidc`).MatchString(got) {
		t.Fatalf("agent printed %q", got)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v\nlogs:\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo did not stop on Ctrl-C\nlogs:\n%s", logs)
	}
	_ = io.Discard
}
