package teams

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/viewtest"
	"github.com/approvebot/approvebot/display"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestRenderCardGolden renders every hostile request of viewtest as its
// card and its full view, and checks what the golden files only show.
func TestRenderCardGolden(t *testing.T) {
	cases := viewtest.Cases()
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			msg := bot.View(cases[name], 0)
			c, err := RenderCard(msg)
			if err != nil {
				t.Fatal(err)
			}
			pages := fullPages(msg)
			var full []json.RawMessage
			for p := 1; p <= len(pages); p++ {
				data, err := renderFullPage(msg, pages, p, "next-token", "approve-token")
				if err != nil {
					t.Fatal(err)
				}
				full = append(full, data)
			}
			got, _ := json.MarshalIndent(struct {
				Partial  bool              `json:"partial"`
				Card     json.RawMessage   `json:"card"`
				FullView []json.RawMessage `json:"full_view"`
			}{c.Partial, c.JSON, full}, "", "  ")
			got = append(got, '\n')
			path := filepath.Join("testdata", "card_"+name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("card differs from %s (run with -update after checking):\n%.3000s", path, got)
			}
			checkCard(t, msg, c, full)
		})
	}
}

// checkCard asserts the safety properties: agent text only in TextRuns,
// Approve only on a card that shows every bound fact, and every bound fact
// whole in the full view.
func checkCard(t *testing.T, msg approvebot.Message, c Card, full []json.RawMessage) {
	t.Helper()
	if len(c.JSON) > 28<<10 {
		t.Errorf("card is %d bytes", len(c.JSON))
	}
	runs, blocks := cardTexts(t, c.JSON)
	for _, f := range msg.Context {
		if len(f.Value) > 3 && strings.Contains(blocks, f.Value) {
			t.Errorf("context value %.40q in a TextBlock (renders Markdown)", f.Value)
		}
	}
	allShown := true
	for _, f := range msg.Bound {
		if !strings.Contains(runs, noTemplate(f.Label)+"  "+noTemplate(f.Value)+"\n") {
			allShown = false
		}
	}
	if c.Partial == allShown {
		t.Errorf("partial %v but all bound facts shown %v", c.Partial, allShown)
	}
	hasApprove := bytes.Contains(c.JSON, []byte(`"verb": "approve"`))
	hasViewAll := bytes.Contains(c.JSON, []byte(`"verb": "view_all"`))
	if msg.Actionable && (hasApprove == c.Partial || hasViewAll != c.Partial) {
		t.Errorf("partial %v: approve %v, view all %v", c.Partial, hasApprove, hasViewAll)
	}
	var all strings.Builder
	for i, p := range full {
		if len(p) > 28<<10 {
			t.Errorf("full view page %d is %d bytes", i+1, len(p))
		}
		r, _ := cardTexts(t, p)
		all.WriteString(r)
		if last := i == len(full)-1; bytes.Contains(p, []byte(`"verb": "approve"`)) != (last && msg.Actionable) {
			t.Errorf("page %d of %d: approve present %v", i+1, len(full), !last)
		}
	}
	joined := strings.ReplaceAll(all.String(), "\n↳ ", "")
	for _, f := range msg.Bound {
		if !strings.Contains(joined, noTemplate(f.Label)+"  "+noTemplate(f.Value)) {
			t.Errorf("full view lacks bound %s = %.60s", f.Label, f.Value)
		}
	}
}

// cardTexts returns the text of every RichTextBlock (its runs joined, one
// block per line) and of every TextBlock.
func cardTexts(t *testing.T, data []byte) (runs, blocks string) {
	t.Helper()
	var c struct {
		Body []struct {
			Type    string `json:"type"`
			Text    string `json:"text"`
			Inlines []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"inlines"`
		} `json:"body"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	var r, b strings.Builder
	for _, el := range c.Body {
		switch el.Type {
		case "RichTextBlock":
			for _, in := range el.Inlines {
				if in.Type != "TextRun" {
					t.Errorf("inline %s", in.Type)
				}
				r.WriteString(in.Text)
			}
			r.WriteString("\n")
		case "TextBlock":
			b.WriteString(el.Text + "\n")
		}
	}
	return r.String(), b.String()
}

func TestRenderCardShape(t *testing.T) {
	c, err := RenderCard(testMessage("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Type    string `json:"type"`
		Version string `json:"version"`
		Body    []struct {
			Type    string `json:"type"`
			Actions []struct {
				Type     string     `json:"type"`
				Verb     string     `json:"verb"`
				Data     actionData `json:"data"`
				Fallback *struct {
					Type string     `json:"type"`
					Data actionData `json:"data"`
				} `json:"fallback"`
			} `json:"actions"`
		} `json:"body"`
	}
	if err := json.Unmarshal(c.JSON, &card); err != nil {
		t.Fatal(err)
	}
	if card.Type != "AdaptiveCard" || card.Version != "1.5" {
		t.Fatalf("card %s %s", card.Type, card.Version)
	}
	last := card.Body[len(card.Body)-1]
	if last.Type != "ActionSet" || len(last.Actions) != 2 {
		t.Fatalf("last element %+v, want the Approve/Deny ActionSet", last)
	}
	for i, want := range []struct{ verb, decision string }{{"approve", "allow"}, {"deny", "deny"}} {
		a := last.Actions[i]
		if a.Type != "Action.Execute" || a.Verb != want.verb || a.Data != (actionData{RequestID: "req-1", Decision: want.decision}) ||
			a.Fallback == nil || a.Fallback.Type != "Action.Submit" || a.Fallback.Data != a.Data {
			t.Fatalf("action %d: %+v", i, a)
		}
	}
}

func TestRenderCardStaysSmall(t *testing.T) {
	msg := testMessage("req-1")
	for i := range 300 {
		msg.Context = append(msg.Context, approvebot.Field{Label: strings.Repeat("k", 100), Value: strings.Repeat("v*", 5000) + string(rune('a'+i%26))})
	}
	c, err := RenderCard(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.JSON) > 28<<10 {
		t.Fatalf("card is %d bytes, over 28 KB", len(c.JSON))
	}
	if !json.Valid(c.JSON) || !strings.Contains(string(c.JSON), "entries shown") || !strings.Contains(string(c.JSON), "Action.Execute") {
		t.Fatal("truncated card lost its truncation note or its buttons")
	}
	// approvebot's own lines at their longest, full of characters that
	// escape to six bytes: still a card, still under 28 KB.
	long := strings.Repeat("\u202E*", 3000)
	msg.Progress, msg.Notice, msg.Outcome = long, long, long
	for i := range 5 {
		msg.Fields = append(msg.Fields, approvebot.Field{Label: long, Value: long + string(rune('a'+i))})
	}
	if c, err = RenderCard(msg); err != nil || len(c.JSON) > 28<<10 {
		t.Fatalf("card with long own lines: %v, %d bytes", err, len(c.JSON))
	}
}

// TestRenderCardAttack: the bound amount and destination are on the card,
// before the context, and no context entry carries their label.
func TestRenderCardAttack(t *testing.T) {
	for _, filler := range []int{9, 40} {
		c, err := RenderCard(bot.View(viewtest.Attack(filler), 0))
		if err != nil {
			t.Fatal(err)
		}
		runs, _ := cardTexts(t, c.JSON)
		bound := strings.Index(runs, "parameters.amount  1000000\n")
		dest := strings.Index(runs, "parameters.destination  \"ACC-ATTACKER\"\n")
		ctx := strings.Index(runs, "context.parameters.amount  10\n")
		if bound < 0 || dest < 0 || ctx < bound || c.Partial {
			t.Fatalf("filler %d: bound %d dest %d context %d partial %v:\n%s", filler, bound, dest, ctx, c.Partial, runs)
		}
		if strings.Contains(runs, "\nparameters.amount  10\n") {
			t.Errorf("filler %d: a context value carries the bound label", filler)
		}
	}
}

func TestEscapeNeutralizesMarkdown(t *testing.T) {
	tests := map[string]string{
		"[x](https://e.example)": `\[x\](https://e.example)`,
		"**b** _i_ ~s~ `c`":      `\*\*b\*\* \_i\_ \~s\~ \` + "`c\\`",
		"# h":                    "\\# h",
		"total 12.50 - 3 = 9.5":  "total 12.50 - 3 = 9.5",
		"{{DATE(x)}}":            "{\\{DATE(x)}}",
		"<b>":                    `\<b\>`,
		"a\nb\u202E":             `a\\nb\\u202E`,
	}
	for in, want := range tests {
		if got := escape(in, 1000); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
	if got := escape(strings.Repeat("é", 50), 10); got != strings.Repeat("é", 9)+"…" {
		t.Errorf("truncation: %q", got)
	}
}

func TestWritePackage(t *testing.T) {
	const appID = "11111111-2222-3333-4444-555555555555"
	var buf bytes.Buffer
	if err := (Package{AppID: appID}).Write(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if len(files) != 3 {
		t.Fatalf("package holds %d files, want manifest.json, color.png, outline.png", len(files))
	}
	var m struct {
		Schema          string `json:"$schema"`
		ManifestVersion string `json:"manifestVersion"`
		ID              string `json:"id"`
		Icons           struct{ Color, Outline string }
		Bots            []struct {
			BotID              string   `json:"botId"`
			Scopes             []string `json:"scopes"`
			IsNotificationOnly bool     `json:"isNotificationOnly"`
		} `json:"bots"`
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if m.ID != appID || len(m.Bots) != 1 || m.Bots[0].BotID != appID || m.Bots[0].IsNotificationOnly {
		t.Fatalf("manifest %+v", m)
	}
	if !strings.Contains(m.Schema, "/v"+m.ManifestVersion+"/") {
		t.Fatalf("$schema %s does not match manifestVersion %s", m.Schema, m.ManifestVersion)
	}
	for name, size := range map[string]int{m.Icons.Color: 192, m.Icons.Outline: 32} {
		img, err := png.Decode(bytes.NewReader(files[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Fatalf("%s is %dx%d, want %dx%d", name, b.Dx(), b.Dy(), size, size)
		}
		if size == 32 {
			for y := range 32 {
				for x := range 32 {
					r, g, b, a := img.At(x, y).RGBA()
					if a != 0 && (r != a || g != a || b != a) {
						t.Fatalf("outline pixel (%d,%d) is not white on transparent", x, y)
					}
				}
			}
		}
	}
	if err := (Package{AppID: "not-a-guid"}).Write(io.Discard); err == nil {
		t.Fatal("Package.Write accepted a bad app id")
	}
}

func FuzzParseActivity(f *testing.F) {
	seeds := []string{
		`{"type":"invoke","name":"adaptiveCard/action","serviceUrl":"https://s/","channelId":"msteams","from":{"aadObjectId":"u"},"conversation":{"id":"19:a;messageid=1","tenantId":"t","conversationType":"channel"},"value":{"action":{"type":"Action.Execute","verb":"approve","data":{"request_id":"r","decision":"allow"}}}}`,
		`{"type":"message","serviceUrl":"https://s/","value":{"request_id":"r","decision":"deny"},"replyToId":"1","channelData":{"channel":{"id":"19:c"},"tenant":{"id":"t"}}}`,
		`{"type":"conversationUpdate","serviceUrl":"https://s/","conversation":{"id":"19:t","conversationType":"channel"},"channelData":{"team":{"id":"19:t","name":"T"},"eventType":"teamMemberAdded","tenant":{"id":"t"}}}`,
		`{"type":"installationUpdate","action":"remove","serviceUrl":"x"}`,
		`{"type":"invoke","name":"adaptiveCard/action","serviceUrl":"https://s/","value":{"action":{"type":"Action.Execute","verb":"view_all","data":{"request_id":"r","page":2,"token":"t"}}}}`,
		`{"type":"invoke","name":"adaptiveCard/action","serviceUrl":"https://s/","channelId":"msteams","from":{"aadObjectId":"u"},"conversation":{"id":"19:a;messageid=1","tenantId":"t","conversationType":"channel"},"value":{"action":{"type":"Action.Execute","verb":"approve","data":{"request_id":"r","decision":"allow","confirm":true,"reason":"ok \u202e"}}}}`,
		`{"type":"invoke","name":"adaptiveCard/action","serviceUrl":"https://s/","value":{"action":{"type":"Action.Execute","verb":"deny","data":{"request_id":"r","decision":"deny","reason":7}}}}`,
		`{"type":"message","value":"str"}`, `{}`, `null`, `[]`, `{"type":1}`,
		`{"timestamp":"2017-04-11T18:20:28.7270000Z","type":"message","serviceUrl":"u"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseActivity(body)
		if err != nil {
			if in != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if in.Activity.Type == "" || in.Activity.ServiceURL == "" {
			t.Fatal("accepted an activity without type or serviceUrl")
		}
		if c := in.Click; c != nil {
			if c.RequestID == "" || len(c.RequestID) > approvebot.MaxIDLength || (c.Decision != approvebot.Allow && c.Decision != approvebot.Deny) != c.ViewAll ||
				len(c.Reason) > maxReasonBytes {
				t.Fatalf("bad click %+v", c)
			}
		}
	})
}

func FuzzRenderCard(f *testing.F) {
	f.Add("title", "label", "value **x** [l](u)", "notice")
	f.Fuzz(func(t *testing.T, title, label, value, notice string) {
		msg := approvebot.Message{RequestID: "r", Title: title, Notice: notice, Actionable: true, Deadline: time.Unix(0, 0),
			Fields: []approvebot.Field{{Label: label, Value: value}}, Context: []approvebot.Field{{Label: value, Value: label}}}
		c, err := RenderCard(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(c.JSON) || len(c.JSON) > maxCardBytes {
			t.Fatalf("bad card (%d bytes)", len(c.JSON))
		}
	})
}

// FuzzFullView: for any binding parameters and context, every bound
// parameter's path and exact value appear in the Teams full view, Approve
// only on its last page, and no context entry carries a bound label.
func FuzzFullView(f *testing.F) {
	f.Add(`{"amount": 1000000, "destination": "ACC-ATTACKER"}`, `{"parameters": {"amount": 10}, "a00": "ok"}`)
	f.Add(`{"amount": 1e6, "fee": 1000000.00, "n": [1, {"x": null}], "e": {}, "a.b": -0.0, "t": "{{DATE(x)}}"}`, `{"parameters.amount": 10}`)
	f.Add(`{"blob": "`+strings.Repeat("x", 30000)+`"}`, `{}`)
	f.Fuzz(func(t *testing.T, params, ctx string) {
		if !json.Valid([]byte(params)) || !strings.HasPrefix(strings.TrimSpace(params), "{") {
			return
		}
		if !json.Valid([]byte(ctx)) || !strings.HasPrefix(strings.TrimSpace(ctx), "{") {
			ctx = ""
		}
		msg := bot.View(viewtest.V1("ar_fuzz", params, ctx), 0)
		c, err := RenderCard(msg)
		if err != nil {
			t.Fatal(err)
		}
		pages := fullPages(msg)
		var all strings.Builder
		for p := 1; p <= len(pages); p++ {
			data, err := renderFullPage(msg, pages, p, "n", "a")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(`"verb": "approve"`)) != (p == len(pages)) {
				t.Fatalf("page %d of %d: approve misplaced", p, len(pages))
			}
			runs, _ := cardTexts(t, data)
			all.WriteString(runs)
		}
		joined := strings.ReplaceAll(all.String(), "\n↳ ", "")
		want, _ := display.Flatten("parameters", json.RawMessage(params), 0)
		for _, e := range want {
			if !strings.Contains(joined, noTemplate(e.Path)+"  "+noTemplate(e.Value)+"\n") {
				t.Fatalf("full view lacks %s = %.80s", e.Path, e.Value)
			}
		}
		bound := map[string]bool{}
		for _, b := range msg.Bound {
			bound[b.Label] = true
		}
		for _, x := range msg.Context {
			if bound[x.Label] || !strings.HasPrefix(x.Label, "context") {
				t.Fatalf("context label %q", x.Label)
			}
		}
		if bytes.Contains(c.JSON, []byte(`"verb": "approve"`)) == c.Partial {
			t.Fatalf("partial %v with approve %v", c.Partial, !c.Partial)
		}
	})
}

// A message with a link to the web inbox offers it as an Action.OpenUrl,
// decided or not.
func TestRenderCardLink(t *testing.T) {
	for _, actionable := range []bool{true, false} {
		c, err := RenderCard(approvebot.Message{RequestID: "ar_1", Title: "t", Actionable: actionable, Link: "https://approvebot.example.com/inbox/r/ar_1"})
		data := c.JSON
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"type": "Action.OpenUrl"`) || !strings.Contains(string(data), `"url": "https://approvebot.example.com/inbox/r/ar_1"`) {
			t.Fatalf("no link in the card:\n%s", data)
		}
	}
}
