package jsonlex

import (
	"encoding/json"
	"fmt"
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
