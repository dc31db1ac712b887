package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/approvebot/approvebot"
)

// maxDepth bounds nesting so a hostile body cannot make the walk recurse
// without limit. Real context objects are a few levels deep.
const maxDepth = 32

// member is one key of an object with its value exactly as received.
type member struct {
	key string
	raw json.RawMessage
}

// decodeObject reads text as exactly one JSON object and returns its members
// in order. It refuses duplicate keys at any depth: encoding/json keeps the
// last of two equal keys while another reader may keep the first, so a
// duplicate could show approvers one value and digest another.
//
// Every body is read in a single pass over its bytes (scanObject). A body
// that pass refuses is read again by decodeObjectTokens, and its error is
// returned: refusals keep their wording byte for byte, and the fast reader
// never has to word one. The two agree on every input (the differential
// fuzz test FuzzDecodeObjectMatchesDecoder holds them to it); were they ever
// to disagree, the body is refused.
func decodeObject(text []byte, field string) ([]member, error) {
	if members, ok := scanObject(text); ok {
		return members, nil
	}
	if _, err := decodeObjectTokens(text, field); err != nil {
		return nil, err
	}
	return nil, fieldErr(field, "cannot be read as one JSON object without duplicate keys")
}

// decodeObjectTokens is decodeObject read through encoding/json's tokens. It
// is slow (an interface value and often an allocation per token) but its
// errors are the ones agents and operators have always seen, so it is kept
// to word the refusal of every body the single pass refuses.
func decodeObjectTokens(text []byte, field string) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(field, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fieldErr(field, "want a JSON object")
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(field, err)
		}
		key := tok.(string) // inside an object the decoder only yields string keys
		if seen[key] {
			return nil, fieldErr(field, "duplicate key %q", key)
		}
		seen[key] = true
		start := dec.InputOffset()
		sub := key
		if field != "" {
			sub = field + "." + key
		}
		if err := skipValue(dec, sub, 1); err != nil {
			return nil, err
		}
		raw := bytes.TrimLeft(text[start:dec.InputOffset()], " \t\r\n")
		raw = bytes.TrimLeft(bytes.TrimPrefix(raw, []byte(":")), " \t\r\n")
		members = append(members, member{key: key, raw: json.RawMessage(raw)})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxError(field, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fieldErr(field, "unexpected data after the JSON object")
	}
	return members, nil
}

// skipValue consumes one value, checking nested objects for duplicate keys.
// path names the value in errors ("context.destination").
func skipValue(dec *json.Decoder, path string, depth int) error {
	if depth > maxDepth {
		return fieldErr(path, "nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(path, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return syntaxError(path, err)
			}
			key := tok.(string)
			if seen[key] {
				return fieldErr(path, "duplicate key %q", key)
			}
			seen[key] = true
			if err := skipValue(dec, path+"."+key, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := skipValue(dec, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(path, err)
	}
	return nil
}

func syntaxError(field string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr(field, "JSON ends too early")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr(field, "invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return fieldErr(field, "invalid JSON: %s", err.Error())
}

// fieldErr names field when there is one; the body as a whole is "body".
func fieldErr(field, format string, args ...any) *approvebot.Error {
	if field == "" {
		field = "body"
	}
	return approvebot.FieldError(field, format, args...)
}
