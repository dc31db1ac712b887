package canon

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// transform must write exactly what the JCS library writes, on every input
// Canonicalize lets through; the library stays the reference.
func checkSameAsLibrary(t *testing.T, in []byte) {
	t.Helper()
	if !json.Valid(in) || !utf8.Valid(in) || checkEscapes(in) != nil {
		return // Canonicalize refuses these before transforming
	}
	ref := in
	if t := bytes.TrimSpace(in); len(t) > 0 && t[0] != '{' && t[0] != '[' && t[0] != '"' {
		// The library hands a top-level number or literal to ParseFloat
		// with its surrounding whitespace and fails; RFC 8785 ignores
		// that whitespace, and so does transform.
		ref = t
	}
	want, werr := jcs.Transform(ref)
	got, gerr := transform(in)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: library error %v, transform error %v", in, werr, gerr)
	}
	if werr == nil && string(got) != string(want) {
		t.Fatalf("%q:\ntransform %s\nlibrary   %s", in, got, want)
	}
}

func TestTransformMatchesLibrary(t *testing.T) {
	for _, in := range []string{
		`{"b":2,"a":1,"c":{"z":[],"y":{}}}`,
		` [ 1 , -0 , 0.0 , -0.0 , 1e2 , 1E-7 , 123456789012345 , 1234567890123456 , 12345678901234567890 , 4.5e300 , 5e-324 ] `,
		`{"\u20ac":1,"\ud83d\ude00":2,"\ufb33":3,"a":4,"\u0080":5,"":6}`,
		`"\u0000\u001f\b\t\n\f\r\"\\\/\u007f\u2028 é 😀 <&>"`,
		`{"a":1,"\u0061":2}`,
		`[1e400]`, `[-1e400]`, `[true,false,null]`, `{}`, `[]`, `""`, `0`, `-1`, `-0`, `1.0`, `100`, `1e21`, `1e20`,
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}`,
		`{"nested":{"b":[{"d":1,"c":2}],"a":"x"}}`,
	} {
		checkSameAsLibrary(t, []byte(in))
	}
}

func FuzzTransformMatchesLibrary(f *testing.F) {
	for _, s := range []string{`{"b":2,"a":1}`, `[1e30,-0.0,0.1,12345678901234567]`, `{"\ud83d\ude00":1,"\ufb33":2}`, `"\u0001\n"`, `{"a":{"a":[{"a":null}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkSameAsLibrary(t, in)
	})
}

// go test -run=^$ -bench=Canonicalize ./canon
func BenchmarkCanonicalize(b *testing.B) {
	in := []byte(`{"schema":"legacy","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","fields":{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":["treasury-ops","compliance"],"requested_at":"2026-01-02T03:04:05.123456+00:00"},"n":[1,2.5,300]}`)
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			if _, err := jcs.Transform(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("transform", func(b *testing.B) {
		for b.Loop() {
			if _, err := transform(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
