// Package jsonlex owns the byte-level pieces of JSON text (RFC 8259) that
// the packages reading or writing it by hand share: escapes, whitespace,
// numbers, and strings written as encoding/json writes them.
package jsonlex

import "encoding/json"

// Hex4 reads the first four bytes of b as the hex digits of a \u escape,
// and says whether they were (false too when b is shorter).
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}

// Escaped is the byte that the escape \c stands for, when c is one of the
// one-character escapes (\" \\ \/ \b \f \n \r \t).
func Escaped(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// SkipSpace returns the index of the first byte of b from i on that is not
// JSON whitespace (space, tab, line feed, carriage return).
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Number reads a number as RFC 8259 spells one, from b[i], and returns the
// index just after it. What follows is the caller's to judge ("01" is a 0
// followed by a stray 1).
func Number(b []byte, i int) (end int, ok bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		start := i + 1
		if i = digits(b, start); i == start {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = digits(b, i); i == start {
			return 0, false
		}
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// AppendString appends s as encoding/json writes a string. Most strings
// written by hand (names, ids, timestamps) are printable ASCII that needs no
// escape, which is copied between quotes; anything else goes through
// encoding/json, whose escaping (of <, > and &, of U+2028 and U+2029, of
// invalid UTF-8) this must not differ from.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
