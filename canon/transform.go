package canon

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/approvebot/approvebot/internal/jsonlex"
	"github.com/gowebpki/jcs"
)

// maxDepth is encoding/json's nesting limit: json.Valid refuses a text
// nested deeper, so the parser must too.
const maxDepth = 10000

// errInvalid stands for any way the text fails the checks Canonicalize
// documents; Canonicalize then runs those checks to say which one.
var errInvalid = errors.New("invalid")

// transform appends the RFC 8785 form of text to out. It does what
// jcs.Transform does (tests hold the two equal) several times faster,
// because every audit record and every request is canonicalized on
// approvebot's hot path. It also checks, in the same pass, everything
// Canonicalize promises to check (one valid JSON value, valid UTF-8,
// whole \u characters), returning errInvalid when one fails; walking the
// text once instead of four times is most of the saving. Its other errors
// (duplicate keys, numbers out of range) are reported as they are. Numbers
// other than short integers still go through jcs.NumberToJSON, the ES6
// formatting RFC 8785 requires.
func transform(out, text []byte) ([]byte, error) {
	p := parsers.Get().(*parser)
	defer p.release()
	p.in = text
	out, err := p.value(out, 0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.in) {
		return nil, errInvalid
	}
	return out, nil
}

// parsers keeps parser scratch space between calls: the member stack and
// the buffers used to reorder members and hold unescaped keys would
// otherwise be allocated afresh for every object of every text.
var parsers = sync.Pool{New: func() any { return new(parser) }}

type parser struct {
	in []byte
	i  int

	// members is a stack shared by all open objects: each object pushes
	// its members above its parent's and pops them when it is written.
	members []member
	// keys holds the unescaped form of keys written with escapes; keys
	// without escapes are compared where they lie in the input.
	keys []byte
	// moved is where an object's members are copied while they are
	// written back in key order.
	moved []byte
	// order is the key order of the members of the object being written.
	order []int
}

// release returns p to the pool, unless a huge text grew its buffers: those
// are left to the collector rather than kept for ever.
func (p *parser) release() {
	const keep = 64 << 10
	if cap(p.keys) > keep || cap(p.moved) > keep || cap(p.members) > keep/16 || cap(p.order) > keep/8 {
		return
	}
	// Members point into the text; forget them so the pool keeps no
	// part of it alive.
	clear(p.members[:cap(p.members)])
	*p = parser{members: p.members[:0], keys: p.keys[:0], moved: p.moved[:0], order: p.order[:0]}
	parsers.Put(p)
}

// member is an object member whose canonical `"key":value` was written at
// [from, to) of the output. key is its unescaped key: a slice of the input
// when the key has no escapes, else of the parser's keys (which only grow
// during a parse, so an earlier slice stays valid when they move).
type member struct {
	key      []byte
	from, to int
}

func (p *parser) space() { p.i = jsonlex.SkipSpace(p.in, p.i) }

func (p *parser) value(out []byte, depth int) ([]byte, error) {
	p.space()
	if p.i >= len(p.in) {
		return nil, errInvalid
	}
	switch c := p.in[p.i]; c {
	case '{':
		if depth >= maxDepth {
			return nil, errInvalid
		}
		return p.object(out, depth+1)
	case '[':
		if depth >= maxDepth {
			return nil, errInvalid
		}
		return p.array(out, depth+1)
	case '"':
		out, _, err := p.str(out)
		return out, err
	case 't':
		return p.literal(out, "true")
	case 'f':
		return p.literal(out, "false")
	case 'n':
		return p.literal(out, "null")
	default:
		return p.number(out)
	}
}

func (p *parser) literal(out []byte, word string) ([]byte, error) {
	if end := p.i + len(word); end > len(p.in) || string(p.in[p.i:end]) != word {
		return nil, errInvalid
	}
	p.i += len(word)
	return append(out, word...), nil
}

func (p *parser) object(out []byte, depth int) ([]byte, error) {
	p.i++ // {
	out = append(out, '{')
	base := len(out)
	mark := len(p.members)
	// inOrder stays true while each key is no less than the one before.
	// encoding/json writes map keys sorted, and approvebot's structs mostly
	// declare fields in order, so most objects need no reordering: their
	// members are written straight to the output, commas included. equal
	// records that a key equal to the one before was seen meanwhile.
	inOrder, equal := true, false
	for {
		p.space()
		if p.i < len(p.in) && p.in[p.i] == '}' && len(p.members) == mark {
			p.i++
			return append(out, '}'), nil
		}
		if p.i >= len(p.in) || p.in[p.i] != '"' {
			return nil, errInvalid
		}
		if len(p.members) > mark {
			out = append(out, ',')
		}
		m := member{from: len(out)}
		keyStart := p.i + 1
		var escaped bool
		var err error
		if out, escaped, err = p.str(out); err != nil {
			return nil, err
		}
		if escaped {
			n := len(p.keys)
			p.keys = unescape(p.keys, out[m.from+1:len(out)-1])
			m.key = p.keys[n:]
		} else {
			// The token, quotes left out, is its value.
			m.key = p.in[keyStart : p.i-1]
		}
		if inOrder && len(p.members) > mark {
			switch c := compareKeys(p.members[len(p.members)-1].key, m.key); {
			case c > 0:
				inOrder = false
			case c == 0:
				equal = true
			}
		}
		p.space()
		if p.i >= len(p.in) || p.in[p.i] != ':' {
			return nil, errInvalid
		}
		p.i++
		out = append(out, ':')
		if out, err = p.value(out, depth); err != nil {
			return nil, err
		}
		m.to = len(out)
		p.members = append(p.members, m)
		p.space()
		if p.i >= len(p.in) {
			return nil, errInvalid
		}
		if p.in[p.i] == ',' {
			p.i++
			continue
		}
		if p.in[p.i] != '}' {
			return nil, errInvalid
		}
		p.i++
		break
	}
	members := p.members[mark:]
	defer func() { p.members = p.members[:mark] }()
	if inOrder {
		if equal {
			for i := 1; i < len(members); i++ {
				if k := members[i].key; bytes.Equal(k, members[i-1].key) {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
			}
		}
		return append(out, '}'), nil
	}
	// Sorting small indices moves less than sorting the members.
	order := p.order[:0]
	for i := range members {
		order = append(order, i)
	}
	p.order = order
	slices.SortFunc(order, func(a, b int) int { return compareKeys(members[a].key, members[b].key) })
	// Duplicates are looked for once all members are read, in key order,
	// so that the error names the key it always has.
	for i := 1; i < len(order); i++ {
		if k := members[order[i]].key; bytes.Equal(k, members[order[i-1]].key) {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
	}
	p.moved = append(p.moved[:0], out[base:]...)
	out = out[:base]
	for i, j := range order {
		if i > 0 {
			out = append(out, ',')
		}
		m := members[j]
		out = append(out, p.moved[m.from-base:m.to-base]...)
	}
	return append(out, '}'), nil
}

func (p *parser) array(out []byte, depth int) ([]byte, error) {
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
		if out, err = p.value(out, depth); err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) {
			return nil, errInvalid
		}
		if p.in[p.i] == ',' {
			p.i++
			continue
		}
		if p.in[p.i] != ']' {
			return nil, errInvalid
		}
		p.i++
		break
	}
	return append(out, ']'), nil
}

// str reads a string token and appends it in RFC 8785 form. A string
// without escapes is already in that form (JSON forbids raw control
// characters, and the UTF-8 is checked here), so it is copied as it
// stands; escaped reports whether the token had escapes, whose canonical
// spelling may differ from the input's.
func (p *parser) str(out []byte) (_ []byte, escaped bool, _ error) {
	p.i++ // "
	start := p.i
	for p.i < len(p.in) {
		// Most bytes are printable ASCII that stands for itself; one
		// table lookup each passes over them.
		for p.i < len(p.in) && plain[p.in[p.i]] {
			p.i++
		}
		if p.i >= len(p.in) {
			break
		}
		switch c := p.in[p.i]; {
		case c == '"':
			out = append(out, '"')
			out = append(out, p.in[start:p.i]...)
			p.i++
			return append(out, '"'), false, nil
		case c == '\\':
			out = append(out, '"')
			out = append(out, p.in[start:p.i]...)
			return p.escapedStr(out)
		case c < 0x20:
			return nil, false, errInvalid
		default:
			r, size := utf8.DecodeRune(p.in[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, errInvalid
			}
			p.i += size
		}
	}
	return nil, false, errInvalid
}

// plain holds the bytes a string token may hold that stand for themselves
// and are whole characters: printable ASCII but for quote and backslash.
// It is only read.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escapedStr continues str from the first backslash, the opening quote
// and the plain bytes before it already written.
func (p *parser) escapedStr(out []byte) (_ []byte, escaped bool, _ error) {
	for p.i < len(p.in) {
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			return append(out, '"'), true, nil
		case c < 0x20:
			return nil, false, errInvalid
		case c < utf8.RuneSelf && c != '\\':
			out = append(out, c)
			p.i++
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.in[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, errInvalid
			}
			out = append(out, p.in[p.i:p.i+size]...)
			p.i += size
			continue
		}
		if p.i+1 >= len(p.in) {
			return nil, false, errInvalid
		}
		e := p.in[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\':
			out = append(out, '\\', e)
		case '/':
			out = append(out, '/')
		case 'b', 'f', 'n', 'r', 't':
			out = append(out, '\\', e)
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, false, errInvalid
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low
				// one is a whole character.
				if r >= 0xDC00 || p.i+2 > len(p.in) || p.in[p.i] != '\\' || p.in[p.i+1] != 'u' {
					return nil, false, errInvalid
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return nil, false, errInvalid
				}
				r = utf16.DecodeRune(r, lo)
			}
			if r < 0x20 || r == '"' || r == '\\' {
				out = appendEscape(out, byte(r))
			} else {
				out = utf8.AppendRune(out, r)
			}
		default:
			return nil, false, errInvalid
		}
	}
	return nil, false, errInvalid
}

// hex4 reads the four hex digits of a \u escape.
func (p *parser) hex4() (rune, bool) {
	r, ok := jsonlex.Hex4(p.in[p.i:])
	if ok {
		p.i += 4
	}
	return r, ok
}

// unescape appends the value of a string token's content that str has
// written in canonical form: only \" \\ \b \f \n \r \t and \u00xx escapes
// are left in it.
func unescape(b, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if s[i] == 'u' {
			r, _ := jsonlex.Hex4(s[i+1:])
			b = append(b, byte(r))
			i += 4
			continue
		}
		e, _ := jsonlex.Escaped(s[i])
		b = append(b, e)
	}
	return b
}

// number writes a number as ES6 does, after checking it has JSON's form.
// Integers of up to 15 digits are exact in a float64 and written as they
// are (but for "-0"); the rest are parsed and formatted.
func (p *parser) number(out []byte) ([]byte, error) {
	end, ok := jsonlex.Number(p.in, p.i)
	if !ok {
		return nil, errInvalid
	}
	lit := p.in[p.i:end]
	p.i = end
	digits := len(lit)
	if lit[0] == '-' {
		digits--
	}
	if simple := !bytes.ContainsAny(lit, ".eE"); simple && digits <= 15 && string(lit) != "-0" {
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

// compareKeys orders keys, valid UTF-8, as RFC 8785 does: by UTF-16 code
// units. UTF-8 byte order is code point order, and the two orders differ
// only where a character above U+FFFF (a surrogate pair, 0xD800...) meets
// one in U+E000..U+FFFF; so the keys are compared as bytes and only the
// first differing characters, when not ASCII, are decoded and weighed. For
// ASCII (all keys approvebot writes) that is plain byte order, with no
// conversion to UTF-16.
func compareKeys(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	if n == len(a) || n == len(b) {
		// One is a prefix of the other, in characters as in bytes.
		return len(a) - len(b)
	}
	if a[n] < utf8.RuneSelf && b[n] < utf8.RuneSelf {
		return int(a[n]) - int(b[n])
	}
	// Back up to the start of the character both keys differ in.
	for n > 0 && !utf8.RuneStart(a[n]) {
		n--
	}
	ra, _ := utf8.DecodeRune(a[n:])
	rb, _ := utf8.DecodeRune(b[n:])
	return utf16Weight(ra) - utf16Weight(rb)
}

// utf16Weight ranks a character by its first UTF-16 code unit: U+E000..U+FFFF
// are moved above every surrogate pair, the rest keep code point order.
func utf16Weight(r rune) int {
	if r >= 0xE000 && r <= 0xFFFF {
		return int(r) + 0x110000
	}
	return int(r)
}

// AppendString appends s as a JSON string in RFC 8785 form: quote and
// backslash escaped, control characters as \b \t \n \f \r or \u00xx, every
// other character as itself. Invalid UTF-8 is written as U+FFFD, as
// encoding/json would have made it.
func AppendString(b []byte, s string) []byte {
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
		b = appendEscape(append(b, s[start:i]...), c)
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscape appends the RFC 8785 escape of c, a quote, a backslash or a
// control character: the short forms where JSON has one, \u00xx otherwise.
func appendEscape(b []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}
