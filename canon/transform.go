package canon

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// transform writes the RFC 8785 form of a text Canonicalize has checked:
// one valid JSON value, valid UTF-8, every \u escape a whole character. It
// does what jcs.Transform does (tests hold the two equal) several times
// faster, because every audit record and every request is canonicalized on
// approvebot's hot path. Numbers other than short integers still go through
// jcs.NumberToJSON, the ES6 formatting RFC 8785 requires.
func transform(text []byte) ([]byte, error) {
	p := parser{in: text}
	out, err := p.value(make([]byte, 0, len(text)))
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.in) {
		return nil, fmt.Errorf("unexpected data after the value at byte %d", p.i)
	}
	return out, nil
}

type parser struct {
	in []byte
	i  int
}

func (p *parser) space() {
	for p.i < len(p.in) {
		switch p.in[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(out []byte) ([]byte, error) {
	p.space()
	if p.i >= len(p.in) {
		return nil, errors.New("unexpected end of JSON")
	}
	switch c := p.in[p.i]; c {
	case '{':
		return p.object(out)
	case '[':
		return p.array(out)
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return AppendString(out, s), nil
	case 't':
		p.i += len("true")
		return append(out, "true"...), nil
	case 'f':
		p.i += len("false")
		return append(out, "false"...), nil
	case 'n':
		p.i += len("null")
		return append(out, "null"...), nil
	default:
		return p.number(out)
	}
}

// member is an object member whose canonical value was written at
// [from, to) of the output, to be moved into key order.
type member struct {
	key      string
	from, to int
}

func (p *parser) object(out []byte) ([]byte, error) {
	p.i++ // {
	base := len(out)
	var members []member
	for {
		p.space()
		if p.i < len(p.in) && p.in[p.i] == '}' && len(members) == 0 {
			p.i++
			break
		}
		if p.i >= len(p.in) || p.in[p.i] != '"' {
			return nil, fmt.Errorf("expected a key at byte %d", p.i)
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != ':' {
			return nil, fmt.Errorf("expected ':' at byte %d", p.i)
		}
		p.i++
		from := len(out)
		if out, err = p.value(out); err != nil {
			return nil, err
		}
		members = append(members, member{key, from, len(out)})
		p.space()
		if p.i >= len(p.in) {
			return nil, errors.New("unexpected end of JSON in an object")
		}
		if p.in[p.i] == ',' {
			p.i++
			continue
		}
		if p.in[p.i] != '}' {
			return nil, fmt.Errorf("expected ',' or '}' at byte %d", p.i)
		}
		p.i++
		break
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	values := slices.Clone(out[base:])
	out = append(out[:base], '{')
	for i, m := range members {
		if i > 0 {
			if m.key == members[i-1].key {
				return nil, fmt.Errorf("duplicate key %q", m.key)
			}
			out = append(out, ',')
		}
		out = AppendString(out, m.key)
		out = append(out, ':')
		out = append(out, values[m.from-base:m.to-base]...)
	}
	return append(out, '}'), nil
}

func (p *parser) array(out []byte) ([]byte, error) {
	p.i++ // [
	out = append(out, '[')
	for n := 0; ; n++ {
		p.space()
		if p.i < len(p.in) && p.in[p.i] == ']' && n == 0 {
			p.i++
			break
		}
		if n > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = p.value(out); err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) {
			return nil, errors.New("unexpected end of JSON in an array")
		}
		if p.in[p.i] == ',' {
			p.i++
			continue
		}
		if p.in[p.i] != ']' {
			return nil, fmt.Errorf("expected ',' or ']' at byte %d", p.i)
		}
		p.i++
		break
	}
	return append(out, ']'), nil
}

// str reads a string token and returns its value.
func (p *parser) str() (string, error) {
	p.i++ // "
	start := p.i
	for p.i < len(p.in) && p.in[p.i] != '"' && p.in[p.i] != '\\' {
		p.i++
	}
	if p.i < len(p.in) && p.in[p.i] == '"' {
		s := string(p.in[start:p.i])
		p.i++
		return s, nil
	}
	b := []byte(string(p.in[start:p.i]))
	for p.i < len(p.in) {
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), nil
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.in) {
			break
		}
		e := p.in[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if p.i+4 > len(p.in) {
				return "", errors.New("short \\u escape")
			}
			r := hex4(p.in[p.i : p.i+4])
			p.i += 4
			if utf16.IsSurrogate(r) {
				// checkEscapes made sure a low surrogate follows.
				if p.i+6 > len(p.in) {
					return "", errors.New("unpaired surrogate")
				}
				r = utf16.DecodeRune(r, hex4(p.in[p.i+2:p.i+6]))
				p.i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", fmt.Errorf("bad escape \\%c", e)
		}
	}
	return "", errors.New("unterminated string")
}

// number writes a number as ES6 does. Integers of up to 15 digits are exact
// in a float64 and written as they are (but for "-0"); the rest are parsed
// and formatted.
func (p *parser) number(out []byte) ([]byte, error) {
	start := p.i
	simple := true
	for p.i < len(p.in) {
		c := p.in[p.i]
		if c >= '0' && c <= '9' || c == '-' {
			p.i++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' {
			simple = false
			p.i++
			continue
		}
		break
	}
	lit := p.in[start:p.i]
	if len(lit) == 0 {
		return nil, fmt.Errorf("unexpected character at byte %d", start)
	}
	digits := len(lit)
	if lit[0] == '-' {
		digits--
	}
	if simple && digits >= 1 && digits <= 15 && string(lit) != "-0" {
		return append(out, lit...), nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, fmt.Errorf("number %s: %w", lit, err)
	}
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return nil, err
	}
	return append(out, s...), nil
}

// compareUTF16 orders keys as RFC 8785 does: by UTF-16 code units. For
// ASCII (all keys approvebot writes) that is byte order.
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// AppendString appends s as a JSON string in RFC 8785 form: quote and
// backslash escaped, control characters as \b \t \n \f \r or \u00xx, every
// other character as itself. Invalid UTF-8 is written as U+FFFD, as
// encoding/json would have made it.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is still to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = utf8.AppendRune(b, utf8.RuneError)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
