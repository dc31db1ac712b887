// Package jsonlex owns the byte-level pieces of JSON text (RFC 8259) that
// the packages reading it by hand share: the hex digits of a \u escape and
// what a one-character escape stands for.
package jsonlex

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
