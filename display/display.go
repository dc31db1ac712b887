// Package display owns how a value from outside reaches a person's eyes:
// as inert text with every invisible or layout-changing character shown as
// a visible escape, JSON values exactly as they were received (number text
// untouched), and nested objects flattened into unambiguous paths. Chat
// renderers and the command line use it, so the rules live in one place;
// each platform then only adds the escaping its own markup needs.
package display

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Inline makes s safe to show on one line: line breaks, tabs, control
// characters, bidirectional overrides, zero-width and other invisible or
// non-standard space characters become visible escapes ("\n", "\u202E"), and
// invalid UTF-8 becomes U+FFFD. Printable text, including non-Latin scripts
// and emoji characters, is kept as it is.
func Inline(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		writeRune(&b, r)
		i += w
	}
	return b.String()
}

// Quote shows s as a JSON-like string literal: in double quotes, with '"' and
// '\' escaped as well as everything Inline escapes, so a string value cannot
// be mistaken for a number, for another value or for the end of itself.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			b.WriteRune(utf8.RuneError)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		default:
			writeRune(&b, r)
		}
		i += w
	}
	b.WriteByte('"')
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || invisible(r) {
			return true
		}
		i += w
	}
	return false
}

// invisible reports runes that would not show as themselves: controls,
// format characters (bidi overrides and isolates, zero-width space and
// joiners, word joiner, BOM, tag characters), line and paragraph separators,
// every space but U+0020, and private-use or unassigned code points.
func invisible(r rune) bool {
	if r >= 0x20 && r < 0x7f {
		return false
	}
	if r < 0x20 || r == 0x7f {
		return true
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Zs, unicode.Co, unicode.Cs) ||
		!unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) ||
		r == '\u115F' || r == '\u1160' || r == '\u3164' || r == '\uFFA0' // Hangul fillers render blank
}

func writeRune(b *strings.Builder, r rune) {
	if !invisible(r) {
		b.WriteRune(r)
		return
	}
	switch r {
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	default:
		if r > 0xffff {
			fmt.Fprintf(b, `\U%08X`, r)
		} else {
			fmt.Fprintf(b, `\u%04X`, r)
		}
	}
}

// Cut keeps at most n runes of s, the last being "…" when anything was cut.
// It reports whether it cut.
func Cut(s string, n int) (string, bool) {
	if n <= 0 {
		return "", s != ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	r := []rune(s)
	return string(r[:n-1]) + "…", true
}

// Entry is one flattened value: its path from the root and the value as
// shown.
type Entry struct {
	Path  string
	Value string
}

// MaxDepth bounds flattening; deeper values are shown as their JSON text.
const MaxDepth = 32

var simpleKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Key extends path with an object key: ".key" for a plain identifier,
// otherwise ["key"] quoted as Quote does, so that {"a.b": 1} and
// {"a": {"b": 1}} never share a path and a key cannot smuggle in
// spaces, brackets or invisible characters unseen.
func Key(path, key string) string {
	if simpleKey.MatchString(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + Quote(key) + "]"
}

// Index extends path with an array index.
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Flatten walks a JSON value as received, in its own key order, and returns
// every leaf under its path from prefix: strings as Quote shows them,
// numbers, true, false and null as their exact JSON text ("1e6" stays
// "1e6"), empty objects and arrays as {} and []. limit caps the entries
// returned (0: no cap); total counts them all. Text that is not valid JSON is
// returned as one quoted entry at prefix, so nothing is dropped unseen.
func Flatten(prefix string, raw json.RawMessage, limit int) (entries []Entry, total int) {
	f := flattener{limit: limit}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := f.value(dec, prefix, 0); err != nil {
		return []Entry{{Path: prefix, Value: Quote(string(raw))}}, 1
	}
	if _, err := dec.Token(); err != io.EOF {
		return []Entry{{Path: prefix, Value: Quote(string(raw))}}, 1
	}
	return f.out, f.total
}

type flattener struct {
	limit int
	total int
	out   []Entry
}

func (f *flattener) add(path, value string) {
	f.total++
	if f.limit <= 0 || len(f.out) < f.limit {
		f.out = append(f.out, Entry{Path: path, Value: value})
	}
}

func (f *flattener) value(dec *json.Decoder, path string, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%s: nested too deep", path)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := 0
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := kt.(string)
				if err := f.value(dec, Key(path, key), depth+1); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				f.add(path, "{}")
			}
		case '[':
			n := 0
			for dec.More() {
				if err := f.value(dec, Index(path, n), depth+1); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				f.add(path, "[]")
			}
		default:
			return fmt.Errorf("%s: unexpected %v", path, t)
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		f.add(path, Quote(t))
	case json.Number:
		// json.Number is the literal text as received.
		f.add(path, string(t))
	case bool:
		f.add(path, strconv.FormatBool(t))
	case nil:
		f.add(path, "null")
	}
	return nil
}

// Terminal makes text safe to print to a terminal: every control character
// but newline and tab (ESC, BEL, backspace, carriage return, C1 codes), every
// bidirectional, zero-width or other invisible character is shown as a
// visible escape, and bytes that are not UTF-8 as \xNN, so nothing in an
// agent's text can move the cursor, retitle the window, recolour the screen
// or reorder what the operator reads.
func Terminal(s string) string {
	if !needsTerminalEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		default:
			writeRune(&b, r)
		}
		i += w
	}
	return b.String()
}

func needsTerminalEscape(s string) bool {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || (r != '\n' && r != '\t' && invisible(r)) {
			return true
		}
		i += w
	}
	return false
}
