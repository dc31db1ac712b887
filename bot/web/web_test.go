package web

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
)

// Session cookies are Secure, HttpOnly and SameSite=Lax; only plain HTTP on
// loopback (trying approvebot locally) drops Secure.
func TestSessionCookie(t *testing.T) {
	for _, tc := range []struct {
		public string
		secure bool
	}{
		{"https://approvebot.example.com", true},
		{"http://approvebot.example.com", true},
		{"http://127.0.0.1:8080", false},
		{"http://localhost:8080", false},
		{"https://127.0.0.1:8443", true},
	} {
		w, err := New(Config{OIDC: &OIDC{Issuer: "https://idp.example"}, SecureCookies: SecureCookiesFor(tc.public)})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if err := w.startSession(rec, approvebot.Approver{Platform: Name, Workspace: "https://idp.example", UserID: "u1"}); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		if c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 || c.MaxAge > int(SessionLifetime.Seconds()) {
			t.Errorf("%s: cookie %+v", tc.public, c)
		}
		if readable(c.Value, "https://idp.example") {
			t.Errorf("the session cookie is readable: %s", c.Value)
		}
		// A cookie tampered with is no session.
		req := httptest.NewRequest(http.MethodGet, "/inbox/", nil)
		c.Value = c.Value[:len(c.Value)-2] + "xx"
		req.AddCookie(c)
		if w.session(req) != nil {
			t.Errorf("a tampered cookie was taken")
		}
	}
}

// readable reports whether a session cookie shows plain, once its base64
// layers are undone, what it carries. Looking for a long string keeps random
// ciphertext from matching by chance.
func readable(cookie, plain string) bool {
	outer, err := base64.URLEncoding.DecodeString(cookie)
	if err != nil {
		return strings.Contains(cookie, plain)
	}
	for part := range strings.SplitSeq(string(outer), "|") {
		inner, err := base64.URLEncoding.DecodeString(part)
		if strings.Contains(part, plain) || err == nil && strings.Contains(string(inner), plain) {
			return true
		}
	}
	return false
}

// The demo sign-in answers loopback clients only, and is absent with OIDC.
func TestDemoSignInLoopbackOnly(t *testing.T) {
	w, err := New(Config{Demo: []bot.DemoPerson{{Name: "A", Email: "a@example.com"}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	h := w.Handler(nil)
	post := func(remote string) int {
		req := httptest.NewRequest(http.MethodPost, "/inbox/demo-login", strings.NewReader(url.Values{"person": {"0"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := post("127.0.0.1:5555"); got != http.StatusSeeOther {
		t.Errorf("loopback demo sign-in: %d", got)
	}
	if got := post("[::1]:5555"); got != http.StatusSeeOther {
		t.Errorf("loopback (v6) demo sign-in: %d", got)
	}
	if got := post("192.0.2.7:5555"); got != http.StatusNotFound {
		t.Errorf("remote demo sign-in: %d", got)
	}
	o, err := New(Config{OIDC: &OIDC{Issuer: "https://idp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/inbox/demo-login", strings.NewReader("person=0"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	o.Handler(nil).ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("demo sign-in with OIDC configured: %d", rec.Code)
	}
	if _, err := New(Config{OIDC: &OIDC{Issuer: "x"}, Demo: []bot.DemoPerson{{}}, Listen: "127.0.0.1:1"}); err == nil {
		t.Errorf("both sign-ins at once were accepted")
	}
}

func TestCleanReason(t *testing.T) {
	got, err := cleanReason("  wrong\naccount\u202e here\x07 ")
	if err != nil || got != "wrong account  here" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := cleanReason(strings.Repeat("é", maxReason+1)); err == nil {
		t.Fatal("an overlong reason was taken")
	}
}

// A session ends after SessionLifetime, whatever the browser keeps.
func TestSessionExpires(t *testing.T) {
	clock := bot.NewManualClock(time.Now())
	w, err := New(Config{OIDC: &OIDC{Issuer: "https://idp.example"}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := w.startSession(rec, approvebot.Approver{Platform: Name, Workspace: "https://idp.example", UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/inbox/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	if w.session(req) == nil {
		t.Fatal("a fresh session was refused")
	}
	clock.Advance(SessionLifetime + time.Second)
	if w.session(req) != nil {
		t.Fatal("an expired session was taken")
	}
}

// Whatever an approver types, the reason kept is printable, bounded and
// stable.
func FuzzCleanReason(f *testing.F) {
	for _, s := range []string{"", "wrong IBAN", "a\nb\tc", "\u202ehidden\u2066", strings.Repeat("x", maxReason+1), "\x00\x1b[31mred"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := cleanReason(s)
		if err != nil {
			if len([]rune(strings.TrimSpace(s))) <= maxReason {
				t.Fatalf("refused a reason of %d characters: %v", len([]rune(s)), err)
			}
			return
		}
		if len([]rune(got)) > maxReason {
			t.Fatalf("kept %d characters", len([]rune(got)))
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("kept %U in %q", r, got)
			}
		}
		if again, err := cleanReason(got); err != nil || again != got {
			t.Fatalf("not stable: %q -> %q (%v)", got, again, err)
		}
	})
}
