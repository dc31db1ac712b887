package jsonlex

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestAgainstEncodingJSON holds both readers to what encoding/json makes
// of the same escapes.
func TestAgainstEncodingJSON(t *testing.T) {
	for c := 0; c < 256; c++ {
		var want string
		err := json.Unmarshal([]byte(`"\`+string(rune(c))+`"`), &want)
		got, ok := Escaped(byte(c))
		if c == 'u' {
			continue
		}
		if ok != (err == nil) || (ok && string(got) != want) {
			t.Errorf("\\%c: got %q %v, encoding/json %q %v", c, got, ok, want, err)
		}
	}
	for _, r := range []rune{0, 0x1f, 0x7f, 0xe9, 0xd800, 0xffff, 0xabcd} {
		for _, form := range []string{"%04x", "%04X"} {
			digits := fmt.Sprintf(form, r)
			got, ok := Hex4([]byte(digits + "zz"))
			if !ok || got != r {
				t.Errorf("%s: got %x %v", digits, got, ok)
			}
		}
	}
	for _, bad := range []string{"", "12", "12g4", "-123", " 123"} {
		if _, ok := Hex4([]byte(bad)); ok {
			t.Errorf("%q read as hex digits", bad)
		}
	}
}

// FuzzAppendString holds the string writer to encoding/json.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "ops", "treasury-ops_2", "a b", `q"uote`, `back\slash`, "<b>", "a&b", "tab\t", "\u2028", "é", "\xff", "~", "\x7f", "dm:U0123", "\b\f\x00\x1f\r\n", "x\u2029y", "cut\xe2\x80", "line\nbreak", "\U0001F512 lock"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q: got %s, want x%s", s, got, want)
		}
	})
}

// FuzzNumber holds the number reader to encoding/json: a text is one
// number, read whole, exactly when encoding/json takes it as one.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "12.5", "1e5", "1E+2", "-1.5e-3", "01", "1.", ".5", "-", "1e", "1e+", "+1", "0x1", "1.2.3", "00", "9007199254740993"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n json.Number
		want := len(s) > 0 && (s[0] == '-' || '0' <= s[0] && s[0] <= '9') && strings.TrimSpace(s) == s &&
			json.Valid([]byte(s)) && json.Unmarshal([]byte(s), &n) == nil
		end, ok := Number([]byte(s), 0)
		if got := ok && end == len(s); got != want {
			t.Fatalf("%q: read whole %v (end %d, ok %v), encoding/json %v", s, got, end, ok, want)
		}
	})
}
