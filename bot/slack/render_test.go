package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/viewtest"
	goslack "github.com/slack-go/slack"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current rendering")

// golden compares got with testdata/name.golden.json.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendering differs from %s; rerun with -update if intended\ngot:\n%.4000s", path, got)
	}
}

// TestRenderGolden renders every hostile request of viewtest, as its
// message and as its full view, and checks what the golden files only show.
func TestRenderGolden(t *testing.T) {
	cases := viewtest.Cases()
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			msg := bot.View(cases[name], 0)
			out := Render(msg)
			pages := fullViewPages(msg)
			var modals []goslack.ModalViewRequest
			for p := range pages {
				modals = append(modals, fullViewModal(msg, pages, p, "sealed-metadata"))
			}
			golden(t, name, struct {
				Text     string                     `json:"text"`
				Partial  bool                       `json:"partial"`
				Blocks   []goslack.Block            `json:"blocks"`
				FullView []goslack.ModalViewRequest `json:"full_view"`
			}{out.Text, out.Partial, out.Blocks, modals})
			checkInert(t, msg, out, modals)
		})
	}
}

// checkInert asserts the safety properties: limits hold, no agent text is in
// mrkdwn, Approve appears only when every bound fact is on the message, and
// the full view shows every bound fact whole.
func checkInert(t *testing.T, msg approvebot.Message, out Rendered, modals []goslack.ModalViewRequest) {
	t.Helper()
	raw, _ := json.Marshal(out.Blocks)
	var decoded []map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded) > 50 {
		t.Errorf("%d blocks, want <= 50", len(decoded))
	}
	plainText, total := walkTexts(t, decoded, msg)
	if total > 12000 {
		t.Errorf("message carries %d characters, over what Slack accepts", total)
	}
	hasApprove := bytes.Contains(raw, []byte(`"action_id":"approve"`))
	hasViewAll := bytes.Contains(raw, []byte(`"action_id":"view_all"`))
	allShown := true
	for _, f := range msg.Bound {
		if !strings.Contains(plainText, f.Label+"\n"+f.Value) {
			allShown = false
		}
	}
	if out.Partial == allShown {
		t.Errorf("partial %v, but every bound fact shown: %v", out.Partial, allShown)
	}
	if msg.Actionable && (hasApprove == out.Partial || hasViewAll != out.Partial) {
		t.Errorf("partial %v: approve button %v, view all %v", out.Partial, hasApprove, hasViewAll)
	}
	if out.Partial && !strings.Contains(string(raw), "too large to show here") {
		t.Error("a partial message does not say the action is too large")
	}
	if strings.ContainsAny(out.Text, "<>") || out.Text == "" {
		t.Errorf("fallback text %q", out.Text)
	}

	var modalText strings.Builder
	for i, m := range modals {
		data, _ := json.Marshal(m)
		if len(data) > 250<<10 {
			t.Errorf("modal page %d is %d bytes", i+1, len(data))
		}
		var blocks []map[string]any
		b, _ := json.Marshal(m.Blocks)
		_ = json.Unmarshal(b, &blocks)
		if len(blocks) > 100 {
			t.Errorf("modal page %d has %d blocks", i+1, len(blocks))
		}
		txt, _ := walkTexts(t, blocks, msg)
		modalText.WriteString(txt)
		if (m.Submit != nil) != (i == len(modals)-1 && msg.Actionable) {
			t.Errorf("modal page %d of %d has submit %v", i+1, len(modals), m.Submit)
		}
	}
	// Every bound fact, whole, in the full view (split sections rejoined).
	joined := strings.ReplaceAll(modalText.String(), "\n↳ ", "")
	for _, f := range msg.Bound {
		if !strings.Contains(joined, f.Label+"\n"+f.Value) {
			t.Errorf("full view lacks bound %s = %.60s", f.Label, f.Value)
		}
	}
}

// walkTexts returns the plain_text of blocks, one text per line, and the
// characters of all texts; it fails on agent text in mrkdwn or in a
// plain_text object that renders emoji.
func walkTexts(t *testing.T, blocks []map[string]any, msg approvebot.Message) (string, int) {
	t.Helper()
	var agent []string
	for _, f := range msg.Bound {
		agent = append(agent, f.Value)
	}
	for _, f := range msg.Context {
		agent = append(agent, strings.TrimPrefix(f.Label, "context"), f.Value)
	}
	var b strings.Builder
	total := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["text"].(string); ok {
				total += utf8.RuneCountInString(s)
				switch v["type"] {
				case "mrkdwn":
					for _, a := range agent {
						if len(a) > 3 && strings.Contains(s, a) {
							t.Errorf("agent text %.40q in mrkdwn %.80q", a, s)
						}
					}
				case "plain_text":
					if e, ok := v["emoji"].(bool); !ok || e {
						t.Errorf("plain_text renders emoji: %.80q", s)
					}
					b.WriteString(s + "\n")
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
	for _, x := range blocks {
		walk(x)
	}
	return b.String(), total
}

// TestRenderAttack is the attack once possible: context shadowed the bound
// parameter and filler pushed the bound values out of the message. The
// bound amount and destination must be on the message, before the context,
// and nothing from the context may carry their labels.
func TestRenderAttack(t *testing.T) {
	for _, filler := range []int{9, 40} {
		msg := bot.View(viewtest.Attack(filler), 0)
		out := Render(msg)
		text, _ := walkTexts(t, decode(t, out.Blocks), msg)
		bound := strings.Index(text, "parameters.amount\n1000000")
		dest := strings.Index(text, "parameters.destination\n\"ACC-ATTACKER\"")
		ctx := strings.Index(text, "context.parameters.amount\n10")
		if bound < 0 || dest < 0 {
			t.Fatalf("filler %d: the bound amount or destination is not shown:\n%s", filler, text)
		}
		if ctx >= 0 && ctx < bound {
			t.Errorf("filler %d: context shown before the bound facts", filler)
		}
		lines := strings.Split(text, "\n")
		for i := 0; i+1 < len(lines); i++ {
			if lines[i] == "parameters.amount" && lines[i+1] != "1000000" {
				t.Errorf("filler %d: parameters.amount shown as %q", filler, lines[i+1])
			}
		}
		if out.Partial || !bytes.Contains(mustJSON(t, out.Blocks), []byte(`"action_id":"approve"`)) {
			t.Errorf("filler %d: a small binding must fit and be approvable here", filler)
		}
	}
}

func decode(t *testing.T, blocks []goslack.Block) []map[string]any {
	var out []map[string]any
	if err := json.Unmarshal(mustJSON(t, blocks), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPartialStaysPartial: whether a message shows every bound fact depends
// on the bound facts alone, so later updates (progress, notices, outcome)
// agree with what the post recorded.
func TestPartialStaysPartial(t *testing.T) {
	for name, r := range viewtest.Cases() {
		msg := bot.View(r, 0)
		want := Render(msg).Partial
		msg.Progress = strings.Repeat("stage 1 of 2 approved by someone with a long name; ", 40)
		msg.Notice = strings.Repeat("not delivered to C0X (channel_not_found); ", 40)
		if got := Render(msg).Partial; got != want {
			t.Errorf("%s: partial %v after an update, %v when posted", name, got, want)
		}
		msg.Actionable, msg.Status, msg.Outcome = false, approvebot.StatusDenied, strings.Repeat("Denied by Sam ", 200)
		if got := Render(msg).Partial; got != want {
			t.Errorf("%s: partial %v once closed, %v when posted", name, got, want)
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
		{"a\u202Eb\nc", 20, `a\u202Eb\nc`},
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

func pendingMessage() approvebot.Message {
	return approvebot.Message{
		RequestID:    "req_01HZX3K9",
		Title:        "Approval needed",
		BoundHeading: bot.HeadingLegacy,
		Bound: []approvebot.Field{
			{Label: "action", Value: `"transfer_funds"`},
			{Label: "agent_id", Value: `"payments-agent"`},
		},
		Fields:     []approvebot.Field{{Label: "Deadline", Value: "2026-03-01 12:05 UTC"}},
		Status:     approvebot.StatusPending,
		Actionable: true,
	}
}
