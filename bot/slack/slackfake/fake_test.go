package slackfake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

const token = "xoxb-fake"

func start(t *testing.T) *slackfake.Fake {
	f := slackfake.New(token)
	t.Cleanup(f.Close)
	return f
}

func call(t *testing.T, f *slackfake.Fake, method string, form url.Values) (int, map[string]any) {
	t.Helper()
	if form.Get("token") == "-" {
		form.Del("token")
	} else if !form.Has("token") {
		form.Set("token", token)
	}
	resp, err := http.PostForm(f.URL()+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func slackErr(out map[string]any) string {
	if out["ok"] == true {
		return ""
	}
	s, _ := out["error"].(string)
	return s
}

func button(value string) string {
	return fmt.Sprintf(`{"type":"actions","block_id":"r","elements":[{"type":"button","action_id":"a","value":%q,"text":{"type":"plain_text","text":"OK"}}]}`, value)
}

func TestAuth(t *testing.T) {
	f := start(t)
	if _, out := call(t, f, "auth.test", url.Values{"token": {"xoxb-wrong"}}); slackErr(out) != "invalid_auth" {
		t.Errorf("wrong token: %v", out)
	}
	if _, out := call(t, f, "auth.test", url.Values{"token": {"-"}}); slackErr(out) != "not_authed" {
		t.Errorf("no token: %v", out)
	}
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"auth.test", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if out["ok"] != true || out["team_id"] != slackfake.TeamID {
		t.Errorf("bearer token with a JSON body: %v", out)
	}
}

func TestBlockLimits(t *testing.T) {
	many := make([]string, 51)
	for i := range many {
		many[i] = `{"type":"divider"}`
	}
	fields := make([]string, 11)
	for i := range fields {
		fields[i] = `{"type":"mrkdwn","text":"f"}`
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	sections := func(n, size int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf(`{"type":"section","text":{"type":"mrkdwn","text":%q}}`, long(size))
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	tests := []struct {
		name, text, blocks, want string
	}{
		{"valid", "hi", `[{"type":"header","text":{"type":"plain_text","text":"h"}},` + button("v") + `]`, ""},
		{"no text", "", `[{"type":"divider"}]`, "no_text"},
		{"51 blocks", "hi", "[" + strings.Join(many, ",") + "]", "invalid_blocks"},
		{"header 151", "hi", fmt.Sprintf(`[{"type":"header","text":{"type":"plain_text","text":%q}}]`, long(151)), "invalid_blocks"},
		{"header 150", "hi", fmt.Sprintf(`[{"type":"header","text":{"type":"plain_text","text":%q}}]`, long(150)), ""},
		{"header mrkdwn", "hi", `[{"type":"header","text":{"type":"mrkdwn","text":"h"}}]`, "invalid_blocks"},
		{"section 3001", "hi", sections(1, 3001), "invalid_blocks"},
		{"11 fields", "hi", `[{"type":"section","fields":[` + strings.Join(fields, ",") + `]}]`, "invalid_blocks"},
		{"field 2001", "hi", fmt.Sprintf(`[{"type":"section","fields":[{"type":"mrkdwn","text":%q}]}]`, long(2001)), "invalid_blocks"},
		{"button value 2001", "hi", "[" + button(long(2001)) + "]", "invalid_blocks"},
		{"duplicate block_id", "hi", "[" + button("a") + "," + button("b") + "]", "invalid_blocks"},
		{"empty text object", "hi", `[{"type":"section","text":{"type":"mrkdwn","text":""}}]`, "invalid_blocks"},
		{"unknown block", "hi", `[{"type":"carousel"}]`, "invalid_blocks"},
		{"not JSON", "hi", `[{`, "invalid_blocks_format"},
		{"too much text overall", "hi", sections(5, 2500), "msg_blocks_too_long"},
	}
	f := start(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out := call(t, f, "chat.postMessage", url.Values{"channel": {"C1"}, "text": {tt.text}, "blocks": {tt.blocks}})
			if got := slackErr(out); got != tt.want {
				t.Errorf("error %q, want %q", got, tt.want)
			}
		})
	}
	if n := f.Posts("C1"); n != 2 {
		t.Errorf("%d posts stored, want the 2 valid ones", n)
	}
}

// TestBlockChecksOff shows the switch the benchmark uses: the same post,
// refused for its blocks with checks on (as from New), is taken and recorded
// byte for byte with them off, while the token and the text are still
// checked.
func TestBlockChecksOff(t *testing.T) {
	// A button whose text is 76 characters, one past Slack's limit.
	blocks := `[{"type":"header","text":{"type":"plain_text","text":"h"}},{"type":"actions","block_id":"r","elements":[{"type":"button","action_id":"a","value":"v","text":{"type":"plain_text","text":"` +
		strings.Repeat("x", 76) + `"}}]}]`
	post := url.Values{"channel": {"C1"}, "text": {"hi"}, "blocks": {blocks}}

	f := start(t)
	if _, out := call(t, f, "chat.postMessage", post); slackErr(out) != "invalid_blocks" {
		t.Fatalf("checks on: %v, want invalid_blocks", out)
	}
	if _, out := call(t, f, "chat.update", url.Values{"channel": {"C1"}, "ts": {"1.1"}, "text": {"x"}, "blocks": {"[{"}}); slackErr(out) != "invalid_blocks_format" {
		t.Errorf("checks on, update: %v, want invalid_blocks_format", out)
	}
	if n := f.Posts("C1"); n != 0 {
		t.Fatalf("checks on: %d posts recorded, want 0", n)
	}

	f.SetBlockChecks(false)
	_, out := call(t, f, "chat.postMessage", post)
	if slackErr(out) != "" {
		t.Fatalf("checks off: %v, want ok", out)
	}
	ts, _ := out["ts"].(string)
	m, ok := f.Message("C1", ts)
	if !ok || string(m.Blocks) != blocks || !m.Actionable || m.Text != "hi" || f.Posts("C1") != 1 {
		t.Errorf("checks off: recorded %+v (found %v, %d posts), want the post as sent, with buttons", m, ok, f.Posts("C1"))
	}
	if _, out := call(t, f, "chat.update", url.Values{"channel": {"C1"}, "ts": {ts}, "text": {"done"}, "blocks": {`[{"type":"carousel"}]`}}); slackErr(out) != "" {
		t.Errorf("checks off, update: %v, want ok", out)
	}
	if m, _ := f.Message("C1", ts); m.Actionable || string(m.Blocks) != `[{"type":"carousel"}]` || m.Updates != 1 {
		t.Errorf("checks off, updated message %+v", m)
	}
	wrong := url.Values{"token": {"xoxb-wrong"}, "channel": {"C1"}, "text": {"hi"}, "blocks": {blocks}}
	if _, out := call(t, f, "chat.postMessage", wrong); slackErr(out) != "invalid_auth" {
		t.Errorf("checks off, wrong token: %v, want invalid_auth", out)
	}
	if _, out := call(t, f, "chat.postMessage", url.Values{"channel": {"C1"}, "text": {" "}, "blocks": {blocks}}); slackErr(out) != "no_text" {
		t.Errorf("checks off, no text: %v, want no_text", out)
	}
	if n := f.Posts("C1"); n != 1 {
		t.Errorf("checks off: %d posts recorded, want 1", n)
	}

	f.SetBlockChecks(true)
	if _, out := call(t, f, "chat.postMessage", post); slackErr(out) != "invalid_blocks" {
		t.Errorf("checks back on: %v, want invalid_blocks", out)
	}
}

func TestMessagesAndUpdates(t *testing.T) {
	f := start(t)
	var ts []string
	for i := range 3 {
		_, out := call(t, f, "chat.postMessage", url.Values{"channel": {"C1"}, "text": {fmt.Sprint("m", i)}, "blocks": {"[" + button("r") + "]"}})
		ts = append(ts, out["ts"].(string))
	}
	if !(ts[0] < ts[1] && ts[1] < ts[2]) || !strings.HasPrefix(ts[0], "1700000000.") {
		t.Errorf("timestamps %v are not increasing Slack timestamps", ts)
	}
	_, out := call(t, f, "chat.update", url.Values{"channel": {"C1"}, "ts": {ts[1]}, "text": {"done"}, "blocks": {"[]"}})
	if slackErr(out) != "" {
		t.Fatalf("update: %v", out)
	}
	m, _ := f.Message("C1", ts[1])
	if m.Actionable || m.Updates != 1 || m.Text != "done" || string(m.Blocks) != "[]" {
		t.Errorf("updated message %+v", m)
	}
	// Without blocks, Slack keeps the ones there.
	call(t, f, "chat.update", url.Values{"channel": {"C1"}, "ts": {ts[0]}, "text": {"new text"}})
	if m, _ := f.Message("C1", ts[0]); !m.Actionable || m.Text != "new text" {
		t.Errorf("update without blocks dropped them: %+v", m)
	}
	if _, out := call(t, f, "chat.update", url.Values{"channel": {"C1"}, "ts": {"1.1"}, "text": {"x"}}); slackErr(out) != "message_not_found" {
		t.Errorf("update of a missing message: %v", out)
	}
	msgs := f.Messages()
	if len(msgs) != 3 || msgs[0].TS != ts[0] || msgs[2].TS != ts[2] {
		t.Errorf("Messages() = %+v", msgs)
	}
	call(t, f, "chat.postEphemeral", url.Values{"channel": {"C1"}, "user": {"U1"}, "text": {"only you"}})
	if e := f.Ephemerals(); len(e) != 1 || e[0] != (slackfake.Ephemeral{Channel: "C1", User: "U1", Text: "only you"}) {
		t.Errorf("Ephemerals() = %+v", e)
	}
}

func TestUsers(t *testing.T) {
	f := start(t)
	f.AddUser("U1", "Jane", "jane@example.com")
	f.AddUsergroup("S1", "U1", "U2")
	_, out := call(t, f, "users.info", url.Values{"user": {"U1"}})
	u, _ := out["user"].(map[string]any)
	if u["id"] != "U1" || u["deleted"] != false || u["profile"].(map[string]any)["email"] != "jane@example.com" {
		t.Errorf("users.info = %v", out)
	}
	_, out = call(t, f, "users.lookupByEmail", url.Values{"email": {"JANE@example.com"}})
	if u, _ := out["user"].(map[string]any); u["id"] != "U1" {
		t.Errorf("users.lookupByEmail = %v", out)
	}
	f.DeleteUser("U1")
	_, out = call(t, f, "users.info", url.Values{"user": {"U1"}})
	if out["user"].(map[string]any)["deleted"] != true {
		t.Errorf("deleted user: %v", out)
	}
	if _, out := call(t, f, "users.info", url.Values{"user": {"U9"}}); slackErr(out) != "user_not_found" {
		t.Errorf("unknown user: %v", out)
	}
	_, out = call(t, f, "usergroups.users.list", url.Values{"usergroup": {"S1"}})
	if fmt.Sprint(out["users"]) != "[U1 U2]" {
		t.Errorf("usergroups.users.list = %v", out)
	}
	if _, out := call(t, f, "usergroups.users.list", url.Values{"usergroup": {"S9"}}); slackErr(out) != "no_such_subteam" {
		t.Errorf("unknown usergroup: %v", out)
	}
}

func TestFailures(t *testing.T) {
	f := start(t)
	f.FailNext("auth.test", 2, slackfake.RateLimited{RetryAfter: 2 * time.Second})
	for range 2 {
		resp, err := http.PostForm(f.URL()+"auth.test", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("rate limited call answered %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if code, out := call(t, f, "auth.test", url.Values{}); code != 200 || out["ok"] != true {
		t.Errorf("third call still failing: %d %v", code, out)
	}
	f.FailNext("users.info", 1, slackfake.Status(503))
	if code, _ := call(t, f, "users.info", url.Values{"user": {"U1"}}); code != 503 {
		t.Errorf("status failure answered %d", code)
	}
	f.FailFor("users.info", time.Hour, slackfake.SlackError("internal_error"))
	for range 3 {
		if _, out := call(t, f, "users.info", url.Values{"user": {"U1"}}); slackErr(out) != "internal_error" {
			t.Errorf("FailFor not failing: %v", out)
		}
	}
	if n := f.CallCount("users.info"); n != 4 {
		t.Errorf("CallCount = %d, want 4", n)
	}
}

func TestHangEndsWithClientOrClose(t *testing.T) {
	f := slackfake.New(token)
	f.FailNext("auth.test", 2, slackfake.Hang{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+"auth.test", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("a hanging call returned")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := http.PostForm(f.URL()+"auth.test", url.Values{"token": {token}})
		errc <- err
	}()
	if err := f.WaitFor(testCtx(t), func() bool { return f.CallCount("auth.test") == 2 }); err != nil {
		t.Fatal(err)
	}
	f.Close() // must not wait for the hanging request forever
	<-errc
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWaitForAndCalls(t *testing.T) {
	f := start(t)
	go func() {
		resp, err := http.PostForm(f.URL()+"chat.postMessage", url.Values{"token": {token}, "channel": {"C7"}, "text": {"hi"}})
		if err == nil {
			resp.Body.Close()
		}
	}()
	if err := f.WaitFor(testCtx(t), func() bool { return f.Posts("C7") == 1 }); err != nil {
		t.Fatal(err)
	}
	c := <-f.Calls()
	if c.Method != "chat.postMessage" || c.Form.Get("channel") != "C7" || c.Error != "" {
		t.Errorf("call = %+v", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.WaitFor(ctx, func() bool { return false }); err == nil {
		t.Error("WaitFor returned nil for a condition never met")
	}
}

func TestConcurrentPosts(t *testing.T) {
	f := start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 25 {
				resp, err := http.PostForm(f.URL()+"chat.postMessage", url.Values{"token": {token}, "channel": {fmt.Sprint("C", i%2)}, "text": {"x"}})
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if a, b := f.Posts("C0"), f.Posts("C1"); a+b != 200 || len(f.Messages()) != 200 {
		t.Errorf("posts %d+%d, messages %d, want 200", a, b, len(f.Messages()))
	}
}
