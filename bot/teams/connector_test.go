package teams

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

func TestInstallStoresChannels(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	chs, err := e.teams.Channels()
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 2 {
		t.Fatalf("channels %+v, want General and approvals", chs)
	}
	want := map[string]string{testTeamID: "General", testChannelID: "approvals"}
	for _, ch := range chs {
		if ch.ChannelName != want[ch.ChannelID] || ch.TeamID != testTeamID || ch.TeamName != testTeamName ||
			ch.ServiceURL != e.fake.ServiceURL() || ch.TenantID != e.fake.TenantID || ch.BotID != "28:"+e.fake.AppID || ch.UpdatedAt.IsZero() {
			t.Errorf("channel %+v", ch)
		}
	}

	e.send(t, e.fake.ChannelEvent("channelRenamed", testTeamID, testTeamName, testChannelID, "risky-approvals"))
	ch, _ := e.teams.channel(testChannelID)
	if ch == nil || ch.ChannelName != "risky-approvals" {
		t.Fatalf("after rename: %+v", ch)
	}
	e.send(t, e.fake.ChannelEvent("channelDeleted", testTeamID, testTeamName, testChannelID, "risky-approvals"))
	if ch, _ := e.teams.channel(testChannelID); ch != nil {
		t.Fatalf("deleted channel still stored: %+v", ch)
	}
	e.send(t, e.fake.InstallationUpdate("remove", testTeamID))
	if chs, _ := e.teams.Channels(); len(chs) != 0 {
		t.Fatalf("after uninstall: %+v", chs)
	}
}

func TestPostAndUpdate(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	ctx := testCtx(t)
	msg := testMessage("req-1")
	ref, err := e.teams.Post(ctx, testChannelID, msg)
	if err != nil {
		t.Fatal(err)
	}
	posted, err := e.fake.WaitPosted(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := posted[0]
	if ref.Channel != testChannelID || ref.Conversation != p.ConversationID || ref.ID != p.ActivityID || ref.ServiceURL != e.fake.ServiceURL() {
		t.Fatalf("ref %+v does not match the created thread %+v", ref, p)
	}
	if !strings.Contains(ref.Conversation, ";messageid=") {
		t.Fatalf("conversation %q is not a thread id", ref.Conversation)
	}
	wantCard, _ := RenderCard(msg)
	assertSameJSON(t, p.Card, wantCard.JSON)
	var body map[string]any
	_ = json.Unmarshal(p.Body, &body)
	if act := body["activity"].(map[string]any); act["text"] != nil {
		t.Errorf("card sent with text %v: Teams would split it and drop the activity id", act["text"])
	}

	decided := msg
	decided.Actionable = false
	decided.Status = approvebot.StatusApproved
	decided.Outcome = "Approved by Jane Doe at 12:01 UTC"
	if err := e.teams.Update(ctx, ref, decided); err != nil {
		t.Fatal(err)
	}
	updated, err := e.fake.WaitUpdated(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if updated[0].ConversationID != ref.Conversation || updated[0].ActivityID != ref.ID {
		t.Fatalf("updated %s/%s, want %s/%s", updated[0].ConversationID, updated[0].ActivityID, ref.Conversation, ref.ID)
	}
	if !strings.Contains(string(updated[0].Card), "Approved by Jane Doe") || strings.Contains(string(updated[0].Card), "Action.Execute") {
		t.Fatalf("updated card does not show the outcome without buttons: %s", updated[0].Card)
	}
}

func assertSameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON: %v", err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON: %v", err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("JSON differs:\n got %s\nwant %s", gb, wb)
	}
}

func TestPostToUnknownChannelIsPermanent(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	_, err := e.teams.Post(testCtx(t), "19:never-seen@thread.tacv2", testMessage("req-1"))
	if !approvebot.IsPermanent(err) || !strings.Contains(err.Error(), "install the app") {
		t.Fatalf("Post: %v, want a permanent error telling to install the app", err)
	}
	if n := len(e.fake.Posted()); n != 0 {
		t.Fatalf("%d posts reached Teams", n)
	}
}

func TestConnectorErrors(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter time.Duration
		permanent  bool
		reason     string
	}{
		{http.StatusTooManyRequests, 7 * time.Second, false, "TooManyRequests"},
		{http.StatusForbidden, 0, true, "BotNotInConversationRoster"},
		{http.StatusNotFound, 0, true, "ConversationNotFound"},
		{http.StatusBadRequest, 0, true, "BadArgument"},
		{http.StatusInternalServerError, 0, true, "ServiceError"},
		{http.StatusServiceUnavailable, 0, false, "HTTP 503"},
		{http.StatusBadGateway, 0, false, "HTTP 502"},
		{http.StatusPreconditionFailed, 0, false, "HTTP 412"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			e := newEnv(t)
			e.install(t)
			e.fake.FailNext(1, tt.status, tt.retryAfter)
			_, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
			var de *approvebot.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("Post: %v, want a DeliveryError", err)
			}
			if de.Permanent != tt.permanent || de.RetryAfter != tt.retryAfter || !strings.Contains(de.Reason, tt.reason) {
				t.Fatalf("got %+v, want permanent=%v retryAfter=%v reason ~%q", de, tt.permanent, tt.retryAfter, tt.reason)
			}
			// The next try goes through.
			if _, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTokenSharedByConcurrentPosts(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	e.postConcurrently(t, 20)
	if n := e.fake.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for 20 posts, want 1", n)
	}
	if n := len(e.fake.Posted()); n != 20 {
		t.Fatalf("%d posts, want 20", n)
	}
}

func TestTokenRefreshedAfterExpiry(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	ctx := testCtx(t)
	if _, err := e.teams.Post(ctx, testChannelID, testMessage("req-1")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(50 * time.Minute)
	if _, err := e.teams.Post(ctx, testChannelID, testMessage("req-2")); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests within the token's life, want 1", n)
	}
	e.clock.Advance(6 * time.Minute) // 4 minutes before expiry: refresh early
	if _, err := e.teams.Post(ctx, testChannelID, testMessage("req-3")); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.TokenRequests(); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}
	posted := e.fake.Posted()
	if posted[1].Token != posted[0].Token || posted[2].Token == posted[0].Token {
		t.Fatalf("tokens used: %s %s %s", posted[0].Token, posted[1].Token, posted[2].Token)
	}
}

func TestTokenEndpointDown(t *testing.T) {
	t.Run("error status", func(t *testing.T) {
		e := newEnv(t)
		// The token endpoint fails from the start: installing (which lists
		// the team's channels) must not leave a token cached for the post.
		e.fake.SetTokenFailure(http.StatusServiceUnavailable)
		e.install(t)
		_, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
		if err == nil || approvebot.IsPermanent(err) {
			t.Fatalf("Post: %v, want a retryable error", err)
		}
		if err := e.teams.Check(testCtx(t)); err == nil {
			t.Fatal("Check passed without a token")
		}
		e.fake.SetTokenFailure(0)
		if _, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1")); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if err := e.teams.Check(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		e := newEnv(t)
		e.install(t)
		e.teams.tokens = newBotToken(Config{AppID: e.fake.AppID, AppPassword: "wrong", TokenURL: e.fake.TokenURL(),
			HTTPClient: e.fake.Client(), Clock: e.clock}, e.teams.log)
		_, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
		if !approvebot.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_client") {
			t.Fatalf("Post: %v, want a permanent invalid_client error", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		e := newEnv(t)
		e.install(t)
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		e.teams.tokens = newBotToken(Config{AppID: e.fake.AppID, AppPassword: e.fake.AppPassword, TokenURL: dead.URL + "/token",
			HTTPClient: e.fake.Client(), Clock: e.clock}, e.teams.log)
		_, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
		if err == nil || approvebot.IsPermanent(err) {
			t.Fatalf("Post: %v, want a retryable error", err)
		}
	})
}

func TestTokenOnlyGoesToLearnedServiceURLs(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	tokensBefore := e.fake.TokenRequests()
	var hits int
	var mu sync.Mutex
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(evil.Close)
	ref := approvebot.MessageRef{Channel: testChannelID, Conversation: "19:x;messageid=1", ID: "1", ServiceURL: evil.URL + "/"}
	err := e.teams.Update(testCtx(t), ref, testMessage("req-1"))
	if !approvebot.IsPermanent(err) {
		t.Fatalf("Update to an unknown service URL: %v, want a permanent error", err)
	}
	who := approvebot.Approver{Platform: "teams", Workspace: e.fake.TenantID, UserID: "u1"}
	if _, err := e.teams.Identify(testCtx(t), who, ref, nil); err == nil || errors.Is(err, approvebot.ErrIneligible) {
		t.Fatalf("Identify through an unknown service URL: %v, want an unverified identity", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 || e.fake.TokenRequests() != tokensBefore {
		t.Fatalf("unknown service URL called %d times, %d tokens fetched for it", hits, e.fake.TokenRequests()-tokensBefore)
	}
}

func TestIdentify(t *testing.T) {
	e := newEnv(t)
	e.install(t)
	ctx := testCtx(t)
	ref, err := e.teams.Post(ctx, testChannelID, testMessage("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	const oid = "6a2c0000-0000-0000-0000-00000000beef"
	e.fake.AddUser(oid, "Jane Doe", "jane@example.com")
	who := approvebot.Approver{Platform: "teams", Workspace: e.fake.TenantID, UserID: oid}
	got, err := e.teams.Identify(ctx, who, ref, []string{"ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "jane@example.com" || got.UPN != "jane@example.com" || got.Role != "user" || got.Name != "Jane Doe" || got.UserID != oid || len(got.Usergroups) != 0 {
		t.Fatalf("Identify: %+v", got)
	}
	if _, err := e.teams.Identify(ctx, who, ref, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.MemberLookups(); n != 1 {
		t.Fatalf("%d member lookups for two calls within 5 min, want 1 (cached)", n)
	}
	e.clock.Advance(6 * time.Minute)
	if _, err := e.teams.Identify(ctx, who, ref, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.MemberLookups(); n != 2 {
		t.Fatalf("%d member lookups after the cache expired, want 2", n)
	}

	// Without the lookup the role is unknown (a guest?): unverified.
	stranger := approvebot.Approver{Platform: "teams", Workspace: e.fake.TenantID, UserID: "00000000-0000-0000-0000-0000000000ff", Name: "Who"}
	if got, err = e.teams.Identify(ctx, stranger, ref, nil); err == nil || errors.Is(err, approvebot.ErrIneligible) {
		t.Fatalf("failed lookup: %+v, %v; want an unverified identity", got, err)
	}

	// Email and UPN differ: both kept. Roles other than member and guest,
	// and members of another tenant, may not approve.
	for _, tc := range []struct {
		m          teamsfake.User
		ineligible bool
	}{
		{teamsfake.User{AadObjectID: "00000000-0000-0000-0000-0000000000a1", Name: "Rick", Email: "Rick.Stevens@fabrikam.com", UPN: "rstevens@fabrikam.com"}, false},
		{teamsfake.User{AadObjectID: "00000000-0000-0000-0000-0000000000a2", Name: "Gus", Email: "gus@partner.example", UPN: "gus_partner.example#EXT#@fabrikam.onmicrosoft.com", Role: "guest"}, false},
		{teamsfake.User{AadObjectID: "00000000-0000-0000-0000-0000000000a3", Name: "Anon", Role: "anonymous"}, true},
		{teamsfake.User{AadObjectID: "00000000-0000-0000-0000-0000000000a4", Name: "NoRole", Email: "n@fabrikam.com", Role: "-"}, true},
		{teamsfake.User{AadObjectID: "00000000-0000-0000-0000-0000000000a5", Name: "Other", Email: "o@elsewhere.example", Tenant: "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"}, true},
	} {
		e.fake.AddMember(tc.m)
		got, err := e.teams.Identify(ctx, approvebot.Approver{Platform: "teams", Workspace: e.fake.TenantID, UserID: tc.m.AadObjectID}, ref, nil)
		if tc.ineligible {
			if !errors.Is(err, approvebot.ErrIneligible) {
				t.Errorf("%s: %+v, %v; want ineligible", tc.m.Name, got, err)
			}
			continue
		}
		role := tc.m.Role
		if role == "" {
			role = "user"
		}
		if err != nil || got.Email != tc.m.Email || got.UPN != tc.m.UPN || got.Role != role || got.Principal() != tc.m.UPN {
			t.Errorf("%s: %+v, %v", tc.m.Name, got, err)
		}
	}
	if _, err := e.teams.Identify(ctx, approvebot.Approver{Platform: "teams"}, ref, nil); err == nil {
		t.Fatal("Identify without an object id succeeded")
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	if err := e.teams.Check(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if e.fake.JWKSRequests() != 1 || e.fake.TokenRequests() != 1 {
		t.Fatalf("Check fetched keys %d times and tokens %d times", e.fake.JWKSRequests(), e.fake.TokenRequests())
	}
}

func TestEscapeID(t *testing.T) {
	got := escapeID("19:abc@thread.tacv2;messageid=17 x/y")
	if got != "19%3Aabc%40thread.tacv2%3Bmessageid%3D17%20x%2Fy" {
		t.Fatal(got)
	}
}

// postConcurrently posts n cards to the test channel at once and fails the
// test on any error.
func (e *env) postConcurrently(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
