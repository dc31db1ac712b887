package slack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

const (
	testToken  = "xoxb-test-token"
	testSecret = "test-signing-secret"
)

func newFake(t testing.TB) *slackfake.Fake {
	f := slackfake.New(testToken)
	t.Cleanup(f.Close)
	return f
}

func newSlack(t testing.TB, f *slackfake.Fake, mod func(*Config)) *Slack {
	cfg := Config{
		BotToken:        testToken,
		SigningSecret:   testSecret,
		APIURL:          f.URL(),
		ChannelInterval: -1,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func wait(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{
		{SigningSecret: "s"},
		{BotToken: "xoxb-1"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a config missing a credential", cfg)
		}
	}
}

func TestCheck(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	if err := s.Check(wait(t)); err != nil {
		t.Fatal(err)
	}
	if got := s.TeamID(); got != slackfake.TeamID {
		t.Errorf("TeamID = %q, want %q", got, slackfake.TeamID)
	}

	bad := newSlack(t, f, func(c *Config) { c.BotToken = "xoxb-wrong" })
	err := bad.Check(wait(t))
	if err == nil || !approvebot.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("Check with a wrong token = %v, want permanent invalid_auth", err)
	}
}

func TestPostThenUpdateRemovesButtons(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	ctx := wait(t)

	ref, err := s.Post(ctx, "C0APPROVALS", pendingMessage())
	if err != nil {
		t.Fatal(err)
	}
	if ref.Channel != "C0APPROVALS" || ref.ID == "" {
		t.Fatalf("ref = %+v, want channel C0APPROVALS and a ts", ref)
	}
	m, ok := f.Message(ref.Channel, ref.ID)
	if !ok {
		t.Fatalf("the fake holds no message at %+v", ref)
	}
	if !m.Actionable || m.Text != "Approval needed (request req_01HZX3K9)" {
		t.Errorf("posted message actionable=%v text=%q", m.Actionable, m.Text)
	}
	if !strings.Contains(string(m.Blocks), `"value":"req_01HZX3K9"`) {
		t.Errorf("buttons do not carry the request id: %s", m.Blocks)
	}

	done := pendingMessage()
	done.Actionable, done.Status, done.Outcome = false, approvebot.StatusApproved, "Approved by Jane Doe"
	if err := s.Update(ctx, ref, done); err != nil {
		t.Fatal(err)
	}
	m, _ = f.Message(ref.Channel, ref.ID)
	if m.Actionable || m.Updates != 1 || m.Text != "Approval request req_01HZX3K9: Approved" {
		t.Errorf("after update: actionable=%v updates=%d text=%q", m.Actionable, m.Updates, m.Text)
	}
	if !strings.Contains(string(m.Blocks), ":white_check_mark: *Approved*") || !strings.Contains(string(m.Blocks), `"text":"Approved by Jane Doe"`) {
		t.Errorf("updated blocks lack the outcome: %s", m.Blocks)
	}
	if n := len(f.Messages()); n != 1 {
		t.Errorf("fake holds %d messages, want 1", n)
	}
}

func TestDeliveryErrors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		failure    slackfake.Failure
		permanent  bool
		retryAfter time.Duration
		reason     string
	}{
		{"rate limited", "chat.postMessage", slackfake.RateLimited{RetryAfter: 3 * time.Second}, false, 3 * time.Second, "ratelimited"},
		{"HTTP 500", "chat.postMessage", slackfake.Status(500), false, 0, "HTTP 500"},
		{"HTTP 503", "chat.postMessage", slackfake.Status(503), false, 0, "HTTP 503"},
		{"HTTP 404", "chat.postMessage", slackfake.Status(404), true, 0, "HTTP 404"},
		{"internal_error", "chat.postMessage", slackfake.SlackError("internal_error"), false, 0, "internal_error"},
		{"service_unavailable", "chat.postMessage", slackfake.SlackError("service_unavailable"), false, 0, "service_unavailable"},
		{"channel_not_found", "chat.postMessage", slackfake.SlackError("channel_not_found"), true, 0, "channel_not_found: invite the bot to the channel"},
		{"is_archived", "chat.postMessage", slackfake.SlackError("is_archived"), true, 0, "is_archived"},
		{"missing_scope", "chat.postMessage", slackfake.SlackError("missing_scope"), true, 0, "missing_scope"},
		{"unknown slack error", "chat.postMessage", slackfake.SlackError("something_new"), true, 0, "something_new"},
		{"update rate limited", "chat.update", slackfake.RateLimited{RetryAfter: time.Second}, false, time.Second, "ratelimited"},
		{"update edit_window_closed", "chat.update", slackfake.SlackError("edit_window_closed"), true, 0, "edit_window_closed"},
		{"update HTTP 502", "chat.update", slackfake.Status(502), false, 0, "HTTP 502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			s := newSlack(t, f, nil)
			ctx := wait(t)
			var ref approvebot.MessageRef
			if tt.method == "chat.update" {
				var err error
				if ref, err = s.Post(ctx, "C1", pendingMessage()); err != nil {
					t.Fatal(err)
				}
			}
			f.FailNext(tt.method, 1, tt.failure)
			var err error
			if tt.method == "chat.update" {
				err = s.Update(ctx, ref, pendingMessage())
			} else {
				_, err = s.Post(ctx, "C1", pendingMessage())
			}
			var de *approvebot.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a DeliveryError", err, err)
			}
			if de.Permanent != tt.permanent || de.RetryAfter != tt.retryAfter || !strings.HasPrefix(de.Reason, tt.reason) {
				t.Errorf("got permanent=%v retryAfter=%v reason=%q, want %v %v %q", de.Permanent, de.RetryAfter, de.Reason, tt.permanent, tt.retryAfter, tt.reason)
			}
			if tt.method == "chat.postMessage" && f.Posts("C1") != 0 {
				t.Errorf("a failed post left %d messages in the fake", f.Posts("C1"))
			}
			// The failure was for one call only: the next one goes through,
			// which shows the adapter did not retry on its own.
			if got := f.CallCount(tt.method); got != 1 {
				t.Errorf("%s called %d times, want 1 (no retries inside the adapter)", tt.method, got)
			}
		})
	}
}

func TestDeliveryErrorsTransport(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		f := newFake(t)
		s := newSlack(t, f, nil)
		f.FailNext("chat.postMessage", 1, slackfake.Hang{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := s.Post(ctx, "C1", pendingMessage())
		if err == nil || approvebot.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("hung post = %v, want a retryable timeout", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		f := slackfake.New(testToken)
		s := newSlack(t, f, nil)
		f.Close()
		_, err := s.Post(wait(t), "C1", pendingMessage())
		var de *approvebot.DeliveryError
		if !errors.As(err, &de) || de.Permanent || de.Reason != "network error" {
			t.Errorf("post to a closed server = %v, want retryable network error", err)
		}
	})
	t.Run("message_not_found", func(t *testing.T) {
		f := newFake(t)
		s := newSlack(t, f, nil)
		err := s.Update(wait(t), approvebot.MessageRef{Channel: "C1", ID: "1700000000.999999"}, pendingMessage())
		if !approvebot.IsPermanent(err) || !strings.Contains(err.Error(), "message_not_found") {
			t.Errorf("update of a missing message = %v, want permanent message_not_found", err)
		}
	})
}

// The adapter reports its pace and leaves the pacing to the engine: a post
// is made when asked, whatever the interval.
func TestPostInterval(t *testing.T) {
	f := newFake(t)
	for _, c := range []struct {
		set, want time.Duration
	}{{0, 0}, {time.Hour, time.Hour}, {-1, 0}} {
		s := newSlack(t, f, func(cfg *Config) { cfg.ChannelInterval = c.set })
		if got := s.PostInterval("CA"); got != c.want {
			t.Errorf("ChannelInterval %v: PostInterval = %v, want %v", c.set, got, c.want)
		}
	}
	s := newSlack(t, f, func(c *Config) { c.ChannelInterval = time.Hour })
	for range 2 {
		if _, err := s.Post(wait(t), "CA", pendingMessage()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Posts("CA"); n != 2 {
		t.Errorf("%d posts reached Slack, want 2", n)
	}
}

func TestIdentify(t *testing.T) {
	f := newFake(t)
	f.AddUser("U1", "Jane Doe", "jane@example.com")
	f.AddUser("U2", "Sam Roe", "sam@example.com")
	f.AddUsergroup("S1", "U2", "U1")
	f.AddUsergroup("S2", "U2")
	s := newSlack(t, f, nil)
	ctx := wait(t)
	who := approvebot.Approver{Platform: "slack", Workspace: slackfake.TeamID, UserID: "U1", Name: "jane"}

	got, err := s.Identify(ctx, who, approvebot.MessageRef{}, []string{"S1", "S2", "S1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "jane@example.com" || got.Name != "Jane Doe" || !slices.Equal(got.Usergroups, []string{"S1"}) ||
		got.UserID != "U1" || got.Workspace != slackfake.TeamID {
		t.Errorf("Identify = %+v", got)
	}
	infos, lists := f.CallCount("users.info"), f.CallCount("usergroups.users.list")
	if infos != 1 || lists != 2 {
		t.Errorf("first identify made %d users.info and %d usergroups.users.list calls, want 1 and 2", infos, lists)
	}

	if _, err := s.Identify(ctx, who, approvebot.MessageRef{}, []string{"S2", "S1"}); err != nil {
		t.Fatal(err)
	}
	if f.CallCount("users.info") != infos || f.CallCount("usergroups.users.list") != lists {
		t.Errorf("second identify called Slack again: users.info %d, usergroups.users.list %d",
			f.CallCount("users.info"), f.CallCount("usergroups.users.list"))
	}
}

func TestIdentifyWithoutCacheCallsSlack(t *testing.T) {
	f := newFake(t)
	f.AddUser("U1", "Jane Doe", "jane@example.com")
	s := newSlack(t, f, func(c *Config) { c.CacheTTL = -1 })
	who := approvebot.Approver{Platform: "slack", Workspace: slackfake.TeamID, UserID: "U1"}
	for range 2 {
		if _, err := s.Identify(wait(t), who, approvebot.MessageRef{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.CallCount("users.info"); n != 2 {
		t.Errorf("users.info called %d times without a cache, want 2", n)
	}
}

// TestIdentifyKeysOnTheDirectory: the workspace an approver is keyed on is
// the one users.info reports (the organisation on Enterprise Grid), never
// the team id the click carried.
func TestIdentifyKeysOnTheDirectory(t *testing.T) {
	f := newFake(t)
	f.AddUser("U1", "Jane Doe", "")
	f.SetEnterprise("E0ORG")
	f.AddGridUser("W1", "Grace", "", "T0SISTER", "E0ORG")
	s := newSlack(t, f, nil)
	for _, tc := range []struct{ user, claimed, want string }{
		{"U1", "T0CLAIMED", slackfake.TeamID},
		{"U1", "", slackfake.TeamID},
		{"W1", "T0SISTER", "E0ORG"},
		{"W1", slackfake.TeamID, "E0ORG"},
	} {
		got, err := s.Identify(wait(t), approvebot.Approver{Platform: "slack", Workspace: tc.claimed, UserID: tc.user}, approvebot.MessageRef{}, nil)
		if err != nil {
			t.Fatalf("%s claiming %q: %v", tc.user, tc.claimed, err)
		}
		if got.Workspace != tc.want || got.Principal() != "slack:"+tc.want+"/"+tc.user {
			t.Errorf("%s claiming %q: workspace %q, principal %q; want %q", tc.user, tc.claimed, got.Workspace, got.Principal(), tc.want)
		}
	}
}

func TestIdentifyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *slackfake.Fake)
		who    approvebot.Approver
		groups []string
		want   string
	}{
		{"deleted user", func(f *slackfake.Fake) { f.AddUser("U1", "Jane", "j@x"); f.DeleteUser("U1") },
			approvebot.Approver{Platform: "slack", UserID: "U1"}, nil, "deactivated"},
		{"bot user", func(f *slackfake.Fake) { f.AddBot("U1", "robot") },
			approvebot.Approver{Platform: "slack", UserID: "U1"}, nil, "bot"},
		{"unknown user", func(f *slackfake.Fake) {},
			approvebot.Approver{Platform: "slack", UserID: "U404"}, nil, "user_not_found"},
		{"users.info fails", func(f *slackfake.Fake) {
			f.AddUser("U1", "Jane", "j@x")
			f.FailNext("users.info", 1, slackfake.Status(500))
		}, approvebot.Approver{Platform: "slack", UserID: "U1"}, nil, "HTTP 500"},
		{"usergroup lookup fails", func(f *slackfake.Fake) {
			f.AddUser("U1", "Jane", "j@x")
			f.AddUsergroup("S1", "U1")
			f.FailNext("usergroups.users.list", 1, slackfake.SlackError("plan_upgrade_required"))
		}, approvebot.Approver{Platform: "slack", UserID: "U1"}, []string{"S1"}, "plan_upgrade_required"},
		{"unknown usergroup", func(f *slackfake.Fake) { f.AddUser("U1", "Jane", "j@x") },
			approvebot.Approver{Platform: "slack", UserID: "U1"}, []string{"S404"}, "no_such_subteam"},
		{"other platform", func(f *slackfake.Fake) { f.AddUser("U1", "Jane", "j@x") },
			approvebot.Approver{Name: "teams", UserID: "U1"}, nil, "platform"},
		{"no user id", func(f *slackfake.Fake) {},
			approvebot.Approver{Platform: "slack"}, nil, "no user id"},
		{"member of another organisation", func(f *slackfake.Fake) { f.AddExternalUser("U1", "Jane", "jane@company.com", "T0OTHERCORP") },
			approvebot.Approver{Platform: "slack", UserID: "U1"}, nil, "another workspace"},
		{"no team id", func(f *slackfake.Fake) { f.AddUserWithoutTeam("U1", "Jane", "") },
			approvebot.Approver{Platform: "slack", Workspace: slackfake.TeamID, UserID: "U1"}, nil, "no team_id"},
		{"another organisation's grid", func(f *slackfake.Fake) {
			f.SetEnterprise("E0OURS")
			f.AddGridUser("W1", "Jane", "", "T0THEIRS", "E0THEIRS")
		}, approvebot.Approver{Platform: "slack", UserID: "W1"}, nil, "another workspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			tt.setup(f)
			s := newSlack(t, f, nil)
			_, err := s.Identify(wait(t), tt.who, approvebot.MessageRef{}, tt.groups)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Identify = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func BenchmarkPost(b *testing.B) {
	f := newFake(b)
	s := newSlack(b, f, nil)
	ctx := context.Background()
	msg := pendingMessage()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Post(ctx, "C1", msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
