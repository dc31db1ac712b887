package intake

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/approvebot/approvebot/internal/jsonlex"
)

// smallObject is how many keys an object holds before its duplicate check
// moves from comparing against each earlier key to a map: below it the
// comparisons are cheaper than hashing, above it they would grow with the
// square of the keys.
const smallObject = 16

// scanner reads JSON text in one pass, as decodeObjectTokens would, without
// building tokens: it only says whether the text is acceptable and where the
// top-level values lie.
type scanner struct {
	text []byte
	pos  int
	// The unescaped keys of every object being read, outermost first, the
	// first of them in an array so that a body's usual few stay off the heap;
	// an object's keys are dropped when it closes.
	nkeys int
	keys  [24][]byte
	more  [][]byte
}

// keySet is the duplicate check of one object: its keys are the scanner's
// from the base-th on, indexed by big once there are smallObject of them.
type keySet struct {
	base int
	big  map[string]struct{}
}

// scanObject returns the members of text when decodeObjectTokens would
// accept it, the same members to the byte, and false otherwise.
func scanObject(text []byte) ([]member, bool) {
	var rawBuf [24]json.RawMessage
	s := scanner{text: text}
	raws := rawBuf[:0]
	top := keySet{}
	s.skipSpace()
	if !s.consume('{') {
		return nil, false
	}
	s.skipSpace()
	if !s.consume('}') {
		for {
			start, ok := s.member(&top, 1)
			if !ok {
				return nil, false
			}
			raws = append(raws, text[start:s.pos])
			s.skipSpace()
			if s.consume(',') {
				s.skipSpace()
				continue
			}
			if s.consume('}') {
				break
			}
			return nil, false
		}
	}
	s.skipSpace()
	if s.pos != len(text) || len(raws) == 0 {
		return nil, s.pos == len(text)
	}
	// One string holds every key: one allocation rather than one a key.
	var all strings.Builder
	n := 0
	for i := range s.nkeys {
		n += len(s.key(i))
	}
	all.Grow(n)
	for i := range s.nkeys {
		all.Write(s.key(i))
	}
	keys := all.String()
	members := make([]member, len(raws))
	for i := range members {
		k := len(s.key(i))
		members[i] = member{key: keys[:k], raw: raws[i]}
		keys = keys[k:]
	}
	return members, true
}

// member reads `"key": value` into set; depth is the value's. It returns
// where the value starts; s.pos is left just after it.
func (s *scanner) member(set *keySet, depth int) (start int, ok bool) {
	if s.pos >= len(s.text) || s.text[s.pos] != '"' {
		return 0, false
	}
	key, ok := s.readKey()
	if !ok || !s.addKey(set, key) {
		return 0, false
	}
	s.skipSpace()
	if !s.consume(':') {
		return 0, false
	}
	s.skipSpace()
	start = s.pos
	return start, s.value(depth)
}

// addKey records key in set, or reports false when set already holds it.
func (s *scanner) addKey(set *keySet, key []byte) bool {
	if set.big == nil && s.nkeys-set.base < smallObject {
		for i := set.base; i < s.nkeys; i++ {
			if bytes.Equal(s.key(i), key) {
				return false
			}
		}
	} else {
		if set.big == nil {
			set.big = make(map[string]struct{}, 2*(s.nkeys-set.base))
			for i := set.base; i < s.nkeys; i++ {
				set.big[string(s.key(i))] = struct{}{}
			}
		}
		if _, dup := set.big[string(key)]; dup {
			return false
		}
		set.big[string(key)] = struct{}{}
	}
	if s.nkeys < len(s.keys) {
		s.keys[s.nkeys] = key
	} else {
		s.more = append(s.more[:s.nkeys-len(s.keys)], key)
	}
	s.nkeys++
	return true
}

// key returns the i-th key held.
func (s *scanner) key(i int) []byte {
	if i < len(s.keys) {
		return s.keys[i]
	}
	return s.more[i-len(s.keys)]
}

// value reads one value nested depth levels deep (a top-level member's
// value is at depth 1), as decodeObjectTokens's skipValue does.
func (s *scanner) value(depth int) bool {
	if depth > maxDepth || s.pos >= len(s.text) {
		return false
	}
	switch c := s.text[s.pos]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, ok := s.skipString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) object(depth int) bool {
	s.pos++ // '{'
	set := keySet{base: s.nkeys}
	s.skipSpace()
	if s.consume('}') {
		return true
	}
	for {
		if _, ok := s.member(&set, depth+1); !ok {
			return false
		}
		s.skipSpace()
		if s.consume(',') {
			s.skipSpace()
			continue
		}
		s.nkeys = set.base
		return s.consume('}')
	}
}

func (s *scanner) array(depth int) bool {
	s.pos++ // '['
	s.skipSpace()
	if s.consume(']') {
		return true
	}
	for {
		if !s.value(depth + 1) {
			return false
		}
		s.skipSpace()
		if s.consume(',') {
			s.skipSpace()
			continue
		}
		return s.consume(']')
	}
}

// readKey reads a string and returns it as encoding/json unescapes it: a
// slice of the text when nothing needs unescaping.
func (s *scanner) readKey() ([]byte, bool) {
	start := s.pos + 1
	plain, ok := s.skipString()
	if !ok {
		return nil, false
	}
	inner := s.text[start : s.pos-1]
	if plain {
		return inner, true
	}
	return unquote(inner), true
}

// skipString reads a string at s.pos. plain reports that it holds only
// ASCII and no escapes, so its text is its value.
func (s *scanner) skipString() (plain, ok bool) {
	t, i := s.text, s.pos+1
	var high byte // every byte read, or'd: ASCII while below 0x80
	escaped := false
	for i < len(t) {
		c := t[i]
		if stringSafe[c] {
			high |= c
			i++
			continue
		}
		switch {
		case c == '"':
			s.pos = i + 1
			return !escaped && high < utf8.RuneSelf, true
		case c == '\\':
			escaped = true
			if i+1 >= len(t) {
				return false, false
			}
			if t[i+1] == 'u' {
				if _, ok := jsonlex.Hex4(t[i+2:]); !ok {
					return false, false
				}
				i += 6
			} else if _, ok := jsonlex.Escaped(t[i+1]); ok {
				i += 2
			} else {
				return false, false
			}
		default: // a control character
			return false, false
		}
	}
	return false, false
}

// stringSafe marks the bytes a string holds as they are: all but controls,
// the quote and the backslash.
var stringSafe = func() (safe [256]bool) {
	for c := 0x20; c < 256; c++ {
		safe[c] = c != '"' && c != '\\'
	}
	return safe
}()

// number reads a number as RFC 8259 spells one; what follows it is the
// caller's to judge.
func (s *scanner) number() bool {
	end, ok := jsonlex.Number(s.text, s.pos)
	s.pos = end
	return ok
}

func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.text[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}

func (s *scanner) skipSpace() { s.pos = jsonlex.SkipSpace(s.text, s.pos) }

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.text) && s.text[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// unquote returns the value of a string's text (between its quotes, its
// escapes already checked) exactly as encoding/json decodes it: invalid
// UTF-8 and lone surrogate escapes each become U+FFFD, so "\ud800" and
// "\udfff" are the same key to it, and to this.
func unquote(s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s
	}
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'u':
				rr, _ := jsonlex.Hex4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						lo, _ := jsonlex.Hex4(s[r+2:])
						if dec := utf16.DecodeRune(rr, lo); dec != unicode.ReplacementChar {
							r += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // the scan let only JSON's escapes through
				e, _ := jsonlex.Escaped(s[r+1])
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	return b
}
