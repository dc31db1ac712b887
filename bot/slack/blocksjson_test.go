package slack

import (
	"bytes"
	"encoding"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/viewtest"
	goslack "github.com/slack-go/slack"
)

// slackGoBlocks is the blocks form value slack-go sends for blocks given
// to MsgOptionBlocks (formSender: json.Marshal of the list, [] for none).
func slackGoBlocks(t testing.TB, blocks []goslack.Block) []byte {
	t.Helper()
	if len(blocks) == 0 {
		blocks = []goslack.Block{}
	}
	want, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// checkBlocksJSON renders msg and holds appendBlocks to slack-go.
func checkBlocksJSON(t testing.TB, msg approvebot.Message) []byte {
	t.Helper()
	blocks := Render(msg).Blocks
	got, ok := appendBlocks(nil, blocks)
	if !ok {
		t.Fatalf("appendBlocks does not know a block Render made: %s", slackGoBlocks(t, blocks))
	}
	if want := slackGoBlocks(t, blocks); !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("blocks differ from slack-go's at byte %d:\ngot:  %.300s\nwant: %.300s", i, got[i:], want[i:])
	}
	return got
}

// variants are msg in every shape Render draws: each review-button layout,
// with progress, a notice and a link, and closed in every status.
func variants(msg approvebot.Message) []approvebot.Message {
	out := []approvebot.Message{msg}
	open := msg
	open.Actionable, open.Status = true, approvebot.StatusPending
	for _, mod := range []func(*approvebot.Message){
		func(m *approvebot.Message) {},
		func(m *approvebot.Message) { m.ConfirmApprove = true },
		func(m *approvebot.Message) { m.Reason = approvebot.ReasonRule{Approve: approvebot.ReasonOptional} },
		func(m *approvebot.Message) { m.Reason = approvebot.ReasonRule{Deny: approvebot.ReasonRequired} },
		func(m *approvebot.Message) {
			m.Progress = `stage 1 of 2 approved by "Jane" <jane@example.com> & co` + "\u2028"
			m.Notice = "not delivered to C0X (channel_not_found)\n\tretrying"
			m.Link = "https://approvebot.example/r/" + m.RequestID + "?a=1&b=<2>|x"
		},
	} {
		m := open
		mod(&m)
		out = append(out, m)
	}
	for _, s := range []approvebot.Status{approvebot.StatusApproved, approvebot.StatusDenied, approvebot.StatusTimedOut,
		approvebot.StatusExpired, approvebot.StatusCancelled, approvebot.StatusPending, approvebot.StatusUndeliverable} {
		m := msg
		m.Actionable, m.Status, m.Outcome = false, s, ""
		out = append(out, m)
		m.Outcome = "Denied by Sam <sam@example.com>: \"too much\" & \x01"
		out = append(out, m)
	}
	return out
}

// TestBlocksJSONMatchesSlackGo: for every message the render tests draw,
// in every shape, the blocks written by hand are the bytes slack-go would
// have sent; and for the golden files' messages, they are those files'
// blocks.
func TestBlocksJSONMatchesSlackGo(t *testing.T) {
	cases := viewtest.Cases()
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			msg := bot.View(cases[name], 0)
			got := checkBlocksJSON(t, msg)
			raw, err := os.ReadFile(filepath.Join("testdata", name+".golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			var file struct{ Blocks json.RawMessage }
			if err := json.Unmarshal(raw, &file); err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, file.Blocks); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("blocks differ from %s's:\ngot:  %.300s\nwant: %.300s", name, got, want.Bytes())
			}
			for _, m := range variants(msg) {
				checkBlocksJSON(t, m)
			}
		})
	}
	for _, m := range variants(pendingMessage()) {
		checkBlocksJSON(t, m)
	}
}

// FuzzBlocksJSON holds the writer to slack-go for messages made of hostile
// agent text: quotes, <, >, &, controls, invalid UTF-8, U+2028 and U+2029.
func FuzzBlocksJSON(f *testing.F) {
	f.Add("Pay <b>now</b>", "amount", `"1000000"`, "a & b \"q\" \\ \u2028\u2029", uint8(0))
	f.Add("", "\x00\x1f\x7f", "\xff\xfe bad utf8 \xe2\x80", "<!channel> <@U123>", uint8(1))
	f.Add("\u202e evil", "label\nnewline", strings.Repeat("x", 2100), "tab\there\r\n", uint8(3))
	f.Add("ok", "k", "v", "", uint8(0xf5))
	statuses := []approvebot.Status{approvebot.StatusPending, approvebot.StatusApproved, approvebot.StatusDenied,
		approvebot.StatusTimedOut, approvebot.StatusExpired, approvebot.StatusCancelled, approvebot.StatusNoRoute, ""}
	f.Fuzz(func(t *testing.T, title, label, value, text string, flags uint8) {
		msg := approvebot.Message{
			RequestID:      "ar_" + text,
			Title:          title,
			BoundHeading:   label,
			Bound:          []approvebot.Field{{Label: label, Value: value}, {Label: value, Value: text}},
			ContextHeading: text,
			Context:        []approvebot.Field{{Label: label, Value: text}, {Label: text, Value: value}},
			Fields:         []approvebot.Field{{Label: "Deadline", Value: text}},
			Status:         statuses[int(flags>>4)%len(statuses)],
			Outcome:        value,
			Progress:       text,
			Notice:         value,
			Link:           title,
			Actionable:     flags&1 != 0,
			ConfirmApprove: flags&2 != 0,
		}
		if flags&4 != 0 {
			msg.Reason.Approve = approvebot.ReasonOptional
		}
		if flags&8 != 0 {
			msg.Reason.Deny = approvebot.ReasonRequired
		}
		checkBlocksJSON(t, msg)
		// And as the engine builds messages, from an agent's parameters.
		params, _ := json.Marshal(map[string]string{label: value, "note": text})
		ctx, _ := json.Marshal(map[string]string{"why": title})
		checkBlocksJSON(t, bot.View(viewtest.V1("ar_fuzz", string(params), string(ctx)), 0))
	})
}

// TestBlocksJSONFallsBack: what the writer does not know, it refuses, so
// slack-go marshals it as before.
func TestBlocksJSONFallsBack(t *testing.T) {
	text := plain("x")
	for name, blk := range map[string]goslack.Block{
		"image":           goslack.NewImageBlock("https://example.com/a.png", "alt", "", nil),
		"input":           goslack.NewInputBlock("b", text, nil, goslack.NewPlainTextInputBlockElement(text, "a")),
		"nil":             nil,
		"nil section":     (*goslack.SectionBlock)(nil),
		"section value":   *goslack.NewSectionBlock(text, nil, nil),
		"accessory":       goslack.NewSectionBlock(text, nil, goslack.NewAccessory(goslack.NewButtonBlockElement("a", "v", text))),
		"expand":          &goslack.SectionBlock{Type: goslack.MBTSection, Text: text, Expand: true},
		"nil field":       goslack.NewSectionBlock(nil, []*goslack.TextBlockObject{text, nil}, nil),
		"header level":    goslack.NewHeaderBlock(text, goslack.HeaderBlockOptionLevel(2)),
		"context image":   goslack.NewContextBlock("", text, goslack.NewImageBlockElement("https://example.com/a.png", "alt")),
		"context nil":     goslack.NewContextBlock("", text, (*goslack.TextBlockObject)(nil)),
		"actions select":  goslack.NewActionBlock("b", goslack.NewOptionsSelectBlockElement(goslack.OptTypeStatic, text, "a")),
		"button url":      goslack.NewActionBlock("b", goslack.NewButtonBlockElement("a", "v", text).WithURL("https://example.com")),
		"button nil":      goslack.NewActionBlock("b", (*goslack.ButtonBlockElement)(nil)),
		"button audience": goslack.NewActionBlock("b", &goslack.ButtonBlockElement{Type: goslack.METButton, Text: text, VisibleToUserIDs: []string{"U1"}}),
	} {
		if got, ok := appendBlocks(nil, []goslack.Block{goslack.NewDividerBlock(), blk}); ok {
			t.Errorf("%s: written by hand as %s, want a fallback to slack-go", name, got)
		}
	}
	// What it knows in shapes Render does not make, it writes as slack-go does.
	yes := true
	for name, blk := range map[string]goslack.Block{
		"context empty":    goslack.NewContextBlock("c"),
		"context no list":  &goslack.ContextBlock{Type: goslack.MBTContext},
		"actions empty":    goslack.NewActionBlock("a"),
		"actions no list":  &goslack.ActionBlock{Type: goslack.MBTAction},
		"divider id":       &goslack.DividerBlock{Type: goslack.MBTDivider, BlockID: "d<1>"},
		"header bare":      &goslack.HeaderBlock{Type: goslack.MBTHeader, BlockID: "h"},
		"section text id":  goslack.NewSectionBlock(goslack.NewTextBlockObject(goslack.PlainTextType, "t", true, true), nil, nil, goslack.SectionBlockOptionBlockID("s")),
		"text emoji true":  goslack.NewContextBlock("", &goslack.TextBlockObject{Type: "plain_text", Text: "e", Emoji: &yes}),
		"button bare":      goslack.NewActionBlock("", &goslack.ButtonBlockElement{}),
		"confirm all":      goslack.NewActionBlock("", goslack.NewButtonBlockElement("a", "v", text).WithConfirm(goslack.NewConfirmationBlockObject(nil, text, nil, text).WithStyle(goslack.StyleDanger))),
		"confirm no deny":  goslack.NewActionBlock("", goslack.NewButtonBlockElement("a", "", text).WithConfirm(goslack.NewConfirmationBlockObject(text, text, text, nil))),
		"untyped elements": &goslack.ContextBlock{ContextElements: goslack.ContextElements{Elements: []goslack.MixedElement{}}},
	} {
		blocks := []goslack.Block{blk}
		got, ok := appendBlocks(nil, blocks)
		if want := slackGoBlocks(t, blocks); !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: got %s (%v), want %s", name, got, ok, want)
		}
	}
	// No blocks is [], as MsgOptionBlocks() sends: an update clears buttons.
	if got, ok := appendBlocks(nil, nil); !ok || string(got) != "[]" {
		t.Errorf("no blocks: got %s (%v), want []", got, ok)
	}
}

// TestBlocksJSONKnowsEveryField fails when a new slack-go changes a type
// the writer handles: a field added, renamed or retagged, or a MarshalJSON
// of its own that would take over from its struct tags.
func TestBlocksJSONKnowsEveryField(t *testing.T) {
	known := map[reflect.Type][]string{
		reflect.TypeFor[goslack.HeaderBlock]():             {"Type type", "Text text,omitempty", "BlockID block_id,omitempty", "Level level,omitempty"},
		reflect.TypeFor[goslack.SectionBlock]():            {"Type type", "Text text,omitempty", "BlockID block_id,omitempty", "Fields fields,omitempty", "Accessory accessory,omitempty", "Expand expand,omitempty"},
		reflect.TypeFor[goslack.ContextBlock]():            {"Type type", "BlockID block_id,omitempty", "ContextElements elements"},
		reflect.TypeFor[goslack.ContextElements]():         {"Elements "},
		reflect.TypeFor[goslack.ActionBlock]():             {"Type type", "BlockID block_id,omitempty", "Elements elements"},
		reflect.TypeFor[goslack.BlockElements]():           {"ElementSet elements,omitempty"},
		reflect.TypeFor[goslack.DividerBlock]():            {"Type type", "BlockID block_id,omitempty"},
		reflect.TypeFor[goslack.TextBlockObject]():         {"Type type", "Text text", "Emoji emoji,omitempty", "Verbatim verbatim,omitempty"},
		reflect.TypeFor[goslack.ConfirmationBlockObject](): {"Title title", "Text text", "Confirm confirm", "Deny deny,omitempty", "Style style,omitempty"},
		reflect.TypeFor[goslack.ButtonBlockElement](): {"Type type,omitempty", "Text text", "ActionID action_id,omitempty", "URL url,omitempty",
			"Value value,omitempty", "Confirm confirm,omitempty", "Style style,omitempty", "AccessibilityLabel accessibility_label,omitempty",
			"AgentPrompt agent_prompt,omitempty", "AgentPromptDisplay agent_prompt_display,omitempty", "VisibleToUserIDs visible_to_user_ids,omitempty"},
	}
	marshalers := map[reflect.Type]bool{ // whose MarshalJSON the writer copies
		reflect.TypeFor[goslack.ContextElements]():  true,
		reflect.TypeFor[*goslack.ContextElements](): true,
		reflect.TypeFor[*goslack.BlockElements]():   true,
	}
	for typ, want := range known {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name+" "+f.Tag.Get("json"))
			if f.Type.Kind() == reflect.String && f.Type.Implements(reflect.TypeFor[json.Marshaler]()) {
				t.Errorf("%s.%s's type marshals itself", typ.Name(), f.Name)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("slack-go's %s has fields %q, the writer knows %q", typ.Name(), got, want)
		}
		for _, tt := range []reflect.Type{typ, reflect.PointerTo(typ)} {
			self := tt.Implements(reflect.TypeFor[json.Marshaler]()) || tt.Implements(reflect.TypeFor[encoding.TextMarshaler]())
			if self != marshalers[tt] {
				t.Errorf("%s implements json.Marshaler: %v, the writer assumes %v", tt, self, marshalers[tt])
			}
		}
	}
}

// TestPostSendsBlocksAsSlackGo: through the fake, a post and an update
// carry the bytes slack-go would have sent; blocks the writer does not know
// still go, marshalled by slack-go.
func TestPostSendsBlocksAsSlackGo(t *testing.T) {
	f := newFake(t)
	s := newSlack(t, f, nil)
	ctx := wait(t)
	msg := pendingMessage()
	msg.Bound = append(msg.Bound, approvebot.Field{Label: "memo", Value: `"<b>pay</b> & \"go\"` + "\u2028\xff\""})
	ref, err := s.Post(ctx, "C0APPROVALS", msg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := f.Message(ref.Channel, ref.ID)
	if want := slackGoBlocks(t, Render(msg).Blocks); !bytes.Equal(m.Blocks, want) {
		t.Errorf("posted blocks:\n%s\nwant:\n%s", m.Blocks, want)
	}
	msg.Actionable, msg.Status = false, approvebot.StatusDenied
	if err := s.Update(ctx, ref, msg); err != nil {
		t.Fatal(err)
	}
	m, _ = f.Message(ref.Channel, ref.ID)
	if want := slackGoBlocks(t, Render(msg).Blocks); !bytes.Equal(m.Blocks, want) || m.Actionable || m.Updates != 1 {
		t.Errorf("updated blocks (actionable %v, updates %d):\n%s\nwant:\n%s", m.Actionable, m.Updates, m.Blocks, want)
	}

	unknown := []goslack.Block{*goslack.NewSectionBlock(plain("a section by value"), nil, nil)}
	if _, ok := appendBlocks(nil, unknown); ok {
		t.Fatal("the writer knows a section by value; pick another block it does not know")
	}
	ch, ts, err := s.api().PostMessageContext(ctx, "C0APPROVALS", goslack.MsgOptionText("t", false), s.blocks("chat.postMessage", unknown))
	if err != nil {
		t.Fatal(err)
	}
	m, _ = f.Message(ch, ts)
	if want := slackGoBlocks(t, unknown); !bytes.Equal(m.Blocks, want) {
		t.Errorf("fallback blocks:\n%s\nwant:\n%s", m.Blocks, want)
	}
}

// BenchmarkBlocksJSON is the blocks form value of a large message (the
// attack case: 40 context entries) and of a small one, by slack-go and by
// hand.
func BenchmarkBlocksJSON(b *testing.B) {
	for name, msg := range map[string]approvebot.Message{
		"small": pendingMessage(),
		"large": bot.View(viewtest.Attack(40), 0),
	} {
		blocks := Render(msg).Blocks
		b.Run(name+"/slack-go", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(blocks); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/by-hand", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := appendBlocks(make([]byte, 0, 4096), blocks); !ok {
					b.Fatal("fallback")
				}
			}
		})
	}
}
