package slackfake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
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

// TestBlockChecksOffReadsLater shows that with checks off, a message call
// whose form is read only in part as it arrives, the rest when someone asks,
// is answered and recorded as with checks on: the same answer byte for byte,
// the same messages, replies and ephemerals, the same parameters read from
// Calls, escapes, '+' and repeated keys decoded as url.Values.Get does.
func TestBlockChecksOffReadsLater(t *testing.T) {
	blocks := `[{"type":"section","text":{"type":"mrkdwn","text":"50% off & <b>+1</b> = ü; \"q\""}},` + button("ar_1") + `]`
	text := "Approve? 100% + more & ü <x>"
	escaped := url.QueryEscape(blocks)
	many := strings.Repeat("x=1&", 150)
	const first = "1700000000.000001" // the first post's ts in a new fake
	tests := []struct {
		name, method, body, want string
	}{
		{"encoded by url.Values", "chat.postMessage", url.Values{"token": {token}, "channel": {"C1"}, "text": {text}, "blocks": {blocks}}.Encode(), ""},
		{"plus, lowercase escapes, repeated keys", "chat.postMessage", "token=" + token + "&channel=C1&text=a+b%2bc%e2%82%ac&text=second&blocks=" + escaped + "&blocks=%5B%5D", ""},
		{"escaped keys, empty pairs", "chat.postMessage", "&&%74oken=" + token + "&&chann%65l=C%31&t%65xt=hi+there&bl%6fcks=" + escaped + "&", ""},
		{"no blocks", "chat.postMessage", "token=" + token + "&channel=C2&text=plain", ""},
		{"empty blocks", "chat.postMessage", "token=" + token + "&channel=C2&text=plain&blocks=", ""},
		{"many parameters", "chat.postMessage", many + "token=" + token + "&channel=C1&text=many&blocks=" + escaped, ""},
		{"reply", "chat.postMessage", "token=" + token + "&channel=C1&thread_ts=" + first + "&text=re+%3Cply%3E", ""},
		{"reply without a thread", "chat.postMessage", "token=" + token + "&channel=C1&thread_ts=1.1&text=x", "thread_not_found"},
		{"bad escape", "chat.postMessage", "token=" + token + "&channel=C1&text=100%&blocks=" + escaped, "invalid_form_data"},
		{"bad escape in blocks", "chat.postMessage", "token=" + token + "&channel=C1&text=hi&blocks=%5B%zz", "invalid_form_data"},
		{"semicolon", "chat.postMessage", "token=" + token + "&channel=C1;text=hi", "invalid_form_data"},
		{"no text", "chat.postMessage", "token=" + token + "&channel=C1&text=+&blocks=" + escaped, "no_text"},
		{"no channel", "chat.postMessage", "token=" + token + "&text=hi", "channel_not_found"},
		{"no token", "chat.postMessage", "channel=C1&text=hi", "not_authed"},
		{"wrong token", "chat.postMessage", "token=xoxb-wrong&channel=C1&text=hi", "invalid_auth"},
		{"update", "chat.update", "token=" + token + "&channel=C1&ts=" + first + "&text=Done+%26+dusted&blocks=%5B%5D", ""},
		{"update keeps blocks", "chat.update", "token=" + token + "&channel=C1&ts=1700000000.000002&text=new", ""},
		{"update, blocks only", "chat.update", "token=" + token + "&channel=C1&ts=1700000000.000003&blocks=" + escaped, ""},
		{"update, nothing", "chat.update", "token=" + token + "&channel=C1&ts=" + first, "no_text"},
		{"update, empty blocks", "chat.update", "token=" + token + "&channel=C1&ts=" + first + "&blocks=&blocks=%5B%5D", "no_text"},
		{"update, no message", "chat.update", "token=" + token + "&channel=C1&ts=1.1&text=x", "message_not_found"},
		{"ephemeral", "chat.postEphemeral", "token=" + token + "&channel=C1&user=U1&text=only+you%21", ""},
		{"ephemeral, blocks only", "chat.postEphemeral", "token=" + token + "&channel=C1&user=U1&blocks=" + escaped, ""},
		{"ephemeral, nothing", "chat.postEphemeral", "token=" + token + "&channel=C1&user=U1", "no_text"},
		{"ephemeral, empty blocks", "chat.postEphemeral", "token=" + token + "&channel=C1&user=U1&text=+&blocks=", "no_text"},
	}
	on, off := start(t), start(t)
	off.SetBlockChecks(false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onStatus, onBody := postRaw(t, on, tt.method, tt.body)
			offStatus, offBody := postRaw(t, off, tt.method, tt.body)
			var out map[string]any
			if err := json.Unmarshal(offBody, &out); err != nil || slackErr(out) != tt.want {
				t.Errorf("checks off: %s, want error %q", offBody, tt.want)
			}
			if offStatus != onStatus || string(offBody) != string(onBody) {
				t.Errorf("checks off answered %d %s, checks on %d %s", offStatus, offBody, onStatus, onBody)
			}
			onCall, offCall := <-on.Calls(), <-off.Calls()
			if offCall.Method != onCall.Method || offCall.Error != onCall.Error || !reflect.DeepEqual(offCall.Form(), onCall.Form()) {
				t.Errorf("checks off recorded the call %+v with %v, checks on %+v with %v", offCall, offCall.Form(), onCall, onCall.Form())
			}
			want, err := url.ParseQuery(tt.body)
			if got := offCall.Form(); err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("checks off: the call's form %v, want %v", got, want)
			}
		})
	}
	if got, want := off.Messages(), on.Messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("checks off recorded %+v, checks on %+v", got, want)
	}
	if m, _ := off.Message("C1", "1700000000.000003"); m.Channel != "C1" || m.Text != "hi there" || string(m.Blocks) != blocks || !m.Actionable {
		t.Errorf("checks off: the post with escaped keys is %+v, want its text and blocks as sent", m)
	}
	if m, _ := off.Message("C1", "1700000000.000002"); m.Text != "new" || string(m.Blocks) != blocks || !m.Actionable {
		t.Errorf("checks off: the update without blocks left %+v, want the blocks first sent", m)
	}
	if m, _ := off.Message("C1", first); m.Text != "Done & dusted" || string(m.Blocks) != "[]" || m.Actionable || m.Updates != 1 {
		t.Errorf("checks off: the updated post is %+v", m)
	}
	if got, want := off.Replies("C1", first), on.Replies("C1", first); len(got) != 1 || got[0].Text != "re <ply>" || !reflect.DeepEqual(got, want) {
		t.Errorf("checks off: replies %+v, checks on %+v", got, want)
	}
	if got, want := off.Ephemerals(), on.Ephemerals(); len(got) != 2 || got[0].Text != "only you!" || !reflect.DeepEqual(got, want) {
		t.Errorf("checks off: ephemerals %+v, checks on %+v", got, want)
	}
}

// TestBlockChecksOffReadConcurrently reads a post whose form is still
// undecoded from many goroutines at once, through every way in: run with
// -race, it shows the form is decoded safely, and the same for all.
func TestBlockChecksOffReadConcurrently(t *testing.T) {
	f := start(t)
	f.SetBlockChecks(false)
	blocks := "[" + button("ar_2") + "]"
	_, out := call(t, f, "chat.postMessage", url.Values{"channel": {"C1"}, "text": {"hi"}, "blocks": {blocks}})
	ts, _ := out["ts"].(string)
	c := <-f.Calls()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			var got string
			switch i % 3 {
			case 0:
				got = c.Form().Get("blocks")
			case 1:
				m, _ := f.Message("C1", ts)
				got = string(m.Blocks)
			default:
				got = string(f.Messages()[0].Blocks)
			}
			if got != blocks {
				t.Errorf("read %d: blocks %s, want %s", i, got, blocks)
			}
		})
	}
	wg.Wait()
}

// postRaw posts body as a form and returns the answer as sent.
func postRaw(t *testing.T, f *slackfake.Fake, method, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(f.URL()+method, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
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
	if c.Method != "chat.postMessage" || c.Form().Get("channel") != "C7" || c.Error != "" {
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
