package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current rendering")

func pendingMessage() approvebot.Message {
	return approvebot.Message{
		RequestID: "req_01HZX3K9",
		Title:     "transfer_funds on acct-7731",
		Fields: []approvebot.Field{
			{Label: "Agent", Value: "payments-agent"},
			{Label: "Action", Value: "transfer_funds"},
			{Label: "Rule", Value: "large-transfers"},
			{Label: "Deadline", Value: "2026-03-01 12:05 UTC"},
		},
		Status:     approvebot.StatusPending,
		Actionable: true,
	}
}

func TestRenderGolden(t *testing.T) {
	long := strings.Repeat("A very long value & more <text> ", 200)
	tests := []struct {
		name string
		msg  func() approvebot.Message
	}{
		{"pending", pendingMessage},
		{"pending_context_progress_notice", func() approvebot.Message {
			m := pendingMessage()
			m.Context = []approvebot.Field{{Label: "amount", Value: "12,500.00 EUR"}, {Label: "to", Value: "DE89 3704 0044 0532 0130 00"}}
			m.Progress = "Stage 1 of 2 approved by Jane Doe; waiting for security"
			m.Notice = "not delivered to C0OPS: channel_not_found"
			return m
		}},
		{"approved", func() approvebot.Message {
			m := pendingMessage()
			m.Status, m.Actionable, m.Outcome = approvebot.StatusApproved, false, "Approved by Jane Doe at 12:01 UTC"
			return m
		}},
		{"denied", func() approvebot.Message {
			m := pendingMessage()
			m.Status, m.Actionable, m.Outcome = approvebot.StatusDenied, false, "Denied by Sam Roe at 12:02 UTC"
			return m
		}},
		{"timed_out", func() approvebot.Message {
			m := pendingMessage()
			m.Status, m.Actionable, m.Outcome = approvebot.StatusTimedOut, false, "Timed out at 12:05 UTC: nobody decided"
			return m
		}},
		{"hostile", func() approvebot.Message {
			m := pendingMessage()
			m.Title = "<!channel> " + long
			m.Fields = append(m.Fields, approvebot.Field{Label: "Long", Value: long})
			for i := range 14 {
				m.Context = append(m.Context, approvebot.Field{
					Label: "<https://evil.example|click> " + strings.Repeat("L", i*20),
					Value: "<!channel> <https://evil.example|click here> <@U0ADMIN> " + long,
				})
			}
			m.Progress = "<!here> " + long
			m.Notice = "<!everyone> " + long
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, text := Render(tt.msg())
			got, err := json.MarshalIndent(struct {
				Text   string `json:"text"`
				Blocks any    `json:"blocks"`
			}{text, blocks}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRenderGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendering of %s differs from %s; rerun with -update if intended\ngot:\n%s", tt.name, path, got)
			}
		})
	}
}

// TestRenderHostileInput checks the safety properties the golden files only
// show: no raw mention or link syntax survives, and limits hold.
func TestRenderHostileInput(t *testing.T) {
	long := strings.Repeat("x&<>", 5000)
	m := pendingMessage()
	m.Title = "<!channel> " + long
	for i := range 25 {
		m.Fields = append(m.Fields, approvebot.Field{Label: "f<" + long, Value: long})
		m.Context = append(m.Context, approvebot.Field{Label: "<@U1>", Value: "<!channel> <https://evil|click> " + long + string(rune(i+'a'))})
	}
	m.Progress, m.Notice = "<!here>"+long, "<!everyone>"+long
	for _, actionable := range []bool{true, false} {
		m.Actionable = actionable
		m.Outcome = "<!channel> " + long
		blocks, text := Render(m)
		raw, err := json.Marshal(blocks)
		if err != nil {
			t.Fatal(err)
		}
		var decoded []map[string]any
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		total := 0
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if s, ok := v["text"].(string); ok {
					total += utf8.RuneCountInString(s)
					if v["type"] == "mrkdwn" && strings.ContainsAny(s, "<>") {
						t.Errorf("mrkdwn text carries raw < or >: %.80q", s)
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(decoded)
		if total > 11000 {
			t.Errorf("actionable=%v: blocks carry %d characters, want well below 12000", actionable, total)
		}
		if len(decoded) > 50 {
			t.Errorf("%d blocks, want <= 50", len(decoded))
		}
		if strings.ContainsAny(text, "<>") || text == "" || utf8.RuneCountInString(text) > fallbackMax {
			t.Errorf("fallback text unsafe or empty: %.80q", text)
		}
		if h := decoded[0]["text"].(map[string]any)["text"].(string); utf8.RuneCountInString(h) > headerMax || !strings.HasSuffix(h, ellipsis) {
			t.Errorf("header %d chars, not truncated with an ellipsis", utf8.RuneCountInString(h))
		}
		for _, b := range decoded {
			if fields, ok := b["fields"].([]any); ok && len(fields) > 10 {
				t.Errorf("section has %d fields", len(fields))
			}
		}
	}
}

func TestEscapeFit(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"exactly10!", 10, "exactly10!"},
		{"elevenchars", 10, "elevencha…"},
		{"a<b", 10, "a&lt;b"},
		{"a<b", 4, "a…"}, // never split &lt;
		{"<!channel>", 100, "&lt;!channel&gt;"},
		{"x", 0, ""},
		{"héllo wörld", 6, "héllo…"},
		{"bad\xffutf8", 20, "bad\uFFFDutf8"},
	}
	for _, tt := range tests {
		if got := escapeFit(tt.in, tt.max); got != tt.want {
			t.Errorf("escapeFit(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if n := utf8.RuneCountInString(escapeFit(tt.in, tt.max)); n > tt.max {
			t.Errorf("escapeFit(%q, %d) has %d characters", tt.in, tt.max, n)
		}
	}
}
