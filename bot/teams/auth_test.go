package teams

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

func TestActivityAuthentication(t *testing.T) {
	tests := []struct {
		name   string
		opts   []teamsfake.SignOption
		tweak  func(a teamsfake.Activity)
		status int
		// genuineClaim signs the serviceurl claim with the fake's own
		// service URL, whatever the tweaked body says.
		genuineClaim bool
	}{
		{name: "valid", status: http.StatusOK},
		{name: "no Authorization header", opts: []teamsfake.SignOption{teamsfake.Unsigned()}, status: http.StatusUnauthorized},
		{name: "wrong audience", opts: []teamsfake.SignOption{teamsfake.WithAudience("99999999-2222-3333-4444-555555555555")}, status: http.StatusUnauthorized},
		{name: "wrong issuer", opts: []teamsfake.SignOption{teamsfake.WithIssuer("https://sts.windows.net/" + teamsfake.DefaultTenantID + "/")}, status: http.StatusUnauthorized},
		{name: "expired", opts: []teamsfake.SignOption{teamsfake.Expired()}, status: http.StatusUnauthorized},
		{name: "not yet valid", opts: []teamsfake.SignOption{teamsfake.WithLifetime(time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))}, status: http.StatusUnauthorized},
		{name: "expired within skew", opts: []teamsfake.SignOption{teamsfake.WithLifetime(time.Now().Add(-time.Hour), time.Now().Add(-3*time.Minute))}, status: http.StatusOK},
		{name: "unknown key", opts: []teamsfake.SignOption{teamsfake.UnknownKey()}, status: http.StatusUnauthorized},
		{name: "key not endorsed for msteams", opts: []teamsfake.SignOption{teamsfake.UnendorsedKey()}, status: http.StatusForbidden},
		{name: "serviceurl claim mismatch", opts: []teamsfake.SignOption{teamsfake.WithServiceURLClaim("https://smba.trafficmanager.net/emea/")}, status: http.StatusUnauthorized},
		// The token names the genuine service URL; the body was changed to
		// send the bot's replies (and its token) elsewhere.
		{name: "serviceUrl rewritten in body", tweak: func(a teamsfake.Activity) { a["serviceUrl"] = "http://127.0.0.1:1/amer/" }, genuineClaim: true, status: http.StatusUnauthorized},
		{name: "other tenant", opts: []teamsfake.SignOption{teamsfake.WithTenant("bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee")}, status: http.StatusForbidden},
		{name: "other channel", tweak: func(a teamsfake.Activity) { a["channelId"] = "webchat" }, status: http.StatusForbidden},
		{name: "no tenant", tweak: func(a teamsfake.Activity) {
			delete(a["conversation"].(map[string]any), "tenantId")
			delete(a["channelData"].(map[string]any), "tenant")
		}, status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)
			if tt.tweak != nil {
				tt.tweak(a)
			}
			opts := tt.opts
			if tt.genuineClaim {
				opts = append(opts, teamsfake.WithServiceURLClaim(e.fake.ServiceURL()))
			}
			code, body := e.send(t, a, opts...)
			if code != tt.status {
				t.Fatalf("HTTP %d (%s), want %d", code, body, tt.status)
			}
			channels, err := e.teams.Channels()
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == http.StatusOK {
				if len(channels) != 1 {
					t.Fatalf("stored channels %+v, want the team's General channel", channels)
				}
				return
			}
			if len(channels) != 0 {
				t.Errorf("a refused activity stored %+v", channels)
			}
			if got := strings.TrimSpace(string(body)); got != http.StatusText(tt.status) {
				t.Errorf("refusal body %q says more than %q", got, http.StatusText(tt.status))
			}
		})
	}
}

func TestAuthorizationHeaderShapes(t *testing.T) {
	e := newEnv(t)
	body, header, err := e.fake.SignActivity(e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin))
	if err != nil {
		t.Fatal(err)
	}
	jwt := strings.TrimPrefix(header.Get("Authorization"), "Bearer ")
	for _, h := range []string{jwt, "Basic " + jwt, "Bearer ", "Bearer not.a.jwt", "Bearer " + jwt + "x"} {
		header.Set("Authorization", h)
		if code, _ := e.sendRaw(t, body, header); code != http.StatusUnauthorized {
			t.Errorf("Authorization %.20q...: HTTP %d, want 401", h, code)
		}
	}
}

func TestUnknownKeyReloadsKeysOncePerMinute(t *testing.T) {
	e := newEnv(t)
	a := e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)
	if code, _ := e.send(t, a); code != http.StatusOK {
		t.Fatalf("valid activity: HTTP %d", code)
	}
	if n := e.fake.JWKSRequests(); n != 1 {
		t.Fatalf("JWKS downloaded %d times for the first activity, want 1", n)
	}
	e.clock.Advance(2 * time.Minute)
	for range 3 {
		if code, _ := e.send(t, a, teamsfake.UnknownKey()); code != http.StatusUnauthorized {
			t.Fatalf("unknown key: HTTP %d, want 401", code)
		}
	}
	if n := e.fake.JWKSRequests(); n != 2 {
		t.Fatalf("JWKS downloaded %d times after three unknown kids, want exactly one reload (2)", n)
	}
	if code, _ := e.send(t, a); code != http.StatusOK {
		t.Fatalf("known key after the reload: HTTP %d", code)
	}
	e.clock.Advance(61 * time.Second)
	e.send(t, a, teamsfake.UnknownKey())
	if n := e.fake.JWKSRequests(); n != 3 {
		t.Fatalf("JWKS downloaded %d times a minute later, want 3", n)
	}
}

func TestSigningKeysRefreshedDaily(t *testing.T) {
	e := newEnv(t)
	a := e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)
	e.send(t, a)
	e.clock.Advance(23 * time.Hour)
	e.send(t, a)
	if n := e.fake.JWKSRequests(); n != 1 {
		t.Fatalf("JWKS downloaded %d times within a day, want 1", n)
	}
	e.clock.Advance(2 * time.Hour)
	// The token must be valid on the moved clock too.
	now := e.clock.Now()
	if code, _ := e.send(t, a, teamsfake.WithLifetime(now.Add(-time.Minute), now.Add(time.Hour))); code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	if n := e.fake.JWKSRequests(); n != 2 {
		t.Fatalf("JWKS downloaded %d times after 25 h, want 2", n)
	}
}

func TestOversizedActivityRefused(t *testing.T) {
	e := newEnv(t)
	a := e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)
	a["text"] = strings.Repeat("x", 1<<20)
	if code, _ := e.send(t, a); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP %d, want 413", code)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	ok := Config{AppID: teamsfake.DefaultAppID, AppPassword: "p", TenantID: teamsfake.DefaultTenantID, Conversations: openStore(t).PlatformData(Name)}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no app id", func(c *Config) { c.AppID = "" }, "app_id is required"},
		{"app id not a GUID", func(c *Config) { c.AppID = "bot" }, "app_id"},
		{"no password", func(c *Config) { c.AppPassword = "" }, "app_password"},
		{"no tenant", func(c *Config) { c.TenantID = "" }, "tenant_id is required"},
		{"tenant not a GUID", func(c *Config) { c.TenantID = "botframework.com" }, "tenant_id"},
		{"no store", func(c *Config) { c.Conversations = nil }, "store"},
		{"bad metadata URL", func(c *Config) { c.OpenIDMetadataURL = "login.botframework.com" }, "openid_metadata_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	tm, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if tm.cfg.TokenURL != "https://login.microsoftonline.com/"+teamsfake.DefaultTenantID+"/oauth2/v2.0/token" || tm.cfg.OpenIDMetadataURL != DefaultOpenIDMetadataURL {
		t.Fatalf("defaults: %q %q", tm.cfg.TokenURL, tm.cfg.OpenIDMetadataURL)
	}
	// The pause is the configuration's to default (ParseSection): zero is
	// no pause.
	if tm.cfg.ChannelInterval != 0 {
		t.Fatalf("channel interval %v, want none", tm.cfg.ChannelInterval)
	}
	if tm.cfg.HTTPClient.Timeout == 0 {
		t.Fatal("default HTTP client has no timeout")
	}
}
