package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
