package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// TestServiceLogLines checks what operators grep for in the service's log:
// a request's lines name it once, an adapter's name their platform once,
// and durations read as Go writes them.
func TestServiceLogLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(&buf, slog.LevelInfo)
	ctx := bot.WithRequestID(context.Background(), "ar_1")

	log.InfoContext(ctx, "stopping", "grace", 20*time.Second)

	f := slackfake.New("xoxb-test")
	defer f.Close()
	f.FailNext("chat.postMessage", 1, slackfake.SlackError("channel_not_found"))
	s, err := slack.New(slack.Config{BotToken: "xoxb-test", SigningSecret: "secret", APIURL: f.URL(), ChannelInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Post(ctx, "C1", approvebot.Message{RequestID: "ar_1"}); err == nil {
		t.Fatal("post to a failing channel succeeded")
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []map[string]string{
		{"msg": "stopping", "request_id": "ar_1", "grace": "20s"},
		{"msg": "slack post failed", "request_id": "ar_1", "platform": "slack", "channel": "C1"},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, lines[i])
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %q: %s", i, k, got[k], v, lines[i])
			}
			if n := strings.Count(lines[i], `"`+k+`":`); n != 1 {
				t.Errorf("line %d names %s %d times, want once: %s", i, k, n, lines[i])
			}
		}
	}
}

// TestClickLogLines checks a click's line as each adapter logs it in the
// running service: it names the request the click names once, and its
// platform once.
func TestClickLogLines(t *testing.T) {
	t.Parallel()
	th := newTeamsHarness(t)
	th.startInstalled()
	held := th.submit(legacyBody("both-transfer"), auth())
	card, id := th.teamsCardIn(teamsTreasury, held)
	slackMsg := th.waitMessages(id, 1)[0]
	th.waitPosted(id, 2)

	if ans := th.teamsClick(teamsJane, card, "allow"); ans.Type != teamsCardType {
		t.Fatalf("Jane was answered %v", ans)
	}
	if got := th.await(held); !got.answer.Approved {
		t.Fatalf("agent got %s", got.body)
	}
	// A late click on the Slack copy is refused; the clicker is told after
	// the click is logged.
	if r := th.click("U0JANE", "C0TREASURY", slackMsg.TS, "approve", id); r.status != http.StatusOK {
		t.Fatalf("Slack click answered %d", r.status)
	}
	th.waitFor("the late Slack clicker told", func() bool { return len(th.slack.Ephemerals()) == 1 })
	th.waitLogged(`"msg":"click",`, 1)
	th.waitLogged(`"msg":"slack click",`, 1)

	for _, want := range []map[string]string{
		{"msg": "click", "platform": "teams", "request_id": id, "decision": "allow"},
		{"msg": "slack click", "platform": "slack", "request_id": id, "user": "U0JANE"},
	} {
		line := logLine(t, th.logs.String(), want["msg"])
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line is not JSON: %v: %s", err, line)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %q: %s", want["msg"], k, got[k], v, line)
			}
			if n := strings.Count(line, `"`+k+`":`); n != 1 {
				t.Errorf("%s names %s %d times, want once: %s", want["msg"], k, n, line)
			}
		}
	}
}

// logLine is the one line of logs whose message is msg.
func logLine(t *testing.T, logs, msg string) string {
	t.Helper()
	var found []string
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, `"msg":`+strconv.Quote(msg)+`,`) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines logged %q, want 1:\n%s", len(found), msg, logs)
	}
	return found[0]
}
