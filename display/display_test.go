package display

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestInline(t *testing.T) {
	tests := map[string]string{
		"plain text 12.50 EUR":        "plain text 12.50 EUR",
		"a\nb\r\tc":                   `a\nb\r\tc`,
		"\u202Eevil\u202C":            `\u202Eevil\u202C`,
		"zero\u200Bwidth\u200D\uFEFF": `zero\u200Bwidth\u200D\uFEFF`,
		"\x1b[31mred\x07\x00":         `\u001B[31mred\u0007\u0000`,
		"nbsp\u00A0here\u2003":        `nbsp\u00A0here\u2003`,
		"ls\u2028ps\u2029":            `ls\u2028ps\u2029`,
		"tag\U000E0041":               `tag\U000E0041`,
		"Zahlung für März ✅ مرحبا":    "Zahlung für März ✅ مرحبا",
		"bad\xffutf8":                 "bad\uFFFDutf8",
		"hangul\u3164filler":          `hangul\u3164filler`,
	}
	for in, want := range tests {
		if got := Inline(in); got != want {
			t.Errorf("Inline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := map[string]string{
		`ACC-789`:       `"ACC-789"`,
		`say "hi" \ ok`: `"say \"hi\" \\ ok"`,
		"a\nb":          `"a\nb"`,
		"\u202E":        `"\u202E"`,
		``:              `""`,
	}
	for in, want := range tests {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFlatten(t *testing.T) {
	raw := json.RawMessage(`{"amount": 1e6, "fee": 1000000.00, "neg": -0.0, "big": 123456789012345678901234567890,
		"to": {"iban": "DE89", "a.b": true, "": null, "sp ace": [1, "x", {}], "e": []},
		"\u202Ek": "v", "a": {"b": 2}, "a.b": 3}`)
	got, total := Flatten("parameters", raw, 0)
	want := []Entry{
		{"parameters.amount", "1e6"},
		{"parameters.fee", "1000000.00"},
		{"parameters.neg", "-0.0"},
		{"parameters.big", "123456789012345678901234567890"},
		{"parameters.to.iban", `"DE89"`},
		{`parameters.to["a.b"]`, "true"},
		{`parameters.to[""]`, "null"},
		{`parameters.to["sp ace"][0]`, "1"},
		{`parameters.to["sp ace"][1]`, `"x"`},
		{`parameters.to["sp ace"][2]`, "{}"},
		{"parameters.to.e", "[]"},
		{`parameters["\u202Ek"]`, `"v"`},
		{"parameters.a.b", "2"},
		{`parameters["a.b"]`, "3"},
	}
	if total != len(want) || len(got) != len(want) {
		t.Fatalf("got %d entries (total %d), want %d: %q", len(got), total, len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got, total := Flatten("c", raw, 3); len(got) != 3 || total != len(want) {
		t.Errorf("limit 3: %d entries, total %d", len(got), total)
	}
	for _, bad := range []string{`{broken`, `{"a":1} trailing`, ``} {
		got, total := Flatten("context", json.RawMessage(bad), 0)
		if total != 1 || len(got) != 1 || got[0].Path != "context" {
			t.Errorf("Flatten(%q) = %q", bad, got)
		}
	}
	deep := strings.Repeat(`{"a":`, MaxDepth+2) + "1" + strings.Repeat("}", MaxDepth+2)
	if got, _ := Flatten("d", json.RawMessage(deep), 0); len(got) != 1 || got[0].Path != "d" {
		t.Errorf("too deep: %q", got)
	}
}

func TestTerminal(t *testing.T) {
	in := "ok\n\tline \x1b]0;title\x07 \x1b[2J \r\b \u202E \u200B caf\xe9"
	got := Terminal(in)
	want := "ok\n\tline \\u001B]0;title\\u0007 \\u001B[2J \\r\\u0008 \\u202E \\u200B caf\\xE9"
	if got != want {
		t.Errorf("Terminal = %q, want %q", got, want)
	}
	if Terminal("plain ✅ text") != "plain ✅ text" {
		t.Error("plain text changed")
	}
}

// FuzzInline: whatever goes in, nothing invisible or line-breaking comes
// out, and printable text survives.
func FuzzInline(f *testing.F) {
	for _, s := range []string{"a\nb", "\u202E", "\x1b[0m", "ok", "\xff", "\U000E0041"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Inline(s), Quote(s), Terminal(s)} {
			if !utf8.ValidString(out) && out != Terminal(s) {
				t.Fatalf("invalid UTF-8 out of %q", s)
			}
			for _, r := range out {
				if r != '\n' && r != '\t' && invisible(r) && r != utf8.RuneError {
					if out == Terminal(s) && !utf8.ValidString(s) {
						continue
					}
					t.Fatalf("%q kept invisible %U", s, r)
				}
			}
		}
		if strings.ContainsAny(Inline(s), "\n\r\t") {
			t.Fatalf("Inline(%q) has a line break", s)
		}
	})
}

// FuzzFlatten: any input, no panic; every number literal of a valid object
// appears exactly as received.
func FuzzFlatten(f *testing.F) {
	for _, s := range []string{`{"a": 1e6, "b": [1.50, {"c": -0}]}`, `{}`, `[]`, `"x"`, `{`, `{"a":{"b":{"c":1}}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, total := Flatten("p", json.RawMessage(s), 0)
		if total != len(got) || total == 0 {
			t.Fatalf("%d entries, total %d", len(got), total)
		}
		for _, e := range got {
			if strings.ContainsAny(e.Path+e.Value, "\n\r") {
				t.Fatalf("entry %q has a line break", e)
			}
		}
	})
}
