// Package canon owns approvebot's canonical digests: SHA-256 over the RFC 8785
// (JCS) form of a JSON value, written "sha256:<hex>". ADR-0030 binds input,
// action and chain-entry digests to this form, so a digest computed here must
// match one computed by any other conforming implementation byte for byte.
package canon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/approvebot/approvebot/internal/jsonlex"
)

// Prefix starts every digest string.
const Prefix = "sha256:"

// Canonicalize returns the RFC 8785 form of a JSON text.
//
// The text is checked first: it must be one valid JSON value, valid UTF-8,
// with every \u escape forming whole characters (RFC 8785 requires that
// such input fail rather than be altered). Duplicate keys are refused.
func Canonicalize(text []byte) ([]byte, error) {
	// The canonical form is rarely longer than the text (only numbers
	// such as 1e2 grow), so one allocation is nearly always enough.
	return appendCanonical(make([]byte, 0, len(text)), text)
}

// appendCanonical appends the RFC 8785 form of text to dst, with
// Canonicalize's checks and errors.
func appendCanonical(dst, text []byte) ([]byte, error) {
	out, err := transform(dst, text)
	if err == nil {
		return out, nil
	}
	// transform checks everything in one pass but stops at the first
	// fault without naming it; the separate checks name it, in the order
	// and the words Canonicalize has always used.
	if !json.Valid(text) {
		return nil, errors.New("not a single valid JSON value")
	}
	if !utf8.Valid(text) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkEscapes(text); err != nil {
		return nil, err
	}
	if errors.Is(err, errInvalid) {
		// transform refused what the checks accept: never expected,
		// refused all the same.
		return nil, errors.New("canonicalize: text refused by the parser but not by the checks")
	}
	return nil, fmt.Errorf("canonicalize: %w", err)
}

// Digest returns "sha256:" + hex(SHA-256(JCS(text))).
func Digest(text []byte) (string, error) {
	// The canonical form is only hashed, so it is written to a pooled
	// buffer instead of a new one per call.
	bp := digestBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			digestBuffers.Put(bp)
		}
	}()
	c, err := appendCanonical((*bp)[:0], text)
	if err != nil {
		return "", err
	}
	*bp = c
	return Sum(c), nil
}

var digestBuffers = sync.Pool{New: func() any { return new([]byte) }}

// DigestOf marshals v with encoding/json and digests the result.
func DigestOf(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("marshal: %w", err)
	}
	return Digest(b)
}

// Sum formats the SHA-256 of bytes already in canonical form.
func Sum(canonical []byte) string {
	h := sha256.Sum256(canonical)
	// One allocation for the whole string, not one for the hex and one
	// for the concatenation.
	var b [len(Prefix) + 2*sha256.Size]byte
	copy(b[:], Prefix)
	hex.Encode(b[len(Prefix):], h[:])
	return string(b[:])
}

// checkEscapes refuses \u escapes that do not form whole characters: a high
// surrogate not followed by a low one, or a lone low surrogate. RFC 8785
// requires such input to fail rather than be altered. text is valid JSON.
func checkEscapes(text []byte) error {
	inString := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			i++
			if text[i] != 'u' {
				continue
			}
			r, _ := jsonlex.Hex4(text[i+1:]) // json.Valid has checked the digits
			i += 4
			if !utf16.IsSurrogate(r) {
				continue
			}
			if r >= 0xDC00 {
				return fmt.Errorf("unpaired surrogate \\u%04x at byte %d", r, i-5)
			}
			if i+6 >= len(text) || text[i+1] != '\\' || text[i+2] != 'u' {
				return fmt.Errorf("unpaired surrogate \\u%04x at byte %d", r, i-5)
			}
			lo, _ := jsonlex.Hex4(text[i+3:])
			if lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("unpaired surrogate \\u%04x at byte %d", r, i-5)
			}
			i += 6
		}
	}
	return nil
}
