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
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestRenderCardGolden(t *testing.T) {
	pending := testMessage("req-1")
	pending.Progress = "stage 1 of 2: waiting for payments-approvers"

	approved := testMessage("req-1")
	approved.Actionable = false
	approved.Status = approvebot.StatusApproved
	approved.Outcome = "Approved by Jane Doe at 12:01 UTC"

	hostile := testMessage("req-2")
	hostile.Title = "Approval needed: **urgent**\nclick [here](https://evil.example)"
	hostile.Context = []approvebot.Field{
		{Label: "note", Value: "# Approved already\n- by [the CEO](https://evil.example) <b>really</b> {{DATE(2017-02-14T06:08:39Z, SHORT)}}"},
		{Label: "amount", Value: "1. 12.50 EUR_x_*y*`z`"},
		{Label: "ctl", Value: "a\x00b\x1bc\u2028d\re"},
	}
	hostile.Notice = "not delivered to 19:x@thread.tacv2: HTTP 403 BotNotInConversationRoster"

	for name, msg := range map[string]approvebot.Message{"pending": pending, "approved": approved, "hostile": hostile} {
		t.Run(name, func(t *testing.T) {
			got, err := RenderCard(msg)
			if err != nil {
				t.Fatal(err)
			}
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
				t.Fatalf("card differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestRenderCardShape(t *testing.T) {
	data, err := RenderCard(testMessage("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
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
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.Type != "AdaptiveCard" || c.Version != "1.5" {
		t.Fatalf("card %s %s", c.Type, c.Version)
	}
	last := c.Body[len(c.Body)-1]
	if last.Type != "ActionSet" || len(last.Actions) != 2 {
		t.Fatalf("last element %+v, want the Approve/Deny ActionSet", last)
	}
	for i, want := range []struct{ verb, decision string }{{"approve", "allow"}, {"deny", "deny"}} {
		a := last.Actions[i]
		if a.Type != "Action.Execute" || a.Verb != want.verb || a.Data != (actionData{"req-1", want.decision}) ||
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
	data, err := RenderCard(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 28<<10 {
		t.Fatalf("card is %d bytes, over 28 KB", len(data))
	}
	if !json.Valid(data) || !strings.Contains(string(data), "more not shown") || !strings.Contains(string(data), "Action.Execute") {
		t.Fatal("truncated card lost its truncation note or its buttons")
	}
}

func TestEscapeNeutralizesMarkdown(t *testing.T) {
	tests := map[string]string{
		"[x](https://e.example)": `\[x\](https://e.example)`,
		"**b** _i_ ~s~ `c`":      `\*\*b\*\* \_i\_ \~s\~ \` + "`c\\`",
		"# h\n- l\n+ l\n1. n":    "\\# h\n\\- l\n\\+ l\n1\\. n",
		"total 12.50 - 3 = 9.5":  "total 12.50 - 3 = 9.5",
		"{{DATE(x)}}":            "{\u200b{DATE(x)}}",
		"<b>":                    `\<b\>`,
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
	if err := WritePackage(&buf, appID); err != nil {
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
	if err := WritePackage(io.Discard, "not-a-guid"); err == nil {
		t.Fatal("WritePackage accepted a bad app id")
	}
}

func FuzzParseActivity(f *testing.F) {
	seeds := []string{
		`{"type":"invoke","name":"adaptiveCard/action","serviceUrl":"https://s/","channelId":"msteams","from":{"aadObjectId":"u"},"conversation":{"id":"19:a;messageid=1","tenantId":"t","conversationType":"channel"},"value":{"action":{"type":"Action.Execute","verb":"approve","data":{"request_id":"r","decision":"allow"}}}}`,
		`{"type":"message","serviceUrl":"https://s/","value":{"request_id":"r","decision":"deny"},"replyToId":"1","channelData":{"channel":{"id":"19:c"},"tenant":{"id":"t"}}}`,
		`{"type":"conversationUpdate","serviceUrl":"https://s/","conversation":{"id":"19:t","conversationType":"channel"},"channelData":{"team":{"id":"19:t","name":"T"},"eventType":"teamMemberAdded","tenant":{"id":"t"}}}`,
		`{"type":"installationUpdate","action":"remove","serviceUrl":"x"}`,
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
			if c.RequestID == "" || len(c.RequestID) > maxRequestID || (c.Decision != approvebot.Allow && c.Decision != approvebot.Deny) {
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
		data, err := RenderCard(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(data) || len(data) > maxCardBytes {
			t.Fatalf("bad card (%d bytes)", len(data))
		}
	})
}
